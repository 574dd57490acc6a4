"""Normalization: BatchNormalization and GroupNormalization (channels-first in PyTorch), LayerNormalization
(the last axis)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.base import (
    CF,
    CL,
    KEEP,
    SAME,
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
from codegen.layers.folded import Folded, along_last_axis, on_last_axes
from codegen.layers.keras_config import last_axis
from codegen.layers.torch_source import array, describe, resolve
from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan


def _affine_args(params) -> list[str]:
    return (["center=False"] if not params["center"] else []) + (
        ["scale=False"] if not params["scale"] else []
    )


def _frozen_affine(params) -> list[str]:
    """torch's affine norms have both a weight and a bias: the one Keras lacks stays at 1 or 0, frozen."""
    if params["center"] == params["scale"]:
        return []
    frozen, value, missing = ("bias", "0", "beta") if params["scale"] else ("weight", "1", "gamma")
    return [
        f"# Keras has no {missing}: torch's {frozen} stays {value}, frozen.",
        f"self.{{ident}}.{frozen}.requires_grad_(False)",
    ]


def _affine_state(params, weights: Arrays, channels: int) -> tuple[State, Arrays]:
    """gamma and beta (Keras's first weights, when enabled) as torch's weight and bias, the missing
    one at its identity value; and the weights after them."""
    if not params["center"] and not params["scale"]:
        return {}, list(weights)
    rest = list(weights)
    scale = rest.pop(0) if params["scale"] else np.ones(channels, np.float32)
    bias = rest.pop(0) if params["center"] else np.zeros(channels, np.float32)
    return {"weight": scale, "bias": bias}, rest


def _batch_norm_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [f"momentum={py(params['momentum'])}", f"epsilon={py(params['epsilon'])}"]
    return KerasLayer("layers.BatchNormalization", args + _affine_args(params))


def _batch_norm_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    rank = len(layer.shape)
    name = "nn.BatchNorm2d" if rank == 3 else "nn.BatchNorm1d"
    # PyTorch's momentum weighs the new batch, Keras's the running value: torch = 1 - keras.
    momentum = round(1 - params["momentum"], 12)
    args = [str(layer.shape[-1]), f"eps={py(params['epsilon'])}", f"momentum={py(momentum)}"]
    if not params["center"] and not params["scale"]:
        args.append("affine=False")
    return TorchCode((name, args), [module_call(layer, xs[0])], _frozen_affine(params))


def _batch_norm_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    state, statistics = _affine_state(layer.params, weights, layer.shape[-1])
    return {**state, **dict(zip(["running_mean", "running_var"], statistics, strict=True))}


def _layer_norm_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    return KerasLayer(
        "layers.LayerNormalization", [f"epsilon={py(params['epsilon'])}", *_affine_args(params)]
    )


def _layer_norm_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    args = [str(layer.shape[-1]), f"eps={py(params['epsilon'])}"]
    if not params["scale"] and not params["center"]:
        args.append("elementwise_affine=False")
    elif not params["center"]:
        args.append("bias=False")
    # center without scale: torch's LayerNorm has a bias only with a weight, which stays 1, frozen.
    frozen = _frozen_affine(params) if params["center"] else []
    return TorchCode(("nn.LayerNorm", args), [module_call(layer, xs[0])], frozen)


def _layer_norm_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    params = layer.params
    if params["scale"] and not params["center"]:
        return {"weight": weights[0]}
    return _affine_state(params, weights, layer.shape[-1])[0]


def _group_norm_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [f"groups={params['groups']}", f"epsilon={py(params['epsilon'])}"]
    return KerasLayer("layers.GroupNormalization", args + _affine_args(params))


def _group_norm_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    # Both frameworks group consecutive channels: group g holds channels g*C/G to (g+1)*C/G - 1.
    params = layer.params
    args = [str(params["groups"]), str(layer.shape[-1]), f"eps={py(params['epsilon'])}"]
    if not params["center"] and not params["scale"]:
        args.append("affine=False")
    return TorchCode(("nn.GroupNorm", args), [module_call(layer, xs[0])], _frozen_affine(params))


