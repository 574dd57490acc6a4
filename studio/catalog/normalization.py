"""Normalization layers: BatchNormalization, LayerNormalization."""

from __future__ import annotations

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
from studio.catalog.params import BoolParam, FloatParam, ParamError


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

    def check_params(self, params: Mapping[str, Any]) -> None:
        if params["center"] != params["scale"]:
            raise ParamError(
                "expected center and scale to be both true or both false (torch BatchNorm's affine "
                f"has both or neither). Received: center={params['center']}, scale={params['scale']}"
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

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # At inference the statistics, gamma and beta fold into one scale and one shift per channel.
        return FlopCount(elementwise=2 * element_count(output))


class LayerNormalization(LayerSpec):
    key = "LayerNormalization"
    category = "Normalization"
    doc = "Normalizes each sample over its last axis only (torch: LayerNorm(channels) on that axis)."
    params = (epsilon_param(), center_param(), scale_param())

    def check_params(self, params: Mapping[str, Any]) -> None:
        if params["center"] and not params["scale"]:
            raise ParamError(
                "expected scale=true when center=true (torch LayerNorm has no bias without a weight). "
                "Received: center=True, scale=False"
            )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        _channels(inputs)
        return inputs[0]

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(trainable=_affine_count(params, _channels(inputs)))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # Per value: the mean's sum, subtracting it, squaring, the variance's sum, the normalising
        # multiply (5); then gamma and beta when present.
        per_value = 5 + int(params["scale"]) + int(params["center"])
        return FlopCount(elementwise=per_value * element_count(output))


SPECS = (BatchNormalization(), LayerNormalization())
