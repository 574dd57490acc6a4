"""Core layers: Input, Dense, Activation, Dropout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from studio.catalog.base import (
    ACTIVATIONS,
    FlopCount,
    LayerSpec,
    ParamCount,
    Shape,
    ShapeError,
    activation_flops,
    activation_param,
    affine_flops,
    element_count,
    format_shape,
    use_bias_param,
)
from studio.catalog.params import ChoiceParam, FloatParam, IntParam, IntTupleParam


class Input(LayerSpec):
    key = "Input"
    category = "Core"
    doc = "A model input: a batch of tensors of the given shape (batch dimension excluded)."
    params = (
        IntTupleParam(
            "shape",
            (28, 28, 1),
            "Shape of one sample, channels-last, e.g. [28, 28, 1] for a grey image.",
        ),
        ChoiceParam(
            "dtype",
            "float32",
            "Element type: float32 for features, int32 for token ids fed to Embedding.",
            choices=("float32", "int32"),
        ),
    )
    min_inputs = 0
    max_inputs = 0

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        return tuple(params["shape"])


class Dense(LayerSpec):
    key = "Dense"
    category = "Core"
    doc = "Fully connected layer on the last axis: output = activation(x @ kernel + bias)."
    params = (
        IntParam("units", 64, "Number of output features.", minimum=1),
        activation_param(),
        use_bias_param(),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = inputs[0]
        if not shape:
            raise ShapeError(f"expects an input with a feature axis but received {format_shape(shape)}")
        return (*shape[:-1], params["units"])

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        features = inputs[0][-1]
        units = params["units"]
        return ParamCount(features * units + (units if params["use_bias"] else 0))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        return FlopCount(element_count(output) * inputs[0][-1], affine_flops(params, output))


class Activation(LayerSpec):
    key = "Activation"
    category = "Core"
    doc = "Applies an activation function element-wise (softmax on the channel axis; gelu is the exact erf form)."
    params = (
        ChoiceParam(
            "activation",
            "relu",
            "The function to apply.",
            choices=tuple(name for name in ACTIVATIONS if name != "linear"),
        ),
        FloatParam(
            "negative_slope",
            0.2,
            "Slope for x < 0 with leaky_relu (Keras layer default 0.3, Keras op 0.2, torch 0.01: always explicit).",
            minimum=0.0,
        ),
        FloatParam(
            "alpha", 1.0, "Scale of the negative part with elu (both frameworks default to 1.0).", minimum=0.0
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        return inputs[0]

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        return FlopCount(elementwise=activation_flops(params["activation"], element_count(output)))


class Dropout(LayerSpec):
    key = "Dropout"
    category = "Core"
    doc = "Randomly zeroes a fraction of inputs during training, scaling the rest (identity at inference)."
    params = (
        FloatParam(
            "rate",
            0.5,
            "Fraction of inputs to drop, in [0, 1).",
            minimum=0.0,
            maximum=1.0,
            exclusive_maximum=True,
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        return inputs[0]


SPECS = (Input(), Dense(), Activation(), Dropout())