def _group_norm_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    return _affine_state(layer.params, weights, layer.shape[-1])[0]


def _rms_norm_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.RMSNormalization", [f"epsilon={py(layer.params['epsilon'])}"])


def _rms_norm_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    # x * rsqrt(mean(x^2) + eps) * weight in both; torch's default eps is the float epsilon: always passed.
    args = [str(layer.shape[-1]), f"eps={py(layer.params['epsilon'])}"]
    return TorchCode(("nn.RMSNorm", args), [module_call(layer, xs[0])])


def _rms_norm_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    return {"weight": weights[0]}


# ----- Affine: x * scale + offset with weights of a fixed shape ---------------------------------

AFFINE_CLASS = '''@keras.saving.register_keras_serializable(package="LayerStudio")
class Affine(layers.Layer):
    """x * gamma + beta (x / gamma + beta: divide) with weights of a fixed shape (batch excluded),
    broadcast over x."""

    def __init__(self, shape, scale=True, offset=False, divide=False, **kwargs):
        super().__init__(**kwargs)
        self.weight_shape, self.scale, self.offset, self.divide = tuple(shape), scale, offset, divide

    def build(self, input_shape):
        if self.scale:
            self.gamma = self.add_weight(shape=self.weight_shape, initializer="ones", name="gamma")
        if self.offset:
            self.beta = self.add_weight(shape=self.weight_shape, initializer="zeros", name="beta")

    def call(self, x):
        if self.scale:
            x = x / self.gamma if self.divide else x * self.gamma
        if self.offset:
            x = x + self.beta
        return x

    def get_config(self):
        config = {"shape": list(self.weight_shape), "scale": self.scale, "offset": self.offset}
        config["divide"] = self.divide
        return {**super().get_config(), **config}'''


def _affine_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [py(list(params["shape"]))]
    args += [] if params["scale"] else ["scale=False"]
    args += ["offset=True"] if params["offset"] else []
    args += ["divide=True"] if params["divide"] else []
    args += [] if params["trainable"] else ["trainable=False"]
    return KerasLayer("Affine", args)


def _affine_torch_shape(layer: LayerPlan) -> tuple[int, ...]:
    return _channel_shape(layer, tuple(layer.params["shape"]))


def _channel_shape(layer: LayerPlan, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A weight's shape in the PyTorch layout: channels-first moves the channel axis of the weight,
    padded with unit axes to the input's rank, to the front ((C,) -> (C, 1, 1) on an image)."""
    rank = len(layer.shape)
    if layer.layout.kind != CF or rank < 2:
        return shape
    full = (1,) * (rank - len(shape)) + shape
    return (full[-1], *full[:-1])


def _affine_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    shape = ", ".join(map(str, _affine_torch_shape(layer)))
    frozen = "" if params["trainable"] else ", requires_grad=False"
    weights = []
    expr = xs[0]
    for name, on, init in (("scale", params["scale"], "ones"), ("offset", params["offset"], "zeros")):
        if on:
            weights.append(f'"{name}": nn.Parameter(torch.{init}({shape}){frozen})')
            operator = "+" if name == "offset" else "/" if params["divide"] else "*"
            expr = f'{expr} {operator} self.{{ident}}["{name}"]'
    return TorchCode(("nn.ParameterDict", ["{" + ", ".join(weights) + "}"]), [expr])


def _affine_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    names = [name for name in ("scale", "offset") if layer.params[name]]
    shape, torch_shape = tuple(layer.params["shape"]), _affine_torch_shape(layer)
    state = {}
    for name, weight in zip(names, weights, strict=True):
        if torch_shape != shape:  # channels-first: the channel axis first
            full = weight.reshape((1,) * (len(layer.shape) - len(shape)) + shape)
            weight = np.moveaxis(full, -1, 0)
        state[name] = weight.reshape(torch_shape)
    return state


# ----- Normalization (Keras preprocessing): (x - mean) / max(sqrt(variance), 1e-7) --------------


def _normalization_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.Normalization", [])


def _normalization_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    shape = ", ".join(map(str, _channel_shape(layer, (layer.shape[-1],))))
    init = [
        f"self.{{ident}}.register_buffer({py(name)}, torch.{fill}({shape}))"
        for name, fill in (("mean", "zeros"), ("variance", "ones"))
    ]
    # Keras divides by max(sqrt(variance), epsilon), its backend epsilon 1e-7.
    step = f"({xs[0]} - self.{{ident}}.mean) / self.{{ident}}.variance.sqrt().clamp_min(1e-7)"
    return TorchCode(("nn.Module", []), [step], init)


def _normalization_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    shape = _channel_shape(layer, (layer.shape[-1],))
    mean, variance = weights[:2]  # (Keras's third weight, a sample count, has no use at inference)
    return {"mean": mean.reshape(shape), "variance": variance.reshape(shape)}


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
    Lowering("GroupNormalization", _group_norm_keras, _group_norm_torch, CF, weights=_group_norm_weights),
    Lowering("RMSNormalization", _rms_norm_keras, _rms_norm_torch, CL, weights=_rms_norm_weights),
    Lowering(
        "Affine",
        _affine_keras,
        _affine_torch,
        KEEP,
        weights=_affine_weights,
        keras_class=tuple(AFFINE_CLASS.splitlines()),
    ),
    Lowering(
        "Normalization", _normalization_keras, _normalization_torch, KEEP, weights=_normalization_weights
    ),
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
            **_affine_options(cfg),
        },
    )


