"""Merges: Add, Subtract, Multiply, Average, Maximum, Minimum (broadcasting as Keras) and Concatenate."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.base import (
    CF,
    CL,
    FLAT_CF,
    KEEP,
    KerasLayer,
    KerasPart,
    Layout,
    Lowering,
    Mapped,
    Tensor,
    TorchCode,
    Unsupported,
    torch_axis,
)
from codegen.layers.core import DropMask, erf_gelu_from_onnx
from codegen.layers.folded import Folded, concatenate_folded, constants_axes, on_last_axes
from codegen.layers.normalization import affine_layer, is_learned
from codegen.layers.reshaping import (
    ONNX_ARITHMETIC,
    BatchToken,
    class_token_cat,
    class_token_layer,
    item_layer,
    rescale_by,
    rescaling_from_onnx,
    torch_shape_arithmetic,
)
from codegen.layers.torch_source import Aux, Multi, TracedBatch, describe, holds_batch, resolve

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan


def _merge_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer(f"layers.{layer.kind}", [], f"([{', '.join(sources)}])")


def _broadcast(layer: LayerPlan, xs: list[str]) -> tuple[list[str], list[str]]:
    """The inputs as PyTorch broadcasts them like Keras, and the comments that say how.

    Keras aligns a lower-rank input on its last axes (it inserts the missing
    axes after the batch); PyTorch would align it with the batch and, channels-
    first, put its channels on the wrong axis. So such an input is reshaped to
    the output's rank in the output's layout: Keras (C,) against (H, W, C) is
    (N, C, 1, 1) for an (N, C, H, W) output.
    """
    rank = len(layer.shape)
    result, comments = [], []
    for index, (x, shape) in enumerate(zip(xs, layer.input_shapes, strict=True)):
        if len(shape) == rank:
            result.append(x)
            continue
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        if layer.layout.kind == CF and rank >= 2:
            padded = (padded[-1], *padded[:-1])
        target = f"(N, {', '.join(map(str, padded))})"
        comments.append(f"# Keras aligns a lower-rank input on its last axes: input {index + 1} as {target}.")
        result.append(f"{x}.reshape(-1, {', '.join(map(str, padded))})")
    return result, comments


def _elementwise(write):
    """A merge's PyTorch emission: ``write(xs)`` gives the steps on inputs of one rank."""

    def emit(layer: LayerPlan, xs: list[str]) -> TorchCode:
        xs, comments = _broadcast(layer, xs)
        return TorchCode(steps=[*comments, *write(xs)])

    return emit


def _add(xs: list[str]) -> list[str]:
    return [" + ".join(xs)]


def _subtract(xs: list[str]) -> list[str]:
    return [f"{xs[0]} - {xs[1]}"]


def _multiply(xs: list[str]) -> list[str]:
    return [" * ".join(xs)]


def _average(xs: list[str]) -> list[str]:
    return [f"({' + '.join(xs)}) / {len(xs)}"]


def _select(compare: str):
    """Keras's maximum / minimum send the gradient of a tie to the earlier input (torch.maximum
    would split it), so chain torch.where the way Keras chains them."""

    def write(xs: list[str]) -> list[str]:
        steps = [f"torch.where({xs[0]} {compare} {xs[1]}, {xs[0]}, {xs[1]})"]
        return steps + [f"torch.where({{ident}} {compare} {x}, {{ident}}, {x})" for x in xs[2:]]

    return write


def _merge_layout(plan: ModelPlan, layer: LayerPlan, output_ids: set[str]) -> None:
    """The layout its full-rank inputs share (else channels-last); lower-rank inputs are
    converted to it and reshaped by the emission."""
    rank = len(layer.shape)
    kinds = {
        plan.layer(source).layout.kind for source in layer.inputs if len(plan.layer(source).shape) == rank
    }
    layout = kinds.pop() if len(kinds) == 1 and FLAT_CF not in kinds else CL
    layer.input_layout = layout
    layer.layout = Layout(layout)


def _concatenate_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    axis = layer.params["axis"]
    return KerasLayer(
        "layers.Concatenate", [] if axis == -1 else [f"axis={axis}"], f"([{', '.join(sources)}])"
    )


def _concatenate_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    dim = torch_axis(layer.params["axis"], len(layer.shape), layer.layout.kind)
    return TorchCode(steps=[f"torch.cat([{', '.join(xs)}], dim={dim})"])


