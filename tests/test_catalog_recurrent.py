"""Embedding, SimpleRNN, LSTM and GRU specs, checked by hand and against real Keras and torch."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from studio.catalog import CATALOG, ParamCount, ParamError, ShapeError  # noqa: E402
from studio.catalog.recurrent import GRU, LSTM, SPECS, Embedding, SimpleRNN  # noqa: E402

RNNS = [SimpleRNN(), LSTM(), GRU()]
TORCH_RNNS = {"SimpleRNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
# (units, features, return_sequences, bidirectional): every flag combination, odd sizes.
RNN_CASES = [(8, 3, False, False), (5, 7, True, False), (4, 1, False, True), (16, 9, True, True)]


def torch_count(module: nn.Module) -> ParamCount:
    """Trainable parameters; frozen parameters and buffers (as codegen.weights.torch_counts)."""
    buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return ParamCount(sum(p.numel() for p in module.parameters() if p.requires_grad), frozen + buffers)


def freeze_second_bias(module: nn.Module, keras_biases: int) -> nn.Module:
    """What the PyTorch program does where Keras has one bias (SimpleRNN, LSTM): bias_hh frozen."""
    if keras_biases == 1:
        for name, parameter in module.named_parameters():
            if name.startswith("bias_hh"):
                parameter.requires_grad_(False)
    return module


def test_specs_are_registered_with_their_category():
    assert [spec.key for spec in SPECS] == ["Embedding", "SimpleRNN", "LSTM", "GRU"]
    for spec in SPECS:
        assert CATALOG.get(spec.key).category == "Sequence"
    assert SimpleRNN().default_name == "simple_rnn"


def test_gru_has_no_reset_after_parameter():
    with pytest.raises(ParamError, match="reset_after"):
        GRU().validate_params({"reset_after": False})
    assert "reset_after is always True" in GRU().doc


def test_embedding_by_hand():
    spec = Embedding()
    params = spec.validate_params({"input_dim": 100, "output_dim": 8})
    assert spec.output_shape(params, [(10,)]) == (10, 8)
    assert spec.count_params(params, [(10,)]) == ParamCount(800)
    assert spec.count_torch_params(params, [(10,)]) == ParamCount(800)
    assert "mask_zero" in spec.doc


def test_embedding_needs_a_sequence_of_ids():
    spec = Embedding()
    with pytest.raises(ShapeError, match=r"rank 2 \(batch included\) but received \(None, 10, 4\)"):
        spec.output_shape(spec.defaults(), [(10, 4)])


@pytest.mark.parametrize(
    ("spec", "keras_count", "torch_count_"),
    [
        # torch's second bias (bias_hh) is frozen at zero where Keras has one bias: non-trainable.
        (SimpleRNN(), 8 * (3 + 8 + 1), ParamCount(8 * (3 + 8 + 1), 8)),  # 96; 96 + 8
        (LSTM(), 4 * 8 * (3 + 8 + 1), ParamCount(4 * 8 * (3 + 8 + 1), 32)),  # 384; 384 + 32
        (GRU(), 3 * 8 * (3 + 8 + 2), ParamCount(3 * 8 * (3 + 8 + 2))),  # 312; 312
    ],
)
def test_rnn_counts_by_hand(spec, keras_count, torch_count_):
    params = spec.validate_params({"units": 8})
    assert spec.output_shape(params, [(5, 3)]) == (8,)
    assert spec.count_params(params, [(5, 3)]) == ParamCount(keras_count)
    assert spec.count_torch_params(params, [(5, 3)]) == torch_count_
    both = spec.validate_params({"units": 8, "return_sequences": True, "bidirectional": True})
    assert spec.output_shape(both, [(5, 3)]) == (5, 16)
    assert spec.count_params(both, [(5, 3)]) == ParamCount(2 * keras_count)
    assert spec.count_torch_params(both, [(5, 3)]) == torch_count_ + torch_count_


@pytest.mark.parametrize("spec", RNNS, ids=lambda spec: spec.key)
@pytest.mark.parametrize("shape", [(10,), (4, 4, 3)])
def test_rnn_needs_steps_and_features(spec, shape):
    with pytest.raises(ShapeError, match=r"rank 3 \(batch included\) but received \(None, [0-9, ]+\)"):
        spec.output_shape(spec.defaults(), [shape])
    with pytest.raises(ShapeError, match="rank 3"):
        spec.count_params(spec.defaults(), [shape])


def test_simple_rnn_activation_choices():
    spec = SimpleRNN()
    assert spec.validate_params({"activation": "relu"})["activation"] == "relu"
    with pytest.raises(ParamError, match="activation='sigmoid'"):
        spec.validate_params({"activation": "sigmoid"})


@pytest.mark.parametrize(("input_dim", "output_dim", "steps"), [(100, 8, 10), (7, 3, 1)])
def test_embedding_matches_keras_and_torch(input_dim, output_dim, steps):
    spec = Embedding()
    params = spec.validate_params({"input_dim": input_dim, "output_dim": output_dim})
    layer = keras.layers.Embedding(input_dim, output_dim)
    out = layer(keras.Input((steps,), dtype="int32"))
    assert spec.output_shape(params, [(steps,)]) == tuple(out.shape[1:])
    assert spec.count_params(params, [(steps,)]).total == layer.count_params()
    assert spec.count_torch_params(params, [(steps,)]) == torch_count(nn.Embedding(input_dim, output_dim))


@pytest.mark.parametrize("spec", RNNS, ids=lambda spec: spec.key)
@pytest.mark.parametrize(("units", "features", "return_sequences", "bidirectional"), RNN_CASES)
def test_rnn_matches_keras(spec, units, features, return_sequences, bidirectional):
    values = {"units": units, "return_sequences": return_sequences, "bidirectional": bidirectional}
    params = spec.validate_params(values)
    layer = getattr(keras.layers, spec.key)(units, return_sequences=return_sequences)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
    shape = (6, features)
    out = layer(keras.Input(shape))
    assert spec.output_shape(params, [shape]) == tuple(out.shape[1:])
    assert spec.count_params(params, [shape]).total == layer.count_params()
    assert spec.count_params(params, [shape]).non_trainable == 0


@pytest.mark.parametrize("spec", RNNS, ids=lambda spec: spec.key)
@pytest.mark.parametrize(("units", "features", "return_sequences", "bidirectional"), RNN_CASES)
def test_rnn_matches_torch(spec, units, features, return_sequences, bidirectional):
    values = {"units": units, "return_sequences": return_sequences, "bidirectional": bidirectional}
    params = spec.validate_params(values)
    module = TORCH_RNNS[spec.key](features, units, batch_first=True, bidirectional=bidirectional)
    assert spec.count_torch_params(params, [(6, features)]) == torch_count(
        freeze_second_bias(module, spec.keras_biases)
    )
    output, state = module(torch.zeros(2, 6, features))
    hidden = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
    # Without return_sequences Keras returns the final state of each direction, concatenated.
    last = torch.cat(list(hidden[-2:] if bidirectional else hidden[-1:]), dim=-1)
    expected = output if return_sequences else last
    assert spec.output_shape(params, [(6, features)]) == tuple(expected.shape[1:])