def _affine_options(cfg) -> dict[str, bool]:
    """A Keras normalization's ``center`` and ``scale``, as the catalog's parameters."""
    return {"center": bool(cfg.get("center", True)), "scale": bool(cfg.get("scale", True))}


def _layer_norm_from_keras(cfg, context) -> Mapped:
    last_axis(cfg.get("axis", -1), context, "LayerNormalization")
    if cfg.get("rms_scaling"):
        raise Unsupported(
            "rms_scaling=True: Keras scales by the variance there, not the root mean square (deprecated); "
            "the catalog has no equivalent"
        )
    return Mapped(
        "LayerNormalization",
        {
            "epsilon": float(cfg.get("epsilon", 1e-3)),
            **_affine_options(cfg),
        },
    )


def _group_norm_from_keras(cfg, context) -> Mapped:
    last_axis(cfg.get("axis", -1), context, "GroupNormalization")
    return Mapped(
        "GroupNormalization",
        {
            "groups": int(cfg.get("groups", 32)),
            "epsilon": float(cfg.get("epsilon", 1e-3)),
            **_affine_options(cfg),
        },
    )


def _rms_norm_from_keras(cfg, context) -> Mapped:
    last_axis(cfg.get("axis", -1), context, "RMSNormalization")
    return Mapped("RMSNormalization", {"epsilon": float(cfg.get("epsilon", 1e-6))})


def _affine_from_keras(cfg, context) -> Mapped:
    """The Keras programs' own Affine layer."""
    return Mapped(
        "Affine",
        {
            "shape": [int(dim) for dim in cfg["shape"]],
            "scale": bool(cfg.get("scale", True)),
            "offset": bool(cfg.get("offset", False)),
            "trainable": bool(cfg.get("trainable", True)),
            "divide": bool(cfg.get("divide", False)),
        },
    )


def _layer_scale_from_keras(cfg, context) -> Mapped:
    """keras.applications ConvNeXt's LayerScale: x * gamma, gamma of shape (projection_dim,)."""
    shape = [int(cfg["projection_dim"])]
    return Mapped("Affine", {"shape": shape, "trainable": bool(cfg.get("trainable", True))})


def _normalization_from_keras(cfg, context) -> Mapped:
    """Keras's preprocessing Normalization over the last axis; a mean and variance in the config
    (rather than adapted weights) become the weights."""
    last_axis(cfg.get("axis", -1), context, "Normalization")
    if cfg.get("invert"):
        raise Unsupported("invert=True (denormalization) has no catalog equivalent")
    mean, variance = cfg.get("mean"), cfg.get("variance")
    if mean is None:
        return Mapped("Normalization")
    channels = (context.shapes[0] or [None])[-1] if context.shapes else None
    if channels is None:
        raise Unsupported("a mean and variance for an input whose channel count is unknown")
    weights = [
        channel_weights(value, channels, what) for value, what in ((mean, "mean"), (variance, "variance"))
    ]
    return Mapped("Normalization", weights=[*weights, np.zeros((), np.int64)])


