"""Normalization layers: BatchNormalization, LayerNormalization, GroupNormalization; and Affine, the
learned (or constant) scale and offset they end with, on its own (LayerScale, positional embeddings)."""

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
    format_shape,
)
from studio.catalog.params import BoolParam, FloatParam, IntParam, IntTupleParam, ParamError


def epsilon_param() -> FloatParam:
    return FloatParam(
        "epsilon",
        1e-3,
        "Added to the variance (Keras default 1e-3; torch defaults to 1e-5, so torch code passes eps=this).",
        minimum=0.0,
        exclusive_minimum=True,
    )


def center_param() -> BoolParam:
    return BoolParam("center", True, "Whether to add a learned offset beta (torch: the bias).")


def scale_param() -> BoolParam:
    return BoolParam("scale", True, "Whether to multiply by a learned scale gamma (torch: the weight).")


def _channels(inputs: Sequence[Shape]) -> int:
    shape = inputs[0]
    if not shape:
        raise ShapeError(f"expects an input with a channel axis but received {format_shape(shape)}")
    return shape[-1]


def _affine_count(params: Mapping[str, Any], channels: int) -> int:
    """Weights of gamma and beta: one per channel each, when enabled."""
    return channels * (int(params["center"]) + int(params["scale"]))


def _frozen_affine(params: Mapping[str, Any], channels: int) -> int:
    """torch's affine norms have a weight and a bias or neither: with only one of center and scale,
    the PyTorch program keeps the other frozen at its identity value (1 or 0), a non-trainable parameter."""
    return channels if params["center"] != params["scale"] else 0


