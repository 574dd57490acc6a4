"""Pooling specs, checked by hand and against the real Keras layers."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import itertools  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from studio.catalog import CATALOG, ParamError, ShapeError  # noqa: E402
from studio.catalog.pooling import (  # noqa: E402
    SPECS,
    AdaptiveMaxPooling2D,
    AveragePooling1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)

KINDS = {spec.key: spec for spec in SPECS}
WINDOWED_1D = ["MaxPooling1D", "AveragePooling1D"]
WINDOWED_2D = ["MaxPooling2D", "AveragePooling2D"]
GLOBAL = ["GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling2D"]
ADAPTIVE = [
    "AdaptiveAveragePooling1D",
    "AdaptiveMaxPooling1D",
    "AdaptiveAveragePooling2D",
    "AdaptiveMaxPooling2D",
]


def ours(kind: str, params: dict, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    spec = KINDS[kind]
    clean = spec.validate_params(params)
    return spec.output_shape(clean, [shape]), spec.count_params(clean, [shape]).total


def theirs(kind: str, params: dict, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """The Keras layer built with every parameter of ours, defaults included, as keyword arguments."""
    layer = getattr(keras.layers, kind)(**KINDS[kind].validate_params(params))
    out = layer(keras.Input(shape))
    return tuple(out.shape[1:]), layer.count_params()


def test_specs_are_registered():
    assert sorted(KINDS) == sorted(WINDOWED_1D + WINDOWED_2D + GLOBAL + ADAPTIVE)
    assert [spec.key for spec in SPECS][:2] == ["MaxPooling2D", "AveragePooling2D"]
    for spec in SPECS:
        assert CATALOG.get(spec.key) is spec or CATALOG.get(spec.key).key == spec.key
        assert spec.category == "Pooling"
        assert all(param.doc for param in spec.params)


def test_defaults_match_keras():
    assert MaxPooling2D().defaults() == {"pool_size": (2, 2), "strides": None, "padding": "valid"}
    assert AveragePooling1D().defaults() == {"pool_size": (2,), "strides": None, "padding": "valid"}
    for kind in KINDS:
        shape = (9, 4) if kind.endswith("1D") else (9, 8, 4)
        assert ours(kind, {}, shape) == theirs(kind, {}, shape)


# --- hand-worked cases --------------------------------------------------------------------------


def test_windowed_pooling_by_hand():
    pool = MaxPooling2D()
    # pool 2, strides default to 2: 28 // 2 = 14; channels kept, no weights.
    assert ours("MaxPooling2D", {}, (28, 28, 3)) == ((14, 14, 3), 0)
    # odd input, 'valid': (7 - 2) // 2 + 1 = 3; 'same': ceil(7 / 2) = 4.
    assert pool.output_shape(pool.defaults(), [(7, 7, 1)]) == (3, 3, 1)
    assert ours("MaxPooling2D", {"padding": "same"}, (7, 7, 1)) == ((4, 4, 1), 0)
    # ResNet stem: pool 3, stride 2, 'same' on 112: ceil(112 / 2) = 56.
    assert ours("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (112, 112, 64))[0] == (
        56,
        56,
        64,
    )
    # pool 3, stride 2, 'valid' on 8: (8 - 3) // 2 + 1 = 3; pool (2, 1) halves only the height.
    assert ours("AveragePooling2D", {"pool_size": 3, "strides": 2}, (8, 8, 2))[0] == (3, 3, 2)
    assert ours("AveragePooling2D", {"pool_size": (2, 1)}, (8, 5, 2))[0] == (4, 5, 2)


def test_1d_pooling_by_hand():
    # pool 3, strides default 3: (10 - 3) // 3 + 1 = 3; 'same': ceil(10 / 3) = 4.
    assert ours("MaxPooling1D", {"pool_size": 3}, (10, 4)) == ((3, 4), 0)
    assert ours("AveragePooling1D", {"pool_size": 3, "padding": "same"}, (10, 4)) == ((4, 4), 0)
    # An int is accepted for the 1-tuple, as Keras accepts pool_size=3.
    assert AveragePooling1D().validate_params({"pool_size": 3, "strides": 1})["strides"] == (1,)


def test_global_pooling_by_hand():
    assert ours("GlobalMaxPooling2D", {}, (5, 5, 7)) == ((7,), 0)
    assert ours("GlobalAveragePooling1D", {}, (10, 4)) == ((4,), 0)
    assert ours("GlobalMaxPooling2D", {"keepdims": True}, (5, 5, 7)) == ((1, 1, 7), 0)
    assert ours("GlobalAveragePooling1D", {"keepdims": True}, (10, 4)) == ((1, 4), 0)
    assert [param.name for param in GlobalMaxPooling2D().params] == ["keepdims"]


def test_adaptive_pooling_by_hand():
    # Any output size, smaller or larger than the input (AlexNet's (6, 6) from a 1x1 map).
    assert ours("AdaptiveAveragePooling2D", {"output_size": 6}, (1, 1, 256)) == ((6, 6, 256), 0)
    assert ours("AdaptiveAveragePooling2D", {"output_size": (3, 5)}, (7, 2, 4)) == ((3, 5, 4), 0)
    assert ours("AdaptiveMaxPooling1D", {"output_size": 3}, (10, 4)) == ((3, 4), 0)


@pytest.mark.parametrize(
    ("size", "shape"), [((1, 4), (6, 6, 2)), ((3, 3), (1, 5, 2)), ((2, 2), (4, 1, 2))], ids=str
)
def test_adaptive_max_pooling_refuses_unit_axes(size, shape):
    """Keras 3.15's TensorFlow AdaptiveMaxPooling dies of SIGFPE there: the spec says so instead."""
    with pytest.raises(ShapeError, match=r"axis of size 1 .*GlobalMaxPooling2D .*MaxPooling2D"):
        AdaptiveMaxPooling2D().output_shape({"output_size": size}, [shape])


