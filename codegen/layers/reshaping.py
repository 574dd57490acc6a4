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
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.

from codegen.layers.onnx_source import positive_axes, resolve_target  # noqa: E402 - the section's own


def _flatten_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    axis = int(walker.attrs(node).get("axis", 1))
    rank = len(walker.graph.source_shape(x)) + 1
    if (axis + rank if axis < 0 else axis) != 1:
        raise Unsupported(f"axis={axis}: the catalog flattens everything but the batch")
    return walker.graph.flatten(x, name, node.op_type, walker.only_dense_after(node.output[0]))


def _reshape_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    source = walker.graph.source_shape(x)
    dims = walker.dims(inputs, 1, "shape")
    allow_zero = int(walker.attrs(node).get("allowzero", 0))
    full = (None, *source)
    resolved = []
    for position, dim in enumerate(dims):
        if dim == 0 and not allow_zero:
            dim = full[position] if position < len(full) else 0
        resolved.append(dim)
    target = resolve_target(resolved, source)
    return walker.graph.reshape(x, target, name, node.op_type, walker.only_dense_after(node.output[0]))


def _squeeze_from_onnx(walker, node, inputs, name, index):
    """Squeeze and Unsqueeze: a Reshape that drops or adds unit axes."""
    x = walker.data(inputs)
    source = list(walker.graph.source_shape(x))
    rank = len(source) + 1
    axes = walker.attrs(node).get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = walker.constant(inputs, 1, "axes").tolist()
    full: list[int | None] = [None, *source]
    if node.op_type == "Squeeze":
        axes = positive_axes(axes if axes is not None else [i for i, d in enumerate(full) if d == 1], rank)
        if 0 in axes:
            raise Unsupported("squeezes the batch axis")
        target = [dim for position, dim in enumerate(full) if position not in axes][1:]
    else:
        axes = positive_axes(axes or [], rank + len(axes or []))
        if 0 in axes:
            raise Unsupported("adds an axis before the batch")
        target = list(full)
        for axis in axes:
            target.insert(axis, 1)
        target = target[1:]
    return walker.graph.reshape(x, target, name, node.op_type, walker.only_dense_after(node.output[0]))


def rescaling_from_onnx(walker, node, inputs, name: str, constant: float) -> Tensor:
    """A Mul, Add, Sub or Div of a tensor and a scalar constant (``merging`` hands it over)."""
    op = node.op_type
    x = inputs[0] if isinstance(inputs[0], Tensor) else inputs[1]
    tensor_first = isinstance(inputs[0], Tensor)
    if op == "Mul":
        scale, offset = constant, 0.0
    elif op == "Add":
        scale, offset = 1.0, constant
    elif op == "Sub":
        scale, offset = (1.0, -constant) if tensor_first else (-1.0, constant)
    elif op == "Div" and tensor_first and constant != 0:
        scale, offset = 1.0 / constant, 0.0
    else:
        raise Unsupported(f"{op} with a constant has no catalog equivalent")
    nonneg = x.nonneg and scale >= 0 and offset >= 0
    return walker.graph.add(
        "Rescaling", name, [x], {"scale": scale, "offset": offset}, source_kind=op, nonneg=nonneg
    )


def _transpose_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    rank = len(walker.graph.source_shape(x)) + 1
    perm = list(walker.attrs(node).get("perm", list(reversed(range(rank)))))
    return walker.graph.transpose(x, perm, name, node.op_type)


