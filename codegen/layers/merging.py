"""Merges: Add, Subtract, Multiply, Average, Maximum and Concatenate (inputs alike in layout)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codegen.layers.base import CF, KEEP, KerasLayer, Lowering, Mapped, TorchCode

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

TORCH_MODULES: dict = {}
TORCH_FUNCTIONS: dict = {}
TORCH_METHODS: dict = {}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.

import numpy as np  # noqa: E402 - the ONNX section's own imports, kept with it

from codegen.layers.base import Tensor, Unsupported  # noqa: E402
from codegen.layers.reshaping import rescaling_from_onnx  # noqa: E402

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
