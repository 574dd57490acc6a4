"""Core layers: Dense, Activation, Dropout."""

from __future__ import annotations

import math
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
    Lowering,
    Mapped,
    SourceGraph,
    State,
    Tensor,
    TorchCode,
    Unsupported,
    activation_arg,
    glorot_uniform,
    kernel_and_bias,
    module_call,
    use_bias_arg,
    zeros,
)
from codegen.layers.keras_config import activation_name, last_axis
from codegen.layers.torch_source import array
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
    return KerasLayer("layers.Activation", [py(name)])


def _activation_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    return TorchCode(steps=[torch_activation(params["activation"], xs[0], layer.layout.kind, params)])


# ----- Dropout -------------------------------------------------------------------------------


def _dropout_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.Dropout", [py(layer.params["rate"])])


def _dropout_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(("nn.Dropout", [py(layer.params["rate"])]), [module_call(layer, xs[0])])


LOWERINGS = (
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
    Lowering(
        "Dropout",
        _dropout_keras,
        _dropout_torch,
        KEEP,
        flat="pass",
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


def _softmax_from_keras(cfg, context) -> Mapped:
    last_axis(cfg.get("axis", -1), context, "softmax")
    return Mapped("Activation", {"activation": "softmax"})


def _dropout_from_keras(cfg, context) -> Mapped:
    if cfg.get("noise_shape") is not None:
        raise Unsupported(f"noise_shape={cfg['noise_shape']!r}: the catalog's Dropout drops single values")
    return Mapped("Dropout", {"rate": float(cfg.get("rate", 0.5))})


def _identity_from_keras(cfg, context) -> Mapped:
    return Mapped(None)


KERAS_CLASSES: dict = {
    "Dense": _dense_from_keras,
    "Activation": _activation_from_keras,
    "ReLU": _relu_from_keras,
    "LeakyReLU": _leaky_relu_from_keras,
    "ELU": _elu_from_keras,
    "Softmax": _softmax_from_keras,
    "Dropout": _dropout_from_keras,
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


def check_softmax_axis(graph: SourceGraph, x: Tensor, axis: int) -> None:
    """The catalog's softmax runs over the channels: axis 1 of a channels-first source, else the last."""
    shape = graph.source_shape(x)
    rank = len(shape) + 1
    axis = axis + rank if axis < 0 else axis
    if x.form == FLAT_CF or (x.form in (CF, SQUEEZED) and axis == 1) or (x.form == SAME and axis == rank - 1):
        return
    raise Unsupported(f"softmax over axis {axis}; the catalog's softmax is over the channel axis")


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


def _torch_linear(walker, node, module, name):
    kernel = array(module.weight).T
    return dense_layer(walker.graph, walker.tensor(node.args[0]), name, "Linear", kernel, array(module.bias))


# The PyTorch spellings of the catalog's activations: nn.Module class / function name -> catalog name.
_MODULE_ACTIVATIONS = {cls: name for name, forms in ACTIVATIONS.items() for cls in forms.torch_modules}
_FUNCTION_ACTIVATIONS = {fn: name for name, forms in ACTIVATIONS.items() for fn in forms.torch_functions}


def _activation_layer(
    walker, x: Tensor, name: str, source_kind: str, activation: str, read, clips: bool = False
) -> Tensor:
    """An Activation layer; ``read(key, index, default)`` reads the PyTorch arguments (a module's
    attribute, or a call's argument by position or keyword). ``clips``: a hardtanh, relu6 only
    with the bounds (0, 6)."""
    params = {"activation": activation}
    if activation == "leaky_relu":
        params["negative_slope"] = float(read("negative_slope", 1, 0.01))
    elif activation == "elu":
        params["alpha"] = float(read("alpha", 1, 1.0))
    elif activation == "gelu":
        approximate = read("approximate", 1, "none")
        if approximate != "none":
            raise Unsupported(f"approximate={approximate!r}; the catalog's gelu is the exact form")
    elif activation == "softplus":
        beta = read("beta", 1, 1)
        if beta != 1:
            raise Unsupported(f"beta={beta}; the catalog's softplus has beta 1")
    elif activation == "softmax":
        dim = read("dim", 1, None)
        if dim is None:
            dim = _implicit_softmax_dim(walker, x)
        check_softmax_axis(walker.graph, x, int(dim))
    if clips:
        low, high = read("min_val", 1, -1.0), read("max_val", 2, 1.0)
        if (low, high) != (0.0, 6.0):
            raise Unsupported(f"clips to [{low}, {high}]; the catalog has relu6 ([0, 6])")
    nonneg = is_nonneg(activation)
    return walker.graph.add("Activation", name, [x], params, source_kind=source_kind, nonneg=nonneg)


def _implicit_softmax_dim(walker, x: Tensor) -> int:
    """The axis PyTorch's softmax picks when none is given (with a deprecation warning)."""
    rank = len(walker.graph.source_shape(x)) + 1
    return 0 if rank in (0, 1, 3) else 1


def _torch_activation_module(walker, node, module, name):
    kind = type(module).__name__
    x = walker.tensor(node.args[0])

    def read(key, index, default):
        return getattr(module, key)

    result = _activation_layer(walker, x, name, kind, _MODULE_ACTIVATIONS[kind], read, kind == "Hardtanh")
    if kind == "Softplus":
        walker.builder.note(
            "Softplus: PyTorch is linear above threshold=20, Keras is exact (differences < 1e-8)"
        )
    return result


def _torch_activation_function(walker, node, name, function: str | None = None):
    """``F.relu(x)``, ``torch.sigmoid(x)``, ...; a tensor method (``x.relu()``) passes its name."""
    x = walker.tensor(node.args[0])
    function = function or getattr(node.target, "__name__", str(node.target))
    if function not in _FUNCTION_ACTIVATIONS:
        raise Unsupported("this activation has no catalog equivalent")

    def read(key, index, default):
        return walker.literal(node, index, key, default)

    activation = _FUNCTION_ACTIVATIONS[function]
    source_kind = walker.source_kind(node)
    return _activation_layer(walker, x, name, source_kind, activation, read, function == "hardtanh")


def _torch_activation_method(walker, node, name):
    return _torch_activation_function(walker, node, name, node.target)


def _torch_identity(walker, node, module, name):
    return walker.tensor(node.args[0])


def _torch_dropout(walker, node, module, name):
    x = walker.tensor(node.args[0])
    params = {"rate": float(module.p)}
    return walker.graph.add("Dropout", name, [x], params, source_kind="Dropout", nonneg=x.nonneg)


def _torch_dropout_function(walker, node, name):
    x = walker.tensor(node.args[0])
    rate = float(walker.literal(node, 1, "p", 0.5))
    return walker.graph.add(
        "Dropout", name, [x], {"rate": rate}, source_kind=walker.source_kind(node), nonneg=x.nonneg
    )


TORCH_MODULES: dict = {
    "Linear": _torch_linear,
    **{cls: _torch_activation_module for cls in _MODULE_ACTIVATIONS},
    "Identity": _torch_identity,
    "Dropout": _torch_dropout,
}
TORCH_FUNCTIONS: dict = {
    # An activation function is looked up in torch.nn.functional and in torch (where it exists there).
    **{
        f"{namespace}.{function}": _torch_activation_function
        for function in _FUNCTION_ACTIVATIONS
        for namespace in ("torch.nn.functional", "torch")
    },
    "torch.nn.functional.dropout": _torch_dropout_function,
}
TORCH_METHODS: dict = {method: _torch_activation_method for method in ("relu", "sigmoid", "tanh", "softmax")}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


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


def _matmul_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    if isinstance(inputs[1], Tensor):
        raise Unsupported("multiplies two computed tensors; the catalog's Dense needs a constant weight")
    kernel = walker.weight(node, inputs, 1, "weight")
    if kernel.ndim != 2:
        raise Unsupported(f"a weight of shape {kernel.shape}; Dense needs a matrix")
    fused = walker.bias_add(node, kernel.shape[1])  # (the Add of a constant bias, the bias) or None
    result = dense_layer(walker.graph, x, name, node.op_type, kernel, None if fused is None else fused[1])
    if fused is not None:
        walker.fuse(fused[0], result)
    return result


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
    elif activation == "gelu" and attrs.get("approximate", "none") != "none":
        raise Unsupported("approximate='tanh': the catalog's gelu is the exact form")
    elif activation == "hard_sigmoid":
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        if not (math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5)):
            raise Unsupported(f"alpha={alpha}, beta={beta}: the catalog's hard_sigmoid is relu6(x + 3) / 6")
    elif activation == "softmax":
        _softmax_axis_from_onnx(walker, x, attrs)
    return walker.graph.add("Activation", name, [x], params, source_kind=op, nonneg=is_nonneg(activation))


def _clip_from_onnx(walker, inputs, attrs) -> dict:
    if walker.opset >= 11:
        low = walker.constant(inputs, 1, "minimum")
        high = walker.constant(inputs, 2, "maximum")
        low = None if low is None else float(low)
        high = None if high is None else float(high)
    else:
        low, high = attrs.get("min"), attrs.get("max")
    if low == 0.0 and high == 6.0:
        return {"activation": "relu6"}
    if low == 0.0 and (high is None or math.isinf(high)):
        return {"activation": "relu"}
    raise Unsupported(f"clips to [{low}, {high}]; the catalog has relu ([0, inf)) and relu6 ([0, 6])")


def _softmax_axis_from_onnx(walker, x: Tensor, attrs: dict) -> None:
    shape = walker.graph.source_shape(x)
    rank = len(shape) + 1
    axis = int(attrs.get("axis", -1 if walker.opset >= 13 else 1))
    axis = axis + rank if axis < 0 else axis
    if walker.opset < 13 and 0 < axis < rank - 1 and math.prod(shape[axis - 1 :]) != shape[axis - 1]:
        # Before opset 13, softmax ran over every axis from `axis` on, flattened together.
        raise Unsupported(f"softmax over the flattened axes {axis} and after; the catalog's is over one axis")
    check_softmax_axis(walker.graph, x, axis)


def _identity_from_onnx(walker, node, inputs, name, index):
    return inputs[0]  # Identity, and Dropout at inference


ONNX_OPS: dict = {
    "Gemm": _gemm_from_onnx,
    "MatMul": _matmul_from_onnx,
    **{op: _activation_from_onnx for op in (*ONNX_NAMES, "Clip")},
    "Identity": _identity_from_onnx,
    "Dropout": _identity_from_onnx,
}
