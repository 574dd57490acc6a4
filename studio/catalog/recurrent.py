"""Sequence layers: Embedding and the recurrent layers SimpleRNN, LSTM, GRU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from studio.catalog.base import FlopCount, LayerSpec, ParamCount, Shape, expect_rank
from studio.catalog.params import BoolParam, ChoiceParam, IntParam


class Embedding(LayerSpec):
    key = "Embedding"
    category = "Sequence"
    takes_token_ids = True
    doc = (
        "Maps each token id of a (steps,) sequence to a learned vector of output_dim features. "
        "mask_zero is not supported: torch has no masks."
    )
    params = (
        IntParam("input_dim", 1000, "Vocabulary size: token ids run from 0 to input_dim - 1.", minimum=1),
        IntParam("output_dim", 64, "Number of features of each embedding vector.", minimum=1),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        (steps,) = expect_rank(inputs, 1, "token-id sequence (steps,)")
        return (steps, params["output_dim"])

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(params["input_dim"] * params["output_dim"])


def units_param() -> IntParam:
    return IntParam("units", 32, "Size of the hidden state (torch: hidden_size).", minimum=1)


def return_sequences_param() -> BoolParam:
    return BoolParam(
        "return_sequences",
        False,
        "Output every step (steps, units), not only the last (Keras default False; torch returns both).",
    )


def bidirectional_param() -> BoolParam:
    return BoolParam(
        "bidirectional",
        False,
        "Also run backwards and concatenate both outputs (Keras Bidirectional, merge_mode='concat').",
    )


class _Recurrent(LayerSpec):
    """A recurrent layer over a (steps, features) input.

    The weights of one direction are ``gates`` blocks of an input kernel
    ``(features, units)``, a recurrent kernel ``(units, units)`` and biases.
    """

    category = "Sequence"
    gates: ClassVar[int]
    # Bias vectors per gate block in Keras. torch always keeps two, bias_ih and bias_hh, which
    # add up to one effective bias. Where Keras has one (SimpleRNN, LSTM), the PyTorch program
    # keeps bias_hh at zero and frozen, so that training moves one bias, as in Keras: it counts
    # as non-trainable there.
    keras_biases: ClassVar[int] = 1
    # Element-wise operations per unit that combine the gates into the new state (see count_flops).
    state_update: ClassVar[int] = 0

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        steps, _ = expect_rank(inputs, 2, "sequence (steps, features)")
        features = params["units"] * self._directions(params)
        return (steps, features) if params["return_sequences"] else (features,)

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return self._count(params, inputs, self.keras_biases)

    def count_torch_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        trainable = self._count(params, inputs, self.keras_biases)
        frozen = self.gates * params["units"] * self._directions(params) if self.keras_biases == 1 else 0
        return ParamCount(trainable.trainable, frozen)

    def _count(self, params: Mapping[str, Any], inputs: Sequence[Shape], biases: int) -> ParamCount:
        _, features = expect_rank(inputs, 2, "sequence (steps, features)")
        units = params["units"]
        per_direction = self.gates * units * (features + units + biases)
        return ParamCount(per_direction * self._directions(params))

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # Per step and direction: x W and h U for every gate block (MACs); per gate value, the sum
        # of the two products, the bias adds and the gate's activation; then the state update.
        steps, features = inputs[0]
        units, gates = params["units"], self.gates
        macs = gates * units * (features + units)
        elementwise = gates * units * (2 + self.keras_biases) + units * self.state_update
        runs = steps * self._directions(params)
        return FlopCount(runs * macs, runs * elementwise)

    @staticmethod
    def _directions(params: Mapping[str, Any]) -> int:
        return 2 if params["bidirectional"] else 1


class SimpleRNN(_Recurrent):
    key = "SimpleRNN"
    doc = "Fully connected recurrence: h = activation(x W + h U + b) (torch: nn.RNN)."
    params = (
        units_param(),
        ChoiceParam(
            "activation",
            "tanh",
            "Activation of the recurrence (torch: nonlinearity, which allows only these two).",
            choices=("tanh", "relu"),
        ),
        return_sequences_param(),
        bidirectional_param(),
    )
    gates = 1


class LSTM(_Recurrent):
    key = "LSTM"
    doc = "Long short-term memory with gates i, f, c, o in the same order in both frameworks."
    params = (units_param(), return_sequences_param(), bidirectional_param())
    gates = 4
    state_update = 5  # c = f * c + i * g; h = o * tanh(c)


class GRU(_Recurrent):
    key = "GRU"
    doc = (
        "Gated recurrent unit. reset_after is always True (the Keras 3 default), the only form torch "
        "implements; it keeps an input and a recurrent bias."
    )
    params = (units_param(), return_sequences_param(), bidirectional_param())
    gates = 3
    keras_biases = 2
    state_update = 5  # the reset gate's product; h = z * h + (1 - z) * n


SPECS = (Embedding(), SimpleRNN(), LSTM(), GRU())
