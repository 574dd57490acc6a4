"""Reshaping: Flatten, Reshape, Permute, UpSampling2D, ZeroPadding1D/2D, Cropping2D, Slice, Rescaling.

Flatten is the one layout subtlety: PyTorch flattens ``(c, h, w)``, Keras
``(h, w, c)``. When every consumer of the flattened vector is a Dense layer
(possibly through element-wise layers), PyTorch flattens its channels-first
tensor as it is and the weight converter permutes that Dense layer's input
columns; otherwise the tensor is permuted to channels-last first.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.base import (
    CF,
    CL,
    FLAT_CF,
    KEEP,
    SAME,
    SQUEEZED,
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
    torch_axis,
)
from codegen.layers.folded import Folded, axis_lengths, folds_batch, from_tensor, on_last_axes, symbolic
from codegen.layers.keras_config import channels_last, four_sides, ints
from codegen.layers.normalization import is_learned, per_channel_rescaling
from codegen.layers.onnx_source import positive_axes, resolve_target
from codegen.layers.torch_source import (
    Aux,
    Multi,
    Padded,
    TracedBatch,
    describe,
    holds_batch,
    resolve,
    traced_shape,
)
from codegen.writer import py
from studio.catalog.base import MAX_ELEMENTS

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


def _zero_padding_1d_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("layers.ZeroPadding1D", [f"padding={py(tuple(layer.params['padding']))}"])


def _zero_padding_1d_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(("nn.ZeroPad1d", [py(tuple(layer.params["padding"]))]), [module_call(layer, xs[0])])


# ----- Slice ---------------------------------------------------------------------------------


def _index_text(dim: int, rank: int, start: int, stop: int) -> str:
    """``[:, :, 2:6]``: a slice of ``dim`` (batch included) of a tensor of ``rank`` axes with the batch."""
    if dim in (-1, rank - 1):
        return f"[..., {start}:{stop}]"
    return "[" + ", ".join([":"] * dim + [f"{start}:{stop}"]) + "]"


def _slice_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    rank = len(layer.shape) + 1
    index = _index_text(params["axis"] % rank, rank, params["start"], params["stop"])
    # Keras has no slicing layer: the slice is an operation, named through an Identity layer.
    return KerasLayer("layers.Identity", [], f"({sources[0]}{index})")


def _slice_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    rank = len(layer.shape) + 1
    dim = torch_axis(params["axis"], rank - 1, layer.layout.kind)
    return TorchCode(steps=[f"{xs[0]}{_index_text(dim % rank, rank, params['start'], params['stop'])}"])


# ----- ClassToken ----------------------------------------------------------------------------

# Keras has no class-token layer: the program defines one, registered so that a saved model loads.
CLASS_TOKEN_KERAS = (
    '@keras.saving.register_keras_serializable(package="LayerStudio")',
    "class ClassToken(layers.Layer):",
    '    """A learned token put before each sequence (ViT\'s class token): (N, L, F) -> (N, L + 1, F)."""',
    "",
    "    def build(self, input_shape):",
    '        self.token = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="token")',
    "",
    "    def call(self, x):",
    "        token = keras.ops.broadcast_to(self.token, (keras.ops.shape(x)[0], 1, self.token.shape[0]))",
    "        return keras.ops.concatenate([token, x], axis=1)",
)


def _class_token_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer("ClassToken")


def _class_token_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    features = layer.shape[-1]
    token = f'nn.ParameterDict({{"token": nn.Parameter(torch.zeros(1, 1, {features}))}})'
    return TorchCode(
        init=[f"self.{{ident}} = {token}"],
        steps=[f"torch.cat([self.{{ident}}.token.expand({xs[0]}.shape[0], -1, -1), {xs[0]}], dim=1)"],
    )


def _class_token_weights(layer: LayerPlan, weights, plan: ModelPlan) -> dict:
    return {"token": weights[0].reshape(1, 1, -1)}


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
    Lowering("ZeroPadding1D", _zero_padding_1d_keras, _zero_padding_1d_torch, CF),
    Lowering("Slice", _slice_keras, _slice_torch, KEEP),
    Lowering(
        "ClassToken",
        _class_token_keras,
        _class_token_torch,
        CL,
        weights=_class_token_weights,
        keras_class=CLASS_TOKEN_KERAS,
    ),
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


def _zero_padding_1d_from_keras(cfg, context) -> Mapped:
    channels_last(cfg)
    padding = cfg.get("padding", 1)
    return Mapped("ZeroPadding1D", {"padding": list(ints(padding, 2))})


def _key_item(item):
    """One item of a serialized ``GetItem`` key: a slice, an ellipsis, an integer or None."""
    if isinstance(item, Mapping):
        kind, config = item.get("class_name"), item.get("config") or {}
        if kind == "__slice__":
            return slice(config.get("start"), config.get("stop"), config.get("step"))
        if kind == "__ellipsis__":
            return Ellipsis
    return item


def _get_item_from_keras(cfg, context) -> Mapped:
    """``x[:, 2:6]``, ``x[:, 0, :]`` in a Keras 3 functional model (the ``GetItem`` operation): a Slice
    per axis that keeps less than the whole, then a Reshape that drops the axes an integer picked."""
    shape = context.shapes[0]
    if len(context.arguments) != 1 or shape is None:
        raise Unsupported("indexes a tensor in a way the catalog cannot read")
    key = context.arguments[0]
    items = [_key_item(item) for item in (key if isinstance(key, (list, tuple)) else [key])]
    rank = len(shape)
    if items.count(Ellipsis) == 1:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (rank - len(items) + 1)
    items += [slice(None)] * (rank - len(items))
    picked = [axis for axis, item in enumerate(items) if isinstance(item, int) and not isinstance(item, bool)]
    if len(items) != rank or not all(
        isinstance(item, slice) or axis in picked for axis, item in enumerate(items)
    ):
        raise Unsupported(f"indexes with {items!r}; the catalog slices ranges and single items")
    if 0 in picked:
        raise Unsupported(f"indexes the batch axis with {items[0]!r}")
    bounds = _slice_bounds(
        [slice(None) if axis in picked else item for axis, item in enumerate(items)], shape
    )
    for axis in picked:  # an axis of unknown length is checked against the model's own shapes later
        index, size = items[axis], shape[axis]
        if index < 0 and size is None:
            raise Unsupported(f"picks item {index} (from the end) of an axis of unknown length")
        if size is not None and not -size <= index < size:
            raise Unsupported(f"picks item {index} of an axis of {size}")
        index = index % size if index < 0 else index
        bounds[axis] = (index, index + 1)
    if 0 in bounds:
        raise Unsupported(f"indexes the batch axis with {items[0]!r}")
    layers = [
        Mapped("Slice", {"axis": -1 if axis == rank - 1 else axis, "start": start, "stop": stop})
        for axis, (start, stop) in sorted(bounds.items())  # the last axis as the catalog writes it
    ]
    if picked:
        kept = []  # the sizes after the slices, of the axes no item picked (-1: unknown)
        for axis in range(1, rank):
            start, stop = bounds.get(axis, (0, shape[axis]))
            if axis not in picked:
                kept.append(-1 if stop is None else stop - start)
        if kept.count(-1) > 1:
            raise Unsupported("keeps several axes of unknown length; Reshape infers one")
        layers.append(Mapped("Reshape", {"target_shape": tuple(kept)}))
    if not layers:
        return Mapped(None)  # x[:] and x[...]: the tensor itself
    first, *rest = layers
    return Mapped(first.kind, first.params, then=tuple(rest))


