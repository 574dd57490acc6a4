"""Convolution layers: Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D.

Conv1D and Conv2D take ``groups``: the channels split into that many contiguous
groups, each convolved with its own ``filters / groups`` filters (Keras and
PyTorch agree on the order).

Padding follows Keras. 'valid' adds none. 'same' gives ``ceil(input / strides)``
outputs per axis and, when the total padding is odd, puts the extra unit at the
end (bottom, right); PyTorch's symmetric padding differs for strides > 1, so the
PyTorch code pads explicitly. Keras rejects strides > 1 together with
dilation_rate > 1 for its convolutions; every kind here with a dilation_rate
applies that rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from studio.catalog.base import (
    FlopCount,
    LayerSpec,
    ParamCount,
    Shape,
    ShapeError,
    activation_param,
    affine_flops,
    check_size,
    conv_output_length,
    element_count,
    expect_rank,
    format_shape,
    use_bias_param,
)
from studio.catalog.params import ChoiceParam, IntParam, IntTupleParam, ParamError

SAME_PADDING_DOC = (
    "'valid' adds no padding; 'same' pads zeros so the output is ceil(input / strides),"
    " any odd unit at the bottom/right as Keras does (torch code pads explicitly)."
)


def as_tuple(value: int | Sequence[int], rank: int) -> tuple[int, ...]:
    """A window parameter as a tuple: ``3`` -> ``(3, 3)`` for rank 2."""
    if isinstance(value, int):
        return (value,) * rank
    return tuple(value)


def format_dims(values: Sequence[int]) -> str:
    """``(5,)`` -> ``"5"``, ``(5, 5)`` -> ``"(5, 5)"``: sizes as the user typed them."""
    if len(values) == 1:
        return str(values[0])
    return "(" + ", ".join(str(value) for value in values) + ")"


def window_output_shape(
    shape: Shape,
    window: Sequence[int],
    strides: Sequence[int],
    padding: str,
    dilation: Sequence[int] | None = None,
    window_name: str = "kernel",
) -> tuple[int, ...]:
    """The spatial output of a sliding window over a channels-last ``shape``.

    Shared by the convolutions and the poolings. Raises ShapeError when the
    window does not fit the input with 'valid' padding, naming the input size,
    the window, the dilation and the strides.
    """
    spatial = shape[:-1]
    dilation = tuple(dilation) if dilation is not None else (1,) * len(window)
    lengths = tuple(
        conv_output_length(size, kernel, stride, padding, rate)
        for size, kernel, stride, rate in zip(spatial, window, strides, dilation, strict=True)
    )
    if padding in ("same", "causal"):
        # The framework pads the input by the window's span: bound that tensor too.
        spans = tuple((kernel - 1) * rate + 1 for kernel, rate in zip(window, dilation, strict=True))
        try:
            check_size((*(size + span - 1 for size, span in zip(spatial, spans, strict=True)), shape[-1]))
        except ShapeError as error:
            raise ShapeError(
                f"{window_name} {format_dims(window)} with padding {padding!r} {error}"
            ) from None
    if min(lengths) > 0:
        return lengths
    spans = tuple((kernel - 1) * rate + 1 for kernel, rate in zip(window, dilation, strict=True))
    what = f"{window_name} {format_dims(window)}"
    if spans != tuple(window):
        what += f" with dilation_rate {format_dims(dilation)} spans {format_dims(spans)},"
    else:
        what += " is"
    size = "length" if len(spatial) == 1 else "size"
    raise ShapeError(
        f"{what} larger than the input {size} {format_dims(spatial)} "
        f"(padding {padding!r}, strides {format_dims(strides)}); received {format_shape(shape)}"
    )


def check_strides_dilation(values: Mapping[str, Any]) -> None:
    """Keras's rule: strides > 1 and dilation_rate > 1 cannot be combined."""
    strides, dilation = values["strides"], values["dilation_rate"]
    if max(as_tuple(strides, 1)) > 1 and max(as_tuple(dilation, 1)) > 1:
        raise ParamError(
            "strides > 1 cannot be combined with dilation_rate > 1 (Keras rejects it). "
            f"Received: strides={strides!r}, dilation_rate={dilation!r}"
        )


