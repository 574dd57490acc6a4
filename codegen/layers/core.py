"""Core layers: Dense, Activation, Dropout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.activations import ACTIVATIONS, ONNX_NAMES, is_nonneg, torch_activation
from codegen.layers.base import (
    CF,
    CL,
    FLAT_CF,
    KEEP,
    SAME,
    SQUEEZED,
    Arrays,
    KerasLayer,
    Layout,
    Lowering,
    Mapped,
    SourceGraph,
    State,
    Tensor,
    TorchCode,
    Unsupported,
    activation_arg,
    glorot_uniform,
    keras_activation,
    kernel_and_bias,
    module_call,
    use_bias_arg,
    zeros,
)
from codegen.layers.folded import along_last_axis, matrix_axes, on_last_axes
from codegen.layers.keras_config import activation_name, channels_last, last_axis
from codegen.layers.reshaping import transpose
from codegen.layers.torch_source import Aux, array, describe, resolve
from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan


# ----- Dense ---------------------------------------------------------------------------------


def _dense_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer(
        "layers.Dense", [str(layer.params["units"]), *activation_arg(layer), *use_bias_arg(layer)]
    )


def _dense_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    args = [str(layer.input_shapes[0][-1]), str(params["units"])]
    if not params["use_bias"]:
        args.append("bias=False")
    step = torch_activation(params["activation"], module_call(layer, xs[0]), CL)
    return TorchCode(("nn.Linear", args), [step])


def _dense_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    kernel = weights[0]  # (in, units), rows in Keras's channels-last order
    source = plan.layer(layer.inputs[0])
    if source.layout.kind == FLAT_CF:
        # torch flattened (c, h, w); Keras (h, w, c): reorder the input rows.
        shape = source.layout.source
        rank = len(shape)
        kernel = kernel.reshape(*shape, -1).transpose(rank - 1, *range(rank - 1), rank).reshape(kernel.shape)
    return kernel_and_bias(kernel.T, weights)


def _dense_keras_init(layer: LayerPlan) -> list[str]:
    kernel = glorot_uniform("self.{ident}.weight", (layer.input_shapes[0][-1], layer.params["units"]))
    return [kernel, *([zeros("self.{ident}.bias")] if layer.params["use_bias"] else [])]


# ----- Activation ----------------------------------------------------------------------------


def _activation_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    name = params["activation"]
    if name == "leaky_relu":
        return KerasLayer("layers.LeakyReLU", [f"negative_slope={py(params['negative_slope'])}"])
    if name == "elu" and params["alpha"] != 1.0:
        return KerasLayer("layers.ELU", [f"alpha={py(params['alpha'])}"])
    return KerasLayer("layers.Activation", [keras_activation(name)])


def _activation_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    return TorchCode(steps=[torch_activation(params["activation"], xs[0], layer.layout.kind, params)])


# ----- PReLU ----------------------------------------------------------------------------------
# Keras's alpha has the input's shape with the shared axes at 1; torch's PReLU weight is (C,) or
# (1,), applied along axis 1: one slope per channel (channels-first) or one for everything.


def _prelu_shared_axes(layer: LayerPlan) -> list[int]:
    rank = len(layer.shape)
    return list(range(1, rank if layer.params["per_channel"] else rank + 1))


def _prelu_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    axes = _prelu_shared_axes(layer)
    return KerasLayer("layers.PReLU", [f"shared_axes={py(axes)}"] if axes else [])


def _prelu_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    args = [str(layer.shape[-1])] if layer.params["per_channel"] else []
    return TorchCode(("nn.PReLU", args), [module_call(layer, xs[0])])


def _prelu_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    return {"weight": weights[0].reshape(-1)}


def _prelu_keras_init(layer: LayerPlan) -> list[str]:
    return [zeros("self.{ident}.weight")]  # Keras's alpha_initializer is "zeros" (torch's 0.25)


# ----- Dropout -------------------------------------------------------------------------------


# Keras's Dropout draws one value per element of its noise_shape: 1 shares a draw along the axis.
def _noise_shape(layer: LayerPlan) -> str:
    units = (1,) * len(layer.shape)
    batch = "None" if layer.params["mask"] == "sample" else "1"
    return f"noise_shape=({batch}, {', '.join(map(str, units))})"


def _dropout_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    rate = py(layer.params["rate"])
    mask = layer.params["mask"]
    if mask == "channel":
        return KerasLayer(f"layers.SpatialDropout{len(layer.shape) - 1}D", [rate])
    if mask in ("sample", "batch"):
        return KerasLayer("layers.Dropout", [rate, _noise_shape(layer)])
    return KerasLayer("layers.Dropout", [rate])


def _dropout_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    rate = py(layer.params["rate"])
    mask = layer.params["mask"]
    if mask == "channel":
        return TorchCode((f"nn.Dropout{len(layer.shape) - 1}d", [rate]), [module_call(layer, xs[0])])
    if mask in ("sample", "batch"):
        x = xs[0]
        units = ", ".join(["1"] * len(layer.shape))
        first = f"{x}.shape[0]" if mask == "sample" else "1"
        comment = (
            "# Stochastic depth: one draw per sample, as Keras's noise_shape=(None, 1, ...)"
            if mask == "sample"
            else "# One draw for the whole batch, as Keras's noise_shape=(1, 1, ...)"
        )
        # Dropout of ones is the mask: 0 or 1 / (1 - rate) in training, ones at inference.
        return TorchCode(
            ("nn.Dropout", [rate]),
            [comment, f"{x} * {module_call(layer, f'{x}.new_ones({first}, {units})')}"],
        )
    return TorchCode(("nn.Dropout", [rate]), [module_call(layer, xs[0])])


def _dropout_layout(plan: ModelPlan, layer: LayerPlan, output_ids: set[str]) -> None:
    """Channel dropout works channels-first (torch's Dropout1d-3d drop axis 1); the rest in place."""
    if layer.params["mask"] == "channel":
        layer.input_layout = CF
        layer.layout = Layout(CF)
        return
    source = plan.layer(layer.inputs[0]).layout
    layer.layout = Layout(source.kind, source.source)


# ----- MatMul ----------------------------------------------------------------------------------

# Keras has no layer for the product of two computed tensors: the program defines one, registered
# so that a saved model loads in safe mode.
MATMUL_KERAS = (
    '@keras.saving.register_keras_serializable(package="LayerStudio")',
    "class MatMul(layers.Layer):",
    '    """The matrix product of two inputs over their last two axes: (..., n, k) @ (..., k, m)."""',
    "",
    "    def call(self, inputs):",
    "        return keras.ops.matmul(inputs[0], inputs[1])",
)


def _matmul_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("MatMul", [], f"([{sources[0]}, {sources[1]}])")


def _matmul_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(steps=[f"torch.matmul({xs[0]}, {xs[1]})"])


LOWERINGS = (
    Lowering("MatMul", _matmul_keras, _matmul_torch, CL, keras_class=MATMUL_KERAS),
    Lowering(
        "Dense",
        _dense_keras,
        _dense_torch,
        CL,
        flat="consume",
        weights=_dense_weights,
        keras_init=_dense_keras_init,
    ),
    Lowering("Activation", _activation_keras, _activation_torch, KEEP, flat="pass"),
    Lowering("PReLU", _prelu_keras, _prelu_torch, CF, weights=_prelu_weights, keras_init=_prelu_keras_init),
    Lowering(
        "Dropout",
        _dropout_keras,
        _dropout_torch,
        KEEP,
        flat="pass",
        assign_layout=_dropout_layout,
        training_note="the model has Dropout: each framework draws its own masks, so the curves differ",
    ),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _dense_from_keras(cfg, context) -> Mapped:
    if cfg.get("lora_rank"):
        raise Unsupported(f"lora_rank={cfg['lora_rank']}: LoRA adapters have no catalog equivalent")
    return Mapped(
        "Dense",
        {
            "units": int(cfg["units"]),
            "activation": activation_name(cfg.get("activation")),
            "use_bias": bool(cfg.get("use_bias", True)),
        },
    )


def _activation_from_keras(cfg, context) -> Mapped:
    name = activation_name(cfg.get("activation"))
    if name == "linear":
        return Mapped(None)
    return Mapped("Activation", {"activation": name})


def _relu_from_keras(cfg, context) -> Mapped:
    max_value = cfg.get("max_value")
    slope = float(cfg.get("negative_slope", 0.0) or 0.0)
    threshold = float(cfg.get("threshold", 0.0) or 0.0)
    if threshold != 0.0:
        raise Unsupported(f"threshold={threshold}: the catalog's relu has no threshold")
    if max_value is None and slope == 0.0:
        return Mapped("Activation", {"activation": "relu"})
    if max_value is not None and float(max_value) == 6.0 and slope == 0.0:
        return Mapped("Activation", {"activation": "relu6"})
    if max_value is None:
        return Mapped("Activation", {"activation": "leaky_relu", "negative_slope": slope})
    raise Unsupported(
        f"max_value={max_value}, negative_slope={slope}: the catalog has relu, relu6 (max_value=6) and leaky_relu"
    )


def _leaky_relu_from_keras(cfg, context) -> Mapped:
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return Mapped("Activation", {"activation": "leaky_relu", "negative_slope": float(slope)})


def _elu_from_keras(cfg, context) -> Mapped:
    return Mapped("Activation", {"activation": "elu", "alpha": float(cfg.get("alpha", 1.0))})


def _prelu_from_keras(cfg, context) -> Mapped:
    """shared_axes must be every spatial axis (a slope per channel) or every axis (one slope)."""
    rank = context.rank
    if rank is None:
        raise Unsupported("PReLU needs its input's rank")
    shared = sorted(int(axis) + rank if int(axis) < 0 else int(axis) for axis in cfg.get("shared_axes") or [])
    if shared == list(range(1, rank - 1)):
        return Mapped("PReLU", {"per_channel": True})
    if shared == list(range(1, rank)):
        return Mapped("PReLU", {"per_channel": False})
    raise Unsupported(
        f"shared_axes={cfg.get('shared_axes')!r}: torch's PReLU has one slope per channel "
        f"(shared_axes={list(range(1, rank - 1))}) or one in all (shared_axes={list(range(1, rank))})"
    )


def _softmax_from_keras(cfg, context) -> Mapped:
    last_axis(cfg.get("axis", -1), context, "softmax")
    return Mapped("Activation", {"activation": "softmax"})


def _dropout_from_keras(cfg, context) -> Mapped:
    rate = float(cfg.get("rate", 0.5))
    noise_shape = cfg.get("noise_shape")
    if noise_shape is None:
        return Mapped("Dropout", {"rate": rate})
    return Mapped("Dropout", {"rate": rate, "mask": _mask_of_noise_shape(list(noise_shape), context)})


def _mask_of_noise_shape(noise_shape: list, context) -> str:
    """The catalog's mask for a Keras noise_shape (batch first): each axis drawn per element
    (None or its full size) or shared (1)."""
    shape = context.shapes[0] if context.shapes else None
    if shape is None or len(noise_shape) != len(shape):
        raise Unsupported(f"noise_shape={noise_shape!r} for an input of shape {shape}")
    full = [size is None or size == dim for size, dim in zip(noise_shape, shape, strict=True)]
    shared = [size == 1 for size in noise_shape]
    per_sample = full[0] and not shared[0]  # a batch of one is read as drawing per sample
    if per_sample and all(full[1:]):
        return "element"
    if all(shared[1:]):
        return "sample" if per_sample else "batch"
    if per_sample and all(shared[1:-1]) and full[-1] and 3 <= len(shape) <= 5:
        return "channel"
    raise Unsupported(
        f"noise_shape={noise_shape!r}: the catalog's Dropout draws per element, per channel, per sample "
        "or once per batch"
    )


def _spatial_dropout_from_keras(cfg, context) -> Mapped:
    channels_last(cfg)
    return Mapped("Dropout", {"rate": float(cfg.get("rate", 0.5)), "mask": "channel"})


def _stochastic_depth_from_keras(cfg, context) -> Mapped:
    """keras.applications' ConvNeXt StochasticDepth: drops whole samples (residual branches)."""
    return Mapped("Dropout", {"rate": float(cfg.get("drop_path_rate", 0.0)), "mask": "sample"})


def _identity_from_keras(cfg, context) -> Mapped:
    return Mapped(None)


def _matmul_from_keras(cfg, context) -> Mapped:
    """The programs' own MatMul layer, and ``keras.ops.matmul`` of two tensors (its operation)."""
    if len(context.shapes) != 2 or any(shape is None or len(shape) < 3 for shape in context.shapes):
        raise Unsupported("a matrix product of other than two tensors of two axes or more besides the batch")
    return Mapped("MatMul")


KERAS_CLASSES: dict = {
    "MatMul": _matmul_from_keras,
    "Matmul": _matmul_from_keras,
    "Dense": _dense_from_keras,
    "Activation": _activation_from_keras,
    "ReLU": _relu_from_keras,
    "LeakyReLU": _leaky_relu_from_keras,
    "ELU": _elu_from_keras,
    "Softmax": _softmax_from_keras,
    "PReLU": _prelu_from_keras,
    "Dropout": _dropout_from_keras,
    **{f"SpatialDropout{rank}D": _spatial_dropout_from_keras for rank in (1, 2, 3)},
    "StochasticDepth": _stochastic_depth_from_keras,
    "Identity": _identity_from_keras,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


def dense_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    kernel: np.ndarray,
    bias: np.ndarray | None,
) -> Tensor:
    """Dense for a kernel ``(in, units)`` (rows in the source's order) on the source's last axis."""
    x = graph.as_vector(x, name) if len(graph.source_shape(x)) == 1 else graph.to_same(x, name)
    if graph.source_shape(x)[-1] != kernel.shape[0]:
        raise Unsupported(f"a weight of shape {kernel.shape} for {graph.source_shape(x)[-1]} input features")
    units = int(kernel.shape[1])
    weights = [graph.dense_kernel(kernel, x)] + ([bias.reshape(units)] if bias is not None else [])
    params = {"units": units, "use_bias": bias is not None}
    return graph.add("Dense", name, [x], params, weights, source_kind=source_kind, form=SAME)


def matmul_layer(graph: SourceGraph, left: Tensor, right: Tensor, name: str, source_kind: str) -> Tensor:
    """The matrix product of two computed tensors over the source's last two axes: a MatMul."""
    left, right = graph.to_same(left, name), graph.to_same(right, name)
    shapes = [graph.source_shape(tensor) for tensor in (left, right)]
    if len(shapes[0]) != len(shapes[1]):
        raise Unsupported(
            f"multiplies tensors of shapes {shapes[0]} and {shapes[1]}; the catalog's MatMul needs equal "
            "ranks (a lower-rank operand would broadcast against the batch)"
        )
    return graph.add("MatMul", name, [left, right], {}, source_kind=source_kind, form=SAME)


def softmax_input(graph: SourceGraph, x: Tensor, axis: int, name: str) -> Tensor:
    """``x`` laid out for a softmax over source ``axis``: the catalog's runs over the Keras tensor's
    last axis, the channels (axis 1 of a channels-first source); the last axis of a channels-first
    tensor (attention scores), or axis 1 of one in the source's order, is permuted there first."""
    shape = graph.source_shape(x)
    rank = len(shape) + 1
    axis = axis + rank if axis < 0 else axis
    if x.form == FLAT_CF or (x.form in (CF, SQUEEZED) and axis == 1) or (x.form == SAME and axis == rank - 1):
        return x
    if x.form in (CF, SQUEEZED) and axis == rank - 1 and rank > 2:
        return graph.to_same(x, name)
    if x.form == SAME and axis == 1 and rank > 2:  # ResNeSt's softmax over the radix, axis 1
        return graph.to_cf(x, name)
    raise Unsupported(f"softmax over axis {axis}; the catalog's softmax is over the channel axis")


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


def _activation_axes(walker, node, values) -> int:
    """An activation works on each value alone; a softmax along its axis, which must be the last."""
    if getattr(node, "op_type", None) is not None:  # ONNX
        if node.op_type not in ("Softmax", "LogSoftmax"):
            return 0
        return along_last_axis(walker.attrs(node).get("axis", -1), values)
    if node.op == "call_module":
        module = walker.module(node)
        return (
            along_last_axis(module.dim, values) if type(module).__name__ in ("Softmax", "LogSoftmax") else 0
        )
    function = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if function.replace("_", "") not in ("softmax", "logsoftmax"):
        return 0
    return along_last_axis(walker.literal(node, 1, "dim", None), values)


@on_last_axes(1)
def _torch_linear(walker, node, module, name):
    kernel = array(module.weight).T
    return dense_layer(walker.graph, walker.tensor(node.args[0]), name, "Linear", kernel, array(module.bias))


@on_last_axes(1)
def _torch_linear_function(walker, node, name):
    """``F.linear(x, weight, bias)`` of a module's own parameters (timm's classifier heads)."""
    operands = []
    for index, key in ((1, "weight"), (2, "bias")):
        value = walker.value(walker.argument(node, index, key))
        if value is not None and not isinstance(value, np.ndarray):
            raise Unsupported(f"its {key} is computed; the catalog's Dense needs a parameter")
        operands.append(value)
    weight, bias = operands
    if weight is None or weight.ndim != 2:
        raise Unsupported("its weight is not a matrix")
    x = walker.tensor(node.args[0])
    return dense_layer(walker.graph, x, name, walker.source_kind(node), weight.T.astype(np.float32), bias)


@on_last_axes(matrix_axes)
def _torch_matmul(walker, node, name):
    """``a @ b``, ``torch.matmul``, ``torch.bmm``, ``a.matmul(b)``: a MatMul of two computed tensors;
    ``x @ weight`` of a parameter matrix is a Dense without bias."""
    left, right = (resolve(walker.value(argument)) for argument in node.args[:2])
    kind = walker.source_kind(node)
    if isinstance(left, Tensor) and isinstance(right, np.ndarray):
        if right.ndim != 2:
            raise Unsupported(f"multiplies by a parameter of shape {right.shape}; Dense needs a matrix")
        return dense_layer(walker.graph, left, name, kind, right.astype(np.float32), None)
    if not (isinstance(left, Tensor) and isinstance(right, Tensor)):
        raise Unsupported(f"multiplies {describe(left)} by {describe(right)}")
    return matmul_layer(walker.graph, left, right, name, kind)


def einsum_layers(graph: SourceGraph, equation: str, operands: list, name: str, source_kind: str) -> Tensor:
    """``einsum`` of two tensors that is a batched matrix product (MaxViT's ``"BGHID,BGHJD->BGHIJ"``):
    each operand permuted to (shared axes, its free axis, the summed axis), a MatMul, and a Permute
    to the output's order. Other equations are refused by name."""
    spec = equation.replace(" ", "")
    if "->" not in spec or "." in spec or len(operands) != 2:
        raise Unsupported(f"einsum {equation!r}: the catalog writes two operands with an explicit output")
    inputs, output = spec.split("->")
    left, right = inputs.split(",") if inputs.count(",") == 1 else ("", "")
    shared = [label for label in output if label in left and label in right]
    summed = [label for label in left if label in right and label not in output]
    free_left = [label for label in left if label not in right]
    free_right = [label for label in right if label not in left]
    if (
        not left
        or any(len(set(labels)) != len(labels) for labels in (left, right, output))
        or len(summed) != 1
        or len(free_left) != 1
        or len(free_right) != 1
        or set(output) != {*shared, *free_left, *free_right}
        or not (left[0] == right[0] == output[0])
    ):
        raise Unsupported(
            f"einsum {equation!r}: the catalog writes a batched matrix product only (one summed axis, "
            "one free axis per operand, the batch first in all three)"
        )
    a = transpose(
        graph, operands[0], [left.index(label) for label in (*shared, *free_left, *summed)], name, source_kind
    )
    b = transpose(
        graph,
        operands[1],
        [right.index(label) for label in (*shared, *summed, *free_right)],
        name,
        source_kind,
    )
    product = matmul_layer(graph, a, b, name, source_kind)
    order = "".join((*shared, *free_left, *free_right))
    return transpose(graph, product, [order.index(label) for label in output], name, source_kind)


def _torch_einsum(walker, node, name):
    operands = [resolve(walker.value(argument)) for argument in node.args[1:]]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = [resolve(operand) for operand in operands[0]]
    if not all(isinstance(operand, Tensor) for operand in operands):
        raise Unsupported(f"einsum of {', '.join(describe(operand) for operand in operands)}")
    return einsum_layers(walker.graph, str(node.args[0]), operands, name, walker.source_kind(node))


# The PyTorch spellings of the catalog's activations: nn.Module class / function name -> catalog name.
_MODULE_ACTIVATIONS = {cls: name for name, forms in ACTIVATIONS.items() for cls in forms.torch_modules}
_FUNCTION_ACTIVATIONS = {fn: name for name, forms in ACTIVATIONS.items() for fn in forms.torch_functions}
_UNDERSCORED = {fn.replace("_", ""): fn for fn in _FUNCTION_ACTIVATIONS}


def _activation_layer(walker, x: Tensor, name: str, source_kind: str, activation: str, read) -> Tensor:
    """An Activation layer; ``read(key, index, default)`` reads the PyTorch arguments (a module's
    attribute, or a call's argument by position or keyword)."""
    params = {"activation": activation}
    scaling = (1.0, 0.0, 1.0)
    if activation == "leaky_relu":
        params["negative_slope"] = float(read("negative_slope", 1, 0.01))
    elif activation == "elu":
        params["alpha"] = float(read("alpha", 1, 1.0))
    elif activation == "gelu":
        params["activation"] = _gelu_form(read("approximate", 1, "none"))
    elif activation == "softplus":
        scaling = _softplus_scaling(float(read("beta", 1, 1)), float(read("threshold", 2, 20)))
    elif activation in ("softmax", "log_softmax"):
        dim = read("dim", 1, None)
        if dim is None:
            dim = _implicit_softmax_dim(walker, x)
        x = softmax_input(walker.graph, x, int(dim), name)
    elif activation == "hard_tanh":
        params["activation"] = _clip_activation(
            float(read("min_val", 1, -1.0)), float(read("max_val", 2, 1.0))
        )
    elif activation in _SCALE_PARAMETERS:
        key, index, fixed = _SCALE_PARAMETERS[activation]
        scaling = _parameter_scaling(activation, key, float(read(key, index, fixed)), fixed)
    return scaled_activation(walker.graph, x, name, source_kind, params, scaling)


def _gelu_form(approximate: str) -> str:
    """torch's and ONNX's ``approximate``: "none" is gelu, "tanh" gelu_tanh."""
    forms = {"none": "gelu", "tanh": "gelu_tanh"}
    if approximate not in forms:
        raise Unsupported(f"approximate={approximate!r}; gelu's forms are 'none' and 'tanh'")
    return forms[approximate]


def scaled_activation(
    graph: SourceGraph, x: Tensor, name: str, source_kind: str, params: dict, scaling: tuple
) -> Tensor:
    """``c * f(a * x + b)`` for ``scaling`` (a, b, c): an Activation, with a Rescaling before and
    after it where the source's parameter differs from the catalog's (equal up to float32 rounding)."""
    inner_scale, inner_offset, outer = scaling
    if (inner_scale, inner_offset) != (1.0, 0.0):
        rescale = {"scale": inner_scale, "offset": inner_offset}
        x = graph.add("Rescaling", f"{name}_scale_in", [x], rescale, source_kind=source_kind)
    nonneg = is_nonneg(params["activation"])
    if outer == 1.0:
        return graph.add("Activation", name, [x], params, source_kind=source_kind, nonneg=nonneg)
    y = graph.add("Activation", f"{name}_unscaled", [x], params, source_kind=source_kind, nonneg=nonneg)
    rescale = {"scale": outer, "offset": 0.0}
    return graph.add("Rescaling", name, [y], rescale, source_kind=source_kind, nonneg=nonneg)


def _softplus_scaling(beta: float, threshold: float) -> tuple:
    """torch's softplus is ``softplus(beta * x) / beta``, and ``x`` where ``beta * x > threshold``."""
    if not beta > 0:
        raise Unsupported(f"beta={beta}; softplus needs a positive beta")
    # Above the threshold torch returns x; the exact value differs by log1p(exp(-beta x)) / beta,
    # under half a float32 step of x from beta x = 20 on: Keras's exact result in float32.
    if threshold < 20:
        raise Unsupported(f"threshold={threshold}: torch is linear from there, Keras's softplus is exact")
    return (beta, 0.0, 1.0 / beta)


# Activations whose one parameter scales the function: f_p(x) = (p / q) f_q(x q / p), where q is
# the value Keras's activation fixes: celu's alpha (q = 1), the shrinks' threshold (q = 0.5).
# (torch attribute / keyword, its position in the F call, q.)
_SCALE_PARAMETERS = {
    "celu": ("alpha", 1, 1.0),
    "hard_shrink": ("lambd", 1, 0.5),
    "soft_shrink": ("lambd", 1, 0.5),
}


def _parameter_scaling(activation: str, key: str, value: float, fixed: float) -> tuple:
    if not value > 0:
        raise Unsupported(f"{key}={value}: {activation} needs a positive {key}")
    return (fixed / value, 0.0, value / fixed)


def _clip_activation(low: float, high: float) -> str:
    """A clip (torch's hardtanh, ONNX Clip) as the catalog's activation."""
    if (low, high) == (0.0, 6.0):
        return "relu6"
    if (low, high) == (-1.0, 1.0):
        return "hard_tanh"
    raise Unsupported(f"clips to [{low}, {high}]; the catalog has relu6 ([0, 6]) and hard_tanh ([-1, 1])")


def _implicit_softmax_dim(walker, x: Tensor) -> int:
    """The axis PyTorch's softmax picks when none is given (with a deprecation warning)."""
    rank = len(walker.graph.source_shape(x)) + 1
    return 0 if rank in (0, 1, 3) else 1


@on_last_axes(_activation_axes)
def _torch_activation_module(walker, node, module, name):
    kind = type(module).__name__
    x = walker.tensor(node.args[0])

    def read(key, index, default):
        return getattr(module, key)

    result = _activation_layer(walker, x, name, kind, _MODULE_ACTIVATIONS[kind], read)
    if kind == "Softplus":
        walker.builder.note(
            "Softplus: PyTorch is linear above threshold=20, Keras is exact (differences < 1e-8)"
        )
    return result


@on_last_axes(_activation_axes)
def _torch_activation_function(walker, node, name, function: str | None = None):
    """``F.relu(x)``, ``torch.sigmoid(x)``, ...; a tensor method (``x.relu()``) passes its name."""
    x = walker.tensor(node.args[0])
    function = function or getattr(node.target, "__name__", str(node.target))
    # Compared without underscores: F.logsigmoid is named log_sigmoid, torch.relu_ computes relu.
    function = _UNDERSCORED.get(function.replace("_", ""))
    if function is None:
        raise Unsupported("this activation has no catalog equivalent")

    def read(key, index, default):
        return walker.literal(node, index, key, default)

    activation = _FUNCTION_ACTIVATIONS[function]
    source_kind = walker.source_kind(node)
    return _activation_layer(walker, x, name, source_kind, activation, read)


def _torch_clamp(walker, node, name):
    """``torch.clamp(x, 0, 6)``, ``x.clamp(min=0)``, ``x.clip(-1, 1)``: the catalog's clipping activations."""
    x = walker.tensor(node.args[0])
    low, high = walker.literal(node, 1, "min", None), walker.literal(node, 2, "max", None)
    if low is not None and float(low) == 0.0 and high is None:
        activation = "relu"
    else:
        activation = _clip_activation(
            low if low is None else float(low), high if high is None else float(high)
        )
    params = {"activation": activation}
    nonneg = is_nonneg(activation)
    return walker.graph.add(
        "Activation", name, [x], params, source_kind=walker.source_kind(node), nonneg=nonneg
    )


@on_last_axes(_activation_axes)
def _torch_activation_method(walker, node, name):
    return _torch_activation_function(walker, node, name, node.target)


def prelu_layer(walker, x: Tensor, name: str, source_kind: str, slope: np.ndarray) -> Tensor:
    """PReLU for a source slope that broadcasts along the channel axis (axis 1): C values or one."""
    channels = walker.graph.source_shape(x)[0]
    size = slope.size
    if size == 1:
        alpha = slope.reshape((1,) * len(walker.graph.source_shape(x)))
        per_channel = False
    elif size == channels and _along_axis_1(slope.shape, len(walker.graph.source_shape(x))):
        x = walker.graph.to_cf(x, name) if len(walker.graph.source_shape(x)) > 1 else x
        rank = len(walker.graph.keras_shape(x))
        alpha = slope.reshape((1,) * (rank - 1) + (channels,))
        per_channel = True
    else:
        raise Unsupported(
            f"a slope of shape {slope.shape} for an input of shape {walker.graph.source_shape(x)}: "
            "the catalog's PReLU has one slope per channel or one in all"
        )
    params = {"per_channel": per_channel}
    weights = [alpha.astype(np.float32)]
    return walker.graph.add("PReLU", name, [x], params, weights, source_kind=source_kind)


def _along_axis_1(shape: tuple[int, ...], rank: int) -> bool:
    """A slope shape that broadcasts along the source's axis 1 of ``rank`` non-batch axes:
    (C,) (torch), (C, 1, ..., 1) (ONNX, right-aligned)."""
    if len(shape) == 1:
        return True  # torch's PReLU weight, always along axis 1
    if len(shape) == rank + 1 and shape[0] == 1:
        shape = shape[1:]  # (1, C, 1, ..., 1): the dynamo exporter writes the batch axis too
    return len(shape) == rank and all(size == 1 for size in shape[1:])


def _torch_prelu(walker, node, module, name):
    x = walker.tensor(node.args[0])
    return prelu_layer(walker, x, name, "PReLU", array(module.weight))


@on_last_axes(0)
def _torch_identity(walker, node, module, name):
    return walker.tensor(node.args[0])


@on_last_axes(0)
def _torch_dropout(walker, node, module, name):
    value = walker.value(node.args[0])
    if isinstance(value, _Ones):
        return DropMask(value.tensor, float(module.p), value.mask)
    x = walker.tensor(node.args[0])
    params = {"rate": float(module.p)}
    return walker.graph.add("Dropout", name, [x], params, source_kind="Dropout", nonneg=x.nonneg)


def _dropout_training(walker, node, index: int) -> None:
    """The functional forms drop whenever ``training`` is true, which defaults to True."""
    if walker.literal(node, index, "training", True) is not False:
        raise Unsupported("training=True drops at inference too; the model's own Dropout is identity there")


@on_last_axes(0)
def _torch_dropout_function(walker, node, name):
    value = walker.value(node.args[0])
    _dropout_training(walker, node, 2)
    rate = float(walker.literal(node, 1, "p", 0.5))
    if isinstance(value, _Ones):
        return DropMask(value.tensor, rate, value.mask)
    x = walker.tensor(node.args[0])
    return walker.graph.add(
        "Dropout", name, [x], {"rate": rate}, source_kind=walker.source_kind(node), nonneg=x.nonneg
    )


def _channel_dropout(walker, node, name, x: Tensor, rate: float, spatial: int, source_kind: str) -> Tensor:
    """torch's Dropout1d-3d: whole channels (axis 1) of an input with ``spatial`` spatial axes.

    Dropout2d also takes a 3-D input as (N, C, L) (Dropout1d); other ranks are read as
    unbatched by torch, so its channels would be the batch: refused.
    """
    rank = len(walker.graph.source_shape(x))  # batch excluded
    if rank - 1 != spatial and not (spatial == 2 and rank == 2):
        raise Unsupported(
            f"a {rank + 1}-D input: torch reads it as unbatched and would drop along the batch axis"
        )
    x = walker.graph.to_cf(x, name)
    params = {"rate": rate, "mask": "channel"}
    return walker.graph.add("Dropout", name, [x], params, source_kind=source_kind, nonneg=x.nonneg)


def _torch_channel_dropout(walker, node, module, name):
    kind = type(module).__name__
    x = walker.tensor(node.args[0])
    return _channel_dropout(walker, node, name, x, float(module.p), int(kind[-2]), kind)


def _torch_channel_dropout_function(walker, node, name):
    x = walker.tensor(node.args[0])
    _dropout_training(walker, node, 2)
    rate = float(walker.literal(node, 1, "p", 0.5))
    spatial = int(node.target.__name__[-2])  # dropout1d, dropout2d, dropout3d
    return _channel_dropout(walker, node, name, x, rate, spatial, walker.source_kind(node))


@dataclass(frozen=True)
class _Ones:
    """``x.new_ones(N, 1, ..., 1)`` or ``x.new_ones(1, ..., 1)``: a dropout mask's shape for ``x``."""

    tensor: Tensor
    mask: str  # "sample" (one value per sample) or "batch" (one value)

    def __repr__(self) -> str:
        return "a tensor of ones"


@dataclass(frozen=True)
class DropMask:
    """``F.dropout`` of :class:`_Ones`: multiplied by its tensor, it is the catalog's Dropout."""

    tensor: Tensor
    rate: float
    mask: str

    def __repr__(self) -> str:
        return "a dropout mask"

    def apply(self, walker, x: Tensor, name: str) -> Tensor:
        if x != self.tensor:
            raise Unsupported("multiplies a tensor by another tensor's dropout mask")
        params = {"rate": self.rate, "mask": self.mask}
        return walker.graph.add("Dropout", name, [x], params, source_kind="dropout mask", nonneg=x.nonneg)


def _torch_new_ones(walker, node, name):
    """The generated programs' mask shape for stochastic depth: (N, 1, ..., 1) or (1, ..., 1)."""
    x = walker.tensor(node.args[0])
    sizes = [walker.value(arg) for arg in node.args[1:]]
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = list(sizes[0])
    sizes = [size.value if isinstance(size, Aux) else size for size in sizes]
    shape = walker.shapes.get(node.args[0])
    if shape is None or len(sizes) != len(shape) or any(size != 1 for size in sizes[1:]):
        raise Unsupported(f"new_ones{tuple(sizes)}: the catalog has masks of shape (N, 1, ...) and (1, ...)")
    if sizes[0] not in (1, shape[0]):
        raise Unsupported(f"new_ones{tuple(sizes)} for a batch of {shape[0]}")
    return _Ones(x, "batch" if sizes[0] == 1 and shape[0] != 1 else "sample")


def _torch_stochastic_depth(walker, node, name):
    """torchvision's stochastic_depth (its StochasticDepth module calls it): mode 'row' drops whole
    samples, 'batch' the whole batch; at inference (training=False) it is the identity."""
    x = walker.tensor(node.args[0])
    rate = float(walker.literal(node, 1, "p"))
    mode = walker.literal(node, 2, "mode")
    if walker.literal(node, 3, "training", True) is not False:
        raise Unsupported("training=True drops at inference too; the model's own Dropout is identity there")
    if mode not in ("row", "batch"):
        raise Unsupported(f"mode={mode!r}; torchvision has 'row' and 'batch'")
    params = {"rate": rate, "mask": "sample" if mode == "row" else "batch"}
    return walker.graph.add("Dropout", name, [x], params, source_kind="stochastic_depth", nonneg=x.nonneg)


TORCH_MODULES: dict = {
    "Linear": _torch_linear,
    **{cls: _torch_activation_module for cls in _MODULE_ACTIVATIONS},
    "Identity": _torch_identity,
    "PReLU": _torch_prelu,
    "Dropout": _torch_dropout,
    **{f"Dropout{rank}d": _torch_channel_dropout for rank in (1, 2, 3)},
}
TORCH_FUNCTIONS: dict = {
    # An activation function is looked up in torch.nn.functional and in torch (where it exists there).
    **{
        f"{namespace}.{function}": _torch_activation_function
        for function in _FUNCTION_ACTIVATIONS
        for namespace in ("torch.nn.functional", "torch")
    },
    "torch.nn.functional.dropout": _torch_dropout_function,
    "torch.nn.functional.linear": _torch_linear_function,
    **{function: _torch_matmul for function in ("operator.matmul", "torch.matmul", "torch.bmm")},
    "torch.functional.einsum": _torch_einsum,
    "torch.einsum": _torch_einsum,
    **{f"torch.nn.functional.dropout{rank}d": _torch_channel_dropout_function for rank in (1, 2, 3)},
    "torch.clamp": _torch_clamp,
    "torch.clip": _torch_clamp,
    # Found by the function's own module and name (torchvision is imported only by the model's code).
    "torchvision.ops.stochastic_depth.stochastic_depth": _torch_stochastic_depth,
}
# Tensor methods (``x.relu()``) named as the function they call.
TORCH_METHODS: dict = {
    "new_ones": _torch_new_ones,
    "matmul": _torch_matmul,
    "bmm": _torch_matmul,
    "clamp": _torch_clamp,
    "clip": _torch_clamp,
    **{
        method: _torch_activation_method
        for method in ("relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "softmax", "log_softmax")
    },
}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


@on_last_axes(1)
def _gemm_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    matrix = walker.weight(node, inputs, 1, "weight")
    bias = walker.weight(node, inputs, 2, "bias")
    attrs = walker.attrs(node)
    if attrs.get("transA", 0):
        raise Unsupported("transA=1 transposes the batch")
    kernel = (matrix.T if attrs.get("transB", 0) else matrix) * float(attrs.get("alpha", 1.0))
    if bias is not None:
        bias = np.broadcast_to(bias * float(attrs.get("beta", 1.0)), (kernel.shape[1],)).copy()
    return dense_layer(walker.graph, x, name, node.op_type, kernel, bias)


@on_last_axes(matrix_axes)
def _matmul_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    if isinstance(inputs[1], Tensor):
        return matmul_layer(walker.graph, x, inputs[1], name, node.op_type)
    kernel = walker.weight(node, inputs, 1, "weight")
    if kernel.ndim != 2:
        raise Unsupported(f"a weight of shape {kernel.shape}; Dense needs a matrix")
    fused = walker.bias_add(node, kernel.shape[1])  # (the Add of a constant bias, the bias) or None
    result = dense_layer(walker.graph, x, name, node.op_type, kernel, None if fused is None else fused[1])
    if fused is not None:
        walker.fuse(fused[0], result)
    return result


def _einsum_from_onnx(walker, node, inputs, name, index):
    operands = [walker.data(inputs, position) for position in range(len(inputs))]
    equation = walker.attrs(node)["equation"]
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    return einsum_layers(walker.graph, equation, operands, name, node.op_type)


@on_last_axes(_activation_axes)
def _activation_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    op = node.op_type
    attrs = walker.attrs(node)
    params = _clip_from_onnx(walker, inputs, attrs) if op == "Clip" else {"activation": ONNX_NAMES[op]}
    activation = params["activation"]
    if activation == "leaky_relu":
        params["negative_slope"] = float(attrs.get("alpha", 0.01))
    elif activation == "elu":
        params["alpha"] = float(attrs.get("alpha", 1.0))
    elif activation == "gelu":
        params["activation"] = _gelu_form(attrs.get("approximate", "none"))
    elif activation in ("softmax", "log_softmax"):
        x = _softmax_axis_from_onnx(walker, x, attrs, name)
    elif activation == "selu":
        _check_selu(attrs)
    scaling = (1.0, 0.0, 1.0)
    if activation == "celu":
        scaling = _parameter_scaling("celu", "alpha", float(attrs.get("alpha", 1.0)), 1.0)
    elif activation == "hard_sigmoid":
        # max(0, min(1, alpha x + beta)) is relu6(y + 3) / 6 for y = 6 alpha x + 6 beta - 3.
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        if not (math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5)):
            scaling = (6 * alpha, 6 * beta - 3, 1.0)
    return scaled_activation(walker.graph, x, name, op, params, scaling)


def erf_gelu_from_onnx(walker, node, x: Tensor, divisor: float, name: str) -> Tensor | None:
    """GELU as ONNX exporters before opset 20 write it, ``x * (1 + erf(x / sqrt(2))) * 0.5``: the
    Div starting that pattern becomes one gelu Activation, and the Erf, Add and two Muls after it
    are marked computed by it. None when the nodes after the Div are anything else."""

    def only_consumer(output: str, op: str):
        consumers = walker.consumers.get(output, [])
        if output in walker.graph_outputs or len(consumers) != 1 or consumers[0].op_type != op:
            return None
        return consumers[0]

    def other_input(consumer, output: str):
        inputs = list(consumer.input)
        if len(inputs) != 2 or inputs.count(output) != 1:
            return None
        return inputs[1 - inputs.index(output)]

    def is_constant(tensor: str, value: float) -> bool:
        constant = walker.constant_of(tensor)
        return (
            constant is not None
            and constant.size == 1
            and math.isclose(float(constant.reshape(())), value, rel_tol=1e-6)
        )

    if not math.isclose(divisor, math.sqrt(2), rel_tol=1e-6):
        return None
    erf = only_consumer(node.output[0], "Erf")
    add = erf and only_consumer(erf.output[0], "Add")
    if add is None or not is_constant(other_input(add, erf.output[0]), 1.0):
        return None
    first = only_consumer(add.output[0], "Mul")
    second = first and only_consumer(first.output[0], "Mul")
    if second is None:
        return None
    factors = {other_input(first, add.output[0]), other_input(second, first.output[0])}
    half = next((factor for factor in factors if factor and is_constant(factor, 0.5)), None)
    if half is None or factors - {half} != {node.input[0]}:
        return None
    result = walker.graph.add("Activation", name, [x], {"activation": "gelu"}, source_kind="Erf")
    for part in (erf, add, first, second):
        walker.fuse(part, result)
    return result


def _clip_from_onnx(walker, inputs, attrs) -> dict:
    if walker.opset >= 11:
        low = walker.constant(inputs, 1, "minimum")
        high = walker.constant(inputs, 2, "maximum")
        low = None if low is None else float(low)
        high = None if high is None else float(high)
    else:
        low, high = attrs.get("min"), attrs.get("max")
    if low == 0.0 and (high is None or math.isinf(high)):
        return {"activation": "relu"}
    return {"activation": _clip_activation(low, high)}


def _check_selu(attrs: dict) -> None:
    """ONNX's Selu defaults are the float32 roundings of the constants both frameworks use."""
    alpha, gamma = float(attrs.get("alpha", 1.6732632)), float(attrs.get("gamma", 1.050701))
    if not (math.isclose(alpha, 1.6732632, rel_tol=1e-6) and math.isclose(gamma, 1.050701, rel_tol=1e-6)):
        raise Unsupported(
            f"alpha={alpha}, gamma={gamma}: the catalog's selu has alpha 1.6732632, gamma 1.050701"
        )


def _softmax_axis_from_onnx(walker, x: Tensor, attrs: dict, name: str) -> Tensor:
    shape = walker.graph.source_shape(x)
    rank = len(shape) + 1
    axis = int(attrs.get("axis", -1 if walker.opset >= 13 else 1))
    axis = axis + rank if axis < 0 else axis
    if walker.opset < 13 and 0 < axis < rank - 1 and math.prod(shape[axis - 1 :]) != shape[axis - 1]:
        # Before opset 13, softmax ran over every axis from `axis` on, flattened together.
        raise Unsupported(f"softmax over the flattened axes {axis} and after; the catalog's is over one axis")
    return softmax_input(walker.graph, x, axis, name)


def _prelu_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    slope = walker.weight(node, inputs, 1, "slope")
    rank = len(walker.graph.source_shape(x))
    if slope.ndim > 1 and not _along_axis_1(slope.shape, rank):
        raise Unsupported(f"a slope of shape {slope.shape}; the catalog's PReLU has one per channel or one")
    if slope.ndim == rank + 1:
        slope = slope[0]  # the batch axis of a (1, C, 1, ..., 1) slope
    if slope.ndim == 1 and slope.size > 1 and rank > 1:
        # ONNX broadcasts a 1-D slope along the last axis, torch's PReLU along axis 1.
        raise Unsupported(f"a slope of shape {slope.shape} along the last axis of a {rank + 1}-D input")
    return prelu_layer(walker, x, name, node.op_type, slope)


@on_last_axes(0)
def _cast_from_onnx(walker, node, inputs, name, index):
    """Cast of a computed tensor to float32 (TensorProto.FLOAT): the tensor itself."""
    target = int(walker.attrs(node).get("to", 0))
    if target != 1:
        raise Unsupported(f"casts a computed tensor to type {target}; the catalog computes in float32")
    return walker.data(inputs)


@on_last_axes(0)
def _identity_from_onnx(walker, node, inputs, name, index):
    return inputs[0]  # Identity, and Dropout at inference


ONNX_OPS: dict = {
    "Gemm": _gemm_from_onnx,
    "MatMul": _matmul_from_onnx,
    "Einsum": _einsum_from_onnx,
    **{op: _activation_from_onnx for op in (*ONNX_NAMES, "Clip")},
    "PRelu": _prelu_from_onnx,
    "Identity": _identity_from_onnx,
    "Dropout": _identity_from_onnx,
    "Cast": _cast_from_onnx,
}
