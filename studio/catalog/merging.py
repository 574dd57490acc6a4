"""Merge layers: the element-wise Add, Subtract, Multiply, Average, Maximum, and Concatenate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from studio.catalog.base import FlopCount, LayerSpec, Shape, ShapeError, element_count, format_shape
from studio.catalog.params import IntParam, ParamError


class _ElementwiseMerge(LayerSpec):
    """Combines inputs of identical shapes element by element.

    Keras would broadcast axes of size 1; the catalog asks for identical shapes
    so that the torch code needs no broadcasting rules of its own.
    """

    category = "Merge"
    min_inputs = 2
    max_inputs = None

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        first = inputs[0]
        for number, shape in enumerate(inputs[1:], start=2):
            if tuple(shape) != tuple(first):
                raise ShapeError(
                    f"input {number} has shape {format_shape(shape)} but input 1 has {format_shape(first)}: "
                    "all inputs must have the same shape (no broadcasting)"
                )
        return first

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        return FlopCount(elementwise=(len(inputs) - 1) * element_count(output))


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


SPECS = (Add(), Subtract(), Multiply(), Average(), Maximum(), Concatenate())