def per_channel_rescaling(scale, offset, context) -> Mapped:
    """Keras's Rescaling with per-channel lists (x * scale + offset, as keras.applications'
    preprocessing writes it): a constant Affine over the channels, the same two operations."""
    channels = (context.shapes[0] or [None])[-1] if context.shapes else None
    if channels is None:
        raise Unsupported("per-channel scale or offset for an input whose channel count is unknown")
    has_offset = isinstance(offset, (list, tuple)) or offset != 0
    weights = [channel_weights(scale, channels, "scale")]
    weights += [channel_weights(offset, channels, "offset")] if has_offset else []
    params = {"shape": [channels], "scale": True, "offset": has_offset, "trainable": False}
    return Mapped("Affine", params, weights=weights)


def channel_weights(value, channels: int, what: str) -> np.ndarray:
    """A number or a per-channel list from a Keras config as a (channels,) float32 array."""
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    if array.size not in (1, channels) or not np.all(np.isfinite(array)):
        raise Unsupported(
            f"{what}={value!r}: expected a finite number or {channels} of them, one per channel"
        )
    return np.broadcast_to(array, (channels,)).copy()


KERAS_CLASSES: dict = {
    "BatchNormalization": _batch_norm_from_keras,
    "LayerNormalization": _layer_norm_from_keras,
    "GroupNormalization": _group_norm_from_keras,
    "RMSNormalization": _rms_norm_from_keras,
    "Affine": _affine_from_keras,
    "LayerScale": _layer_scale_from_keras,
    "Normalization": _normalization_from_keras,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


def _affine(scale: np.ndarray | None, bias: np.ndarray | None, channels: int) -> tuple[dict, list]:
    """center / scale params and Keras's (gamma, beta) weights for a source's optional weight and bias:
    a missing one is the identity (1 or 0), which Keras leaves out."""
    params = {"scale": scale is not None, "center": bias is not None}
    weights = [np.broadcast_to(w, (channels,)).astype(np.float32) for w in (scale, bias) if w is not None]
    return params, weights


def _identity_or(value: np.ndarray | None, identity: float, frozen: bool) -> np.ndarray | None:
    """A frozen weight (or bias) still at its identity value (1 or 0) is no weight at all: None."""
    if value is not None and frozen and np.all(value == identity):
        return None
    return value


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
    """BatchNormalization over the channel axis (axis 1 of the source); a missing scale or bias is
    the identity (Keras's scale=False, center=False)."""
    rank = len(graph.source_shape(x))
    x = graph.to_cf(x, name) if rank >= 2 else graph.as_vector(x, name)
    affine, weights = _affine(scale, bias, mean.shape[0])
    params = {"momentum": keras_momentum, "epsilon": epsilon, **affine}
    return graph.add(
        "BatchNormalization", name, [x], params, [*weights, mean, variance], source_kind=source_kind
    )


def layer_norm_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    normalized_shape: tuple,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
    epsilon: float,
) -> Tensor:
    """LayerNormalization over the source's last axis."""
    x = graph.to_same(x, name)
    channels = graph.source_shape(x)[-1]
    if tuple(normalized_shape) != (channels,):
        raise Unsupported(
            f"normalized_shape={tuple(normalized_shape)}: the catalog normalizes the last axis ({channels})"
        )
    affine, weights = _affine(scale, bias, channels)
    params = {"epsilon": epsilon, **affine}
    return graph.add("LayerNormalization", name, [x], params, weights, source_kind=source_kind)