class BatchNormalization(LayerSpec):
    key = "BatchNormalization"
    category = "Normalization"
    doc = (
        "Normalizes each channel (the last axis) with batch statistics in training and moving "
        "statistics at inference."
    )
    params = (
        FloatParam(
            "momentum",
            0.99,
            "Weight of the old value in the moving statistics (Keras meaning); torch momentum = 1 - this.",
            minimum=0.0,
            maximum=1.0,
        ),
        epsilon_param(),
        center_param(),
        scale_param(),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        _channels(inputs)
        return inputs[0]

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        # The moving mean and variance are non-trainable weights in Keras and
        # buffers (running_mean, running_var) in torch, so the inherited torch
        # count is the same: torch's num_batches_tracked buffer is not counted.
        channels = _channels(inputs)
        return ParamCount(trainable=_affine_count(params, channels), non_trainable=2 * channels)

    def count_torch_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        count = self.count_params(params, inputs)
        return count + ParamCount(non_trainable=_frozen_affine(params, _channels(inputs)))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # At inference the statistics, gamma and beta fold into one scale and one shift per channel.
        return FlopCount(elementwise=2 * element_count(output))


class LayerNormalization(LayerSpec):
    key = "LayerNormalization"
    category = "Normalization"
    doc = "Normalizes each sample over its last axis only (torch: LayerNorm(channels) on that axis)."
    params = (epsilon_param(), center_param(), scale_param())

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        _channels(inputs)
        return inputs[0]

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(trainable=_affine_count(params, _channels(inputs)))

    def count_torch_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        channels = _channels(inputs)
        # torch's LayerNorm has a bias only with a weight: center without scale keeps the weight frozen at 1.
        frozen = channels if params["center"] and not params["scale"] else 0
        return ParamCount(trainable=_affine_count(params, channels), non_trainable=frozen)

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # Per value: the mean's sum, subtracting it, squaring, the variance's sum, the normalising
        # multiply (5); then gamma and beta when present.
        per_value = 5 + int(params["scale"]) + int(params["center"])
        return FlopCount(elementwise=per_value * element_count(output))


class GroupNormalization(LayerSpec):
    key = "GroupNormalization"
    category = "Normalization"
    doc = (
        "Normalizes each sample over groups of consecutive channels (the last axis) and all other axes "
        "(torch: GroupNorm; groups=channels is instance norm, groups=1 normalizes the whole sample)."
    )
    params = (
        IntParam("groups", 32, "Number of channel groups; must divide the channels.", minimum=1),
        epsilon_param(),
        center_param(),
        scale_param(),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        channels = _channels(inputs)
        if channels % params["groups"]:
            raise ShapeError(
                f"expected groups to divide the {channels} channels of the input {format_shape(inputs[0])}. "
                f"Received: groups={params['groups']}"
            )
        return inputs[0]

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(trainable=_affine_count(params, _channels(inputs)))

    def count_torch_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        channels = _channels(inputs)
        return ParamCount(_affine_count(params, channels), _frozen_affine(params, channels))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # As LayerNormalization, per group: the statistics and normalising (5), then gamma and beta.
        per_value = 5 + int(params["scale"]) + int(params["center"])
        return FlopCount(elementwise=per_value * element_count(output))


class Affine(LayerSpec):
    key = "Affine"
    category = "Core"
    doc = (
        "x * scale + offset (or x / scale + offset) with weights of a fixed shape, broadcast over the "
        "input: LayerScale, per-channel scale and bias, a learned positional embedding."
    )
    params = (
        IntTupleParam(
            "shape",
            (1,),
            "Shape of each weight, matched to the input's last axes (batch excluded; 1 broadcasts): "
            "[channels] per channel, [steps, features] for a positional embedding.",
        ),
        BoolParam("scale", True, "Multiply by a weight (initialised to ones)."),
        BoolParam("offset", False, "Add a weight (initialised to zeros), after the scale."),
        BoolParam("trainable", True, "Whether training updates the weights (false: constants)."),
        BoolParam("divide", False, "Divide by the scale weight instead of multiplying (x / std)."),
    )

    def check_params(self, params: Mapping[str, Any]) -> None:
        if not params["scale"] and not params["offset"]:
            raise ParamError(
                "expected scale or offset (or both) to be true. Received: scale=False, offset=False"
            )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape, weight = tuple(inputs[0]), tuple(params["shape"])
        tail = shape[len(shape) - len(weight) :] if len(weight) <= len(shape) else None
        if tail is None or any(w not in (1, s) for w, s in zip(weight, tail, strict=True)):
            raise ShapeError(
                f"expected a weight shape that broadcasts over the input {format_shape(shape)} without "
                f"changing it. Received: shape={list(weight)}"
            )
        return shape

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        total = (int(params["scale"]) + int(params["offset"])) * math.prod(params["shape"])
        return ParamCount(total) if params["trainable"] else ParamCount(non_trainable=total)

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        per_value = int(params["scale"]) + int(params["offset"])  # a multiply (or divide), an add
        return FlopCount(elementwise=per_value * element_count(output))


class Normalization(LayerSpec):
    key = "Normalization"
    category = "Preprocessing"
    doc = (
        "Standardizes each channel (the last axis) with a fixed mean and variance: "
        "(x - mean) / sqrt(variance) (Keras's preprocessing Normalization; torch: buffers)."
    )
    params = ()

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        _channels(inputs)
        return inputs[0]

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        # Keras keeps the mean, the variance and a sample count (one integer) as weights.
        return ParamCount(non_trainable=2 * _channels(inputs) + 1)

    def count_torch_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(non_trainable=2 * _channels(inputs))  # no sample count in PyTorch

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        return FlopCount(elementwise=2 * element_count(output))  # subtract the mean, divide


class RMSNormalization(LayerSpec):
    key = "RMSNormalization"
    category = "Normalization"
    doc = (
        "Divides each sample by the root mean square over its last axis, then multiplies by a learned "
        "scale (torch: RMSNorm(channels))."
    )
    params = (
        FloatParam(
            "epsilon",
            1e-6,
            "Added to the mean square (Keras default 1e-6; torch's default is the float epsilon, so "
            "torch code passes eps=this).",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        _channels(inputs)
        return inputs[0]

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(trainable=_channels(inputs))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # Per value: square, the mean's sum, the normalising multiply and the scale.
        return FlopCount(elementwise=4 * element_count(output))


SPECS = (
    BatchNormalization(),
    LayerNormalization(),
    GroupNormalization(),
    RMSNormalization(),
    Affine(),
    Normalization(),
)