_MERGES = {
    "Add": _add,
    "Subtract": _subtract,
    "Multiply": _multiply,
    "Average": _average,
    "Maximum": _select(">="),
    "Minimum": _select("<="),
}

LOWERINGS = (
    *(
        Lowering(kind, _merge_keras, _elementwise(write), KEEP, assign_layout=_merge_layout)
        for kind, write in _MERGES.items()
    ),
    Lowering("Concatenate", _concatenate_keras, _concatenate_torch, KEEP),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _merge_from_keras(kind: str):
    def mapping(cfg, context) -> Mapped:
        arguments = context.arguments
        number = arguments[0] if len(arguments) == 1 else None
        if len(context.shapes) == 1 and isinstance(number, (int, float)) and not isinstance(number, bool):
            return _scalar_rescaling(kind, float(number))
        return Mapped(kind)

    return mapping


def _scalar_rescaling(kind: str, number: float) -> Mapped:
    """The Keras operations ``x + 3.0``, ``x - c`` and ``x * (1 / 6)`` (MobileNetV3's hard sigmoid):
    a Rescaling, x * scale + offset, which computes them exactly."""
    if kind == "Add":
        return Mapped("Rescaling", {"scale": 1.0, "offset": number})
    if kind == "Subtract":
        return Mapped("Rescaling", {"scale": 1.0, "offset": -number})
    if kind == "Multiply":
        return Mapped("Rescaling", {"scale": number, "offset": 0.0})
    raise Unsupported(f"{kind} of a tensor and the number {number}: the catalog merges tensors only")


def _concatenate_from_keras(cfg, context) -> Mapped:
    return Mapped("Concatenate", {"axis": int(cfg.get("axis", -1))})


KERAS_CLASSES: dict = {
    **{kind: _merge_from_keras(kind) for kind in _MERGES},
    "Concatenate": _concatenate_from_keras,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


def _binary(operation: str):
    """``a + b``, ``torch.sub(a, b)``, ``x.mul(y)``, ...: a merge of two tensors, a Rescaling of a
    tensor and a number, or plain arithmetic on two non-tensor values (sizes)."""

    @on_last_axes(constants_axes)
    def handler(walker, node, name):
        left, right = walker.value(node.args[0]), walker.value(node.args[1])
        if "alpha" in node.kwargs and node.kwargs["alpha"] != 1:
            raise Unsupported(f"alpha={node.kwargs['alpha']} has no catalog equivalent")
        left, right = resolve(left), resolve(right)
        if operation == "Multiply" and isinstance(left, DropMask) != isinstance(right, DropMask):
            mask, x = (left, right) if isinstance(left, DropMask) else (right, left)
            if not isinstance(x, Tensor):
                raise Unsupported(f"multiplies a dropout mask by {describe(x)}")
            return mask.apply(walker, x, name)
        if isinstance(left, Tensor) and isinstance(right, Tensor):
            if operation == "Divide":
                raise Unsupported("divides two computed tensors; Keras has no merge layer that divides")
            return walker.graph.merge(operation, [left, right], name, walker.source_kind(node))
        values = [v.value if isinstance(v, Aux) else v for v in (left, right)]
        if all(isinstance(v, (np.ndarray, int, float)) for v in values) and any(
            isinstance(v, np.ndarray) for v in values
        ):  # constants the model computes (a position embedding's grid): computed now, as torch does
            return _constant_arithmetic(walker.torch, node, operation, *values)
        if node.kwargs.get("rounding_mode") is not None:
            raise Unsupported(f"rounding_mode={node.kwargs['rounding_mode']!r} rounds the quotient")
        if isinstance(left, Aux) or isinstance(right, Aux):  # sizes: h * w, n_h + 1 (folded)
            if all(isinstance(v, tuple) for v in values) and operation == "Add":  # x.shape[:-1] + (d,)
                return Aux(values[0] + values[1])
            if all(isinstance(v, (int, float)) for v in values):
                result = _AUX_OPERATIONS[operation](*values)
                return Aux(TracedBatch(result) if holds_batch(values) and isinstance(result, int) else result)
        # A token repeated over the batch (CaiT's ``cls_token.expand(B, -1, -1) + x``) adds as it is.
        left, right = (
            value.weight(walker.graph) if isinstance(value, BatchToken) else value for value in (left, right)
        )
        number = right if isinstance(left, Tensor) else left
        tensor = left if isinstance(left, Tensor) else right
        if isinstance(tensor, Tensor) and isinstance(number, np.ndarray):  # NORM: a parameter or buffer
            learned = is_learned(walker, node.args[0] if number is left else node.args[1])
            kind = walker.source_kind(node)
            return affine_layer(walker.graph, tensor, name, kind, operation, number, tensor is left, learned)
        number = number.value if isinstance(number, Aux) else number
        if not isinstance(tensor, Tensor) or not isinstance(number, (int, float)):
            raise Unsupported(f"combines a tensor with {describe(number)} (broadcasting)")
        return rescale_by(walker, node, name, operation, tensor, float(number), tensor_first=tensor is left)

    return handler


def _constant_arithmetic(torch, node, operation: str, left, right) -> np.ndarray:
    """Arithmetic on constants, by torch itself (its type promotion and rounding modes)."""
    function = {"Add": torch.add, "Subtract": torch.sub, "Multiply": torch.mul, "Divide": torch.div}
    operands = [torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for v in (left, right)]
    if operation not in function:
        raise Unsupported(f"{operation} of two constants")
    rounding = node.kwargs.get("rounding_mode") if operation == "Divide" else None
    options = {"rounding_mode": rounding} if rounding else {}
    with torch.no_grad():
        return function[operation](*operands, **options).numpy()


_AUX_OPERATIONS = {
    "Add": operator.add,
    "Subtract": operator.sub,
    "Multiply": operator.mul,
    "Divide": operator.truediv,
    "Maximum": max,
}


def _torch_select(kind: str):
    """``torch.maximum(a, b)`` / ``torch.minimum(a, b)`` of two tensors."""

    def handler(walker, node, name):
        tensors = [walker.tensor(walker.argument(node, i, key)) for i, key in ((0, "input"), (1, "other"))]
        return walker.graph.merge(kind, tensors, name, walker.source_kind(node))

    return handler


def _torch_cat(walker, node, name):
    items = list(walker.value(walker.argument(node, 0, "tensors")))
    dim = walker.literal(node, 1, "dim", 0)
    final = _concatenate_parts(items)
    if final is not None and dim in (1, -1):
        return final
    token = class_token_cat(walker, items, dim, name)
    if token is not None:
        return token
    tensors = [resolve(item) for item in items]
    if len(tensors) > 1 and any(isinstance(t, Folded) for t in tensors):  # windows, heads joined
        return concatenate_folded(walker.graph, tensors, int(dim), name, walker.source_kind(node))
    if not all(isinstance(t, Tensor) for t in tensors):
        raise Unsupported("concatenates values that are not computed tensors")
    if len(tensors) == 1:  # torch.cat([x]) is x
        return tensors[0]
    return walker.graph.concatenate(tensors, int(dim), name, walker.source_kind(node))


@dataclass(frozen=True)
class _Comparison:
    """``a >= b`` or ``a <= b`` of two tensors: only the condition of ``torch.where`` can use it."""

    kind: str  # the merge that torch.where(a op b, a, b) computes
    left: Tensor
    right: Tensor

    def __repr__(self) -> str:
        return f"a comparison of two tensors ({'a >= b' if self.kind == 'Maximum' else 'a <= b'})"


def _torch_comparison(kind: str, function):
    """``a >= b`` (``<=``): of two tensors, the condition of a Maximum (Minimum) through torch.where;
    of two sizes that tracing left in the graph, a number folded at import."""
    sizes = torch_shape_arithmetic(function)

    def handler(walker, node, name):
        if not any(isinstance(walker.value(arg), Tensor) for arg in node.args):
            return sizes(walker, node, name)
        return _Comparison(kind, walker.tensor(node.args[0]), walker.tensor(node.args[1]))

    return handler


def _torch_where(walker, node, name):
    """``torch.where(a >= b, a, b)``: Maximum (and ``<=``, Minimum), as the emission writes them."""
    condition = walker.value(walker.argument(node, 0, "condition"))
    chosen = [walker.tensor(walker.argument(node, i, key)) for i, key in ((1, "input"), (2, "other"))]
    if not isinstance(condition, _Comparison) or [condition.left, condition.right] != chosen:
        raise Unsupported(
            "selects between tensors; the catalog has torch.where(a >= b, a, b) (Maximum) and "
            "torch.where(a <= b, a, b) (Minimum)"
        )
    return walker.graph.merge(condition.kind, chosen, name, walker.source_kind(node))


def _concatenate_parts(items: list) -> Tensor | None:
    """Parts of one layer's outputs concatenated back (a bidirectional RNN's two final states)."""
    if not items or not all(isinstance(item, Multi) for item in items):
        return None
    owner = items[0].owner
    if any(item.owner is not owner for item in items) or not hasattr(owner, "concatenate"):
        return None
    return owner.concatenate([item.path for item in items])


MAX_SUMMED = 8  # items a sum over an axis adds up, one Add layer


def sum_layers(graph, x: Tensor, axis: int, keep: bool, name: str, kind: str) -> Tensor:
    """A sum over source ``axis`` of a few items (ResNeSt's radix): each item a Slice, all added by
    one Add, the items in order as torch adds them (a sum of two is bitwise torch's)."""
    shape = list(graph.source_shape(x))
    if not 0 < axis <= len(shape):
        raise Unsupported(f"sums axis {axis} (the batch, or out of range)")
    length = shape[axis - 1]
    if length > MAX_SUMMED:
        raise Unsupported(
            f"sums an axis of {length}; the catalog adds up to {MAX_SUMMED} items with an Add, and has "
            "no reduction by sum"
        )
    items = [item_layer(graph, x, axis, index, name, kind) for index in range(length)]
    total = items[0] if length == 1 else graph.merge("Add", items, name, kind)
    if keep:
        shape[axis - 1] = 1
        total = graph.reshape(total, shape, name, kind, False)
    return total


def _torch_sum(walker, node, name):
    """``x.sum(dim, keepdim)`` and ``torch.sum`` over one axis."""
    x = walker.tensor(node.args[0])
    dim = walker.literal(node, 1, "dim", None)
    dims = [dim] if isinstance(dim, int) else list(dim or [])
    if len(dims) != 1 or walker.literal(node, 3, "dtype", None) is not None:
        raise Unsupported(f"sums over dims {dim}; the catalog adds the items of one axis")
    rank = len(walker.graph.source_shape(x)) + 1
    keep = bool(walker.literal(node, 2, "keepdim", False))
    return sum_layers(walker.graph, x, dims[0] % rank, keep, name, walker.source_kind(node))


def _reduce_sum_from_onnx(walker, node, inputs, name, index):
    """ReduceSum over one axis (the axes an input from opset 13, an attribute before)."""
    x = walker.data(inputs)
    attrs = walker.attrs(node)
    axes = walker.constant(inputs, 1, "axes") if len(inputs) > 1 else None
    axes = list(attrs.get("axes", [])) if axes is None else axes.reshape(-1).tolist()
    if len(axes) != 1:
        raise Unsupported(f"sums over axes {axes}; the catalog adds the items of one axis")
    rank = len(walker.graph.source_shape(x)) + 1
    keep = bool(attrs.get("keepdims", 1))
    return sum_layers(walker.graph, x, int(axes[0]) % rank, keep, name, "ReduceSum")


TORCH_FUNCTIONS: dict = {
    "torch.sum": _torch_sum,
    "operator.add": _binary("Add"),
    "operator.iadd": _binary("Add"),
    "operator.sub": _binary("Subtract"),
    "operator.mul": _binary("Multiply"),
    "operator.truediv": _binary("Divide"),
    "torch.add": _binary("Add"),
    "torch.sub": _binary("Subtract"),
    "torch.mul": _binary("Multiply"),
    "torch.div": _binary("Divide"),
    "torch.maximum": _torch_select("Maximum"),
    "torch.minimum": _torch_select("Minimum"),
    "operator.ge": _torch_comparison("Maximum", operator.ge),
    "operator.le": _torch_comparison("Minimum", operator.le),
    "torch.where": _torch_where,
    "torch.cat": _torch_cat,
    "torch.concat": _torch_cat,
}
TORCH_METHODS: dict = {
    "sum": _torch_sum,
    "add": _binary("Add"),
    "sub": _binary("Subtract"),
    "mul": _binary("Multiply"),
    "div": _binary("Divide"),
    "maximum": _torch_select("Maximum"),
    "minimum": _torch_select("Minimum"),
}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


# ONNX element-wise operators of same-shaped tensors -> catalog merges (Div has none).
ONNX_MERGES = {
    "Add": "Add",
    "Sub": "Subtract",
    "Mul": "Multiply",
    "Max": "Maximum",
    "Min": "Minimum",
    "Sum": "Add",
    "Mean": "Average",
}


@on_last_axes(constants_axes)
def _merge_from_onnx(walker, node, inputs, name, index):
    """A merge of computed tensors; with one scalar constant, a Rescaling."""
    op = node.op_type
    token = next((value for value in inputs if isinstance(value, BatchToken)), None)
    if token is not None and len(inputs) == 2 and op in ONNX_ARITHMETIC:
        # A token expanded over the batch (CaiT's class token added to a tensor) adds as it is.
        x = walker.data([value for value in inputs if value is not token])
        operation = ONNX_ARITHMETIC[op]
        weight = token.weight(walker.graph)
        return affine_layer(walker.graph, x, name, op, operation, weight, x is inputs[0], trainable=True)
    tensors = [value for value in inputs if isinstance(value, Tensor)]
    constants = [value for value in inputs if isinstance(value, np.ndarray)]
    if len(tensors) == len(inputs):
        if op not in ONNX_MERGES:
            raise Unsupported("an element-wise operation the catalog has no merge for")
        if op in ("Sub",) and len(tensors) != 2:
            raise Unsupported("Sub takes two inputs")
        return walker.graph.merge(ONNX_MERGES[op], tensors, name, op)
    if len(tensors) == 1 and len(constants) == 1 and len(inputs) == 2 and constants[0].size == 1:
        scalar = float(constants[0].reshape(()))
        if op == "Div" and isinstance(inputs[0], Tensor):
            gelu = erf_gelu_from_onnx(walker, node, inputs[0], scalar, name)
            if gelu is not None:
                return gelu
        return rescaling_from_onnx(walker, node, inputs, name, scalar)
    if len(tensors) == 1 and len(constants) == 1 and len(inputs) == 2 and op in ONNX_ARITHMETIC:
        # NORM: a tensor and an initializer of another shape (LayerScale, a per-channel scale or bias)
        first = isinstance(inputs[0], Tensor)
        weight = walker.weight(node, inputs, 1 if first else 0, "weight")
        operation = ONNX_ARITHMETIC[op]
        return affine_layer(walker.graph, tensors[0], name, op, operation, weight, first, trainable=True)
    shapes = [tuple(value.shape) for value in constants]
    raise Unsupported(
        f"combines a tensor with a constant of shape {shapes[0] if shapes else '?'} (broadcasting)"
    )


def _concat_from_onnx(walker, node, inputs, name, index):
    axis = int(walker.attrs(node).get("axis", 1))
    if any(isinstance(value, BatchToken) for value in inputs):
        if len(inputs) != 2 or not isinstance(inputs[0], BatchToken) or axis not in (1, -2):
            raise Unsupported("joins a class token other than before a sequence (Concat on axis 1)")
        return class_token_layer(walker.graph, inputs[0], walker.data(inputs, 1), name, node.op_type)
    if len(inputs) > 1 and any(isinstance(value, Folded) for value in inputs):  # windows, heads joined
        return concatenate_folded(walker.graph, inputs, axis, name, node.op_type)
    if not all(isinstance(value, Tensor) for value in inputs):
        raise Unsupported("concatenates a constant with computed tensors")
    if len(inputs) == 1:  # a Concat of one tensor is that tensor
        return inputs[0]
    return walker.graph.concatenate(inputs, axis, name, node.op_type)


# ----- Keras composites: a layer of keras.applications made of catalog layers ------------------


def _custom_scale_layer(cfg, context) -> list[KerasPart]:
    """InceptionResNetV2's ``CustomScaleLayer(scale)([x, branch])``: x + branch * scale."""
    unknown = set(cfg) - {"scale", "name", "trainable", "dtype"}
    if unknown:
        raise Unsupported(f"options {sorted(unknown)}: the catalog expands x + branch * scale only")
    scale = float(cfg["scale"])
    return [
        KerasPart("scaled", "Rescaling", {"scale": scale, "offset": 0.0}, ("input_1",)),
        KerasPart("add", "Add", {}, ("", "scaled")),
    ]


KERAS_COMPOSITES: dict = {"CustomScaleLayer": _custom_scale_layer}


ONNX_OPS: dict = {
    **{op: _merge_from_onnx for op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean")},
    "ReduceSum": _reduce_sum_from_onnx,
    "Concat": _concat_from_onnx,
}
