"""Merge specs, checked by hand and against real Keras and torch."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from studio.catalog import CATALOG, ParamCount, ParamError, ShapeError  # noqa: E402
from studio.catalog.merging import (  # noqa: E402
    SPECS,
    Add,
    Average,
    Concatenate,
    MatMul,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)

ELEMENTWISE = [Add(), Subtract(), Multiply(), Average(), Maximum(), Minimum()]
CONCAT = Concatenate()


def _concat(axis: int) -> dict:
    return CONCAT.validate_params({"axis": axis})


def test_specs_are_registered_with_their_category():
    assert [spec.key for spec in SPECS] == [
        "Add",
        "Subtract",
        "Multiply",
        "Average",
        "Maximum",
        "Minimum",
        "Concatenate",
        "MatMul",
    ]
    for spec in SPECS:
        assert CATALOG.get(spec.key).category == "Merge"


@pytest.mark.parametrize("spec", [*ELEMENTWISE, CONCAT], ids=lambda spec: spec.key)
def test_input_counts(spec):
    limit = 2 if spec.key == "Subtract" else None
    assert spec.min_inputs == 2 and spec.max_inputs == limit
    assert not spec.accepts_input_count(1)
    assert spec.accepts_input_count(2)
    assert spec.accepts_input_count(3) is (limit is None)
    assert spec.accepts_input_count(8) is (limit is None)


@pytest.mark.parametrize("spec", [*ELEMENTWISE, CONCAT], ids=lambda spec: spec.key)
def test_no_weights(spec):
    inputs = [(4, 4, 3), (4, 4, 3)]
    assert spec.count_params(spec.defaults(), inputs) == ParamCount()
    assert spec.count_torch_params(spec.defaults(), inputs) == ParamCount()


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=lambda spec: spec.key)
def test_elementwise_by_hand(spec):
    assert spec.output_shape({}, [(28, 28, 32), (28, 28, 32)]) == (28, 28, 32)
    assert spec.output_shape({}, [(10,), (10,)]) == (10,)


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=lambda spec: spec.key)
def test_elementwise_shapes_must_broadcast(spec):
    with pytest.raises(ShapeError) as error:
        spec.output_shape({}, [(28, 28, 32), (14, 14, 32)])
    assert str(error.value) == (
        "input 2 has shape (None, 14, 14, 32) but input 1 has (None, 28, 28, 32): they do not broadcast "
        "(axis -3 has sizes 28 and 14; sizes must match or be 1)"
    )


@pytest.mark.parametrize("spec", [Add(), Maximum()], ids=lambda spec: spec.key)
def test_elementwise_names_the_offending_input(spec):
    with pytest.raises(
        ShapeError, match=r"^input 3 has shape \(None, 3, 8\) but inputs 1 to 2 broadcast to \(None, 4, 8\)"
    ):
        spec.output_shape({}, [(4, 8), (1, 8), (3, 8)])


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=lambda spec: spec.key)
def test_elementwise_broadcasts_on_the_last_axes(spec):
    """Squeeze-and-excitation's scale, a pooled vector against an image, unit axes both ways."""
    assert spec.output_shape({}, [(1, 1, 32), (28, 28, 32)]) == (28, 28, 32)
    assert spec.output_shape({}, [(28, 28, 32), (32,)]) == (28, 28, 32)
    assert spec.output_shape({}, [(5, 1), (1, 4)]) == (5, 4)


def test_concatenate_by_hand():
    assert CONCAT.output_shape(_concat(-1), [(28, 28, 32), (28, 28, 16)]) == (28, 28, 48)
    assert CONCAT.output_shape(_concat(3), [(28, 28, 32), (28, 28, 16), (28, 28, 1)]) == (28, 28, 49)
    assert CONCAT.output_shape(_concat(1), [(5, 8), (7, 8)]) == (12, 8)
    assert CONCAT.output_shape(_concat(-2), [(5, 8), (7, 8)]) == (12, 8)


def test_concatenate_other_axes_must_match():
    with pytest.raises(ShapeError) as error:
        CONCAT.output_shape(_concat(-1), [(28, 28, 32), (14, 14, 32)])
    assert str(error.value) == (
        "input 2 has shape (None, 14, 14, 32) but input 1 has (None, 28, 28, 32): all axes but -1 must match"
    )


def test_concatenate_ranks_must_match():
    with pytest.raises(ShapeError, match=r"input 2 has shape \(None, 8\) but input 1 has \(None, 4, 8\)"):
        CONCAT.output_shape(_concat(-1), [(4, 8), (8,)])