def group_norm_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    groups: int,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
    epsilon: float,
) -> Tensor:
    """GroupNormalization over the channel axis (axis 1 of the source): both frameworks group
    consecutive channels, so the per-channel weights keep their order."""
    rank = len(graph.source_shape(x))
    x = graph.to_cf(x, name) if rank >= 2 else graph.as_vector(x, name)
    channels = graph.keras_shape(x)[-1]
    affine, weights = _affine(scale, bias, channels)
    params = {"groups": groups, "epsilon": epsilon, **affine}
    return graph.add("GroupNormalization", name, [x], params, weights, source_kind=source_kind)


def affine_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    operation: str,
    weight: np.ndarray,
    tensor_first: bool,
    trainable: bool,
) -> Tensor:
    """Affine for ``x * w``, ``x + w``, ``x - w`` or ``x / w`` (and ``w * x``, ``w + x``: IEEE sums and
    products commute) with a weight (a parameter, a buffer, a constant) of the source's layout that
    broadcasts over ``x``; a leading unit axis spans the batch."""
    if operation == "Subtract" and tensor_first:
        operation, weight = "Add", -weight  # exact: IEEE subtraction is adding the negation
    if operation not in ("Multiply", "Add", "Divide") or not tensor_first and operation == "Divide":
        raise Unsupported(
            f"{source_kind} of a tensor and a weight of shape {weight.shape}: the catalog's Affine "
            "computes x * w, x / w and x + w (w - x and w / x are not exact that way)"
        )
    if x.form not in (SAME, CF):
        x = graph.to_same(x, name)
    source = graph.source_shape(x)
    shape = tuple(weight.shape)
    if len(shape) == len(source) + 1 and shape[0] == 1:
        shape = shape[1:]  # (1, T, D): the unit batch axis
    if len(shape) > len(source) or any(
        w not in (1, s) for w, s in zip(shape[::-1], source[::-1], strict=False)
    ):
        raise Unsupported(
            f"a weight of shape {tuple(weight.shape)} broadcasts the tensor of shape {source} to another shape"
        )
    full = weight.reshape((1,) * (len(source) - len(shape)) + shape)
    if x.form == CF and full.ndim >= 2:
        full = np.moveaxis(full, 0, -1)  # the channel axis last, as Keras holds it
    while full.ndim > 1 and full.shape[0] == 1:
        full = full[0]
    params = {
        "shape": list(full.shape),
        "scale": operation != "Add",
        "offset": operation == "Add",
        "trainable": trainable,
        "divide": operation == "Divide",
    }
    weights = [np.ascontiguousarray(full, dtype=np.float32)]
    return graph.add("Affine", name, [x], params, weights, source_kind=source_kind)


def rms_norm_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    normalized_shape: tuple,
    scale: np.ndarray | None,
    epsilon: float | None,
) -> Tensor:
    """RMSNormalization over the source's last axis."""
    x = graph.to_same(x, name)
    channels = graph.source_shape(x)[-1]
    if tuple(normalized_shape) != (channels,):
        raise Unsupported(
            f"normalized_shape={tuple(normalized_shape)}: the catalog normalizes the last axis ({channels})"
        )
    if scale is None:
        raise Unsupported("no weight: Keras's RMSNormalization always multiplies by a learned scale")
    if epsilon is None:
        raise Unsupported("eps=None (the float epsilon of the input's dtype): pass eps explicitly")
    params = {"epsilon": epsilon}
    return graph.add(
        "RMSNormalization", name, [x], params, [scale.reshape(channels)], source_kind=source_kind
    )


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


_SHAPING_METHODS = ("view", "reshape", "unsqueeze", "squeeze", "permute", "transpose", "contiguous")


def is_learned(walker, arg) -> bool:
    """An fx argument that reads a trainable ``nn.Parameter``, possibly reshaped (a buffer or a
    constant is not learned)."""
    if getattr(arg, "op", None) == "call_method" and arg.target in _SHAPING_METHODS:
        return is_learned(walker, arg.args[0])
    if getattr(arg, "op", None) == "call_function" and getattr(arg.target, "__name__", "") == "getitem":
        return is_learned(walker, arg.args[0])  # a table read at indices
    if getattr(arg, "op", None) != "get_attr":
        return False
    value = walker.traced
    for part in str(arg.target).split("."):
        value = getattr(value, part)
    return isinstance(value, walker.torch.nn.Parameter) and value.requires_grad


