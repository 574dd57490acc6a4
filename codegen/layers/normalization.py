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
from codegen.layers.torch_source import array
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


def _torch_batch_norm(walker, node, module, name):
    if module.momentum is None:
        raise Unsupported("momentum=None (a cumulative average) has no catalog equivalent")
    if not module.track_running_stats:
        raise Unsupported("track_running_stats=False normalizes with batch statistics at inference too")
    return batch_norm_layer(
        walker.graph,
        walker.tensor(node.args[0]),
        name,
        type(module).__name__,
        array(module.weight) if module.affine else None,
        array(module.bias) if module.affine else None,
        array(module.running_mean),
        array(module.running_var),
        float(module.eps),
        round(1.0 - float(module.momentum), 12),
    )


def _torch_layer_norm(walker, node, module, name):
    graph = walker.graph
    x = graph.to_same(walker.tensor(node.args[0]), name)
    if len(module.normalized_shape) != 1 or module.normalized_shape[0] != graph.source_shape(x)[-1]:
        raise Unsupported(
            f"normalized_shape={tuple(module.normalized_shape)}: the catalog normalizes the last axis"
        )
    affine = module.elementwise_affine
    has_bias = affine and module.bias is not None
    params = {"epsilon": float(module.eps), "scale": affine, "center": has_bias}
    weights = ([array(module.weight)] if affine else []) + ([array(module.bias)] if has_bias else [])
    return graph.add("LayerNormalization", name, [x], params, weights, source_kind="LayerNorm")


def _torch_layer_norm_function(walker, node, name):
    """``F.layer_norm(x, shape, weight, bias, eps)`` over the last axis (ConvNeXt's LayerNorm2d calls it
    between two permutes); weight and bias are the module's parameters, or None."""
    graph = walker.graph
    x = graph.to_same(walker.tensor(node.args[0]), name)
    shape = tuple(walker.literal(node, 1, "normalized_shape"))
    if shape != graph.source_shape(x)[-1:]:
        raise Unsupported(f"normalized_shape={shape}: the catalog normalizes the last axis")
    weight, bias = (walker.literal(node, i, key) for i, key in ((2, "weight"), (3, "bias")))
    if any(value is not None and not isinstance(value, np.ndarray) for value in (weight, bias)):
        raise Unsupported("its weight or bias is computed, not a parameter")
    eps = float(walker.literal(node, 4, "eps", 1e-5))
    params = {"epsilon": eps, "scale": weight is not None, "center": bias is not None}
    weights = [w.astype(np.float32) for w in (weight, bias) if w is not None]
    return graph.add("LayerNormalization", name, [x], params, weights, source_kind="F.layer_norm")


TORCH_FUNCTIONS: dict = {"torch.nn.functional.layer_norm": _torch_layer_norm_function}
TORCH_MODULES: dict = {
    "BatchNorm1d": _torch_batch_norm,
    "BatchNorm2d": _torch_batch_norm,
    "LayerNorm": _torch_layer_norm,
}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


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