def test_concatenate_rejects_the_batch_axis():
    with pytest.raises(ParamError, match="axis=0"):
        CONCAT.validate_params({"axis": 0})


@pytest.mark.parametrize("axis", [4, -4, 10])
def test_concatenate_axis_out_of_range(axis):
    with pytest.raises(ShapeError) as error:
        CONCAT.output_shape(_concat(axis), [(8, 8, 3), (8, 8, 3)])
    assert f"axis={axis}" in str(error.value)
    assert "(None, 8, 8, 3)" in str(error.value)
    assert "1 to 3 or -3 to -1" in str(error.value)


ELEMENTWISE_CASES = [
    [(4, 4, 3), (4, 4, 3)],
    [(10,), (10,), (10,)],
    [(6, 2)] * 4,
    [(4, 4, 3), (1, 1, 3)],
    [(3,), (4, 4, 3)],
    [(5, 1), (1, 4), (4,)],
]


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=lambda spec: spec.key)
@pytest.mark.parametrize("inputs", ELEMENTWISE_CASES)
def test_elementwise_matches_keras(spec, inputs):
    if not spec.accepts_input_count(len(inputs)):
        with pytest.raises(ValueError):
            getattr(keras.layers, spec.key)()([keras.Input(shape) for shape in inputs])
        return
    layer = getattr(keras.layers, spec.key)()
    out = layer([keras.Input(shape) for shape in inputs])
    assert spec.output_shape({}, inputs) == tuple(out.shape[1:])
    assert layer.count_params() == 0


CONCAT_CASES = [
    (-1, [(28, 28, 32), (28, 28, 16)]),
    (3, [(4, 4, 1), (4, 4, 2), (4, 4, 3)]),
    (1, [(5, 8), (7, 8)]),
    (-2, [(5, 8), (7, 8)]),
    (2, [(4, 3, 2), (4, 5, 2)]),
    (1, [(3,), (4,)]),
]


@pytest.mark.parametrize(("axis", "inputs"), CONCAT_CASES)
def test_concatenate_matches_keras_and_torch(axis, inputs):
    layer = keras.layers.Concatenate(axis=axis)
    out = layer([keras.Input(shape) for shape in inputs])
    ours = CONCAT.output_shape(_concat(axis), inputs)
    assert ours == tuple(out.shape[1:])
    assert layer.count_params() == 0
    # torch counts the batch as dim 0 too (the layout change for images is the emitter's business).
    joined = torch.cat([torch.zeros(2, *shape) for shape in inputs], dim=axis)
    assert ours == tuple(joined.shape[1:])


def test_subtract_is_input_1_minus_input_2_in_both_frameworks():
    first, second = np.arange(6.0, dtype="float32").reshape(1, 2, 3), np.ones((1, 2, 3), dtype="float32")
    keras_out = keras.ops.convert_to_numpy(keras.layers.Subtract()([first, second]))
    torch_out = torch.sub(torch.from_numpy(first), torch.from_numpy(second)).numpy()
    np.testing.assert_array_equal(keras_out, first - second)
    np.testing.assert_array_equal(torch_out, first - second)


MATMUL_CASES = [
    [(2, 5, 3), (2, 3, 4)],  # heads, queries, features @ heads, features, keys
    [(5, 3), (3, 7)],
    [(1, 5, 3), (6, 3, 4)],  # a unit leading axis broadcasts
    [(2, 1, 5, 3), (1, 4, 3, 2)],
]


@pytest.mark.parametrize("inputs", MATMUL_CASES)
def test_matmul_matches_keras_and_torch(inputs):
    spec = MatMul()
    ours = spec.output_shape({}, inputs)
    keras_out = keras.ops.matmul(*(keras.Input(shape) for shape in inputs))
    assert ours == tuple(keras_out.shape[1:])
    assert ours == tuple(torch.matmul(*(torch.zeros(2, *shape) for shape in inputs)).shape[1:])
    assert spec.count_params({}, inputs) == ParamCount()
    assert spec.count_flops({}, inputs, ours).macs == int(np.prod(ours)) * inputs[0][-1]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([(2, 5, 3), (2, 4, 4)], "has 3 columns but input 2 .* has 4 rows"),
        ([(5, 3), (2, 3, 4)], "same rank"),
        ([(2, 5, 3), (3, 3, 4)], "leading axes .* do not broadcast"),
        ([(6,), (6,)], "two axes besides the batch"),
    ],
)
def test_matmul_shape_errors_say_what_to_change(inputs, message):
    with pytest.raises(ShapeError, match=message):
        MatMul().output_shape({}, inputs)