def filters_param() -> IntParam:
    return IntParam("filters", 32, "Number of output channels (filters).", minimum=1)


def kernel_size_param() -> IntTupleParam:
    return IntTupleParam("kernel_size", (3, 3), "Height and width of the convolution window.", length=2)


def strides_param() -> IntTupleParam:
    return IntTupleParam("strides", (1, 1), "Step of the window along height and width.", length=2)


def padding_param() -> ChoiceParam:
    return ChoiceParam("padding", "valid", SAME_PADDING_DOC, choices=("valid", "same"))


def dilation_rate_param() -> IntTupleParam:
    return IntTupleParam(
        "dilation_rate",
        (1, 1),
        "Spacing between kernel taps along height and width (> 1 needs strides 1).",
        length=2,
    )


def groups_param() -> IntParam:
    return IntParam(
        "groups",
        1,
        "Channel groups convolved separately; input channels and filters must both divide by it.",
        minimum=1,
    )


def depth_multiplier_param() -> IntParam:
    return IntParam(
        "depth_multiplier", 1, "Output channels per input channel of the depthwise step.", minimum=1
    )


class _SlidingConv(LayerSpec):
    """Shared shape rule of the forward convolutions over ``rank`` spatial axes."""

    category = "Convolution"
    rank: ClassVar[int] = 2

    def check_params(self, values: Mapping[str, Any]) -> None:
        check_strides_dilation(values)

    def _input(self, inputs: Sequence[Shape]) -> Shape:
        what = "sequence" if self.rank == 1 else "channels-last image"
        return expect_rank(inputs, self.rank + 1, what)

    def _spatial_output(self, params: Mapping[str, Any], shape: Shape) -> tuple[int, ...]:
        return window_output_shape(
            shape,
            as_tuple(params["kernel_size"], self.rank),
            as_tuple(params["strides"], self.rank),
            params["padding"],
            as_tuple(params["dilation_rate"], self.rank),
        )


