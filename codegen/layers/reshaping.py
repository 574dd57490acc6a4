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

import numpy as np

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
from codegen.layers.normalization import per_channel_rescaling
from codegen.layers.onnx_source import positive_axes, resolve_target
from codegen.layers.torch_source import Aux, Multi, Padded, describe
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
    if isinstance(scale, (list, tuple)) or isinstance(offset, (list, tuple)):
        return per_channel_rescaling(scale, offset, context)
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


def rescaling_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    operation: str,
    number: float,
    tensor_first: bool,
) -> Tensor:
    """Rescaling for ``x * a``, ``x + a``, ``x - a``, ``a - x`` or ``x / a`` (``operation``: Multiply,
    Add, Subtract, Divide); ``x * 1`` and ``x + 0`` compute nothing and give ``x`` back."""
    if operation == "Multiply":
        scale, offset = number, 0.0
    elif operation == "Add":
        scale, offset = 1.0, number
    elif operation == "Subtract":
        scale, offset = (1.0, -number) if tensor_first else (-1.0, number)
    elif operation == "Divide" and tensor_first and number != 0:
        scale, offset = 1.0 / number, 0.0
    else:
        raise Unsupported(f"{source_kind} with a number has no catalog equivalent")
    if (scale, offset) == (1.0, 0.0):
        return x
    nonneg = x.nonneg and scale >= 0 and offset >= 0
    params = {"scale": scale, "offset": offset}
    return graph.add("Rescaling", name, [x], params, source_kind=source_kind, nonneg=nonneg)


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


def _torch_flatten_module(walker, node, module, name):
    x = walker.tensor(node.args[0])
    rank = len(walker.graph.source_shape(x)) + 1
    end = module.end_dim + rank if module.end_dim < 0 else module.end_dim
    if module.start_dim != 1 or end != rank - 1:
        raise Unsupported(
            f"start_dim={module.start_dim}, end_dim={module.end_dim}: the catalog flattens all but the batch"
        )
    return walker.graph.flatten(x, name, "Flatten", walker.only_dense_after(node))


def _torch_flatten(walker, node, name):
    """``torch.flatten(x, start_dim, end_dim)`` and ``x.flatten(...)``: Flatten, or a Reshape."""
    graph = walker.graph
    x = walker.tensor(node.args[0])
    start = walker.literal(node, 1, "start_dim", 0)
    end = walker.literal(node, 2, "end_dim", -1)
    rank = len(graph.source_shape(x)) + 1
    if start == 1 and (end + rank if end < 0 else end) == rank - 1:
        return graph.flatten(x, name, walker.source_kind(node), walker.only_dense_after(node))
    if start == 0:
        raise Unsupported("flattens the batch axis")
    return graph.reshape(x, list(walker.out_shape(node)), name, walker.source_kind(node), False)


def _torch_reshape(walker, node, name):
    """``x.view(...)``, ``x.reshape(...)``, ``x.squeeze()``, ...: a Reshape to the traced shape."""
    value = walker.value(node.args[0])
    if isinstance(value, np.ndarray) and node in walker.shapes:
        return value.reshape(
            walker.shapes[node]
        )  # NORM: a parameter shaped to broadcast (gamma.view(1, -1, 1, 1))
    x = walker.tensor(node.args[0])
    target = walker.out_shape(node)
    return walker.graph.reshape(
        x, list(target), name, walker.source_kind(node), walker.only_dense_after(node)
    )


