"""Reshaping: Flatten, Reshape, Permute, UpSampling2D, ZeroPadding2D, Cropping2D, Rescaling.

Flatten is the one layout subtlety: PyTorch flattens ``(c, h, w)``, Keras
``(h, w, c)``. When every consumer of the flattened vector is a Dense layer
(possibly through element-wise layers), PyTorch flattens its channels-first
tensor as it is and the weight converter permutes that Dense layer's input
columns; otherwise the tensor is permuted to channels-last first.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from codegen.layers.base import (
    CF,
    CL,
    FLAT_CF,
    KEEP,
    KerasLayer,
    Layout,
    Lowering,
    Mapped,
    SourceGraph,
    Tensor,
    TorchCode,
    Unsupported,
    compact,
    module_call,
    scale_literal,
)
from codegen.layers.keras_config import channels_last, four_sides, ints
from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan


# ----- Flatten -------------------------------------------------------------------------------


def _flatten_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.Flatten")


def _flatten_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    if len(layer.input_shapes[0]) == 1:
        return TorchCode(steps=[xs[0]])
    return TorchCode(steps=[f"torch.flatten({xs[0]}, 1)"])


def _flatten_layout(plan: ModelPlan, layer: LayerPlan, output_ids: set[str]) -> None:
    source = plan.layer(layer.inputs[0]).layout
    if source.kind == CF and plan.only_flat_consumers(layer, output_ids):
        layer.layout = Layout(FLAT_CF, layer.input_shapes[0])
    else:
        layer.input_layout = CL
        layer.layout = Layout(CL)


# ----- Reshape, Permute ----------------------------------------------------------------------


def _reshape_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.Reshape", [py(tuple(layer.params["target_shape"]))])


def _reshape_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    dims = ", ".join(str(dim) for dim in layer.shape)
    return TorchCode(steps=[f"{xs[0]}.reshape(-1, {dims})"])


def _permute_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.Permute", [py(tuple(layer.params["dims"]))])


def _permute_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(steps=[f"{xs[0]}.permute{py((0, *layer.params['dims']))}"])


# ----- UpSampling2D, ZeroPadding2D, Cropping2D -----------------------------------------------


def _up_sampling_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [] if params["size"] == (2, 2) else [f"size={compact(params['size'])}"]
    if params["interpolation"] != "nearest":
        args.append(f"interpolation={py(params['interpolation'])}")
    return KerasLayer("layers.UpSampling2D", args)


def _up_sampling_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    size = params["size"]
    scale = str(size[0]) if size[0] == size[1] else py(size)
    args = [f"scale_factor={scale}", f"mode={py(params['interpolation'])}"]
    if params["interpolation"] == "bilinear":
        args.append("align_corners=False")  # Keras's bilinear resize samples at half-pixel centres
    return TorchCode(("nn.Upsample", args), [module_call(layer, xs[0])])


def _pairs(values: tuple) -> str:
    top, bottom, left, right = values
    return py(((top, bottom), (left, right)))


def _zero_padding_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.ZeroPadding2D", [f"padding={_pairs(layer.params['padding'])}"])


def _zero_padding_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    top, bottom, left, right = layer.params["padding"]
    return TorchCode(("nn.ZeroPad2d", [py((left, right, top, bottom))]), [module_call(layer, xs[0])])


def _cropping_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.Cropping2D", [f"cropping={_pairs(layer.params['cropping'])}"])


def _cropping_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    top, bottom, left, right = layer.params["cropping"]
    height, width, _ = layer.input_shapes[0]
    return TorchCode(steps=[f"{xs[0]}[:, :, {top}:{height - bottom}, {left}:{width - right}]"])


# ----- Rescaling -----------------------------------------------------------------------------


def _rescaling_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [scale_literal(params["scale"])]
    if params["offset"]:
        args.append(f"offset={py(params['offset'])}")
    return KerasLayer("layers.Rescaling", args)


def _rescaling_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    expr = f"{xs[0]} * {scale_literal(params['scale'])}" if params["scale"] != 1 else xs[0]
    if params["offset"]:
        expr = f"{expr} + {py(params['offset'])}"
    return TorchCode(steps=[expr])


LOWERINGS = (
    Lowering("Flatten", _flatten_keras, _flatten_torch, assign_layout=_flatten_layout),
    Lowering("Reshape", _reshape_keras, _reshape_torch, CL),
    Lowering("Permute", _permute_keras, _permute_torch, CL),
    Lowering("UpSampling2D", _up_sampling_keras, _up_sampling_torch, CF),
    Lowering("ZeroPadding2D", _zero_padding_keras, _zero_padding_torch, CF),
    Lowering("Cropping2D", _cropping_keras, _cropping_torch, CF),
    Lowering("Rescaling", _rescaling_keras, _rescaling_torch, KEEP, flat="pass"),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _flatten_from_keras(cfg, context) -> Mapped:
    channels_last(cfg)
    return Mapped("Flatten")


def _reshape_from_keras(cfg, context) -> Mapped:
    return Mapped("Reshape", {"target_shape": [int(dim) for dim in cfg["target_shape"]]})


def _permute_from_keras(cfg, context) -> Mapped:
    return Mapped("Permute", {"dims": [int(dim) for dim in cfg["dims"]]})


def _up_sampling_from_keras(cfg, context) -> Mapped:
    channels_last(cfg)
    return Mapped(
        "UpSampling2D",
        {"size": ints(cfg.get("size", 2), 2), "interpolation": cfg.get("interpolation", "nearest")},
    )


def _zero_padding_from_keras(cfg, context) -> Mapped:
    channels_last(cfg)
    return Mapped("ZeroPadding2D", {"padding": four_sides(cfg.get("padding", 1))})


def _cropping_from_keras(cfg, context) -> Mapped:
    channels_last(cfg)
    return Mapped("Cropping2D", {"cropping": four_sides(cfg.get("cropping", 0))})


def _rescaling_from_keras(cfg, context) -> Mapped:
    scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
    if not all(isinstance(value, (int, float)) and math.isfinite(value) for value in (scale, offset)):
        raise Unsupported(f"scale={scale!r}, offset={offset!r}: the catalog's Rescaling takes two numbers")
    return Mapped("Rescaling", {"scale": float(scale), "offset": float(offset)})


KERAS_CLASSES: dict = {
    "Flatten": _flatten_from_keras,
    "Reshape": _reshape_from_keras,
    "Permute": _permute_from_keras,
    "UpSampling2D": _up_sampling_from_keras,
    "ZeroPadding2D": _zero_padding_from_keras,
    "Cropping2D": _cropping_from_keras,
    "Rescaling": _rescaling_from_keras,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


def crop_layer(
    graph: SourceGraph, x: Tensor, name: str, source_kind: str, bounds: dict[int, tuple[int, int]]
) -> Tensor:
    """Cropping2D for a slice ``start:end`` (step 1) of source axes, given as {axis: (start, end)}."""
    source = graph.source_shape(x)
    crops = {}
    for axis, (start, end) in bounds.items():
        size = source[axis - 1] if 0 < axis <= len(source) else None
        if size is None:
            raise Unsupported(f"slices axis {axis} (the batch, or out of range)")
        start = max(0, min(size, start + size if start < 0 else start))
        end = max(0, min(size, end + size if end < 0 else end))
        if (start, end) != (0, size):
            crops[axis] = (start, size - end)
    if not crops:
        return x
    if x.form != CF or len(source) != 3 or any(axis not in (2, 3) for axis in crops):
        raise Unsupported(
            "slices a tensor; the catalog only crops the height and width of images (Cropping2D)"
        )
    top, bottom = crops.get(2, (0, 0))
    left, right = crops.get(3, (0, 0))
    params = {"cropping": [top, bottom, left, right]}
    return graph.add("Cropping2D", name, [x], params, source_kind=source_kind, nonneg=x.nonneg)


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------

TORCH_MODULES: dict = {}
TORCH_FUNCTIONS: dict = {}
TORCH_METHODS: dict = {}


# ----- ONNX import: op -> layers ---------------------------------------------------------------

ONNX_OPS: dict = {}