# --- against real Keras -------------------------------------------------------------------------

WINDOWED_2D_CASES = [
    pytest.param(
        kind,
        {"pool_size": pool, "strides": stride, "padding": padding},
        (size, size + 1, 3),
        id=f"{kind}-{padding}-p{pool}-s{stride}-n{size}",
    )
    for kind, padding, pool, stride, size in itertools.product(
        WINDOWED_2D, ("valid", "same"), (2, 3), (None, 1, 2), (7, 8)
    )
] + [
    pytest.param("MaxPooling2D", {"pool_size": (3, 1), "strides": (1, 2)}, (6, 5, 2), id="rect-valid"),
    pytest.param(
        "AveragePooling2D",
        {"pool_size": (1, 4), "strides": (3, 1), "padding": "same"},
        (7, 3, 2),
        id="rect-same",
    ),
    pytest.param("MaxPooling2D", {"pool_size": 4, "padding": "same"}, (3, 2, 1), id="pool-larger-same"),
]


@pytest.mark.parametrize(("kind", "params", "shape"), WINDOWED_2D_CASES)
def test_2d_pooling_matches_keras(kind, params, shape):
    assert ours(kind, params, shape) == theirs(kind, params, shape)


WINDOWED_1D_CASES = [
    pytest.param(
        kind,
        {"pool_size": pool, "strides": stride, "padding": padding},
        (steps, 3),
        id=f"{kind}-{padding}-p{pool}-s{stride}-n{steps}",
    )
    for kind, padding, pool, stride, steps in itertools.product(
        WINDOWED_1D, ("valid", "same"), (2, 3), (None, 1, 2), (9, 10)
    )
]


@pytest.mark.parametrize(("kind", "params", "shape"), WINDOWED_1D_CASES)
def test_1d_pooling_matches_keras(kind, params, shape):
    assert ours(kind, params, shape) == theirs(kind, params, shape)


@pytest.mark.parametrize("kind", GLOBAL)
@pytest.mark.parametrize("size", [1, 6, 7])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_matches_keras(kind, size, keepdims):
    shape = (size, 5) if kind.endswith("1D") else (size, size + 1, 5)
    assert ours(kind, {"keepdims": keepdims}, shape) == theirs(kind, {"keepdims": keepdims}, shape)


@pytest.mark.parametrize("kind", ADAPTIVE)
@pytest.mark.parametrize(("size", "out"), [(2, 3), (7, 2), (5, 5), (9, 4)])
def test_adaptive_pooling_matches_keras(kind, size, out):
    shape = (size, 3) if kind.endswith("1D") else (size, size + 1, 3)
    params = {"output_size": (out,) if kind.endswith("1D") else (out, out + 1)}
    assert ours(kind, params, shape) == theirs(kind, params, shape)


@settings(max_examples=50, deadline=None)
@given(
    size=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    pool=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    strides=st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4)),
    padding=st.sampled_from(["valid", "same"]),
)
def test_2d_pooling_agrees_with_keras_on_what_is_valid(size, pool, strides, padding):
    params = {"pool_size": pool, "strides": strides, "padding": padding}
    shape = (*size, 2)
    try:
        layer = keras.layers.MaxPooling2D(**params)  # not through our validation
        expected = tuple(layer(keras.Input(shape)).shape[1:]), layer.count_params()
    except ValueError:
        with pytest.raises(ShapeError):
            ours("MaxPooling2D", params, shape)
    else:
        assert ours("MaxPooling2D", params, shape) == expected


# --- errors -------------------------------------------------------------------------------------


def test_pool_larger_than_input_names_the_sizes():
    with pytest.raises(ShapeError) as error:
        ours("MaxPooling2D", {"pool_size": 3}, (2, 2, 1))
    message = str(error.value)
    assert "pool_size (3, 3) is larger than the input size (2, 2)" in message
    assert "padding 'valid'" in message and "strides (3, 3)" in message and "(None, 2, 2, 1)" in message
    with pytest.raises(ShapeError, match=r"pool_size 4 is larger than the input length 3 .*strides 1\)"):
        ours("AveragePooling1D", {"pool_size": 4, "strides": 1}, (3, 8))


@pytest.mark.parametrize(
    ("kind", "shape"),
    [("MaxPooling2D", (10, 4)), ("AveragePooling1D", (4, 4, 4)), ("GlobalAveragePooling2D", (8,))],
)
def test_wrong_rank_is_a_shape_error(kind, shape):
    with pytest.raises(ShapeError, match=r"rank .* but received \(None, "):
        ours(kind, {}, shape)
    assert GlobalAveragePooling1D().output_shape({}, [(3, 2)]) == (2,)


def test_bad_values_are_param_errors():
    with pytest.raises(ParamError, match="pool_size"):
        MaxPooling2D().validate_params({"pool_size": (2, 0)})
    with pytest.raises(ParamError, match="strides"):
        MaxPooling2D().validate_params({"strides": (1, 2, 3)})
    with pytest.raises(ParamError, match="keepdims"):
        GlobalMaxPooling2D().validate_params({"keepdims": 1})
    with pytest.raises(ParamError, match="output_size"):
        AdaptiveMaxPooling2D().validate_params({"output_size": (0, 2)})