def _slice_bounds(items: list, shape, strided: list | None = None) -> dict[int, tuple[int, int]]:
    """{axis: (start, stop)} of the slices (step 1) that keep less than the whole axis; the slices
    with a step go to ``strided`` as (axis, start, stop, step), where it is given."""
    bounds = {}
    for axis, (item, size) in enumerate(zip(items, shape, strict=True)):
        if strided is not None and size is not None and item.step not in (None, 1) and item.step > 1:
            strided.append((axis, *item.indices(size)))
            continue
        if item.step not in (None, 1):
            raise Unsupported(f"slices with step {item.step}; the catalog keeps contiguous ranges only")
        if item == slice(None):
            continue
        if size is None:
            raise Unsupported("slices an axis of unknown length")
        start, stop, _ = item.indices(size)
        if stop <= start:
            raise Unsupported(f"slices {item.start}:{item.stop} of an axis of {size}: nothing remains")
        if (start, stop) != (0, size):
            bounds[axis] = (start, stop)
    return bounds


def _class_token_from_keras(cfg, context) -> Mapped:
    return Mapped("ClassToken")


KERAS_CLASSES: dict = {
    "ClassToken": _class_token_from_keras,
    "ZeroPadding1D": _zero_padding_1d_from_keras,
    "GetItem": _get_item_from_keras,
    "Flatten": _flatten_from_keras,
    "Reshape": _reshape_from_keras,
    "Permute": _permute_from_keras,
    "UpSampling2D": _up_sampling_from_keras,
    "ZeroPadding2D": _zero_padding_from_keras,
    "Cropping2D": _cropping_from_keras,
    "Rescaling": _rescaling_from_keras,
}


# Keras operations (not layers) that a functional model may hold and the catalog maps.
KERAS_OPERATIONS = frozenset({"GetItem", "Matmul"})


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
    """Cropping2D for a slice ``start:end`` (step 1) of the height and width of an image, given as
    {source axis: (start, end)}; a Slice per axis for any other axis."""
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
        for axis, (start, cut) in crops.items():
            params = {
                "axis": keras_axis(x, axis, len(source)),
                "start": start,
                "stop": source[axis - 1] - cut,
            }
            x = graph.add("Slice", name, [x], params, source_kind=source_kind, nonneg=x.nonneg)
        return x
    top, bottom = crops.get(2, (0, 0))
    left, right = crops.get(3, (0, 0))
    params = {"cropping": [top, bottom, left, right]}
    return graph.add("Cropping2D", name, [x], params, source_kind=source_kind, nonneg=x.nonneg)


def keras_axis(x: Tensor, axis: int, rank: int) -> int:
    """The Keras axis (batch 0) of source ``axis`` (batch 0) of a tensor of ``rank`` non-batch axes."""
    if x.form == SAME:
        return axis
    if x.form == CF:
        return -1 if axis == 1 else axis - 1
    if x.form == SQUEEZED and axis == 1:
        return -1
    raise Unsupported(f"slices axis {axis} of a tensor held in another layout ({x.form})")


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
    if isinstance(walker.value(node.args[0]), Folded):
        return _reshape_traced(walker, node, name)
    x = walker.tensor(node.args[0])
    start = walker.literal(node, 1, "start_dim", 0)
    end = walker.literal(node, 2, "end_dim", -1)
    rank = len(graph.source_shape(x)) + 1
    if start == 1 and (end + rank if end < 0 else end) == rank - 1:
        return graph.flatten(x, name, walker.source_kind(node), walker.only_dense_after(node))
    return _reshape_traced(walker, node, name)


def _torch_reshape(walker, node, name):
    """``x.view(...)``, ``x.reshape(...)``, ``x.squeeze()``, ...: a Reshape to the traced shape."""
    value = walker.value(node.args[0])
    if isinstance(value, np.ndarray) and node in walker.shapes:
        return value.reshape(
            walker.shapes[node]
        )  # NORM: a parameter shaped to broadcast (gamma.view(1, -1, 1, 1))
    return _reshape_traced(walker, node, name, only_dense=walker.only_dense_after(node))


def _reshape_traced(walker, node, name: str, only_dense: bool = False) -> Tensor | Folded:
    """The reshape of the node's first argument to its traced shape; one that moves or folds the
    batch (``view(-1, ws, ws, C)`` of windows) gives a :class:`Folded`."""
    value = walker.value(node.args[0])
    dims = list(walker.shapes.get(node) or ())
    if isinstance(value, Folded):
        return value.reshape(dims, name)
    x = walker.tensor(node.args[0])
    if folds_batch(dims, walker.graph.source_shape(x), walker.batch_size):
        return from_tensor(walker.graph, x, walker.batch_size, name, walker.source_kind(node)).reshape(
            dims, name
        )
    target = walker.out_shape(node)
    return walker.graph.reshape(x, list(target), name, walker.source_kind(node), only_dense)


def _torch_transpose(walker, node, name):
    """``x.permute(...)`` and ``x.transpose(a, b)``: a Permute (of a parameter: its value permuted)."""
    value = walker.value(node.args[0])
    if isinstance(value, np.ndarray) and node in walker.shapes:
        return np.ascontiguousarray(value.transpose(_permutation(walker, node, value.ndim)))
    x = _held_argument(walker, node.args[0])
    perm = _permutation(walker, node, len(axis_lengths(walker.graph, x)))
    return transpose(walker.graph, x, perm, name, walker.source_kind(node), walker.batch_size)


