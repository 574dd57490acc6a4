"""Core layers: Input, Dense, Activation, PReLU, Dropout."""

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
from studio.catalog.params import BoolParam, ChoiceParam, FloatParam, IntParam, IntTupleParam


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
    doc = (
        "Applies an activation function element-wise (softmax and log_softmax on the channel axis; "
        "gelu is the exact erf form, gelu_tanh its tanh approximation; hard_silu is x * relu6(x + 3) / 6)."
    )
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


class PReLU(LayerSpec):
    key = "PReLU"
    category = "Core"
    doc = "Leaky ReLU with a learned slope for x < 0: one slope per channel, or one for all values."
    params = (
        BoolParam(
            "per_channel",
            True,
            "One slope per channel (Keras shared_axes = the spatial axes, torch PReLU(num_parameters=C)); "
            "off: one slope shared by all values (torch's default PReLU()).",
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = inputs[0]
        if not shape:
            raise ShapeError(f"expects an input with a channel axis but received {format_shape(shape)}")
        return shape

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(inputs[0][-1] if params["per_channel"] else 1)


class Dropout(LayerSpec):
    key = "Dropout"
    category = "Core"
    doc = (
        "Randomly zeroes a fraction of inputs during training, scaling the rest by 1 / (1 - rate); "
        "identity at inference. Whole channels: SpatialDropout; whole samples: stochastic depth."
    )
    params = (
        FloatParam(
            "rate",
            0.5,
            "Fraction of inputs to drop, in [0, 1).",
            minimum=0.0,
            maximum=1.0,
            exclusive_maximum=True,
        ),
        ChoiceParam(
            "mask",
            "element",
            "What one random draw keeps or drops: single values; whole channels of a sample "
            "(SpatialDropout1D-3D, torch Dropout1d-3d); whole samples (stochastic depth, mode 'row'); "
            "or the whole batch (stochastic depth, mode 'batch').",
            choices=("element", "channel", "sample", "batch"),
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = inputs[0]
        if params["mask"] == "channel" and not 2 <= len(shape) <= 4:
            raise ShapeError(
                "drops whole channels, which needs channels and 1 to 3 spatial axes, "
                f"but received {format_shape(shape)}"
            )
        return shape


SPECS = (Input(), Dense(), Activation(), PReLU(), Dropout())