def _torch_transpose(walker, node, name):
    """``x.permute(...)`` and ``x.transpose(a, b)``: a Permute."""
    x = walker.tensor(node.args[0])
    rank = len(walker.graph.source_shape(x)) + 1
    method = node.target if isinstance(node.target, str) else node.target.__name__
    if method == "permute":
        dims = node.args[1:] if len(node.args) > 2 else walker.literal(node, 1, "dims")
        perm = [int(walker.value(d)) % rank for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    else:
        first, second = (int(walker.literal(node, i, key)) % rank for i, key in ((1, "dim0"), (2, "dim1")))
        perm = list(range(rank))
        perm[first], perm[second] = perm[second], perm[first]
    return walker.graph.transpose(x, perm, name, walker.source_kind(node))


def _torch_zero_pad(walker, node, module, name):
    left, right, top, bottom = (int(p) for p in module.padding)
    x = walker.graph.to_cf(walker.tensor(node.args[0]), name)
    params = {"padding": [top, bottom, left, right]}
    return walker.graph.add("ZeroPadding2D", name, [x], params, source_kind="ZeroPad2d", nonneg=x.nonneg)


def _torch_pad(walker, node, name):
    """``F.pad(x, pads)`` with zeros (ZeroPadding2D, or folded into a convolution that follows) or
    with ``-inf`` (folded into a max pooling that follows, how the emission writes 'same')."""
    graph = walker.graph
    x = graph.to_cf(walker.tensor(node.args[0]), name)
    pads = [int(p) for p in walker.literal(node, 1, "pad")]
    mode = walker.literal(node, 2, "mode", "constant")
    value = walker.literal(node, 3, "value", None)
    if mode != "constant" or value not in (None, 0, 0.0, float("-inf")):
        raise Unsupported(f"mode={mode!r}, value={value!r}: the catalog pads with zeros only")
    value = float(value or 0)
    rank = len(graph.keras_shape(x)) - 1
    per_axis = None
    if len(pads) == 2 * rank and min(pads) >= 0:  # F.pad lists the last axis first
        per_axis = tuple((pads[2 * i], pads[2 * i + 1]) for i in reversed(range(rank)))

    def create() -> Tensor:
        if value != 0:
            raise Unsupported(f"pads with {value}; only a max pooling that follows can take that padding")
        if rank != 2 or len(pads) not in (2, 4) or min(pads) < 0:
            raise Unsupported(f"pads {pads}: the catalog pads the height and width of an image only")
        left, right, top, bottom = [*pads, 0, 0][:4]
        params = {"padding": [top, bottom, left, right]}
        return graph.add("ZeroPadding2D", name, [x], params, source_kind="F.pad", nonneg=x.nonneg)

    return Padded(x, per_axis, value, create)


def _torch_upsample(walker, node, module, name):
    align_corners = getattr(module, "align_corners", None)
    return _upsample(walker, node, name, module.mode, module.scale_factor, align_corners)


def _torch_interpolate(walker, node, name):
    literal = walker.literal
    mode = literal(node, 3, "mode", "nearest")
    return _upsample(
        walker, node, name, mode, literal(node, 2, "scale_factor"), literal(node, 4, "align_corners")
    )


def _upsample(walker, node, name: str, mode: str, scale_factor, align_corners) -> Tensor:
    """UpSampling2D by the whole factors the traced output shape shows."""
    x = walker.graph.to_cf(walker.tensor(node.args[0]), name)
    if mode not in ("nearest", "bilinear") or (mode == "bilinear" and align_corners):
        raise Unsupported(
            f"mode={mode!r}, align_corners={align_corners}: the catalog has nearest and bilinear"
        )
    height, width, _ = walker.graph.keras_shape(x)
    out = walker.out_shape(node)
    factors = (out[1] / height, out[2] / width)
    if not all(factor.is_integer() for factor in factors):
        raise Unsupported(f"scales by {factors}; the catalog's UpSampling2D takes whole factors")
    params = {"size": [int(f) for f in factors], "interpolation": mode}
    return walker.graph.add("UpSampling2D", name, [x], params, source_kind="Upsample", nonneg=x.nonneg)


def _torch_getitem(walker, node, name):
    """``value[index]``: a part of a layer's outputs, an item of a size, or a crop of an image."""
    container = walker.value(node.args[0])
    index = walker.value(node.args[1])
    if isinstance(container, Padded):
        container = container.resolve()
    if isinstance(container, Multi):
        return container.index(index)
    if isinstance(container, Aux):
        try:
            return Aux(container.value[index])
        except Exception:
            raise Unsupported(f"indexes {container.value!r} with {index!r}") from None
    if isinstance(container, Tensor):
        return _crop(walker, container, index, name, walker.source_kind(node))
    raise Unsupported(f"indexes {describe(container)}")


def _crop(walker, x: Tensor, index, name: str, source_kind: str) -> Tensor:
    """``x[:, :, a:b, c:d]``: Cropping2D of a channels-first image."""
    items = index if isinstance(index, tuple) else (index,)
    if not all(isinstance(item, slice) and item.step in (None, 1) for item in items):
        raise Unsupported(f"indexes a tensor with {index!r}; the catalog only crops images (Cropping2D)")
    if items and items[0] != slice(None):
        raise Unsupported("slices the batch axis")
    bounds = {}
    for axis, item in enumerate(items):
        if item != slice(None):
            start = 0 if item.start is None else int(item.start)
            end = 2**62 if item.stop is None else int(item.stop)
            bounds[axis] = (start, end)
    return crop_layer(walker.graph, x, name, source_kind, bounds)


def _torch_getattr(walker, node, name):
    """``x.shape`` of a tensor: its traced shape, a non-tensor value."""
    target = walker.value(node.args[0])
    attribute = node.args[1]
    if isinstance(target, (Tensor, Padded)) and attribute == "shape":
        return Aux(walker.shapes.get(node.args[0]))
    raise Unsupported(f"reads the attribute .{attribute}")


def _torch_size(walker, node, name):
    shape = walker.shapes.get(node.args[0])
    if shape is None:
        raise Unsupported("the size of a value that is not a tensor")
    dim = walker.literal(node, 1, "dim", None)
    return Aux(shape if dim is None else shape[dim])


def _torch_passthrough(walker, node, name):
    return walker.tensor(node.args[0])


def rescale_by(
    walker, node, name: str, operation: str, x: Tensor, number: float, tensor_first: bool
) -> Tensor:
    """``x * 2``, ``x - 1``, ``1 - x``, ``x / 255`` in PyTorch (``operation`` is Add, Subtract, ...)."""
    return rescaling_layer(walker.graph, x, name, walker.source_kind(node), operation, number, tensor_first)


TORCH_MODULES: dict = {
    "Flatten": _torch_flatten_module,
    "ZeroPad2d": _torch_zero_pad,
    "Upsample": _torch_upsample,
}
TORCH_FUNCTIONS: dict = {
    "operator.getitem": _torch_getitem,
    "builtins.getattr": _torch_getattr,
    "torch.flatten": _torch_flatten,
    "torch.nn.functional.pad": _torch_pad,
    "torch.nn.functional.interpolate": _torch_interpolate,
}
TORCH_METHODS: dict = {
    "view": _torch_reshape,
    "reshape": _torch_reshape,
    "squeeze": _torch_reshape,
    "unsqueeze": _torch_reshape,
    "flatten": _torch_flatten,
    "size": _torch_size,
    "contiguous": _torch_passthrough,
    "permute": _torch_transpose,
    "transpose": _torch_transpose,
}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


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


ONNX_ARITHMETIC = {"Mul": "Multiply", "Add": "Add", "Sub": "Subtract", "Div": "Divide"}


def rescaling_from_onnx(walker, node, inputs, name: str, constant: float) -> Tensor:
    """A Mul, Add, Sub or Div of a tensor and a scalar constant (``merging`` hands it over)."""
    x = inputs[0] if isinstance(inputs[0], Tensor) else inputs[1]
    operation = ONNX_ARITHMETIC.get(node.op_type, node.op_type)
    tensor_first = isinstance(inputs[0], Tensor)
    return rescaling_layer(walker.graph, x, name, node.op_type, operation, constant, tensor_first)


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