class _GroupedConv(_SlidingConv):
    """Conv1D, Conv2D: ``filters`` filters in ``groups`` groups; each filter sees its group's channels.

    Keras's rule: both the input channels and filters divide by groups.
    """

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = self._input(inputs)
        groups, channels, filters = params["groups"], shape[-1], params["filters"]
        if channels % groups or filters % groups:
            raise ShapeError(
                f"groups={groups} must divide both the input channels and filters; "
                f"received {channels} input channels and filters={filters}"
            )
        return (*self._spatial_output(params, shape), filters)

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        window = math.prod(as_tuple(params["kernel_size"], self.rank))
        channels, filters = inputs[0][-1] // params["groups"], params["filters"]
        return ParamCount(window * channels * filters + (filters if params["use_bias"] else 0))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # One output value reads the window over its group's channels.
        taps = math.prod(as_tuple(params["kernel_size"], self.rank)) * (inputs[0][-1] // params["groups"])
        return FlopCount(element_count(output) * taps, affine_flops(params, output))


class Conv1D(_GroupedConv):
    key = "Conv1D"
    doc = "1-D convolution over the steps of a (steps, channels) sequence."
    rank = 1
    params = (
        filters_param(),
        IntParam("kernel_size", 3, "Length of the convolution window in steps.", minimum=1),
        IntParam("strides", 1, "Step of the window along the sequence.", minimum=1),
        ChoiceParam(
            "padding",
            "valid",
            "'valid' adds none; 'same' gives ceil(steps / strides), any odd unit at the end as Keras does;"
            " 'causal' pads (kernel_size-1)*dilation_rate zeros at the start only.",
            choices=("valid", "same", "causal"),
        ),
        IntParam(
            "dilation_rate", 1, "Spacing between kernel taps in steps (> 1 needs strides 1).", minimum=1
        ),
        groups_param(),
        activation_param(),
        use_bias_param(),
    )


class Conv2D(_GroupedConv):
    key = "Conv2D"
    doc = "2-D convolution over the height and width of an (h, w, c) image."
    params = (
        filters_param(),
        kernel_size_param(),
        strides_param(),
        padding_param(),
        dilation_rate_param(),
        groups_param(),
        activation_param(),
        use_bias_param(),
    )


class Conv2DTranspose(LayerSpec):
    key = "Conv2DTranspose"
    category = "Convolution"
    doc = "Transposed 2-D convolution: a learned upsampling, the gradient of Conv2D with the same window."
    params = (
        filters_param(),
        kernel_size_param(),
        IntTupleParam(
            "strides",
            (1, 1),
            "Upsampling factor along height and width (Keras default 1; 2 doubles).",
            length=2,
        ),
        ChoiceParam(
            "padding",
            "valid",
            "'valid' gives (in-1)*strides + max(kernel, strides) as Keras does (torch adds output_padding);"
            " 'same' gives in*strides.",
            choices=("valid", "same"),
        ),
        activation_param(),
        use_bias_param(),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = expect_rank(inputs, 3, "channels-last image")
        spatial = []
        for size, kernel, stride in zip(shape[:-1], params["kernel_size"], params["strides"], strict=True):
            if params["padding"] == "same":
                spatial.append(size * stride)
            else:
                spatial.append((size - 1) * stride + max(kernel, stride))
        return (*spatial, params["filters"])

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        (kernel_h, kernel_w), channels, filters = params["kernel_size"], inputs[0][-1], params["filters"]
        bias = filters if params["use_bias"] else 0
        return ParamCount(kernel_h * kernel_w * filters * channels + bias)

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # Each input pixel scatters its channels through the whole kernel into every filter; the
        # cropping of 'same' discards some of that work, which is done all the same.
        pixels = element_count(inputs[0][:-1])
        per_pixel = math.prod(params["kernel_size"]) * inputs[0][-1] * params["filters"]
        return FlopCount(pixels * per_pixel, affine_flops(params, output))


class DepthwiseConv2D(_SlidingConv):
    key = "DepthwiseConv2D"
    doc = "Convolves each input channel separately with depth_multiplier kernels; output channels = c * M."
    params = (
        kernel_size_param(),
        strides_param(),
        padding_param(),
        depth_multiplier_param(),
        dilation_rate_param(),
        activation_param(),
        use_bias_param(),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = self._input(inputs)
        return (*self._spatial_output(params, shape), shape[-1] * params["depth_multiplier"])

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        (kernel_h, kernel_w), channels = params["kernel_size"], inputs[0][-1]
        outputs = channels * params["depth_multiplier"]
        return ParamCount(kernel_h * kernel_w * outputs + (outputs if params["use_bias"] else 0))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # One output value reads one input channel through the kernel.
        taps = math.prod(params["kernel_size"])
        return FlopCount(element_count(output) * taps, affine_flops(params, output))


class SeparableConv2D(_SlidingConv):
    key = "SeparableConv2D"
    doc = "A depthwise convolution (no bias) followed by a 1x1 pointwise convolution to filters channels."
    params = (
        filters_param(),
        kernel_size_param(),
        strides_param(),
        padding_param(),
        depth_multiplier_param(),
        dilation_rate_param(),
        activation_param(),
        use_bias_param(),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = self._input(inputs)
        return (*self._spatial_output(params, shape), params["filters"])

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        (kernel_h, kernel_w), channels, filters = params["kernel_size"], inputs[0][-1], params["filters"]
        depthwise = kernel_h * kernel_w * channels * params["depth_multiplier"]
        pointwise = channels * params["depth_multiplier"] * filters
        return ParamCount(depthwise + pointwise + (filters if params["use_bias"] else 0))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        pixels = element_count(output[:-1])
        depthwise = inputs[0][-1] * params["depth_multiplier"]  # channels between the two steps
        taps = math.prod(params["kernel_size"])
        return FlopCount(pixels * depthwise * (taps + params["filters"]), affine_flops(params, output))


SPECS = (Conv1D(), Conv2D(), Conv2DTranspose(), DepthwiseConv2D(), SeparableConv2D())
