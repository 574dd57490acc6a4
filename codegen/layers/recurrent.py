"""Embedding and the recurrent layers: SimpleRNN, LSTM, GRU (optionally bidirectional).

PyTorch runs them ``batch_first=True``. Keras returns the last step's output,
PyTorch's ``h_n``; GRU gates are ordered (z, r, h) in Keras and (r, z, n) in
PyTorch; Keras keeps one bias where PyTorch adds ``bias_ih`` and ``bias_hh``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.base import (
    CL,
    SAME,
    Arrays,
    KerasLayer,
    Lowering,
    Mapped,
    State,
    Tensor,
    TorchCode,
    Unsupported,
    glorot_uniform,
    module_call,
)
from codegen.layers.folded import Folded
from codegen.layers.keras_config import require
from codegen.layers.reshaping import gather_item_from_onnx
from codegen.layers.torch_source import Multi, Pending, array
from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan


# ----- Embedding -----------------------------------------------------------------------------


def _embedding_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.Embedding", [str(layer.params["input_dim"]), str(layer.params["output_dim"])])


def _embedding_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    module = ("nn.Embedding", [str(params["input_dim"]), str(params["output_dim"])])
    return TorchCode(module, [module_call(layer, xs[0])])


def _embedding_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    return {"weight": weights[0]}


# ----- SimpleRNN, LSTM, GRU ------------------------------------------------------------------

TORCH_RNN_MODULES = {"SimpleRNN": "nn.RNN", "LSTM": "nn.LSTM", "GRU": "nn.GRU"}


def _recurrent_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [str(params["units"])]
    if params.get("activation", "tanh") != "tanh":
        args.append(f"activation={py(params['activation'])}")
    if params["return_sequences"]:
        args.append("return_sequences=True")
    if params["bidirectional"]:
        return KerasLayer("layers.Bidirectional", [f"layers.{layer.kind}({', '.join(args)})"])
    return KerasLayer(f"layers.{layer.kind}", args)


def _recurrent_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    args = [str(layer.input_shapes[0][-1]), str(params["units"]), "batch_first=True"]
    if params.get("activation", "tanh") != "tanh":
        args.append(f"nonlinearity={py(params['activation'])}")
    if params["bidirectional"]:
        args.append("bidirectional=True")
    module = (TORCH_RNN_MODULES[layer.kind], args)
    init = _one_bias(layer)
    call = module_call(layer, xs[0])
    if params["return_sequences"]:
        return TorchCode(module, [("{ident}, _", call)], init)
    # Keras returns the final state: torch's h_n, whose last entries are the
    # forward and (when bidirectional) backward directions of the last layer.
    target = "_, ({ident}, _)" if layer.kind == "LSTM" else "_, {ident}"
    final = "torch.cat([{ident}[-2], {ident}[-1]], dim=1)" if params["bidirectional"] else "{ident}[-1]"
    return TorchCode(module, [(target, call), final], init)


def _embedding_keras_init(layer: LayerPlan) -> list[str]:
    return ["nn.init.uniform_(self.{ident}.weight, -0.05, 0.05)"]  # Keras's "uniform" embeddings


GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _recurrent_keras_init(layer: LayerPlan) -> list[str]:
    """Keras: glorot_uniform kernel, orthogonal recurrent kernel, zero biases (an LSTM's forget gate 1)."""
    units, features = layer.params["units"], layer.input_shapes[0][-1]
    gates = GATES[layer.kind]
    suffixes = ("", "_reverse") if layer.params["bidirectional"] else ("",)
    lines = []
    for suffix in suffixes:
        lines += [
            glorot_uniform(f"self.{{ident}}.weight_ih_l0{suffix}", (features, gates * units)),
            f"nn.init.orthogonal_(self.{{ident}}.weight_hh_l0{suffix})",
            f"nn.init.zeros_(self.{{ident}}.bias_ih_l0{suffix})",
        ]
        if layer.kind == "GRU":  # (SimpleRNN and LSTM keep bias_hh at zero already: _one_bias)
            lines.append(f"nn.init.zeros_(self.{{ident}}.bias_hh_l0{suffix})")
        if layer.kind == "LSTM":  # unit_forget_bias: the gates are i, f, c, o in both
            lines.append(f"nn.init.ones_(self.{{ident}}.bias_ih_l0{suffix}[{units}:{2 * units}])")
    return lines


def _one_bias(layer: LayerPlan) -> list[str]:
    """SimpleRNN and LSTM have one bias in Keras, two in torch (bias_ih + bias_hh): bias_hh stays
    zero and frozen, so that training moves one bias (two trainable biases would move twice as far)."""
    if layer.kind == "GRU":
        return []  # Keras's GRU (reset_after) keeps both biases, as torch does
    suffixes = ("", "_reverse") if layer.params["bidirectional"] else ("",)
    lines = ["# Keras has one bias where torch adds bias_ih and bias_hh: keep bias_hh at zero, frozen."]
    for suffix in suffixes:
        lines += [
            f"nn.init.zeros_(self.{{ident}}.bias_hh_l0{suffix})",
            f"self.{{ident}}.bias_hh_l0{suffix}.requires_grad_(False)",
        ]
    return lines


def gru_gates(matrix: np.ndarray) -> np.ndarray:
    """Keras orders GRU gates (z, r, h); torch (r, z, n): swap the first two blocks of the last axis.

    The swap is its own inverse, so it converts in both directions.
    """
    z, r, h = np.split(matrix, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _rnn_direction(layer: LayerPlan, weights: Arrays, suffix: str) -> State:
    kernel, recurrent, bias = weights
    if layer.kind == "GRU":
        kernel, recurrent = gru_gates(kernel), gru_gates(recurrent)
        bias_ih, bias_hh = gru_gates(bias[0]), gru_gates(bias[1])
    else:
        # Keras has one bias; torch adds bias_ih and bias_hh, so the second is zero.
        bias_ih, bias_hh = bias, np.zeros_like(bias)
    return {
        f"weight_ih_l0{suffix}": kernel.T,
        f"weight_hh_l0{suffix}": recurrent.T,
        f"bias_ih_l0{suffix}": bias_ih,
        f"bias_hh_l0{suffix}": bias_hh,
    }


def _recurrent_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    state = _rnn_direction(layer, weights[:3], "")
    if layer.params["bidirectional"]:
        state.update(_rnn_direction(layer, weights[3:], "_reverse"))
    return state


LOWERINGS = (
    Lowering(
        "Embedding",
        _embedding_keras,
        _embedding_torch,
        CL,
        weights=_embedding_weights,
        keras_init=_embedding_keras_init,
    ),
    *(
        Lowering(
            kind,
            _recurrent_keras,
            _recurrent_torch,
            CL,
            weights=_recurrent_weights,
            keras_init=_recurrent_keras_init,
        )
        for kind in TORCH_RNN_MODULES
    ),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _embedding_from_keras(cfg, context) -> Mapped:
    if cfg.get("mask_zero"):
        raise Unsupported("mask_zero=True: masks have no catalog (or PyTorch) equivalent")
    if cfg.get("lora_rank"):
        raise Unsupported(f"lora_rank={cfg['lora_rank']}: LoRA adapters have no catalog equivalent")
    return Mapped("Embedding", {"input_dim": int(cfg["input_dim"]), "output_dim": int(cfg["output_dim"])})


def _recurrent_from_keras(kind: str):
    """SimpleRNN, LSTM, GRU: only what PyTorch's modules compute too."""

    def mapping(cfg, context) -> Mapped:
        for key in ("return_state", "go_backwards", "stateful"):
            require(cfg, key, False, "the catalog's recurrent layers do not have it")
        require(cfg, "use_bias", True, "the catalog's recurrent layers always have a bias")
        for key in ("dropout", "recurrent_dropout"):
            if float(cfg.get(key, 0.0) or 0.0) != 0.0:
                raise Unsupported(f"{key}={cfg[key]}: the catalog's recurrent layers have no dropout")
        activation = cfg.get("activation", "tanh")
        if kind == "SimpleRNN":
            if activation not in ("tanh", "relu"):
                raise Unsupported(
                    f"activation={activation!r}: SimpleRNN has tanh or relu (torch nonlinearity)"
                )
        elif activation != "tanh":
            raise Unsupported(f"activation={activation!r}: PyTorch's {kind} uses tanh only")
        if kind != "SimpleRNN" and cfg.get("recurrent_activation", "sigmoid") != "sigmoid":
            raise Unsupported(
                f"recurrent_activation={cfg['recurrent_activation']!r}: PyTorch's {kind} uses sigmoid only"
            )
        if kind == "GRU" and cfg.get("reset_after", True) is not True:
            raise Unsupported("reset_after=False: PyTorch implements only reset_after=True")
        params = {
            "units": int(cfg["units"]),
            "return_sequences": bool(cfg.get("return_sequences", False)),
            "bidirectional": False,
        }
        if kind == "SimpleRNN":
            params["activation"] = activation
        return Mapped(kind, params)

    return mapping


_RECURRENT_FROM_KERAS = {kind: _recurrent_from_keras(kind) for kind in TORCH_RNN_MODULES}


def _bidirectional_from_keras(cfg, context) -> Mapped:
    """``layers.Bidirectional(layers.LSTM(...))``: the wrapped layer with ``bidirectional`` set."""
    if cfg.get("merge_mode", "concat") != "concat":
        raise Unsupported(
            f"merge_mode={cfg.get('merge_mode')!r}: the catalog's bidirectional layers concatenate"
        )
    inner = cfg.get("layer") or {}
    kind = str(inner.get("class_name"))
    if kind not in _RECURRENT_FROM_KERAS:
        raise Unsupported(f"wraps a {kind}; the catalog has bidirectional LSTM, GRU and SimpleRNN")
    mapping = _RECURRENT_FROM_KERAS[kind]
    mapped = mapping(inner.get("config") or {}, context)
    backward = cfg.get("backward_layer")
    if isinstance(backward, Mapping):
        # Keras stores the backward copy with go_backwards=True: compare the rest.
        back = mapping({**(backward.get("config") or {}), "go_backwards": False}, context)
        if str(backward.get("class_name")) != kind or back.params != mapped.params:
            raise Unsupported("its backward layer differs from the forward one")
    mapped.params["bidirectional"] = True
    return mapped


KERAS_CLASSES: dict = {
    "Embedding": _embedding_from_keras,
    **_RECURRENT_FROM_KERAS,
    "Bidirectional": _bidirectional_from_keras,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


def _torch_embedding(walker, node, module, name):
    x = walker.tensor(node.args[0])
    if module.max_norm is not None:
        raise Unsupported("max_norm renormalizes rows at lookup; the catalog's Embedding does not")
    if module.padding_idx is not None:
        walker.builder.note(
            f"'{name}': padding_idx={module.padding_idx} is dropped (it only keeps that row's gradient at zero)"
        )
    params = {"input_dim": module.num_embeddings, "output_dim": module.embedding_dim}
    weights = [array(module.weight)]
    return walker.graph.add("Embedding", name, [x], params, weights, source_kind="Embedding", form=SAME)


# nn.RNN -> SimpleRNN, nn.LSTM -> LSTM, nn.GRU -> GRU: the inverse of the emission's table.
_RNN_KINDS = {module.removeprefix("nn."): kind for kind, module in TORCH_RNN_MODULES.items()}


def _torch_recurrent(walker, node, module, name):
    kind = _RNN_KINDS[type(module).__name__]
    if module.num_layers != 1:
        raise Unsupported(f"num_layers={module.num_layers}; stack one-layer {kind}s instead")
    if not module.batch_first:
        raise Unsupported("batch_first=False; the catalog's sequences are (batch, steps, features)")
    if not module.bias:
        raise Unsupported("bias=False; Keras recurrent layers always have a bias")
    if getattr(module, "proj_size", 0):
        raise Unsupported(f"proj_size={module.proj_size} has no catalog equivalent")
    if len(node.args) > 1 and node.args[1] is not None:
        raise Unsupported("is given an initial state; the catalog's layers start from zeros")
    x = walker.graph.to_same(walker.tensor(node.args[0]), name)
    directions = 2 if module.bidirectional else 1

    def create(mode: str) -> Tensor:
        params = {
            "units": module.hidden_size,
            "return_sequences": mode == "sequences",
            "bidirectional": directions == 2,
        }
        if kind == "SimpleRNN":
            params["activation"] = module.nonlinearity
        weights = []
        for suffix in ("", "_reverse")[:directions]:
            weights += _torch_rnn_weights(module, kind, suffix)
        source_kind = type(module).__name__
        return walker.graph.add(kind, name, [x], params, weights, source_kind=source_kind, form=SAME)

    return Multi(_RnnOutputs(Pending(create), kind, directions))


def _torch_rnn_weights(module, kind: str, suffix: str) -> list[np.ndarray]:
    w_ih = array(getattr(module, f"weight_ih_l0{suffix}")).T
    w_hh = array(getattr(module, f"weight_hh_l0{suffix}")).T
    b_ih = array(getattr(module, f"bias_ih_l0{suffix}"))
    b_hh = array(getattr(module, f"bias_hh_l0{suffix}"))
    if kind == "GRU":
        return [gru_gates(w_ih), gru_gates(w_hh), np.stack([gru_gates(b_ih), gru_gates(b_hh)])]
    return [w_ih, w_hh, b_ih + b_hh]  # Keras has one bias: the two add up


@dataclass(frozen=True)
class _RnnOutputs:
    """``output, h_n`` (``output, (h_n, c_n)`` for an LSTM): the layer is made when one is used."""

    pending: Pending
    kind: str
    directions: int

    def resolve(self, path: tuple) -> Tensor:
        if path == (0,):
            return self.pending.get("sequences")
        if path == (0, "last") and self.directions == 1:
            return self.pending.get("final")
        state = self._state()
        if path[: len(state)] == state and len(path) == len(state) + 1 and self.directions == 1:
            if path[-1] in (-1, 0):
                return self.pending.get("final")
        if path == (1, 1) and self.kind == "LSTM":
            raise Unsupported(
                "uses the LSTM cell state; Keras layers in the catalog return the hidden state only"
            )
        raise Unsupported(
            f"uses the {self.kind} outputs in a way the catalog cannot express (index {path}); "
            "use output[:, -1] (one direction), h_n[-1], or torch.cat([h_n[-2], h_n[-1]], dim=1) "
            "for both directions"
        )

    def concatenate(self, paths: list[tuple]) -> Tensor | None:
        """``torch.cat([h_n[-2], h_n[-1]], dim=1)`` of a bidirectional RNN: its final output."""
        if len(paths) != 2 or self.directions != 2:
            return None
        state = self._state()
        first, second = paths
        ends = (first[-1], second[-1])
        if first[:-1] == state and second[:-1] == state and ends in ((-2, -1), (0, 1)):
            return self.pending.get("final")
        return None

    def _state(self) -> tuple:
        """The index path of ``h_n``."""
        return (1, 0) if self.kind == "LSTM" else (1,)


TORCH_MODULES: dict = {
    "Embedding": _torch_embedding,
    **{module: _torch_recurrent for module in _RNN_KINDS},
}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


def _gather_from_onnx(walker, node, inputs, name, index):
    """A lookup of computed indices in a constant 2-D table: an Embedding."""
    table, indices = inputs[0], inputs[1]
    if isinstance(table, (Tensor, Folded)):  # x[:, 0]: an item of a computed tensor
        return gather_item_from_onnx(walker, node, inputs, name)
    if not (isinstance(table, np.ndarray) and isinstance(indices, Tensor)):
        raise Unsupported("gathers from a computed tensor; only an embedding table lookup is in the catalog")
    if int(walker.attrs(node).get("axis", 0)) != 0 or table.ndim != 2:
        raise Unsupported("a gather that is not a lookup in a 2-D embedding table")
    table = walker.weight(node, inputs, 0, "table")
    params = {"input_dim": table.shape[0], "output_dim": table.shape[1]}
    return walker.graph.add("Embedding", name, [indices], params, [table], source_kind="Gather", form=SAME)


ONNX_OPS: dict = {"Gather": _gather_from_onnx}
