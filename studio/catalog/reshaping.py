"""Reshaping layers: Flatten, Reshape, Permute, UpSampling2D, ZeroPadding1D/2D, Cropping2D, Slice;
and Rescaling.

None of these carries weights. Flatten and Reshape order elements as Keras
does, channels-last: the PyTorch code permutes a channels-first tensor to
channels-last before flattening or reshaping, so both give the same vector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from studio.catalog.base import (
    FlopCount,
    LayerSpec,
    ParamCount,
    Shape,
    ShapeError,
    element_count,
    expect_rank,
    format_shape,
)
from studio.catalog.params import ChoiceParam, FloatParam, IntParam, IntTupleParam, ParamError


class Flatten(LayerSpec):
    key = "Flatten"
    category = "Reshaping"
    doc = "Flattens each sample to a vector, in channels-last (h, w, c) order as Keras does."
    params = ()

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        return (element_count(inputs[0]),)


class Reshape(LayerSpec):
    key = "Reshape"
    category = "Reshaping"
    doc = "Gives each sample a new shape with the same number of elements, in channels-last order."
    params = (
        IntTupleParam(
            "target_shape",
            (-1,),
            "New shape without the batch dimension; one item may be -1, inferred from the element count.",
            allow_minus_one=True,
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape, target = inputs[0], tuple(params["target_shape"])
        total = element_count(shape)
        known = math.prod(dim for dim in target if dim != -1)
        received = (
            f"cannot reshape the input {format_shape(shape)} of {total} elements to {format_shape(target)}"
        )
        if -1 in target:
            if total % known:
                raise ShapeError(
                    f"{received}: {total} is not a multiple of {known}, the product of the other dimensions"
                )
            return tuple(total // known if dim == -1 else dim for dim in target)
        if known != total:
            raise ShapeError(f"{received} of {known} elements")
        return target


class Permute(LayerSpec):
    key = "Permute"
    category = "Reshaping"
    doc = "Reorders the non-batch axes: dims (2, 1) swaps the steps and channels of a sequence."
    params = (
        IntTupleParam(
            "dims",
            (2, 1),
            "New order of the non-batch axes, numbered from 1 as Keras does (torch adds the batch as 0).",
        ),
    )

    def check_params(self, values: Mapping[str, Any]) -> None:
        dims = values["dims"]
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ParamError(
                f"expected a permutation of 1..{len(dims)}, each axis once. Received: dims={dims!r}"
            )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape, dims = inputs[0], tuple(params["dims"])
        if sorted(dims) != list(range(1, len(shape) + 1)):
            raise ShapeError(
                f"dims {dims} must be a permutation of 1..{len(shape)}, one item per non-batch axis"
                f" of the input {format_shape(shape)}"
            )
        return tuple(shape[dim - 1] for dim in dims)


class UpSampling2D(LayerSpec):
    key = "UpSampling2D"
    category = "Reshaping"
    doc = "Enlarges an (h, w, c) image by whole factors: (h * size[0], w * size[1], c)."
    params = (
        IntTupleParam("size", (2, 2), "Upsampling factors along height and width.", length=2),
        ChoiceParam(
            "interpolation",
            "nearest",
            "'nearest' repeats pixels; 'bilinear' uses half-pixel centres (torch align_corners=False).",
            choices=("nearest", "bilinear"),
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        height, width, channels = expect_rank(inputs, 3, "channels-last image")
        size_h, size_w = params["size"]
        return (height * size_h, width * size_w, channels)

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # 'nearest' copies; 'bilinear' weighs four neighbours per value (4 multiplies, 3 adds).
        return FlopCount(
            elementwise=7 * element_count(output) if params["interpolation"] == "bilinear" else 0
        )


class ZeroPadding2D(LayerSpec):
    key = "ZeroPadding2D"
    category = "Reshaping"
    doc = "Adds rows and columns of zeros around an (h, w, c) image."
    params = (
        IntTupleParam(
            "padding",
            (1, 1, 1, 1),
            "Zeros to add as (top, bottom, left, right); Keras nests ((t, b), (l, r)), torch takes (l, r, t, b).",
            length=4,
            minimum=0,
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        height, width, channels = expect_rank(inputs, 3, "channels-last image")
        top, bottom, left, right = params["padding"]
        return (height + top + bottom, width + left + right, channels)


class Cropping2D(LayerSpec):
    key = "Cropping2D"
    category = "Reshaping"
    doc = "Removes rows and columns from the edges of an (h, w, c) image."
    params = (
        IntTupleParam(
            "cropping",
            (0, 0, 0, 0),
            "Rows and columns to remove as (top, bottom, left, right); Keras nests ((t, b), (l, r)).",
            length=4,
            minimum=0,
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = expect_rank(inputs, 3, "channels-last image")
        height, width, channels = shape
        top, bottom, left, right = params["cropping"]
        for first, last, size, what in ((top, bottom, height, "rows"), (left, right, width, "columns")):
            if first + last >= size:
                sides = "top and bottom" if what == "rows" else "left and right"
                raise ShapeError(
                    f"cropping {first} + {last} {what} from the {sides} leaves none of the {size} {what}"
                    f" of the input {format_shape(shape)}"
                )
        return (height - top - bottom, width - left - right, channels)


class Rescaling(LayerSpec):
    key = "Rescaling"
    category = "Preprocessing"
    doc = "Multiplies every value by scale and adds offset: x * scale + offset."
    params = (
        FloatParam("scale", 1 / 255, "Multiplier for every value (1/255 maps bytes 0..255 to [0, 1])."),
        FloatParam("offset", 0.0, "Value added after scaling (-1 with scale 1/127.5 maps bytes to [-1, 1])."),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        return inputs[0]

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        return FlopCount(elementwise=element_count(output) * (2 if params["offset"] else 1))


class ZeroPadding1D(LayerSpec):
    key = "ZeroPadding1D"
    category = "Reshaping"
    doc = "Adds steps of zeros at the start and end of a (steps, features) sequence."
    params = (
        IntTupleParam(
            "padding",
            (1, 1),
            "Zeros to add as (start, end) along the steps; torch pads the last axis (left, right).",
            length=2,
            minimum=0,
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        steps, features = expect_rank(inputs, 2, "sequence")
        start, end = params["padding"]
        return (steps + start + end, features)


class Slice(LayerSpec):
    key = "Slice"
    category = "Reshaping"
    doc = "Keeps the range start:stop of one axis: a channel group, a token, a window of steps."
    params = (
        IntParam(
            "axis",
            -1,
            "Axis to slice, counting the batch as axis 0 as Keras does: -1 is the channel axis "
            "(torch: dim 1 for images).",
        ),
        IntParam("start", 0, "First index kept (from 0).", minimum=0),
        IntParam("stop", 1, "Index after the last one kept; stop - start items remain.", minimum=1),
    )

    def check_params(self, values: Mapping[str, Any]) -> None:
        if values["axis"] == 0:
            raise ParamError("expected a non-zero axis: axis 0 is the batch. Received: axis=0")
        if values["start"] >= values["stop"]:
            raise ParamError(
                f"expected start < stop, so that something remains. Received: start={values['start']}, "
                f"stop={values['stop']}"
            )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape, axis, stop = inputs[0], params["axis"], params["stop"]
        rank = len(shape)
        if not rank or not -rank <= axis <= rank:
            raise ShapeError(
                f"axis={axis} is out of range for the input {format_shape(shape)}: expected 1 to {rank} "
                f"or -{rank} to -1 (axis 0 is the batch)"
            )
        index = axis - 1 if axis > 0 else rank + axis
        if stop > shape[index]:
            raise ShapeError(
                f"stop={stop} is past the end of axis {axis}, of length {shape[index]}, "
                f"of the input {format_shape(shape)}"
            )
        return (*shape[:index], stop - params["start"], *shape[index + 1 :])


class ClassToken(LayerSpec):
    key = "ClassToken"
    category = "Attention"
    doc = (
        "Puts a learned token before a (steps, features) sequence: ViT's class token, (steps + 1, features)."
    )
    params = ()

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        steps, features = expect_rank(inputs, 2, "sequence")
        return (steps + 1, features)

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(trainable=expect_rank(inputs, 2, "sequence")[-1])


SPECS = (
    Flatten(),
    Reshape(),
    Permute(),
    UpSampling2D(),
    ZeroPadding2D(),
    Cropping2D(),
    Rescaling(),
    ZeroPadding1D(),
    Slice(),
    ClassToken(),
)