def _module_affine(module, weight: str = "weight", bias: str = "bias") -> tuple:
    """A module's weight and bias as arrays; a frozen one at its identity value counts as absent (the
    generated PyTorch programs freeze the one Keras lacks)."""
    values = []
    for attribute, identity in ((weight, 1.0), (bias, 0.0)):
        parameter = getattr(module, attribute, None)
        frozen = parameter is not None and not parameter.requires_grad
        values.append(_identity_or(array(parameter), identity, frozen))
    return tuple(values)


def _channels_last_axes(walker, node, values) -> int | None:
    """BatchNorm1d of (N', C), a batch folded with steps (LeViT's ``x.flatten(0, 1)``): per
    channel, the last axis, which the view holds as channels; of (N', C, L) it runs on no view."""
    folded = next(value for value in values if isinstance(value, Folded))
    return 1 if len(folded.groups) == 2 else None


@on_last_axes(_channels_last_axes, channels=True)
def _torch_batch_norm(walker, node, module, name):
    if module.momentum is None:
        raise Unsupported("momentum=None (a cumulative average) has no catalog equivalent")
    if not module.track_running_stats:
        raise Unsupported("track_running_stats=False normalizes with batch statistics at inference too")
    scale, bias = _module_affine(module) if module.affine else (None, None)
    return batch_norm_layer(
        walker.graph,
        walker.tensor(node.args[0]),
        name,
        type(module).__name__,
        scale,
        bias,
        array(module.running_mean),
        array(module.running_var),
        float(module.eps),
        round(1.0 - float(module.momentum), 12),
    )


@on_last_axes(lambda walker, node, values: len(walker.module(node).normalized_shape))
def _torch_layer_norm(walker, node, module, name):
    scale, bias = _module_affine(module) if module.elementwise_affine else (None, None)
    x = walker.tensor(node.args[0])
    return layer_norm_layer(
        walker.graph, x, name, "LayerNorm", tuple(module.normalized_shape), scale, bias, float(module.eps)
    )


def _torch_instance_norm_function(walker, node, name):
    """``F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)``."""
    if not walker.literal(node, 5, "use_input_stats", True):
        raise Unsupported("use_input_stats=False normalizes with running statistics")
    x = walker.tensor(node.args[0])
    groups = walker.graph.source_shape(x)[0]
    weight, bias = _operand(walker, node, 3, "weight"), _operand(walker, node, 4, "bias")
    eps = float(walker.literal(node, 7, "eps", 1e-5))
    return group_norm_layer(walker.graph, x, name, walker.source_kind(node), groups, weight, bias, eps)


def _torch_addcmul(walker, node, name):
    """``torch.addcmul(beta, alpha, x)``, beta + alpha * x with two weights (timm's ResMLP Affine):
    a scale, then an offset."""
    args = [walker.argument(node, i, key) for i, key in ((0, "input"), (1, "tensor1"), (2, "tensor2"))]
    offset, first, second = (resolve(walker.value(arg)) for arg in args)
    if walker.literal(node, 3, "value", 1) != 1 or not isinstance(offset, np.ndarray):
        raise Unsupported("addcmul other than weight + weight * x (value=1)")
    if isinstance(first, np.ndarray) and isinstance(second, Tensor):
        scale_arg, scale, x = args[1], first, second
    elif isinstance(second, np.ndarray) and isinstance(first, Tensor):
        scale_arg, scale, x = args[2], second, first
    else:
        raise Unsupported("addcmul other than weight + weight * x (value=1)")
    kind, graph = walker.source_kind(node), walker.graph
    scaled = affine_layer(
        graph, x, f"{name}_scale", kind, "Multiply", scale, True, is_learned(walker, scale_arg)
    )
    return affine_layer(graph, scaled, name, kind, "Add", offset, True, is_learned(walker, args[0]))


def _torch_rms_norm(walker, node, module, name):
    scale = array(module.weight) if module.elementwise_affine else None
    eps = None if module.eps is None else float(module.eps)
    x = walker.tensor(node.args[0])
    return rms_norm_layer(walker.graph, x, name, "RMSNorm", tuple(module.normalized_shape), scale, eps)


