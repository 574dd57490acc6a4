"""Merge layers: the element-wise Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate,
and MatMul (the matrix product of attention written out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from studio.catalog.base import FlopCount, LayerSpec, Shape, ShapeError, element_count, format_shape
from studio.catalog.params import IntParam, ParamError


class _ElementwiseMerge(LayerSpec):
    """Combines inputs element by element, broadcasting their shapes as Keras does.

    Shapes are aligned on their last axes (Keras inserts the missing axes after
    the batch) and an axis of size 1 stretches to the other inputs' size:
    squeeze-and-excitation's (1, 1, C) scale times an (H, W, C) image.
    """

    category = "Merge"
    min_inputs = 2
    max_inputs = None

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        return broadcast_shapes(inputs)

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        return FlopCount(elementwise=(len(inputs) - 1) * element_count(output))


def broadcast_shapes(inputs: Sequence[Shape]) -> Shape:
    """The shape every input broadcasts to (batch excluded), or a ShapeError naming the input."""
    result = tuple(inputs[0])
    for number, shape in enumerate(inputs[1:], start=2):
        rank = max(len(result), len(shape))
        left, right = (1,) * (rank - len(result)) + result, (1,) * (rank - len(shape)) + tuple(shape)
        for axis, (a, b) in enumerate(zip(left, right, strict=True)):
            if a != b and 1 not in (a, b):
                before = (
                    f"input 1 has {format_shape(inputs[0])}"
                    if number == 2
                    else f"inputs 1 to {number - 1} broadcast to {format_shape(result)}"
                )
                raise ShapeError(
                    f"input {number} has shape {format_shape(shape)} but {before}: they do not broadcast "
                    f"(axis {axis - rank} has sizes {a} and {b}; sizes must match or be 1)"
                )
        result = tuple(max(a, b) if 1 in (a, b) else a for a, b in zip(left, right, strict=True))
    return result


class Add(_ElementwiseMerge):
    key = "Add"
    doc = "Sums its inputs element-wise."


class Subtract(_ElementwiseMerge):
    key = "Subtract"
    doc = "Subtracts its second input from its first, element-wise: input 1 - input 2."
    max_inputs = 2


class Multiply(_ElementwiseMerge):
    key = "Multiply"
    doc = "Multiplies its inputs element-wise."


class Average(_ElementwiseMerge):
    key = "Average"
    doc = "Averages its inputs element-wise."

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        return FlopCount(elementwise=len(inputs) * element_count(output))  # the sum, then a division


class Maximum(_ElementwiseMerge):
    key = "Maximum"
    doc = "Takes the element-wise maximum of its inputs."


class Minimum(_ElementwiseMerge):
    key = "Minimum"
    doc = "Takes the element-wise minimum of its inputs."


class Concatenate(LayerSpec):
    key = "Concatenate"
    category = "Merge"
    doc = "Joins its inputs along one axis; all other axes must match."
    params = (
        IntParam(
            "axis",
            -1,
            "Axis to join along, counting the batch as axis 0 as Keras does: -1 is the channel axis "
            "(torch: dim 1 for images).",
        ),
    )
    min_inputs = 2
    max_inputs = None

    def check_params(self, values: Mapping[str, Any]) -> None:
        if values["axis"] == 0:
            raise ParamError("expected a non-zero axis: axis 0 is the batch. Received: axis=0")

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        axis = params["axis"]
        first = inputs[0]
        index = self._axis_index(axis, first)
        for number, shape in enumerate(inputs[1:], start=2):
            if len(shape) != len(first):
                raise ShapeError(
                    f"input {number} has shape {format_shape(shape)} but input 1 has {format_shape(first)}: "
                    "all inputs must have the same rank"
                )
            if any(a != b for i, (a, b) in enumerate(zip(shape, first, strict=True)) if i != index):
                raise ShapeError(
                    f"input {number} has shape {format_shape(shape)} but input 1 has {format_shape(first)}: "
                    f"all axes but {axis} must match"
                )
        joined = sum(shape[index] for shape in inputs)
        return (*first[:index], joined, *first[index + 1 :])

    @staticmethod
    def _axis_index(axis: int, shape: Shape) -> int:
        """The index into a batch-less shape of a Keras axis, which counts the batch."""
        rank = len(shape)
        if rank == 0:
            raise ShapeError(f"input 1 of shape {format_shape(shape)} has no axis to join besides the batch")
        if axis == 0 or not -rank <= axis <= rank:
            raise ShapeError(
                f"axis={axis} is out of range for input 1 of shape {format_shape(shape)}: "
                f"expected 1 to {rank} or -{rank} to -1 (axis 0 is the batch)"
            )
        return axis - 1 if axis > 0 else rank + axis


class MatMul(LayerSpec):
    """The matrix product of two computed tensors, batched over every axis but the last two.

    Attention written out by hand (``q @ k.transpose(-2, -1)``, then ``scores @ v``) and
    ``torch.matmul``, ONNX ``MatMul`` of two activations and ``keras.ops.matmul`` come to this.
    Both inputs have the same rank; their leading axes match or are 1, as numpy broadcasts them
    (equal ranks, so that no framework aligns an axis with the batch).
    """

    key = "MatMul"
    category = "Merge"
    doc = "Multiplies matrices: (..., n, k) by (..., k, m) gives (..., n, m), as attention scores do."
    params = ()
    min_inputs = 2
    max_inputs = 2

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        left, right = (tuple(shape) for shape in inputs)
        for number, shape in ((1, left), (2, right)):
            if len(shape) < 2:
                raise ShapeError(
                    f"input {number} has shape {format_shape(shape)}: a matrix product needs two axes "
                    "besides the batch (rows, columns); Reshape a vector first"
                )
        if len(left) != len(right):
            raise ShapeError(
                f"input 1 has shape {format_shape(left)} and input 2 {format_shape(right)}: the inputs "
                "must have the same rank (Reshape one of them)"
            )
        if left[-1] != right[-2]:
            raise ShapeError(
                f"input 1 of shape {format_shape(left)} has {left[-1]} columns but input 2 of shape "
                f"{format_shape(right)} has {right[-2]} rows: they must be equal (Permute input 2 to "
                "multiply by its transpose)"
            )
        try:
            leading = broadcast_shapes([left[:-2], right[:-2]])
        except ShapeError:
            raise ShapeError(
                f"the leading axes of {format_shape(left)} and {format_shape(right)} do not broadcast: "
                "sizes must match or be 1"
            ) from None
        return (*leading, left[-2], right[-1])

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        return FlopCount(macs=element_count(output) * inputs[0][-1])


SPECS = (Add(), Subtract(), Multiply(), Average(), Maximum(), Minimum(), Concatenate(), MatMul())
