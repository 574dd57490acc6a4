"""Convolution specs, checked by hand and against the real Keras layers."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import itertools  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from studio.catalog import CATALOG, ParamCount, ParamError, ShapeError  # noqa: E402
from studio.catalog.convolution import (  # noqa: E402
    SPECS,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    DepthwiseConv2D,
    SeparableConv2D,
)

KINDS = {spec.key: spec for spec in SPECS}


def ours(kind: str, params: dict, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    spec = KINDS[kind]
    clean = spec.validate_params(params)
    return spec.output_shape(clean, [shape]), spec.count_params(clean, [shape]).total


def theirs(kind: str, params: dict, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """The Keras layer built with every parameter of ours, defaults included, as keyword arguments."""
    layer = getattr(keras.layers, kind)(**KINDS[kind].validate_params(params))
    out = layer(keras.Input(shape))
    return tuple(out.shape[1:]), layer.count_params()


def test_specs_are_registered_in_palette_order():
    assert [spec.key for spec in SPECS] == [
        "Conv1D",
        "Conv2D",
        "Conv2DTranspose",
        "DepthwiseConv2D",
        "SeparableConv2D",
    ]
    for spec in SPECS:
        assert CATALOG.get(spec.key) is not None
        assert spec.category == "Convolution"
        assert all(param.doc for param in spec.params)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.key)
def test_defaults_match_keras_on_a_typical_input(spec):
    shape = (20, 6) if spec.key == "Conv1D" else (12, 12, 3)
    assert ours(spec.key, {}, shape) == theirs(spec.key, {}, shape)


# --- hand-worked cases --------------------------------------------------------------------------


def test_conv2d_by_hand():
    conv = Conv2D()
    # 28 - 3 + 1 = 26; weights 3*3*1*32 + 32 = 320.
    params = conv.defaults()
    assert conv.output_shape(params, [(28, 28, 1)]) == (26, 26, 32)
    assert conv.count_params(params, [(28, 28, 1)]) == ParamCount(320)
    # 'same' with stride 2: ceil(7 / 2) = 4; weights 3*3*3*8 + 8 = 224.
    params = conv.validate_params({"filters": 8, "strides": 2, "padding": "same"})
    assert conv.output_shape(params, [(7, 7, 3)]) == (4, 4, 8)
    assert conv.count_params(params, [(7, 7, 3)]) == ParamCount(224)
    # 'valid', kernel 4, stride 2 on 9: (9 - 4) // 2 + 1 = 3.
    params = conv.validate_params({"filters": 5, "kernel_size": 4, "strides": 2})
    assert conv.output_shape(params, [(9, 9, 2)]) == (3, 3, 5)
    # dilation 2 widens a 3-kernel to 5: 10 - 5 + 1 = 6; no bias: 3*3*1*4 = 36.
    params = conv.validate_params({"filters": 4, "dilation_rate": 2, "use_bias": False})
    assert conv.output_shape(params, [(10, 10, 1)]) == (6, 6, 4)
    assert conv.count_params(params, [(10, 10, 1)]) == ParamCount(36)


def test_conv1d_by_hand():
    conv = Conv1D()
    # 100 - 5 + 1 = 96; weights 5*16*8 + 8 = 648.
    params = conv.validate_params({"filters": 8, "kernel_size": 5})
    assert conv.output_shape(params, [(100, 16)]) == (96, 8)
    assert conv.count_params(params, [(100, 16)]) == ParamCount(648)
    # 'causal' pads (5-1)*1 = 4 steps on the left, so stride 2 gives ceil(7 / 2) = 4.
    params = conv.validate_params({"filters": 8, "kernel_size": 5, "strides": 2, "padding": "causal"})
    assert conv.output_shape(params, [(7, 16)]) == (4, 8)


def test_conv2d_transpose_by_hand():
    conv = Conv2DTranspose()
    # 'valid': (7 - 1) * 2 + max(3, 2) = 15; weights 3*3*16*8 + 8 = 1160.
    params = conv.validate_params({"filters": 8, "strides": 2})
    assert conv.output_shape(params, [(7, 7, 16)]) == (15, 15, 8)
    assert conv.count_params(params, [(7, 7, 16)]) == ParamCount(1160)
    # 'same': 7 * 2 = 14.
    params = conv.validate_params({"filters": 8, "strides": 2, "padding": "same"})
    assert conv.output_shape(params, [(7, 7, 16)]) == (14, 14, 8)
    # kernel 1 < stride 2, 'valid': (7 - 1) * 2 + max(1, 2) = 14, not torch's 13.
    params = conv.validate_params({"filters": 8, "kernel_size": 1, "strides": 2})
    assert conv.output_shape(params, [(7, 7, 16)]) == (14, 14, 8)


def test_depthwise_and_separable_by_hand():
    depthwise = DepthwiseConv2D()
    # 8 - 3 + 1 = 6 and 3 channels * 2 = 6; weights 3*3*3*2 + 6 = 60.
    params = depthwise.validate_params({"depth_multiplier": 2})
    assert depthwise.output_shape(params, [(8, 8, 3)]) == (6, 6, 6)
    assert depthwise.count_params(params, [(8, 8, 3)]) == ParamCount(60)
    separable = SeparableConv2D()
    # depthwise 3*3*3*1 = 27, pointwise 3*1*4 = 12, bias 4: 43.
    params = separable.validate_params({"filters": 4})
    assert separable.output_shape(params, [(8, 8, 3)]) == (6, 6, 4)
    assert separable.count_params(params, [(8, 8, 3)]) == ParamCount(43)


# --- against real Keras -------------------------------------------------------------------------


def _conv2d_grid():
    """Each padding with strides 1 and 2, odd and even kernels and inputs, dilation where allowed."""
    for padding, stride, kernel, size, dilation in itertools.product(
        ("valid", "same"), (1, 2), (2, 3), (7, 8), (1, 2)
    ):
        if stride > 1 and dilation > 1:
            continue
        yield {"kernel_size": kernel, "strides": stride, "padding": padding, "dilation_rate": dilation}, size


CONV2D_CASES = [
    pytest.param({"filters": 4, **params}, (size, size + 1, 3), id=f"{params}-{size}")
    for params, size in _conv2d_grid()
] + [
    pytest.param({"filters": 6, "kernel_size": (3, 1), "strides": (2, 1)}, (9, 4, 2), id="rect-kernel"),
    pytest.param(
        {"filters": 6, "kernel_size": (1, 5), "padding": "same", "strides": (1, 3)},
        (5, 10, 2),
        id="rect-same",
    ),
    pytest.param({"filters": 2, "use_bias": False, "activation": "relu"}, (5, 5, 7), id="no-bias"),
    pytest.param({"filters": 3, "kernel_size": 5}, (5, 5, 1), id="kernel-equals-input"),
]


@pytest.mark.parametrize(("params", "shape"), CONV2D_CASES)
def test_conv2d_matches_keras(params, shape):
    assert ours("Conv2D", params, shape) == theirs("Conv2D", params, shape)


CONV1D_CASES = [
    pytest.param(
        {
            "filters": 5,
            "kernel_size": kernel,
            "strides": stride,
            "padding": padding,
            "dilation_rate": dilation,
        },
        (steps, 3),
        id=f"{padding}-k{kernel}-s{stride}-d{dilation}-n{steps}",
    )
    for padding, stride, kernel, steps, dilation in itertools.product(
        ("valid", "same", "causal"), (1, 2), (2, 3), (9, 10), (1, 3)
    )
    if not (stride > 1 and dilation > 1)
]


@pytest.mark.parametrize(("params", "shape"), CONV1D_CASES)
def test_conv1d_matches_keras(params, shape):
    assert ours("Conv1D", params, shape) == theirs("Conv1D", params, shape)


TRANSPOSE_CASES = [
    pytest.param(
        {"filters": 4, "kernel_size": kernel, "strides": stride, "padding": padding},
        (size, size + 1, 3),
        id=f"{padding}-k{kernel}-s{stride}-n{size}",
    )
    for padding, stride, kernel, size in itertools.product(("valid", "same"), (1, 2, 3), (1, 2, 3, 4), (4, 5))
] + [
    pytest.param(
        {"filters": 2, "kernel_size": (3, 2), "strides": (2, 3), "use_bias": False}, (3, 4, 5), id="rect"
    )
]


@pytest.mark.parametrize(("params", "shape"), TRANSPOSE_CASES)
def test_conv2d_transpose_matches_keras(params, shape):
    assert ours("Conv2DTranspose", params, shape) == theirs("Conv2DTranspose", params, shape)


DEPTHWISE_CASES = [
    pytest.param(
        {
            "kernel_size": kernel,
            "strides": stride,
            "padding": padding,
            "dilation_rate": dilation,
            "depth_multiplier": m,
        },
        (size, size, 3),
        id=f"{padding}-k{kernel}-s{stride}-d{dilation}-m{m}-n{size}",
    )
    for padding, stride, kernel, size, dilation, m in itertools.product(
        ("valid", "same"), (1, 2), (2, 3), (7, 8), (1, 2), (1, 3)
    )
    if not (stride > 1 and dilation > 1)
]


@pytest.mark.parametrize(("params", "shape"), DEPTHWISE_CASES)
def test_depthwise_conv2d_matches_keras(params, shape):
    assert ours("DepthwiseConv2D", params, shape) == theirs("DepthwiseConv2D", params, shape)


@pytest.mark.parametrize(("params", "shape"), DEPTHWISE_CASES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_separable_conv2d_matches_keras(params, shape, use_bias):
    params = {"filters": 5, "use_bias": use_bias, **params}
    assert ours("SeparableConv2D", params, shape) == theirs("SeparableConv2D", params, shape)


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    kernel=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.sampled_from(["valid", "same"]),
)
def test_conv2d_agrees_with_keras_on_what_is_valid(size, kernel, strides, dilation, padding):
    """We reject exactly the configurations Keras rejects, and agree on the rest."""
    params = {
        "filters": 2,
        "kernel_size": kernel,
        "strides": strides,
        "padding": padding,
        "dilation_rate": dilation,
    }
    shape = (*size, 2)
    try:
        layer = keras.layers.Conv2D(**params)  # not through our validation
        expected = tuple(layer(keras.Input(shape)).shape[1:]), layer.count_params()
    except ValueError:
        with pytest.raises((ParamError, ShapeError)):
            ours("Conv2D", params, shape)
    else:
        assert ours("Conv2D", params, shape) == expected


# --- errors -------------------------------------------------------------------------------------


def test_kernel_larger_than_input_names_the_sizes():
    conv = Conv2D()
    with pytest.raises(ShapeError) as error:
        conv.output_shape(conv.validate_params({"kernel_size": 5}), [(3, 3, 1)])
    message = str(error.value)
    assert "kernel (5, 5) is larger than the input size (3, 3)" in message
    assert "padding 'valid'" in message and "strides (1, 1)" in message
    assert "(None, 3, 3, 1)" in message
    # Only one axis too small, and the dilated span is named.
    with pytest.raises(ShapeError, match=r"kernel \(3, 3\) with dilation_rate \(1, 3\) spans \(3, 7\)"):
        conv.output_shape(conv.validate_params({"dilation_rate": (1, 3)}), [(10, 6, 1)])


def test_conv1d_and_depthwise_kernel_too_large():
    with pytest.raises(ShapeError, match=r"kernel 5 is larger than the input length 4 .*strides 2"):
        ours("Conv1D", {"kernel_size": 5, "strides": 2}, (4, 3))
    with pytest.raises(ShapeError, match=r"kernel \(4, 4\) is larger than the input size \(3, 3\)"):
        ours("DepthwiseConv2D", {"kernel_size": 4}, (3, 3, 2))
    with pytest.raises(ShapeError, match=r"kernel \(4, 4\)"):
        ours("SeparableConv2D", {"kernel_size": 4}, (3, 3, 2))
    # 'same' and 'causal' never run out of input.
    assert ours("Conv1D", {"filters": 1, "kernel_size": 5, "padding": "causal"}, (2, 1)) == ((2, 1), 6)


@pytest.mark.parametrize("kind", ["Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D"])
def test_strides_with_dilation_are_rejected(kind):
    spec = KINDS[kind]
    with pytest.raises(ParamError, match=r"strides=.*2.*dilation_rate=.*3"):
        spec.validate_params({"strides": 2, "dilation_rate": 3})
    # One axis each is enough, as in Keras.
    if kind != "Conv1D":
        with pytest.raises(ParamError):
            spec.validate_params({"strides": (2, 1), "dilation_rate": (1, 2)})


def test_keras_also_rejects_strides_with_dilation_for_conv():
    with pytest.raises(ValueError, match="dilation_rate"):
        keras.layers.Conv2D(4, 3, strides=2, dilation_rate=2)


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        ("Conv1D", (10,)),
        ("Conv1D", (4, 4, 3)),
        ("Conv2D", (10, 3)),
        ("Conv2DTranspose", (5,)),
        ("SeparableConv2D", (2, 2, 2, 2)),
    ],
)
def test_wrong_rank_is_a_shape_error(kind, shape):
    with pytest.raises(ShapeError, match=r"rank .* but received \(None, "):
        ours(kind, {}, shape)


def test_bad_values_are_param_errors():
    with pytest.raises(ParamError, match="filters=0"):
        Conv2D().validate_params({"filters": 0})
    with pytest.raises(ParamError, match="padding='causal'"):
        Conv2D().validate_params({"padding": "causal"})
    with pytest.raises(ParamError, match="dilation_rate"):
        Conv2DTranspose().validate_params({"dilation_rate": 2})