def _torch_rms_norm_function(walker, node, name):
    """``F.rms_norm(x, normalized_shape, weight, eps)``."""
    shape = walker.literal(node, 1, "normalized_shape")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    eps = walker.literal(node, 3, "eps", None)
    x = walker.tensor(node.args[0])
    weight = _operand(walker, node, 2, "weight")
    return rms_norm_layer(
        walker.graph, x, name, walker.source_kind(node), shape, weight, None if eps is None else float(eps)
    )


def _torch_group_norm(walker, node, module, name):
    scale, bias = _module_affine(module) if module.affine else (None, None)
    x = walker.tensor(node.args[0])
    groups = int(module.num_groups)
    return group_norm_layer(walker.graph, x, name, "GroupNorm", groups, scale, bias, float(module.eps))


def _torch_instance_norm(walker, node, module, name):
    """InstanceNorm normalizes each channel of each sample on its own: GroupNormalization(groups=C)."""
    if module.track_running_stats:
        raise Unsupported("track_running_stats=True normalizes with running statistics at inference")
    scale, bias = _module_affine(module) if module.affine else (None, None)
    x = walker.tensor(node.args[0])
    groups = walker.graph.source_shape(x)[0]
    kind = type(module).__name__
    return group_norm_layer(walker.graph, x, name, kind, groups, scale, bias, float(module.eps))


def _operand(walker, node, index: int, key: str) -> np.ndarray | None:
    """A functional norm's weight, bias or statistics: a parameter or buffer (get_attr), or None."""
    value = walker.value(walker.argument(node, index, key))
    if value is None or isinstance(value, np.ndarray):
        return None if value is None else value.astype(np.float32)
    raise Unsupported(f"its {key} is {describe(value)}; the catalog needs a parameter or a buffer")


def _torch_batch_norm_function(walker, node, name):
    """``F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)``."""
    if walker.literal(node, 5, "training", False):
        raise Unsupported("training=True normalizes with batch statistics at inference too")
    mean, variance = _operand(walker, node, 1, "running_mean"), _operand(walker, node, 2, "running_var")
    if mean is None or variance is None:
        raise Unsupported("no running statistics: it normalizes with batch statistics at inference too")
    momentum = walker.literal(node, 6, "momentum", 0.1)
    return batch_norm_layer(
        walker.graph,
        walker.tensor(node.args[0]),
        name,
        walker.source_kind(node),
        _operand(walker, node, 3, "weight"),
        _operand(walker, node, 4, "bias"),
        mean,
        variance,
        float(walker.literal(node, 7, "eps", 1e-5)),
        round(1.0 - float(momentum), 12),
    )


@on_last_axes(lambda walker, node, values: len(walker.literal(node, 1, "normalized_shape")))
def _torch_layer_norm_function(walker, node, name):
    """``F.layer_norm(x, normalized_shape, weight, bias, eps)``."""
    shape = walker.literal(node, 1, "normalized_shape")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return layer_norm_layer(
        walker.graph,
        walker.tensor(node.args[0]),
        name,
        walker.source_kind(node),
        shape,
        _operand(walker, node, 2, "weight"),
        _operand(walker, node, 3, "bias"),
        float(walker.literal(node, 4, "eps", 1e-5)),
    )


def _torch_group_norm_function(walker, node, name):
    """``F.group_norm(x, num_groups, weight, bias, eps)``."""
    return group_norm_layer(
        walker.graph,
        walker.tensor(node.args[0]),
        name,
        walker.source_kind(node),
        int(walker.literal(node, 1, "num_groups")),
        _operand(walker, node, 2, "weight"),
        _operand(walker, node, 3, "bias"),
        float(walker.literal(node, 4, "eps", 1e-5)),
    )


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
    "GroupNorm": _torch_group_norm,
    "RMSNorm": _torch_rms_norm,
    "InstanceNorm1d": _torch_instance_norm,
    "InstanceNorm2d": _torch_instance_norm,
}
TORCH_FUNCTIONS: dict = {
    "torch.nn.functional.batch_norm": _torch_batch_norm_function,
    "torch.nn.functional.layer_norm": _torch_layer_norm_function,
    "torch.nn.functional.group_norm": _torch_group_norm_function,
    "torch.nn.functional.rms_norm": _torch_rms_norm_function,
    "torch.nn.functional.instance_norm": _torch_instance_norm_function,
    "torch.addcmul": _torch_addcmul,
}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


