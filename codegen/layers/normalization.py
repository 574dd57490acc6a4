"""Normalization: BatchNormalization (channels-first in PyTorch) and LayerNormalization (last axis)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.base import (
    CF,
    CL,
    Arrays,
    KerasLayer,
    Lowering,
    Mapped,
    SourceGraph,
    State,
    Tensor,
    TorchCode,
    Unsupported,
    module_call,
)
from codegen.layers.keras_config import last_axis
from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan


def _batch_norm_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [f"momentum={py(params['momentum'])}", f"epsilon={py(params['epsilon'])}"]
    if not params["center"]:
        args += ["center=False", "scale=False"]
    return KerasLayer("layers.BatchNormalization", args)


def _batch_norm_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    rank = len(layer.shape)
    name = "nn.BatchNorm2d" if rank == 3 else "nn.BatchNorm1d"
    # PyTorch's momentum weighs the new batch, Keras's the running value: torch = 1 - keras.
    momentum = round(1 - params["momentum"], 12)
    args = [str(layer.shape[-1]), f"eps={py(params['epsilon'])}", f"momentum={py(momentum)}"]
    if not params["center"]:
        args.append("affine=False")
    return TorchCode((name, args), [module_call(layer, xs[0])])


def _batch_norm_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    names = ["weight", "bias"] if layer.params["center"] else []
    return dict(zip([*names, "running_mean", "running_var"], weights, strict=True))


def _layer_norm_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [f"epsilon={py(params['epsilon'])}"]
    args += [] if params["center"] else ["center=False"]
    args += [] if params["scale"] else ["scale=False"]
    return KerasLayer("layers.LayerNormalization", args)


def _layer_norm_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    args = [str(layer.shape[-1]), f"eps={py(params['epsilon'])}"]
    if not params["scale"]:
        args.append("elementwise_affine=False")
    elif not params["center"]:
        args.append("bias=False")
    return TorchCode(("nn.LayerNorm", args), [module_call(layer, xs[0])])


def _layer_norm_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    names = (["weight"] if layer.params["scale"] else []) + (["bias"] if layer.params["center"] else [])
    return dict(zip(names, weights, strict=True))


LOWERINGS = (
    Lowering(
        "BatchNormalization",
        _batch_norm_keras,
        _batch_norm_torch,
        CF,
        weights=_batch_norm_weights,
        training_note="BatchNormalization: torch updates its running variance with the unbiased batch "
        "variance, Keras with the biased one, so validation losses drift slightly",
    ),
    Lowering("LayerNormalization", _layer_norm_keras, _layer_norm_torch, CL, weights=_layer_norm_weights),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _batch_norm_from_keras(cfg, context) -> Mapped:
    last_axis(cfg.get("axis", -1), context, "BatchNormalization")
    if cfg.get("renorm"):
        raise Unsupported("renorm=True: batch renormalization has no catalog equivalent")
    return Mapped(
        "BatchNormalization",
        {
            "momentum": float(cfg.get("momentum", 0.99)),
            "epsilon": float(cfg.get("epsilon", 1e-3)),
            "center": bool(cfg.get("center", True)),
            "scale": bool(cfg.get("scale", True)),
        },
    )


def _layer_norm_from_keras(cfg, context) -> Mapped:
    last_axis(cfg.get("axis", -1), context, "LayerNormalization")
    if cfg.get("rms_scaling"):
        raise Unsupported("rms_scaling=True: RMS normalization has no catalog equivalent")
    return Mapped(
        "LayerNormalization",
        {
            "epsilon": float(cfg.get("epsilon", 1e-3)),
            "center": bool(cfg.get("center", True)),
            "scale": bool(cfg.get("scale", True)),
        },
    )


KERAS_CLASSES: dict = {
    "BatchNormalization": _batch_norm_from_keras,
    "LayerNormalization": _layer_norm_from_keras,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


def batch_norm_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
    mean: np.ndarray,
    variance: np.ndarray,
    epsilon: float,
    keras_momentum: float,
) -> Tensor:
    """BatchNormalization over the channel axis (axis 1 of the source)."""
    rank = len(graph.source_shape(x))
    x = graph.to_cf(x, name) if rank >= 2 else graph.as_vector(x, name)
    affine = scale is not None
    params = {"momentum": keras_momentum, "epsilon": epsilon, "center": affine, "scale": affine}
    weights = ([scale, bias] if affine else []) + [mean, variance]
    return graph.add("BatchNormalization", name, [x], params, weights, source_kind=source_kind)


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------

TORCH_MODULES: dict = {}
TORCH_FUNCTIONS: dict = {}
TORCH_METHODS: dict = {}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.

from codegen.layers.base import Unsupported  # noqa: E402 - the ONNX section's own imports, kept with it


def _batch_norm_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    attrs = walker.attrs(node)
    if attrs.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise Unsupported("training-mode batch normalization (it also outputs running statistics)")
    arrays = [
        walker.weight(node, inputs, i, what)
        for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance"))
    ]
    epsilon, momentum = float(attrs.get("epsilon", 1e-5)), float(attrs.get("momentum", 0.9))
    return batch_norm_layer(walker.graph, x, name, node.op_type, *arrays, epsilon, momentum)


ONNX_OPS: dict = {"BatchNormalization": _batch_norm_from_onnx}
