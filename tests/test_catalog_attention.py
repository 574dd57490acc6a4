"""MultiHeadAttention spec, checked by hand and against real Keras and torch."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from studio.catalog import CATALOG, ParamCount, ParamError, ShapeError  # noqa: E402
from studio.catalog.attention import SPECS, MultiHeadAttention, PositionEmbedding  # noqa: E402

MHA = MultiHeadAttention()

# (input shapes in Keras call order: query, value, key), num_heads, key_dim, use_bias
CASES = [
    ([(5, 64)], 4, 16, True),
    ([(5, 64)], 8, 8, False),
    ([(5, 32), (7, 24)], 2, 16, True),
    ([(5, 32), (7, 24), (7, 16)], 2, 16, True),
    ([(3, 12), (9, 5), (9, 7)], 3, 4, False),
    ([(1, 6), (2, 6)], 1, 6, True),
]


def torch_count(module: nn.Module) -> ParamCount:
    buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    return ParamCount(sum(p.numel() for p in module.parameters()), buffers)


def _params(num_heads: int, key_dim: int, use_bias: bool = True) -> dict:
    return MHA.validate_params({"num_heads": num_heads, "key_dim": key_dim, "use_bias": use_bias})


def test_spec_is_registered():
    assert [spec.key for spec in SPECS] == ["MultiHeadAttention", "PositionEmbedding"]
    assert CATALOG.get("MultiHeadAttention").category == "Attention"
    assert MHA.input_names == ("query", "value", "key", "mask")  # the mask with padding_mask
    assert MHA.default_name == "multi_head_attention"


def test_input_counts():
    # query, value, key, and the padding mask (padding_mask=True)
    assert [MHA.accepts_input_count(n) for n in range(6)] == [False, True, True, True, True, False]


def test_no_value_dim_parameter():
    with pytest.raises(ParamError, match="value_dim"):
        MHA.validate_params({"value_dim": 8})


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_dropout_range(dropout):
    with pytest.raises(ParamError, match=f"dropout={dropout}"):
        MHA.validate_params({"dropout": dropout})


def test_self_attention_by_hand():
    params = _params(4, 16)
    assert MHA.output_shape(params, [(5, 64)]) == (5, 64)
    # q, k, v: 64*64 + 64 each; output: 64*64 + 64.
    assert MHA.count_params(params, [(5, 64)]) == ParamCount(4 * (64 * 64 + 64))
    assert MHA.count_params(_params(4, 16, use_bias=False), [(5, 64)]) == ParamCount(4 * 64 * 64)


def test_cross_attention_by_hand():
    params = _params(2, 16)
    inputs = [(5, 32), (7, 24), (7, 16)]  # query, value, key
    assert MHA.output_shape(params, inputs) == (5, 32)
    query, key, value, output = 32 * 32 + 32, 16 * 32 + 32, 24 * 32 + 32, 32 * 32 + 32
    assert MHA.count_params(params, inputs) == ParamCount(query + key + value + output)
    # Two inputs: the key is the value.
    assert MHA.count_params(params, inputs[:2]) == ParamCount(query + 2 * value + output)


def test_heads_times_key_dim_must_equal_query_features():
    with pytest.raises(ShapeError) as error:
        MHA.output_shape(_params(4, 16), [(10, 32)])
    message = str(error.value)
    assert "num_heads * key_dim = 4 * 16 = 64 must equal the query's feature size 32" in message
    assert "nn.MultiheadAttention" in message


def test_value_and_key_steps_must_match():
    with pytest.raises(ShapeError, match=r"value has shape \(None, 7, 24\) but key has \(None, 8, 16\)"):
        MHA.output_shape(_params(2, 16), [(5, 32), (7, 24), (8, 16)])


@pytest.mark.parametrize(
    ("inputs", "name"),
    [([(4, 4, 64)], "query"), ([(5, 64), (64,)], "value"), ([(5, 64), (7, 8), (7, 2, 4)], "key")],
)
def test_inputs_must_be_sequences(inputs, name):
    with pytest.raises(ShapeError, match=f"expects a {name} of rank 3"):
        MHA.output_shape(_params(4, 16), inputs)


@pytest.mark.parametrize(("inputs", "num_heads", "key_dim", "use_bias"), CASES)
def test_matches_keras(inputs, num_heads, key_dim, use_bias):
    params = _params(num_heads, key_dim, use_bias)
    layer = keras.layers.MultiHeadAttention(num_heads, key_dim, use_bias=use_bias)
    tensors = [keras.Input(shape) for shape in inputs]
    query, value = tensors[0], tensors[1] if len(tensors) > 1 else tensors[0]
    key = tensors[2] if len(tensors) > 2 else None
    out = layer(query, value, key)
    assert MHA.output_shape(params, inputs) == tuple(out.shape[1:])
    assert MHA.count_params(params, inputs).total == layer.count_params()


@pytest.mark.parametrize(("inputs", "num_heads", "key_dim", "use_bias"), CASES)
def test_matches_torch(inputs, num_heads, key_dim, use_bias):
    params = _params(num_heads, key_dim, use_bias)
    query = inputs[0]
    value = inputs[1] if len(inputs) > 1 else query
    key = inputs[2] if len(inputs) > 2 else value
    module = nn.MultiheadAttention(
        query[-1], num_heads, bias=use_bias, kdim=key[-1], vdim=value[-1], batch_first=True
    )
    assert MHA.count_torch_params(params, inputs) == torch_count(module)
    # torch's call order is (query, key, value).
    out, _ = module(torch.zeros(2, *query), torch.zeros(2, *key), torch.zeros(2, *value))
    assert MHA.output_shape(params, inputs) == tuple(out.shape[1:])


@pytest.mark.parametrize(("steps", "features", "length"), [(5, 8, 5), (3, 4, 16), (1, 2, 1)])
def test_position_embedding_matches_keras_hub(steps, features, length):
    import keras_hub

    spec = PositionEmbedding()
    params = spec.validate_params({"sequence_length": length})
    layer = keras_hub.layers.PositionEmbedding(sequence_length=length)
    output = layer(keras.ops.zeros((2, steps, features)))
    assert spec.output_shape(params, [(steps, features)]) == tuple(output.shape[1:])
    assert spec.count_params(params, [(steps, features)]) == ParamCount(layer.count_params())


def test_position_embedding_refuses_more_steps_than_positions():
    spec = PositionEmbedding()
    params = spec.validate_params({"sequence_length": 4})
    with pytest.raises(ShapeError, match="5 steps, more than sequence_length=4"):
        spec.output_shape(params, [(5, 8)])
    with pytest.raises(ShapeError, match="steps, features"):
        spec.output_shape(params, [(4, 4, 3)])
    with pytest.raises(ParamError, match="sequence_length"):
        spec.validate_params({"sequence_length": 0})
