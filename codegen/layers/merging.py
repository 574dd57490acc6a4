"""Merges: Add, Subtract, Multiply, Average, Maximum and Concatenate (inputs alike in layout)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.base import CF, KEEP, KerasLayer, Lowering, Mapped, Tensor, TorchCode, Unsupported
from codegen.layers.normalization import affine_layer, is_learned
from codegen.layers.reshaping import ONNX_ARITHMETIC, rescale_by, rescaling_from_onnx
from codegen.layers.torch_source import Aux, Multi, describe, resolve

if TYPE_CHECKING:
    from codegen.plan import LayerPlan


def _merge_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer(f"layers.{layer.kind}", [], f"([{', '.join(sources)}])")


def _add(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(steps=[" + ".join(xs)])


def _subtract(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(steps=[f"{xs[0]} - {xs[1]}"])


def _multiply(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(steps=[" * ".join(xs)])


def _average(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(steps=[f"({' + '.join(xs)}) / {len(xs)}"])


def _maximum(layer: LayerPlan, xs: list[str]) -> TorchCode:
    # Keras's maximum sends the gradient of a tie to the earlier input (torch.maximum
    # would split it), so chain torch.where the way Keras chains its maximum.
    steps = [f"torch.where({xs[0]} >= {xs[1]}, {xs[0]}, {xs[1]})"]
    steps += [f"torch.where({{ident}} >= {x}, {{ident}}, {x})" for x in xs[2:]]
    return TorchCode(steps=steps)


def torch_axis(keras_axis: int, rank: int, layout: str) -> int:
    """The torch dim of a Keras axis (batch included) for a tensor of ``rank`` non-batch axes."""
    index = keras_axis - 1 if keras_axis > 0 else rank + keras_axis  # 0-based, batch excluded
    if layout == CF and rank >= 2:
        index = 0 if index == rank - 1 else index + 1
    dim = index + 1
    return -1 if dim == rank else dim


def _concatenate_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    axis = layer.params["axis"]
    return KerasLayer(
        "layers.Concatenate", [] if axis == -1 else [f"axis={axis}"], f"([{', '.join(sources)}])"
    )


def _concatenate_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    dim = torch_axis(layer.params["axis"], len(layer.shape), layer.layout.kind)
    return TorchCode(steps=[f"torch.cat([{', '.join(xs)}], dim={dim})"])


LOWERINGS = (
    Lowering("Add", _merge_keras, _add, KEEP),
    Lowering("Subtract", _merge_keras, _subtract, KEEP),
    Lowering("Multiply", _merge_keras, _multiply, KEEP),
    Lowering("Average", _merge_keras, _average, KEEP),
    Lowering("Maximum", _merge_keras, _maximum, KEEP),
    Lowering("Concatenate", _concatenate_keras, _concatenate_torch, KEEP),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _merge_from_keras(kind: str):
    def mapping(cfg, context) -> Mapped:
        return Mapped(kind)

    return mapping


def _concatenate_from_keras(cfg, context) -> Mapped:
    return Mapped("Concatenate", {"axis": int(cfg.get("axis", -1))})


KERAS_CLASSES: dict = {
    **{kind: _merge_from_keras(kind) for kind in ("Add", "Subtract", "Multiply", "Average", "Maximum")},
    "Concatenate": _concatenate_from_keras,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


def _binary(operation: str):
    """``a + b``, ``torch.sub(a, b)``, ``x.mul(y)``, ...: a merge of two tensors, a Rescaling of a
    tensor and a number, or plain arithmetic on two non-tensor values (sizes)."""

    def handler(walker, node, name):
        left, right = walker.value(node.args[0]), walker.value(node.args[1])
        if "alpha" in node.kwargs and node.kwargs["alpha"] != 1:
            raise Unsupported(f"alpha={node.kwargs['alpha']} has no catalog equivalent")
        left, right = resolve(left), resolve(right)
        if isinstance(left, Tensor) and isinstance(right, Tensor):
            return walker.graph.merge(operation, [left, right], name, walker.source_kind(node))
        if isinstance(left, Aux) and isinstance(right, Aux):
            return Aux(_AUX_OPERATIONS[operation](left.value, right.value))
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


_AUX_OPERATIONS = {
    "Add": operator.add,
    "Subtract": operator.sub,
    "Multiply": operator.mul,
    "Divide": operator.truediv,
    "Maximum": max,
}


def _torch_maximum(walker, node, name):
    tensors = [walker.tensor(arg) for arg in node.args[:2]]
    return walker.graph.merge("Maximum", tensors, name, walker.source_kind(node))


def _torch_cat(walker, node, name):
    items = list(walker.value(walker.argument(node, 0, "tensors")))
    dim = walker.literal(node, 1, "dim", 0)
    final = _concatenate_parts(items)
    if final is not None and dim in (1, -1):
        return final
    tensors = [resolve(item) for item in items]
    if not all(isinstance(t, Tensor) for t in tensors):
        raise Unsupported("concatenates values that are not computed tensors")
    return walker.graph.concatenate(tensors, int(dim), name, walker.source_kind(node))


@dataclass(frozen=True)
class _AtLeast:
    """``a >= b`` of two tensors: only the condition of ``torch.where`` can use it."""

    left: Tensor
    right: Tensor

    def __repr__(self) -> str:
        return "a comparison of two tensors (a >= b)"


def _torch_greater_equal(walker, node, name):
    return _AtLeast(walker.tensor(node.args[0]), walker.tensor(node.args[1]))


def _torch_where(walker, node, name):
    """``torch.where(a >= b, a, b)``: the maximum of two tensors, the way the emission writes Maximum."""
    condition = walker.value(walker.argument(node, 0, "condition"))
    chosen = [walker.tensor(walker.argument(node, i, key)) for i, key in ((1, "input"), (2, "other"))]
    if not isinstance(condition, _AtLeast) or [condition.left, condition.right] != chosen:
        raise Unsupported("selects between tensors; the catalog has torch.where(a >= b, a, b) (Maximum)")
    return walker.graph.merge("Maximum", chosen, name, walker.source_kind(node))


def _concatenate_parts(items: list) -> Tensor | None:
    """Parts of one layer's outputs concatenated back (a bidirectional RNN's two final states)."""
    if not items or not all(isinstance(item, Multi) for item in items):
        return None
    owner = items[0].owner
    if any(item.owner is not owner for item in items) or not hasattr(owner, "concatenate"):
        return None
    return owner.concatenate([item.path for item in items])


TORCH_FUNCTIONS: dict = {
    "operator.add": _binary("Add"),
    "operator.iadd": _binary("Add"),
    "operator.sub": _binary("Subtract"),
    "operator.mul": _binary("Multiply"),
    "operator.truediv": _binary("Divide"),
    "torch.add": _binary("Add"),
    "torch.sub": _binary("Subtract"),
    "torch.mul": _binary("Multiply"),
    "torch.maximum": _torch_maximum,
    "operator.ge": _torch_greater_equal,
    "torch.where": _torch_where,
    "torch.cat": _torch_cat,
    "torch.concat": _torch_cat,
}
TORCH_METHODS: dict = {"add": _binary("Add"), "sub": _binary("Subtract"), "mul": _binary("Multiply")}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


# ONNX element-wise operators of same-shaped tensors -> catalog merges (Div has none).
ONNX_MERGES = {
    "Add": "Add",
    "Sub": "Subtract",
    "Mul": "Multiply",
    "Max": "Maximum",
    "Sum": "Add",
    "Mean": "Average",
}


def _merge_from_onnx(walker, node, inputs, name, index):
    """A merge of computed tensors; with one scalar constant, a Rescaling."""
    op = node.op_type
    tensors = [value for value in inputs if isinstance(value, Tensor)]
    constants = [value for value in inputs if isinstance(value, np.ndarray)]
    if len(tensors) == len(inputs):
        if op not in ONNX_MERGES:
            raise Unsupported("an element-wise operation the catalog has no merge for")
        if op in ("Sub",) and len(tensors) != 2:
            raise Unsupported("Sub takes two inputs")
        return walker.graph.merge(ONNX_MERGES[op], tensors, name, op)
    if len(tensors) == 1 and len(constants) == 1 and len(inputs) == 2 and constants[0].size == 1:
        return rescaling_from_onnx(walker, node, inputs, name, float(constants[0].reshape(())))
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
    if not all(isinstance(value, Tensor) for value in inputs):
        raise Unsupported("concatenates a constant with computed tensors")
    axis = int(walker.attrs(node).get("axis", 1))
    return walker.graph.concatenate(inputs, axis, name, node.op_type)


ONNX_OPS: dict = {
    **{op: _merge_from_onnx for op in ("Add", "Sub", "Mul", "Div", "Max", "Sum", "Mean")},
    "Concat": _concat_from_onnx,
}