def _permutation(walker, node, rank: int) -> list[int]:
    """The axes of ``permute(*dims)`` / ``permute(dims)``, or of ``transpose(a, b)``, batch included."""
    method = node.target if isinstance(node.target, str) else node.target.__name__
    if method == "permute":
        dims = node.args[1:] if len(node.args) > 2 else walker.literal(node, 1, "dims")
        return [int(walker.value(d)) % rank for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    first, second = (int(walker.literal(node, i, key)) % rank for i, key in ((1, "dim0"), (2, "dim1")))
    perm = list(range(rank))
    perm[first], perm[second] = perm[second], perm[first]
    return perm


def _torch_zero_pad(walker, node, module, name):
    left, right, top, bottom = (int(p) for p in module.padding)
    x = walker.graph.to_cf(walker.tensor(node.args[0]), name)
    params = {"padding": [top, bottom, left, right]}
    return walker.graph.add("ZeroPadding2D", name, [x], params, source_kind="ZeroPad2d", nonneg=x.nonneg)


def _torch_pad_1d(walker, node, module, name):
    """``nn.ZeroPad1d`` and ``nn.ConstantPad1d`` with zeros: ZeroPadding1D of a (N, C, L) sequence."""
    if float(getattr(module, "value", 0.0)) != 0.0:
        raise Unsupported(f"value={module.value}: the catalog pads with zeros only")
    x = walker.graph.to_cf(walker.tensor(node.args[0]), name)
    params = {"padding": [int(p) for p in module.padding]}
    source_kind = type(module).__name__
    return walker.graph.add("ZeroPadding1D", name, [x], params, source_kind=source_kind, nonneg=x.nonneg)


def channels_last_padding(
    graph, x: Tensor, pads: list[tuple[int, int]], name: str, kind: str
) -> Tensor | None:
    """Zero padding of a tensor held as the source has it, (N, steps, C) or (N, H, W, C), on its
    middle axes (Swin pads its channels-last image to whole windows): ZeroPadding1D or 2D as it is.
    ``pads``: (before, after) per source axis, the batch's first. None for any other padding."""
    rank = len(pads)
    padded = {axis for axis, pair in enumerate(pads) if pair != (0, 0)}
    if x.form != SAME or rank not in (3, 4) or not padded or not padded <= set(range(1, rank - 1)):
        return None
    padding = [side for pair in pads[1 : rank - 1] for side in pair]
    layer = "ZeroPadding1D" if rank == 3 else "ZeroPadding2D"
    return graph.add(layer, name, [x], {"padding": padding}, source_kind=kind, nonneg=x.nonneg)


def _torch_pad(walker, node, name):
    """``F.pad(x, pads)`` with zeros (ZeroPadding2D, or folded into a convolution that follows) or
    with ``-inf`` (folded into a max pooling that follows, how the emission writes 'same')."""
    graph = walker.graph
    x = walker.tensor(node.args[0])
    pads = [int(p) for p in walker.literal(node, 1, "pad")]
    mode = walker.literal(node, 2, "mode", "constant")
    value = walker.literal(node, 3, "value", None)
    if mode != "constant" or value not in (None, 0, 0.0, float("-inf")):
        raise Unsupported(f"mode={mode!r}, value={value!r}: the catalog pads with zeros only")
    value = float(value or 0)
    if not any(pads):  # timm pads to whole windows, by nothing where they fit
        return x
    full = len(graph.source_shape(x)) + 1
    if value == 0 and min(pads) >= 0 and len(pads) % 2 == 0 and len(pads) // 2 < full:
        pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(len(pads) // 2)]  # last axis first
        per_source_axis = [(0, 0)] * (full - len(pairs)) + pairs[::-1]
        padded = channels_last_padding(graph, x, per_source_axis, name, "F.pad")
        if padded is not None:
            return padded
    x = graph.to_cf(x, name)
    rank = len(graph.keras_shape(x)) - 1
    per_axis = None
    if len(pads) == 2 * rank and min(pads) >= 0:  # F.pad lists the last axis first
        per_axis = tuple((pads[2 * i], pads[2 * i + 1]) for i in reversed(range(rank)))

    def create() -> Tensor:
        if value != 0:
            raise Unsupported(f"pads with {value}; only a max pooling that follows can take that padding")
        if min(pads) < 0 or len(pads) > 2 * rank or rank not in (1, 2):
            raise Unsupported(f"pads {pads}: the catalog pads the steps of a sequence or an image's sides")
        if rank == 1:
            params = {"padding": pads}
            return graph.add("ZeroPadding1D", name, [x], params, source_kind="F.pad", nonneg=x.nonneg)
        left, right, top, bottom = [*pads, 0, 0][:4]
        params = {"padding": [top, bottom, left, right]}
        return graph.add("ZeroPadding2D", name, [x], params, source_kind="F.pad", nonneg=x.nonneg)

    return Padded(x, per_axis, value, create)


def roll_layers(graph, x: Tensor, shifts, dims, name: str, kind: str) -> Tensor:
    """``torch.roll(x, shifts, dims)`` (Swin's cyclic shift): per axis, two Slices joined the
    other way round."""
    source = graph.source_shape(x)
    for axis, shift in zip(dims, shifts, strict=True):
        axis = axis % (len(source) + 1)
        if axis == 0:
            raise Unsupported("rolls the batch axis")
        length = source[axis - 1]
        cut = (-int(shift)) % length  # out[i] = x[(i - shift) mod length]: x[cut:] comes first
        if cut:
            parts = [crop_layer(graph, x, name, kind, {axis: bounds}) for bounds in ((cut, length), (0, cut))]
            x = graph.concatenate(parts, axis, name, kind)
    return x


def _torch_cast(walker, node, name):
    """``x.to(...)``, ``x.type_as(y)``, ``x.float()`` of a float32 tensor to float32 (or only to a
    device): the tensor itself; the catalog computes in float32, so any other type is refused."""
    if node.target == "type_as":
        other = node.args[1].meta.get("tensor_meta") if hasattr(node.args[1], "meta") else None
        wanted = getattr(other, "dtype", None)
    elif node.target == "float":
        wanted = walker.torch.float32
    else:
        options = [walker.value(arg) for arg in (*node.args[1:], *node.kwargs.values())]
        options = [option.value if isinstance(option, Aux) else option for option in options]
        wanted = next((option for option in options if isinstance(option, walker.torch.dtype)), None)
    if wanted not in (None, walker.torch.float32):
        raise Unsupported(f"casts to {wanted}; the catalog computes in float32")
    return _held_argument(walker, node.args[0])


def _torch_stack(walker, node, name):
    """``torch.stack(tensors, dim)``: each with a unit axis at ``dim`` (a Reshape), joined there."""
    items = [walker.graph.to_same(walker.tensor(item), name) for item in walker.literal(node, 0, "tensors")]
    dim = int(walker.literal(node, 1, "dim", 0))
    rank = len(walker.graph.source_shape(items[0])) + 2
    dim = dim + rank if dim < 0 else dim
    if dim == 0:
        raise Unsupported("stacks along the batch axis")
    kind = walker.source_kind(node)
    expanded = []
    for item in items:
        shape = list(walker.graph.source_shape(item))
        shape.insert(dim - 1, 1)
        expanded.append(walker.graph.reshape(item, shape, name, kind, False))
    return expanded[0] if len(expanded) == 1 else walker.graph.concatenate(expanded, dim, name, kind)


@on_last_axes(0)
def _torch_negative(walker, node, name):
    """``-x``: of a tensor, a Rescaling by -1 (exact); of a size, the size negated."""
    value = resolve(walker.value(node.args[0]))
    if isinstance(value, Tensor):
        return rescaling_layer(walker.graph, value, name, walker.source_kind(node), "Multiply", -1.0, True)
    return torch_shape_arithmetic(operator.neg)(walker, node, name)


def _torch_roll(walker, node, name):
    """``torch.roll(x, shifts, dims)`` and ``x.roll(...)``; without dims, torch rolls the flattened
    tensor, which the catalog does not."""
    x = walker.tensor(node.args[0])
    shifts, dims = walker.literal(node, 1, "shifts"), walker.literal(node, 2, "dims", None)
    if dims is None or dims == ():
        raise Unsupported("rolls the flattened tensor (no dims); the catalog rolls along given axes")
    shifts = list(shifts) if isinstance(shifts, (list, tuple)) else [shifts]
    dims = list(dims) if isinstance(dims, (list, tuple)) else [dims]
    if len(shifts) != len(dims):
        raise Unsupported(f"shifts {shifts} and dims {dims} differ in length")
    return roll_layers(walker.graph, x, shifts, dims, name, walker.source_kind(node))


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
    return _getitem(walker, node, walker.value(node.args[0]), walker.value(node.args[1]), name)


def _getitem(walker, node, container, index, name: str):
    if isinstance(container, Padded):
        container = container.resolve()
    if isinstance(container, Multi):
        try:
            part = container.index(index)
        except Unsupported:
            if not container.path:
                raise
            return _getitem(walker, node, container.resolve(), index, name)  # x.unbind(1)[-1][:, None]
        held = getattr(part.owner, "x", None)
        return part.resolve() if isinstance(held, Folded) else part  # the items of a held tensor now
    if isinstance(container, tuple) and isinstance(index, int):  # (output, None) of an attention
        return container[index]
    if isinstance(container, Aux):
        try:
            return Aux(container.value[index])
        except Exception:
            raise Unsupported(f"indexes {container.value!r} with {index!r}") from None
    if isinstance(container, Tensor):
        return _index(walker, node, container, index, name)
    if isinstance(container, Folded):  # qkv[0], heads[:, 1]
        items = index if isinstance(index, tuple) else (index,)
        picks = [at for at, item in enumerate(items) if item != slice(None)]
        if len(picks) == 1 and isinstance(items[picks[0]], int) and Ellipsis not in items:
            return container.item(picks[0], items[picks[0]], name)
        raise Unsupported(f"indexes {container!r} with {index!r}; the catalog takes one item of it")
    if isinstance(container, np.ndarray) and not isinstance(resolve(index), Tensor):
        return _gathered_parameter(walker, node, container, index)
    raise Unsupported(f"indexes {describe(container)}")


GATHERED_TABLE_NOTE = (
    "A parameter read at a table of indices (a relative position bias) becomes a full weight: "
    "inference is unchanged, but in training its repeated entries learn separately."
)


def _gathered_parameter(walker, node, table: np.ndarray, index) -> np.ndarray:
    """``table[index]`` of a parameter or buffer by constants (a relative position bias table read at
    a buffer of indices): evaluated now; the weight it becomes holds each entry where it is used."""
    index = index.value if isinstance(index, Aux) else index
    try:
        value = table[index]
    except (IndexError, TypeError, ValueError):
        raise Unsupported(f"indexes {describe(table)} with {describe(index)}") from None
    if is_learned(walker, node.args[0]) and isinstance(index, np.ndarray):
        walker.builder.note(GATHERED_TABLE_NOTE)
    return value


def _index(walker, node, x: Tensor, index, name: str) -> Tensor:
    """``x[:, 0]``, ``x[..., 2:6]``, ``x[:, :, a:b, c:d]``: Slice or Cropping2D layers (step 1), then a
    Reshape that drops the axes an integer selected and adds those ``None`` adds (``x[:, None]``)."""
    source_kind = walker.source_kind(node)
    rank = len(walker.graph.source_shape(x)) + 1
    items = list(index) if isinstance(index, tuple) else [index]
    added = None in items
    if added and (items[0] is None or Ellipsis in items):
        raise Unsupported(f"indexes a tensor with {index!r}: a new axis before the batch, or with ...")
    items = [item for item in items if item is not None]
    if items.count(Ellipsis) == 1:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (rank - len(items) + 1)
    if len(items) > rank or not all(
        isinstance(item, slice) or (isinstance(item, int) and not isinstance(item, bool)) for item in items
    ):
        raise Unsupported(f"indexes a tensor with {index!r}; the catalog slices ranges and single items")
    items += [slice(None)] * (rank - len(items))
    if items[0] != slice(None):
        raise Unsupported("slices the batch axis")
    shape = (None, *walker.graph.source_shape(x))
    picks = [slice(item, item + 1 or None) if isinstance(item, int) else item for item in items]
    strided: list = []
    bounds = _slice_bounds(picks, shape, strided)
    x = crop_layer(walker.graph, x, name, source_kind, bounds)
    for axis, start, stop, step in strided:  # Swin's patch merging: x[:, 0::2, 1::2]
        x = every_step(walker.graph, x, axis, start, stop, step, name, source_kind)
    if added or any(isinstance(item, int) for item in items):
        x = walker.graph.reshape(x, list(walker.out_shape(node)), name, source_kind, False)
    return x


class _Parts:
    """``x.chunk(n, dim)``, ``torch.split(x, sizes, dim)`` (pieces: a Slice each) and ``x.unbind(dim)``
    (items: a one-long Slice and a Reshape without the axis), each made when it is used."""

    def __init__(self, walker, node, x: Tensor | Folded, dim: int, sizes: list[int], name: str, items: bool):
        self.graph, self.x, self.dim, self.sizes, self.name = walker.graph, x, dim, sizes, name
        self.items, self.source_kind = items, walker.source_kind(node)
        self.made: dict[int, Tensor | Folded] = {}

    def resolve(self, path: tuple) -> Tensor | Folded:
        if len(path) != 1 or not isinstance(path[0], int):
            raise Unsupported(f"uses {path!r} of a split; the catalog takes its parts one by one")
        index = path[0] % len(self.sizes)
        if index not in self.made:
            self.made[index] = self._make(index)
        return self.made[index]

    def _make(self, index: int) -> Tensor | Folded:
        x, dim, kind = self.x, self.dim, self.source_kind
        if self.items:
            name = f"{self.name}_{index}"
            if isinstance(x, Folded):
                return x.item(dim, index, name)
            return item_layer(self.graph, x, dim, index, name, kind)
        start = sum(self.sizes[:index])
        stop = start + self.sizes[index]
        if isinstance(x, Folded):
            return x.piece(dim, start, stop, self.name)
        return crop_layer(self.graph, x, self.name, kind, {dim: (start, stop)})


def _held_argument(walker, arg) -> Tensor | Folded:
    """The computed tensor an fx argument is, held (:class:`Folded`) or ordinary."""
    value = walker.value(arg)
    return value if isinstance(value, Folded) else walker.tensor(arg)


def _held_input(walker, inputs: list) -> Tensor | Folded:
    """An ONNX node's first input, a computed tensor, held (:class:`Folded`) or ordinary."""
    return inputs[0] if isinstance(inputs[0], Folded) else walker.data(inputs)


def _torch_split(walker, node, name):
    """``torch.split(x, size_or_sizes, dim)``, ``x.split(...)``, ``x.chunk(n, dim)``: Slice pieces."""
    x = _held_argument(walker, node.args[0])
    full = axis_lengths(walker.graph, x)
    dim = int(walker.literal(node, 2, "dim", 0)) % len(full)
    length = full[dim]
    if length is None:
        raise Unsupported("splits the batch axis")
    method = node.target if isinstance(node.target, str) else node.target.__name__
    if method == "chunk":
        count = int(walker.literal(node, 1, "chunks"))
        if count < 1:
            raise Unsupported(f"chunks={count}")
        size = -(-length // count)  # torch.chunk: pieces of ceil(length / chunks)
    else:
        size = walker.literal(node, 1, "split_size_or_sections")
        if size is None:
            size = walker.literal(node, 1, "split_size")
    if isinstance(size, (list, tuple)):
        sizes = [int(item) for item in size]
    elif int(size) < 1:
        raise Unsupported(f"splits into pieces of {size}")
    else:
        sizes = [min(int(size), length - start) for start in range(0, length, int(size))]
    if sum(sizes) != length or min(sizes) < 1:
        raise Unsupported(f"splits an axis of {length} into {sizes}")
    return Multi(_Parts(walker, node, x, dim, sizes, name, items=False))


def transpose(graph, x, perm, name: str, source_kind: str, batch: int | None = None) -> Tensor | Folded:
    """The source's permutation; one that moves the batch axis gives a :class:`Folded`."""
    perm = tuple(int(axis) for axis in perm)
    if isinstance(x, Folded):
        return x.transpose(perm, name)
    if perm[0] != 0:
        return from_tensor(graph, x, batch, name, source_kind).transpose(perm, name)
    return graph.transpose(x, perm, name, source_kind)


def _torch_unbind(walker, node, name):
    """``x.unbind(dim)`` (``q, k, v = qkv.unbind(2)``; timm's ``qkv.unbind(0)`` after a permutation
    that moved the batch): its items, one by one."""
    x = _held_argument(walker, node.args[0])
    full = axis_lengths(walker.graph, x)
    dim = int(walker.literal(node, 1, "dim", 0)) % len(full)
    if full[dim] is None:
        raise Unsupported("unbinds the batch axis")
    return Multi(_Parts(walker, node, x, dim, [1] * full[dim], name, items=True))


def torch_shape_arithmetic(function):
    """``h // p``, ``c % g``, ``h == size``: arithmetic on the sizes that tracing left in the graph."""

    def handler(walker, node, name):
        values = [walker.value(arg) for arg in node.args]
        values = [value.value if isinstance(value, Aux) else value for value in values]
        if any(isinstance(value, np.ndarray) for value in values) and all(
            isinstance(value, (np.ndarray, int, float, bool)) for value in values
        ):  # constants the model computes (10000 ** grid): computed now, by torch itself
            torch = walker.torch
            operands = [torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for v in values]
            return function(*operands).numpy()
        if not all(isinstance(value, (int, float, bool)) for value in values):
            raise Unsupported(
                f"computes with {', '.join(describe(v) for v in values)}: no catalog equivalent for "
                "tensors (only the sizes that tracing leaves fold into constants)"
            )
        try:
            result = function(*values)
            return Aux(TracedBatch(result) if holds_batch(values) and isinstance(result, int) else result)
        except ArithmeticError as error:
            raise Unsupported(f"computes {values}: {error}") from None

    return handler


def _torch_drop(walker, node, name):
    """``torch._assert(...)``: a check that tracing with the given input shapes already passed; fx's
    ``_assert_is_none``: that an argument traced as its default None is None."""
    return Aux(None)


def _torch_dim(walker, node, name):
    return Aux(len(walker.graph.source_shape(walker.tensor(node.args[0]))) + 1)


def _torch_getattr(walker, node, name):
    """``x.shape`` of a tensor: its traced shape, a non-tensor value."""
    target = walker.value(node.args[0])
    attribute = node.args[1]
    if isinstance(target, (Tensor, Padded, Folded)) and attribute == "shape":
        return Aux(traced_shape(walker.shapes.get(node.args[0])))
    if isinstance(target, (Tensor, Padded, Folded)) and attribute == "ndim":
        return Aux(len(walker.shapes.get(node.args[0])))
    if attribute == "device" and isinstance(target, (Tensor, Padded, Folded, np.ndarray)):
        return Aux(walker.torch.device("cpu"))  # where constants are made to match it: the import's
    if attribute == "dtype" and isinstance(target, np.ndarray):
        return Aux(walker.torch.from_numpy(target[:0].copy()).dtype)
    if attribute == "dtype" and isinstance(target, (Tensor, Padded, Folded)):
        return Aux(node.args[0].meta["tensor_meta"].dtype)
    if isinstance(target, (Tensor, Folded)) and attribute == "mT":
        rank = len(walker.shapes.get(node.args[0]))
        perm = [*range(rank - 2), rank - 1, rank - 2]
        return transpose(walker.graph, target, perm, name, "Tensor.mT", walker.batch_size)
    raise Unsupported(f"reads the attribute .{attribute}")


def _torch_size(walker, node, name):
    shape = walker.shapes.get(node.args[0])
    if shape is None:
        raise Unsupported("the size of a value that is not a tensor")
    dim = walker.literal(node, 1, "dim", None)
    shape = traced_shape(shape)
    return Aux(shape if dim is None else shape[dim])


class BatchToken:
    """``self.class_token.expand(n, -1, -1)``: a learned (1, 1, F) token repeated over the batch."""

    def __init__(self, token: np.ndarray) -> None:
        self.token = token
        self.uses = 0

    def weight(self, graph) -> np.ndarray:
        """The token, as a layer's weight; used by a second layer, it becomes a second weight."""
        self.uses += 1
        if self.uses == 2:
            graph.builder.note(SHARED_TOKEN_NOTE)
        return self.token

    def __repr__(self) -> str:
        return f"a parameter of shape {self.token.shape} repeated over the batch"


SHARED_TOKEN_NOTE = (
    "A class token used by several layers (CaiT's, added and joined) becomes one weight per layer: "
    "inference is unchanged, but in training the copies learn apart."
)


def _torch_expand(walker, node, name):
    """``x.expand(n, -1, -1)`` of a (1, 1, F) parameter: a class token for the ``torch.cat`` that follows."""
    value = walker.value(node.args[0])
    sizes = walker.literal(node, 1, "size")
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes, *walker.value(node.args[2:])]
    sizes = [size.value if isinstance(size, Aux) else size for size in sizes]
    if not (isinstance(value, np.ndarray) and value.ndim == 3 and value.shape[:2] == (1, 1)):
        raise Unsupported(f"expands {describe(value)}; the catalog repeats a (1, 1, F) class token only")
    if sizes[1:] not in ([-1, -1], [1, value.shape[2]]) or walker.out_shape(node) != value.shape[1:]:
        raise Unsupported(f"expands to {sizes}; the catalog repeats a class token over the batch only")
    return BatchToken(value)


def class_token_cat(walker, items: list, dim, name: str) -> Tensor | None:
    """``torch.cat([token, x], dim=1)`` of a :class:`BatchToken` and a (N, L, F) sequence: a ClassToken."""
    if not any(isinstance(item, BatchToken) for item in items):
        return None
    if len(items) != 2 or not isinstance(items[0], BatchToken) or dim not in (1, -2):
        raise Unsupported("joins a class token other than before a sequence (torch.cat([token, x], dim=1))")
    x = resolve(items[1])
    if not isinstance(x, Tensor):
        raise Unsupported(f"puts a class token before {describe(x)}")
    return class_token_layer(walker.graph, items[0], x, name, "torch.cat")


def class_token_layer(graph, token: BatchToken, x: Tensor, name: str, source_kind: str) -> Tensor:
    x = graph.to_same(x, name)
    if graph.source_shape(x)[-1:] != token.token.shape[-1:] or len(graph.source_shape(x)) != 2:
        raise Unsupported(f"puts a class token of {token.token.shape[-1]} features before {describe(x)}")
    weights = [token.weight(graph).reshape(-1).astype(np.float32)]
    return graph.add("ClassToken", name, [x], {}, weights, source_kind=source_kind)


def _torch_shape_as_tensor(walker, node, name):
    return Aux(walker.shapes.get(node.args[0]))


def _torch_narrow(walker, node, name):
    """``x.narrow(dim, start, length)``: a Slice of one axis."""
    x = walker.tensor(node.args[0])
    rank = len(walker.graph.source_shape(x)) + 1
    dim = int(walker.literal(node, 1, "dim")) % rank
    start, length = int(walker.literal(node, 2, "start")), int(walker.literal(node, 3, "length"))
    if dim == 0:
        raise Unsupported("narrows the batch axis")
    start = start % walker.graph.source_shape(x)[dim - 1]
    return crop_layer(walker.graph, x, name, walker.source_kind(node), {dim: (start, start + length)})


def _torch_passthrough(walker, node, name):
    value = walker.value(node.args[0])
    if isinstance(value, (np.ndarray, Folded)):  # a parameter's .contiguous(), or a held tensor's
        return value
    return walker.tensor(node.args[0])


def rescale_by(
    walker, node, name: str, operation: str, x: Tensor, number: float, tensor_first: bool
) -> Tensor:
    """``x * 2``, ``x - 1``, ``1 - x``, ``x / 255`` in PyTorch (``operation`` is Add, Subtract, ...)."""
    return rescaling_layer(walker.graph, x, name, walker.source_kind(node), operation, number, tensor_first)


TORCH_MODULES: dict = {
    "Flatten": _torch_flatten_module,
    "ZeroPad2d": _torch_zero_pad,
    "ZeroPad1d": _torch_pad_1d,
    "ConstantPad1d": _torch_pad_1d,
    "Upsample": _torch_upsample,
}
TORCH_FUNCTIONS: dict = {
    "operator.getitem": _torch_getitem,
    "builtins.getattr": _torch_getattr,
    "torch.flatten": _torch_flatten,
    "torch.nn.functional.pad": _torch_pad,
    "torch.nn.functional.interpolate": _torch_interpolate,
    "torch.permute": _torch_transpose,
    "torch.transpose": _torch_transpose,
    "torch.swapaxes": _torch_transpose,
    "torch.swapdims": _torch_transpose,
    "torch.split": _torch_split,
    "torch.chunk": _torch_split,
    "torch.narrow": _torch_narrow,
    "torch.unbind": _torch_unbind,
    "operator.floordiv": torch_shape_arithmetic(operator.floordiv),
    "operator.mod": torch_shape_arithmetic(operator.mod),
    "operator.pow": torch_shape_arithmetic(operator.pow),
    "operator.ne": torch_shape_arithmetic(operator.ne),
    "operator.lt": torch_shape_arithmetic(operator.lt),
    "operator.gt": torch_shape_arithmetic(operator.gt),
    "operator.and_": torch_shape_arithmetic(operator.and_),
    "operator.not_": torch_shape_arithmetic(operator.not_),
    "operator.neg": _torch_negative,
    "torch.stack": _torch_stack,
    "torch.neg": _torch_negative,
    "torch.roll": _torch_roll,
    "torch._assert": _torch_drop,
    "torch._check": _torch_drop,
    "torch.fx._symbolic_trace._assert_is_none": _torch_drop,
    "torch._shape_as_tensor": _torch_shape_as_tensor,
}
TORCH_METHODS: dict = {
    "view": _torch_reshape,
    "view_as": _torch_reshape,
    "reshape_as": _torch_reshape,
    "reshape": _torch_reshape,
    "squeeze": _torch_reshape,
    "unsqueeze": _torch_reshape,
    "flatten": _torch_flatten,
    "size": _torch_size,
    "contiguous": _torch_passthrough,
    "permute": _torch_transpose,
    "transpose": _torch_transpose,
    "swapaxes": _torch_transpose,
    "swapdims": _torch_transpose,
    "split": _torch_split,
    "chunk": _torch_split,
    "narrow": _torch_narrow,
    "unbind": _torch_unbind,
    "roll": _torch_roll,
    "neg": _torch_negative,
    "to": _torch_cast,
    "type_as": _torch_cast,
    "float": _torch_cast,
    "dim": _torch_dim,
    "expand": _torch_expand,
}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


def _flatten_from_onnx(walker, node, inputs, name, index):
    x = _held_input(walker, inputs)
    rank = len(axis_lengths(walker.graph, x))
    axis = int(walker.attrs(node).get("axis", 1)) % rank
    if isinstance(x, Folded) or axis != 1:  # LeViT's (N, L, C) -> (N * L, C): a fold
        held = (
            x
            if isinstance(x, Folded)
            else from_tensor(walker.graph, x, walker.batch_size, name, node.op_type)
        )
        return held.flatten(axis, name)
    return walker.graph.flatten(x, name, node.op_type, walker.only_dense_after(node.output[0]))


def _reshape_from_onnx(walker, node, inputs, name, index):
    dims = walker.dims(inputs, 1, "shape")
    allow_zero = int(walker.attrs(node).get("allowzero", 0))
    if allow_zero and 0 in dims:
        raise Unsupported("allowzero=1 with a size of 0: an empty tensor")
    if isinstance(inputs[0], Folded):
        return inputs[0].reshape(dims, name)
    x = walker.data(inputs)
    source = walker.graph.source_shape(x)
    if folds_batch(dims, source, walker.batch_size):
        # (N * windows, area, C), (L, N * heads, d): the batch folded into another axis
        return from_tensor(walker.graph, x, walker.batch_size, name, node.op_type).reshape(dims, name)
    full = (None, *source)
    resolved = []
    for position, dim in enumerate(dims):
        if dim == 0:
            dim = full[position] if position < len(full) else 0
        resolved.append(dim)
    if resolved and walker.batch_size is not None and resolved[0] == walker.batch_size:
        # A file exported with a fixed batch writes that batch size into its reshapes' targets
        # (ShuffleNet's channel shuffle): axis 0 is the batch, as it is of the file's inputs.
        resolved[0] = None
    target = resolve_target(resolved, source)
    return walker.graph.reshape(x, target, name, node.op_type, walker.only_dense_after(node.output[0]))


def _squeeze_from_onnx(walker, node, inputs, name, index):
    """Squeeze and Unsqueeze: a Reshape that drops or adds unit axes (before the batch, a fold)."""
    value = _held_input(walker, inputs)
    full = axis_lengths(walker.graph, value)
    rank = len(full)
    axes = walker.attrs(node).get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = walker.constant(inputs, 1, "axes").tolist()
    squeeze = node.op_type == "Squeeze"
    if isinstance(value, Folded):
        if squeeze:
            ones = [i for i, length in enumerate(value.lengths()) if length == 1]
            return value.squeezed(positive_axes(ones if axes is None else axes, rank), name)
        return value.unsqueezed(positive_axes(axes or [], rank + len(axes or [])), name)
    if squeeze:
        axes = positive_axes(axes if axes is not None else [i for i, d in enumerate(full) if d == 1], rank)
        if 0 in axes:
            raise Unsupported("squeezes the batch axis")
        target = [dim for position, dim in enumerate(full) if position not in axes][1:]
    else:
        axes = positive_axes(axes or [], rank + len(axes or []))
        if 0 in axes:  # a unit axis before the batch (MultiheadAttention's packed q, k, v)
            folded = from_tensor(walker.graph, value, walker.batch_size, name, node.op_type)
            return folded.unsqueezed(axes, name)
        target = list(full)
        for axis in axes:
            target.insert(axis, 1)
        target = target[1:]
    return walker.graph.reshape(value, target, name, node.op_type, walker.only_dense_after(node.output[0]))


ONNX_ARITHMETIC = {"Mul": "Multiply", "Add": "Add", "Sub": "Subtract", "Div": "Divide"}


def rescaling_from_onnx(walker, node, inputs, name: str, constant: float) -> Tensor:
    """A Mul, Add, Sub or Div of a tensor and a scalar constant (``merging`` hands it over)."""
    x = inputs[0] if isinstance(inputs[0], Tensor) else inputs[1]
    operation = ONNX_ARITHMETIC.get(node.op_type, node.op_type)
    tensor_first = isinstance(inputs[0], Tensor)
    return rescaling_layer(walker.graph, x, name, node.op_type, operation, constant, tensor_first)


def _transpose_from_onnx(walker, node, inputs, name, index):
    x = _held_input(walker, inputs)
    rank = len(axis_lengths(walker.graph, x))
    perm = list(walker.attrs(node).get("perm", list(reversed(range(rank)))))
    return transpose(walker.graph, x, perm, name, node.op_type, walker.batch_size)


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
    rank = len(pads) // 2
    begins, ends = pads[:rank], pads[rank:]
    if min(pads) < 0:
        raise Unsupported(f"negative pads {pads} (cropping)")
    if not any(pads):
        return x
    padded = channels_last_padding(walker.graph, x, list(zip(begins, ends, strict=True)), name, "Pad")
    if padded is not None:
        return padded
    x = walker.graph.to_cf(x, name)
    if rank not in (3, 4) or any(begins[:2]) or any(ends[:2]):
        raise Unsupported(f"pads {pads}: the catalog pads the steps of a sequence or an image's sides")
    padding = [side for axis in range(2, rank) for side in (begins[axis], ends[axis])]
    kind = "ZeroPadding1D" if rank == 3 else "ZeroPadding2D"
    return walker.graph.add(kind, name, [x], {"padding": padding}, source_kind="Pad", nonneg=x.nonneg)


def _slice_from_onnx(walker, node, inputs, name, index):
    x = _held_input(walker, inputs)
    rank = len(axis_lengths(walker.graph, x))
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
    if isinstance(x, Folded):  # q, k, v sliced from heads whose windows are folded in the batch
        return _slice_folded(x, axes, starts, ends, steps, name)
    bounds, strided = {}, []
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        axis = axis + rank if axis < 0 else axis
        if step == 1:
            bounds[axis] = (int(start), int(end))
        elif step > 1 and 0 < axis < rank:
            length = walker.graph.source_shape(x)[axis - 1]
            strided.append((axis, *slice(int(start), int(end), int(step)).indices(length)))
        else:
            raise Unsupported(
                f"slices axis {axis} with step {step}; the catalog steps forward, not on the batch"
            )
    x = crop_layer(walker.graph, x, name, node.op_type, bounds)
    for axis, start, stop, step in strided:
        x = every_step(walker.graph, x, axis, start, stop, step, name, node.op_type)
    return x


def _slice_folded(x: Folded, axes, starts, ends, steps, name: str) -> Tensor | Folded:
    """An ONNX Slice (step 1) of a :class:`Folded`, along axes that do not hold the batch."""
    lengths = x.lengths()
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        axis = int(axis) % len(lengths)
        if step != 1 or lengths[axis] is None:
            raise Unsupported(
                f"slices axis {axis} of {x!r} with step {step}; the catalog slices its other axes"
            )
        start, stop, _ = slice(int(start), int(end)).indices(lengths[axis])
        if stop <= start:
            raise Unsupported(f"slices {start}:{stop} of an axis of {lengths[axis]}: nothing remains")
        if (start, stop) != (0, lengths[axis]):
            x = x.piece(axis, start, stop, name)
            if not isinstance(x, Folded):
                break
    return x


def every_step(graph, x: Tensor, axis: int, start: int, stop: int, step: int, name: str, kind: str) -> Tensor:
    """``x[..., start:stop:step, ...]`` on source ``axis`` (Swin's patch merging takes every second
    row): a Slice of the whole steps, a Reshape that splits each step off, the item ``start % step``
    of every step, and a Slice of the steps from ``start // step``."""
    length = graph.source_shape(x)[axis - 1]
    count = max(0, -(-(stop - start) // step))
    rows, first = length // step, start // step
    if count == 0 or first + count > rows:
        raise Unsupported(
            f"slices {start}:{stop}:{step} of an axis of {length}; the catalog takes every {step}th item "
            "within the whole steps of the axis"
        )
    x = crop_layer(graph, x, name, kind, {axis: (0, rows * step)})
    shape = list(graph.source_shape(x))
    shape[axis - 1 : axis] = [rows, step]
    x = graph.reshape(x, shape, f"{name}_steps", kind, False)
    x = item_layer(graph, x, axis + 1, start % step, name, kind)
    return crop_layer(graph, x, name, kind, {axis: (first, first + count)})


def _split_from_onnx(walker, node, inputs, name, index):
    """Split into pieces along one axis: a Slice per output (sizes from the input, the attribute, or
    ``num_outputs`` pieces of ceil(length / count) as torch.chunk makes them)."""
    x = _held_input(walker, inputs)
    full = axis_lengths(walker.graph, x)  # None: an axis that holds the batch
    attrs = walker.attrs(node)
    axis = int(attrs.get("axis", 0)) % len(full)
    length = full[axis]
    if length is None:
        raise Unsupported("splits the batch axis")
    sizes = walker.constant(inputs, 1, "split") if len(inputs) > 1 else None
    sizes = sizes.tolist() if sizes is not None else attrs.get("split")
    if sizes is None:
        count = int(attrs.get("num_outputs", len(node.output)))
        if not 1 <= count <= length:
            raise Unsupported(f"splits an axis of {length} into {count} pieces")
        size = -(-length // count)
        sizes = [min(size, length - start) for start in range(0, length, size)]
    sizes = [int(size) for size in sizes]
    if sum(sizes) != length or len(sizes) != len(node.output) or min(sizes) < 1:
        raise Unsupported(f"splits an axis of {length} into {sizes}")
    if isinstance(x, Folded):
        return x.pieces(axis, sizes, name)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [
        crop_layer(walker.graph, x, name, node.op_type, {axis: (start, start + size)})
        for start, size in zip(starts, sizes, strict=True)
    ]


def gather_item_from_onnx(walker, node, inputs, name: str) -> Tensor:
    """Gather of one constant index from a computed tensor (``x[:, 0]``): a Slice, and a Reshape
    that drops the axis when the index is a scalar."""
    value, indices = inputs[0], inputs[1]
    if isinstance(value, Folded):  # qkv[0] after a permutation that moved the batch
        axis = int(walker.attrs(node).get("axis", 0)) % len(value.groups)
        if not isinstance(indices, np.ndarray) or indices.ndim:
            raise Unsupported(f"gathers {describe(indices)} on axis {axis} of {value!r}")
        return value.item(axis, int(indices), name)
    x = walker.data(inputs)
    if not isinstance(indices, np.ndarray) or indices.size != 1:
        raise Unsupported("gathers computed or several indices; the catalog slices one constant index")
    source = walker.graph.source_shape(x)
    rank = len(source) + 1
    axis = int(walker.attrs(node).get("axis", 0)) % rank
    if axis == 0:
        raise Unsupported("gathers along the batch axis")
    item = int(indices.reshape(())) % source[axis - 1]
    if indices.ndim:
        return crop_layer(walker.graph, x, name, node.op_type, {axis: (item, item + 1)})
    only_dense = walker.only_dense_after(node.output[0])
    return item_layer(walker.graph, x, axis, item, name, node.op_type, only_dense)


def item_layer(
    graph, x: Tensor, axis: int, item: int, name: str, source_kind: str, only_dense: bool = False
) -> Tensor:
    """``x[..., item, ...]`` on source ``axis``: a one-long Slice, then a Reshape without that axis."""
    source = graph.source_shape(x)
    x = crop_layer(graph, x, name, source_kind, {axis: (item, item + 1)})
    target = [dim for position, dim in enumerate(source, start=1) if position != axis]
    return graph.reshape(x, target, name, source_kind, only_dense)


def _expand_from_onnx(walker, node, inputs, name, index):
    """Expand of a constant: by known sizes, the broadcast constant; over the batch, a (1, 1, F) class
    token for the Concat that follows (``class_token.expand(n, -1, -1)``)."""
    value, sizes = inputs[0], walker.dims(inputs, 1, "shape")
    if not isinstance(value, np.ndarray) or sizes is None:
        raise Unsupported("expands a computed tensor; the catalog repeats a (1, 1, F) class token only")
    if sizes and walker.batch_size is not None and sizes[0] == walker.batch_size and value.ndim == 3:
        sizes = [None, *sizes[1:]]  # a file exported with a fixed batch: its first size is the batch
    if not any(symbolic(size) for size in sizes):
        shape = np.broadcast_shapes(value.shape, tuple(int(size) for size in sizes))
        if math.prod(shape) > MAX_ELEMENTS:
            raise Unsupported(f"expands a constant to the shape {list(shape)}, too large to compute")
        return np.broadcast_to(value, shape).copy()
    batch_only = sizes[0] is None and not any(symbolic(size) for size in sizes[1:]) and len(sizes) == 3
    if not (batch_only and value.ndim == 3 and value.shape[:2] == (1, 1)):
        raise Unsupported(f"expands {describe(value)}; the catalog repeats a (1, 1, F) class token only")
    if np.broadcast_shapes(value.shape[1:], tuple(int(size) for size in sizes[1:])) != value.shape[1:]:
        raise Unsupported(f"expands to {sizes}; the catalog repeats a class token over the batch only")
    return BatchToken(walker.weight(node, inputs, 0, "class token"))


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
    "Split": _split_from_onnx,
    "Resize": _resize_from_onnx,
    "Expand": _expand_from_onnx,
}
