"""Convert Keras weights into the generated PyTorch model's ``state_dict``.

Each converter takes one layer's plan and its Keras weights (``layer.get_weights()``,
numpy arrays in Keras order) and returns the PyTorch entries for that layer,
keyed without the module prefix. Layouts follow keras-vs-pytorch.md.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from codegen.plan import FLAT_CF, LayerPlan, ModelPlan

Arrays = list[np.ndarray]
State = dict[str, np.ndarray]


def _dense(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    kernel = weights[0]  # (in, units), rows in Keras's channels-last order
    source = plan.layer(layer.inputs[0])
    if source.layout.kind == FLAT_CF:
        # torch flattened (c, h, w); Keras (h, w, c): reorder the input rows.
        shape = source.layout.source
        rank = len(shape)
        kernel = kernel.reshape(*shape, -1).transpose(rank - 1, *range(rank - 1), rank).reshape(kernel.shape)
    state = {"weight": kernel.T}
    if len(weights) > 1:
        state["bias"] = weights[1]
    return state


def _conv(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    kernel = weights[0]  # (k..., in, out) -> (out, in, k...)
    rank = kernel.ndim
    state = {"weight": kernel.transpose(rank - 1, rank - 2, *range(rank - 2))}
    if len(weights) > 1:
        state["bias"] = weights[1]
    return state


def _depthwise_kernel(kernel: np.ndarray) -> np.ndarray:
    """(kh, kw, C, M) -> (C*M, 1, kh, kw): channel c's m-th filter is output c*M + m in both."""
    kh, kw, channels, multiplier = kernel.shape
    return kernel.reshape(kh, kw, 1, channels * multiplier).transpose(3, 2, 0, 1)


def _depthwise(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    state = {"weight": _depthwise_kernel(weights[0])}
    if len(weights) > 1:
        state["bias"] = weights[1]
    return state


def _separable(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    state = {"0.weight": _depthwise_kernel(weights[0]), "1.weight": weights[1].transpose(3, 2, 0, 1)}
    if len(weights) > 2:
        state["1.bias"] = weights[2]
    return state


def _conv_transpose(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    state = {"weight": weights[0].transpose(3, 2, 0, 1)}  # (kh, kw, out, in) -> (in, out, kh, kw)
    if len(weights) > 1:
        state["bias"] = weights[1]
    return state


def _batch_norm(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    names = ["weight", "bias"] if layer.params["center"] else []
    return dict(zip([*names, "running_mean", "running_var"], weights, strict=True))


def _layer_norm(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    names = (["weight"] if layer.params["scale"] else []) + (["bias"] if layer.params["center"] else [])
    return dict(zip(names, weights, strict=True))


def _embedding(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    return {"weight": weights[0]}


def _gru_gates(matrix: np.ndarray) -> np.ndarray:
    """Keras orders GRU gates (z, r, h); torch (r, z, n): swap the first two blocks of the last axis."""
    z, r, h = np.split(matrix, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _rnn_direction(layer: LayerPlan, weights: Arrays, suffix: str) -> State:
    kernel, recurrent, bias = weights
    if layer.kind == "GRU":
        kernel, recurrent = _gru_gates(kernel), _gru_gates(recurrent)
        bias_ih, bias_hh = _gru_gates(bias[0]), _gru_gates(bias[1])
    else:
        # Keras has one bias; torch adds bias_ih and bias_hh, so the second is zero.
        bias_ih, bias_hh = bias, np.zeros_like(bias)
    return {
        f"weight_ih_l0{suffix}": kernel.T,
        f"weight_hh_l0{suffix}": recurrent.T,
        f"bias_ih_l0{suffix}": bias_ih,
        f"bias_hh_l0{suffix}": bias_hh,
    }


def _recurrent(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    state = _rnn_direction(layer, weights[:3], "")
    if layer.params["bidirectional"]:
        state.update(_rnn_direction(layer, weights[3:], "_reverse"))
    return state


def _attention(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    use_bias = layer.params["use_bias"]
    step = 2 if use_bias else 1
    query, key, value, output = (weights[i * step : (i + 1) * step] for i in range(4))
    embed = output[0].shape[-1]

    def projection(pair: Arrays) -> np.ndarray:
        kernel = pair[0]  # (in, heads, key_dim) -> (heads*key_dim, in)
        return kernel.reshape(kernel.shape[0], -1).T

    state = {}
    if key[0].shape[0] == embed and value[0].shape[0] == embed:
        state["in_proj_weight"] = np.concatenate([projection(query), projection(key), projection(value)])
    else:
        state["q_proj_weight"] = projection(query)
        state["k_proj_weight"] = projection(key)
        state["v_proj_weight"] = projection(value)
    out_kernel = output[0]  # (heads, key_dim, embed) -> (embed, heads*key_dim)
    state["out_proj.weight"] = out_kernel.reshape(-1, embed).T
    if use_bias:
        state["in_proj_bias"] = np.concatenate(
            [query[1].reshape(-1), key[1].reshape(-1), value[1].reshape(-1)]
        )
        state["out_proj.bias"] = output[1]
    return state


CONVERTERS: dict[str, Callable[[LayerPlan, Arrays, ModelPlan], State]] = {
    "Dense": _dense,
    "Conv1D": _conv,
    "Conv2D": _conv,
    "DepthwiseConv2D": _depthwise,
    "SeparableConv2D": _separable,
    "Conv2DTranspose": _conv_transpose,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Embedding": _embedding,
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "MultiHeadAttention": _attention,
}


def load_torch_state(model, state: State) -> None:
    """Load numpy arrays (by state_dict key) into a generated PyTorch model.

    Every parameter and buffer must be given, except ``num_batches_tracked``,
    which keeps the model's own value. Raises ValueError naming what does not map.
    """
    import torch

    own = model.state_dict()
    missing = [key for key in own if key not in state and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in own]
    if missing or unexpected:
        raise ValueError(f"weights could not be mapped: missing {missing}, unexpected {unexpected}")
    merged = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()}
    for key, value in own.items():
        merged.setdefault(key, value)
    model.load_state_dict(merged, strict=True)


def torch_counts(model) -> tuple[int, int]:
    """(parameters, buffers without ``num_batches_tracked``): the catalog's torch counting rule."""
    parameters = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    return int(parameters), int(buffers)


def keras_to_torch_state(plan: ModelPlan, keras_weights: dict[str, Arrays]) -> State:
    """The full torch state (numpy arrays) from each layer's Keras weights, keyed by layer ident."""
    state: State = {}
    for layer in plan.layers:
        weights = keras_weights.get(layer.ident) or []
        if not weights:
            continue
        converter = CONVERTERS.get(layer.kind)
        if converter is None:
            raise ValueError(f"no weight converter for {layer.kind} '{layer.node.name}'")
        for name, array in converter(layer, weights, plan).items():
            state[f"{layer.ident}.{name}"] = np.ascontiguousarray(array, dtype=np.float32)
    return state