@on_last_axes(_channels_last_axes, channels=True)
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


@on_last_axes(lambda walker, node, values: along_last_axis(walker.attrs(node).get("axis", -1), values))
def _layer_norm_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    attrs = walker.attrs(node)
    if len([o for o in node.output if o]) > 1:
        raise Unsupported("also outputs its mean and inverse deviation")
    rank = len(walker.graph.source_shape(x)) + 1
    axis = int(attrs.get("axis", -1))
    if (axis + rank if axis < 0 else axis) != rank - 1:
        raise Unsupported(f"axis={axis}: the catalog normalizes the last axis only")
    channels = walker.graph.source_shape(x)[-1]
    scale, bias = walker.weight(node, inputs, 1, "scale"), walker.weight(node, inputs, 2, "bias")
    epsilon = float(attrs.get("epsilon", 1e-5))
    return layer_norm_layer(walker.graph, x, name, node.op_type, (channels,), scale, bias, epsilon)


def _group_norm_from_onnx(walker, node, inputs, name, index):
    """GroupNormalization: opset 21 scales per channel, opset 18 per group (each group's value then
    holds for all its channels)."""
    x = walker.data(inputs)
    attrs = walker.attrs(node)
    groups = int(attrs.get("num_groups", 0))
    channels = walker.graph.source_shape(x)[0]
    if groups < 1 or channels % groups:
        raise Unsupported(f"num_groups={groups} for {channels} channels")
    if int(attrs.get("stash_type", 1)) != 1:
        raise Unsupported("stash_type other than float32")
    weights = [walker.weight(node, inputs, i, what) for i, what in ((1, "scale"), (2, "bias"))]
    if any(w is None or w.size not in (groups, channels) for w in weights):
        raise Unsupported(f"a scale and a bias of {groups} or {channels} values are required")
    weights = [np.repeat(w.reshape(-1), channels // groups) if w.size == groups else w for w in weights]
    epsilon = float(attrs.get("epsilon", 1e-5))
    return group_norm_layer(walker.graph, x, name, node.op_type, groups, *weights, epsilon)


def _rms_norm_from_onnx(walker, node, inputs, name, index):
    """RMSNormalization (opset 23) over the last axis."""
    x = walker.data(inputs)
    attrs = walker.attrs(node)
    rank = len(walker.graph.source_shape(x)) + 1
    axis = int(attrs.get("axis", -1))
    if (axis + rank if axis < 0 else axis) != rank - 1:
        raise Unsupported(f"axis={axis}: the catalog normalizes the last axis only")
    if int(attrs.get("stash_type", 1)) != 1:
        raise Unsupported("stash_type other than float32")
    channels = walker.graph.source_shape(x)[-1]
    scale = walker.weight(node, inputs, 1, "scale")
    epsilon = float(attrs.get("epsilon", 1e-5))
    return rms_norm_layer(walker.graph, x, name, node.op_type, (channels,), scale, epsilon)


def _instance_norm_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    channels = walker.graph.source_shape(x)[0]
    scale, bias = walker.weight(node, inputs, 1, "scale"), walker.weight(node, inputs, 2, "bias")
    epsilon = float(walker.attrs(node).get("epsilon", 1e-5))
    return group_norm_layer(walker.graph, x, name, node.op_type, channels, scale, bias, epsilon)


ONNX_OPS: dict = {
    "BatchNormalization": _batch_norm_from_onnx,
    "LayerNormalization": _layer_norm_from_onnx,
    "GroupNormalization": _group_norm_from_onnx,
    "InstanceNormalization": _instance_norm_from_onnx,
    "RMSNormalization": _rms_norm_from_onnx,
}