def _pad_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    attrs = walker.attrs(node)
    if attrs.get("mode", "constant") != "constant":
        raise Unsupported(f"mode={attrs['mode']!r}; the catalog pads with zeros only")
    if walker.opset >= 11:
        pads = walker.constant(inputs, 1, "pads").tolist()
        value = walker.constant(inputs, 2, "constant value")
        if len(inputs) > 3 and inputs[3] is not None:
            raise Unsupported("pads selected axes only (the axes input)")
        value = 0.0 if value is None else float(value.reshape(()))
    else:
        pads, value = list(attrs.get("pads", [])), float(attrs.get("value", 0.0))
    if value != 0.0:
        raise Unsupported(f"pads with {value}; the catalog pads with zeros only")
    x = walker.graph.to_cf(x, name)
    rank = len(pads) // 2
    begins, ends = pads[:rank], pads[rank:]
    if rank != 4 or begins[:2] != [0, 0] or ends[:2] != [0, 0]:
        raise Unsupported(f"pads {pads}: the catalog pads the height and width of an image only")
    if min(pads) < 0:
        raise Unsupported(f"negative pads {pads} (cropping)")
    padding = [begins[2], ends[2], begins[3], ends[3]]
    return walker.graph.add(
        "ZeroPadding2D", name, [x], {"padding": padding}, source_kind="Pad", nonneg=x.nonneg
    )


def _slice_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    rank = len(walker.graph.source_shape(x)) + 1
    if walker.opset >= 10:
        starts = walker.constant(inputs, 1, "starts").tolist()
        ends = walker.constant(inputs, 2, "ends").tolist()
        axes = walker.constant(inputs, 3, "axes")
        steps = walker.constant(inputs, 4, "steps")
        axes = list(range(len(starts))) if axes is None else axes.tolist()
        steps = [1] * len(starts) if steps is None else steps.tolist()
    else:
        attrs = walker.attrs(node)
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes, steps = list(attrs.get("axes", range(len(starts)))), [1] * len(starts)
    if any(step != 1 for step in steps):
        raise Unsupported(f"slices with steps {steps}; the catalog crops contiguous ranges only")
    bounds = {
        (a + rank if a < 0 else a): (int(start), int(end))
        for a, start, end in zip(axes, starts, ends, strict=True)
    }
    return crop_layer(walker.graph, x, name, node.op_type, bounds)


def _resize_from_onnx(walker, node, inputs, name, index):
    x = walker.graph.to_cf(walker.data(inputs), name)
    attrs = walker.attrs(node)
    mode = attrs.get("mode", "nearest")
    transform = attrs.get("coordinate_transformation_mode", "half_pixel")
    if (
        mode == "nearest"
        and transform == "asymmetric"
        and attrs.get("nearest_mode", "round_prefer_floor") == "floor"
    ):
        interpolation = "nearest"
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel"):
        interpolation = "bilinear"
    else:
        raise Unsupported(
            f"mode={mode!r}, coordinate_transformation_mode={transform!r}: the catalog's UpSampling2D is nearest "
            "(asymmetric, floor) or bilinear (half-pixel)"
        )
    height, width, channels = walker.graph.keras_shape(x)
    scales = walker.constant(inputs, 2, "scales") if len(inputs) > 2 else None
    sizes = walker.constant(inputs, 3, "sizes") if len(inputs) > 3 else None
    if scales is not None and scales.size:
        factors = [float(f) for f in scales.reshape(-1)]
    elif sizes is not None and sizes.size:
        factors = [1.0, 1.0, sizes.reshape(-1)[2] / height, sizes.reshape(-1)[3] / width]
    else:
        raise Unsupported("neither scales nor sizes are constants")
    if factors[:2] != [1.0, 1.0] or not all(f.is_integer() and f >= 1 for f in factors[2:]):
        raise Unsupported(
            f"scales {factors}; the catalog's UpSampling2D scales height and width by whole factors"
        )
    params = {"size": [int(factors[2]), int(factors[3])], "interpolation": interpolation}
    return walker.graph.add("UpSampling2D", name, [x], params, source_kind="Resize", nonneg=x.nonneg)


ONNX_OPS: dict = {
    "Flatten": _flatten_from_onnx,
    "Reshape": _reshape_from_onnx,
    "Squeeze": _squeeze_from_onnx,
    "Unsqueeze": _squeeze_from_onnx,
    "Transpose": _transpose_from_onnx,
    "Pad": _pad_from_onnx,
    "Slice": _slice_from_onnx,
    "Resize": _resize_from_onnx,
}
