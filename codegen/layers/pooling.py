"""Pooling: MaxPooling1D/2D, AveragePooling1D/2D and the global poolings.

PyTorch pools channels-first. Keras 'same' pooling pads with -inf for max
(explicit ``F.pad(..., value=-inf)``) and averages over the valid cells only
(``count_include_pad=False`` where PyTorch's symmetric padding can express
it, else a division by the pooled mask of ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from codegen.layers.base import (
    CF,
    SAME,
    SQUEEZED,
    KerasLayer,
    Lowering,
    Mapped,
    SourceGraph,
    Tensor,
    TorchCode,
    Unsupported,
    compact,
    module_call,
)
from codegen.layers.convolution import layer_pads
from codegen.layers.keras_config import channels_last, ints
from codegen.layers.onnx_source import positive_axes
from codegen.layers.torch_source import fold_padding, pair, pair_none
from codegen.layers.windows import pad_arg, pooled_pads, same_padding
from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan


def _pooling_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [compact(params["pool_size"])]
    strides = params["strides"]
    if strides is not None and strides != params["pool_size"]:
        args.append(f"strides={compact(strides)}")
    if params["padding"] != "valid":
        args.append(f"padding={py(params['padding'])}")
    return KerasLayer(f"layers.{layer.kind}", args)


def _pooling_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    rank = len(layer.shape) - 1
    pool = params["pool_size"]
    strides = params["strides"] or pool
    pads = layer_pads(layer, pool, strides, (1,) * rank)
    args = [compact(pool)]
    if strides != pool:
        args.append(f"stride={compact(strides)}")
    is_max = layer.kind.startswith("Max")
    name = f"nn.{'Max' if is_max else 'Avg'}Pool{rank}d"
    call = module_call(layer, xs[0])
    if all(pair == (0, 0) for pair in pads):
        return TorchCode((name, args), [call])
    ceil = _ceil_mode_spelling(layer.input_shapes[0][:-1], pool, strides, pads)
    if ceil is not None:
        # PyTorch pads symmetrically; Keras's odd 'same' unit at the end is ceil_mode's partial
        # window, which pools the cells it covers (max: -inf padding; average: valid cells only).
        args += [f"padding={compact(tuple(before for before, _ in pads))}"]
        args += ["ceil_mode=True"] if ceil else []
        why = "# Keras 'same' " + ("pads with -inf" if is_max else "averages the valid cells only")
        why += "; its odd pad at the end is ceil_mode's partial window" if ceil else ""
        args += [] if is_max else ["count_include_pad=False"]
        return TorchCode((name, args), [call], init=[why])
    if is_max:
        # Keras pads max pooling with -inf (never chosen); PyTorch's padding= would too, but only symmetrically.
        return TorchCode(
            (name, args), [module_call(layer, f'F.pad({xs[0]}, {pad_arg(pads)}, value=float("-inf"))')]
        )
    # Keras averages over the valid cells only: divide by the pooled mask of ones.
    pad = pad_arg(pads)
    step = f"{module_call(layer, f'F.pad({xs[0]}, {pad})')} / {module_call(layer, f'F.pad(torch.ones_like({xs[0]}), {pad})')}"
    return TorchCode((name, args), [step])


def _ceil_mode_spelling(spatial, pool, strides, pads) -> bool | None:
    """Whether PyTorch's symmetric ``padding=before`` pools over Keras's ``pads`` (before, after)
    without ceil_mode (False) or with it (True); None when neither does."""
    if any(before > k // 2 for (before, _), k in zip(pads, pool, strict=True)):
        return None  # PyTorch pads at most half the window
    for ceil in (False, True):
        reach = [
            pooled_pads(n, k, s, (before, before), ceil)
            for n, k, s, (before, _) in zip(spatial, pool, strides, pads, strict=True)
        ]
        if reach == [tuple(pair) for pair in pads]:
            return ceil
    return None


def _global_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer(f"layers.{layer.kind}", ["keepdims=True"] if layer.params["keepdims"] else [])


def _global_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    rank = len(layer.input_shapes[0]) - 1
    dims = "2" if rank == 1 else py(tuple(range(2, rank + 2)))
    reduce = "mean" if "Average" in layer.kind else "amax"
    keep = ", keepdim=True" if layer.params["keepdims"] else ""
    return TorchCode(steps=[f"{xs[0]}.{reduce}(dim={dims}{keep})"])


def _adaptive_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer(f"layers.{layer.kind}", [compact(layer.params["output_size"])])


def _adaptive_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    rank = len(layer.params["output_size"])
    name = f"nn.Adaptive{'Max' if 'Max' in layer.kind else 'Avg'}Pool{rank}d"
    return TorchCode((name, [compact(layer.params["output_size"])]), [module_call(layer, xs[0])])


LOWERINGS = (
    *(
        Lowering(f"{op}Pooling{rank}D", _pooling_keras, _pooling_torch, CF)
        for op in ("Max", "Average")
        for rank in (1, 2)
    ),
    *(
        Lowering(f"Global{op}Pooling{rank}D", _global_keras, _global_torch, CF)
        for op in ("Max", "Average")
        for rank in (1, 2)
    ),
    *(
        Lowering(f"Adaptive{op}Pooling{rank}D", _adaptive_keras, _adaptive_torch, CF)
        for op in ("Max", "Average")
        for rank in (1, 2)
    ),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _pooling_from_keras(kind: str, rank: int):
    def mapping(cfg, context) -> Mapped:
        channels_last(cfg)
        pool = ints(cfg.get("pool_size", 2), rank)
        strides = cfg.get("strides")
        return Mapped(
            kind,
            {
                "pool_size": pool,
                "strides": pool if strides is None else ints(strides, rank),
                "padding": cfg.get("padding", "valid"),
            },
        )

    return mapping


def _global_from_keras(kind: str):
    def mapping(cfg, context) -> Mapped:
        channels_last(cfg)
        return Mapped(kind, {"keepdims": bool(cfg.get("keepdims", False))})

    return mapping


def _adaptive_from_keras(kind: str, rank: int):
    def mapping(cfg, context) -> Mapped:
        channels_last(cfg)
        return Mapped(kind, {"output_size": ints(cfg["output_size"], rank)})

    return mapping


KERAS_CLASSES: dict = {
    **{
        f"{op}Pooling{rank}D": _pooling_from_keras(f"{op}Pooling{rank}D", rank)
        for op in ("Max", "Average")
        for rank in (1, 2)
    },
    **{
        f"Global{op}Pooling{rank}D": _global_from_keras(f"Global{op}Pooling{rank}D")
        for op in ("Max", "Average")
        for rank in (1, 2)
    },
    **{
        f"Adaptive{op}Pooling{rank}D": _adaptive_from_keras(f"Adaptive{op}Pooling{rank}D", rank)
        for op in ("Max", "Average")
        for rank in (1, 2)
    },
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


def pooling_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    is_max: bool,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    count_include_pad: bool = False,
    ceil_mode: bool = False,
) -> Tensor:
    """MaxPooling / AveragePooling 1D or 2D, its padding made Keras-exact or refused.

    ``pads`` is the source's explicit padding; ``ceil_mode`` may add a partial
    last window past it (see :func:`pooled_pads`). A max pads with -inf, an
    average with zeros that it counts (``count_include_pad``) or leaves out;
    the overhang of a partial window is never counted.
    """
    x = graph.to_cf(x, name)
    spatial = graph.keras_shape(x)[:-1]
    rank = len(spatial)
    if rank not in (1, 2) or len(kernel) != rank:
        raise Unsupported(f"a {len(kernel)}-D pooling on a rank-{rank + 2} tensor")
    reach = [
        pooled_pads(n, k, s, pad, ceil_mode)
        for n, k, s, pad in zip(spatial, kernel, strides, pads, strict=True)
    ]
    if is_max:
        mode = "max"
        keras_same = [same_padding(n, k, s) for n, k, s in zip(spatial, kernel, strides, strict=True)]
        if rank == 2 and not x.nonneg and reach != keras_same and any(map(any, reach)):
            x = _replicate_edges(graph, x, reach, kernel, strides, name)
            reach = [(0, 0)] * rank
    else:
        mode = "avg_exclude"
        if count_include_pad:  # the explicit zeros count: pad them, then only the overhang remains
            x, _ = graph.window_padding(x, pads, kernel, strides, (1,) * rank, name, "avg_include")
            reach = [(0, end - after) for (_, after), (_, end) in zip(pads, reach, strict=True)]
    x, padding = graph.window_padding(x, reach, kernel, strides, (1,) * rank, name, mode)
    kind = f"{'Max' if is_max else 'Average'}Pooling{rank}D"
    params = {"pool_size": tuple(kernel), "strides": tuple(strides), "padding": padding}
    return graph.add(kind, name, [x], params, source_kind=source_kind, nonneg=x.nonneg)


def _replicate_edges(
    graph: SourceGraph,
    x: Tensor,
    pads: Sequence[tuple[int, int]],
    kernel: Sequence[int],
    strides: Sequence[int],
    name: str,
) -> Tensor:
    """An image padded with copies of its edge rows and columns: for a max pooling whose every
    window holds an input cell, the same as -inf padding (a window that reaches into the padding
    holds the edge cell that the padding copies). Keras has no -inf padding layer; this is built
    from Cropping2D, UpSampling2D and Concatenate."""
    for axis, ((before, after), k, s) in enumerate(zip(pads, kernel, strides, strict=True)):
        size = graph.keras_shape(x)[axis]
        last_start = (size + before + after - k) // s * s - before
        if before >= k or last_start >= size:
            raise Unsupported(f"pads {list(pads)}: a window lies wholly in the -inf padding")
        if not before and not after:
            continue
        where = ("top", "bottom") if axis == 0 else ("left", "right")
        parts = []
        for side, count in zip(where, (before, after), strict=True):
            if not count:
                continue
            cropping = [0, 0, 0, 0]  # (top, bottom, left, right): keep the edge row or column only
            cropping[2 * axis + (side in ("top", "left"))] = size - 1
            edge = graph.add(
                "Cropping2D", f"{name}_{side}_edge", [x], {"cropping": cropping}, source_kind="padding"
            )
            if count > 1:
                repeat = (count, 1) if axis == 0 else (1, count)
                edge = graph.add(
                    "UpSampling2D", f"{name}_{side}_copies", [edge], {"size": repeat}, source_kind="padding"
                )
            parts.append(edge)
        parts.insert(1 if before else 0, x)
        x = graph.add(
            "Concatenate",
            f"{name}_{where[0]}_{where[1]}_pad",
            parts,
            {"axis": axis + 1},
            source_kind="padding",
        )
    return x


def global_pooling_layer(
    graph: SourceGraph, x: Tensor, name: str, source_kind: str, is_max: bool, keep_dims: bool
) -> Tensor:
    """Global pooling over every spatial axis; ``keep_dims`` keeps them as unit axes (``keepdims``).

    ``x`` is channels-first (an image or a Conv1d sequence), or in the source's own order with
    the channels last, pooled over its middle axes (the caller checked them: :func:`pooled_axes`).
    """
    rank = len(graph.keras_shape(x)) - 1
    if x.form not in (CF, SAME) or rank not in (1, 2):
        raise Unsupported(f"a {rank}-D global pooling; the catalog has 1-D and 2-D")
    kind = f"Global{'Max' if is_max else 'Average'}Pooling{rank}D"
    params = {"keepdims": keep_dims}
    form = None if keep_dims else SQUEEZED  # kept axes: the input's form holds
    return graph.add(kind, name, [x], params, source_kind=source_kind, form=form, nonneg=x.nonneg)


def pooled_axes(graph: SourceGraph, x: Tensor) -> list[int] | None:
    """The source axes a global pooling reduces: the spatial axes of a channels-first tensor, the
    middle axes of one in the source's own order (``(N, steps, features)``, or a channels-last
    ``(N, H, W, C)`` as Swin pools it); None for any other tensor."""
    rank = len(graph.source_shape(x)) + 1
    if rank not in (3, 4) or x.form not in (CF, SAME):
        return None
    return list(range(2, rank)) if x.form == CF else list(range(1, rank - 1))


def pooled_over(graph: SourceGraph, x: Tensor, axes: list[int], name: str) -> Tensor:
    """``x`` in the layout whose global pooling reduces source ``axes``, where the other layout's does
    (ResMLP's mean over the tokens of a tensor held channels-first; an image in the source's order)."""
    rank = len(graph.source_shape(x)) + 1
    if rank not in (3, 4) or x.form not in (CF, SAME) or axes == pooled_axes(graph, x):
        return x
    other = list(range(1, rank - 1)) if x.form == CF else list(range(2, rank))
    if axes != other:
        return x
    return graph.to_same(x, name) if x.form == CF else graph.to_cf(x, name)


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


def _torch_pool(walker, node, module, name):
    kind = type(module).__name__
    rank = 2 if kind.endswith("2d") else 1
    if kind.startswith("Max"):
        if module.return_indices or set(pair(module.dilation, rank)) != {1}:
            raise Unsupported("return_indices or dilation; the catalog's MaxPooling has neither")
        include = False
    else:
        if getattr(module, "divisor_override", None):
            raise Unsupported("divisor_override has no catalog equivalent")
        include = bool(module.count_include_pad)
    kernel = pair(module.kernel_size, rank)
    strides = pair(module.stride if module.stride is not None else module.kernel_size, rank)
    pads = [(p, p) for p in pair(module.padding, rank)]
    x, pads = _pooling_input(walker, node.args[0], kind.startswith("Max"), pads)
    return pooling_layer(
        walker.graph,
        x,
        name,
        kind,
        kind.startswith("Max"),
        kernel,
        strides,
        pads,
        count_include_pad=include,
        ceil_mode=bool(module.ceil_mode),
    )


def _pool_function(is_max: bool, rank: int):
    """``F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)`` and the
    average ones, ``F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)``."""

    def handler(walker, node, name):
        literal = walker.literal
        kernel = pair(literal(node, 1, "kernel_size"), rank)
        stride = literal(node, 2, "stride", None)
        strides = kernel if stride in (None, [], ()) else pair(stride, rank)
        pads = [(p, p) for p in pair(literal(node, 3, "padding", 0), rank)]
        if is_max:
            if set(pair(literal(node, 4, "dilation", 1), rank)) != {1} or literal(
                node, 6, "return_indices", False
            ):
                raise Unsupported("dilation or return_indices; the catalog's MaxPooling has neither")
            ceil, include = literal(node, 5, "ceil_mode", False), False
        else:
            ceil, include = literal(node, 4, "ceil_mode", False), literal(node, 5, "count_include_pad", True)
            if literal(node, 6, "divisor_override", None):
                raise Unsupported("divisor_override has no catalog equivalent")
        x, pads = _pooling_input(walker, node.args[0], is_max, pads)
        kind = walker.source_kind(node)
        return pooling_layer(
            walker.graph, x, name, kind, is_max, kernel, strides, pads, bool(include), bool(ceil)
        )

    return handler


def _pooling_input(walker, arg, is_max: bool, pads: list) -> tuple[Tensor, list]:
    """The pooling's input and padding; a max pooling takes a ``-inf`` padding before it."""
    if is_max:
        x, folded = fold_padding(walker.value(arg), pads, float("-inf"))
        if x is not None:
            return x, folded
    return walker.tensor(arg), pads


def _torch_adaptive_pool(walker, node, module, name):
    if getattr(module, "return_indices", False):
        raise Unsupported("return_indices: the catalog's adaptive max pooling returns the maxima only")
    return _adaptive_pool(walker, node.args[0], name, type(module).__name__, module.output_size)


def _adaptive_pool_function(is_max: bool, rank: int):
    """``F.adaptive_max_pool2d(x, output_size, return_indices)``, ``F.adaptive_avg_pool2d(x, output_size)``
    and the 1-D ones."""

    def handler(walker, node, name):
        size = walker.literal(node, 1, "output_size")
        if is_max and walker.literal(node, 2, "return_indices", False):
            raise Unsupported("return_indices: the catalog's adaptive max pooling returns the maxima only")
        kind = f"Adaptive{'Max' if is_max else 'Avg'}Pool{rank}d"
        return _adaptive_pool(walker, node.args[0], name, kind, size)

    return handler


def _adaptive_pool(walker, arg, name: str, kind: str, output_size) -> Tensor:
    """An adaptive pooling: a global pooling to size 1, else the catalog's adaptive pooling."""
    graph = walker.graph
    x = graph.to_cf(walker.tensor(arg), name)
    spatial = graph.keras_shape(x)[:-1]
    rank = len(spatial)
    if rank not in (1, 2):
        raise Unsupported(f"a {rank}-D adaptive pooling; the catalog has 1-D and 2-D")
    wanted = tuple(
        spatial[i] if size is None else int(size) for i, size in enumerate(pair_none(output_size, rank))
    )
    is_max = "Max" in kind
    if all(size == 1 for size in wanted):
        return global_pooling_layer(graph, x, name, kind, is_max, keep_dims=True)
    if wanted == tuple(spatial):
        return x
    if (
        is_max
        and 1 in (*spatial, *wanted)
        and not any(n % out for n, out in zip(spatial, wanted, strict=True))
    ):
        # Whole windows that tile the input (Keras's AdaptiveMaxPooling fails on a unit axis).
        window = tuple(n // out for n, out in zip(spatial, wanted, strict=True))
        return pooling_layer(graph, x, name, kind, is_max, window, window, [(0, 0)] * rank)
    adaptive = f"Adaptive{'Max' if is_max else 'Average'}Pooling{rank}D"
    return graph.add(adaptive, name, [x], {"output_size": wanted}, source_kind=kind, nonneg=x.nonneg)


def _global_reduction(is_max: bool):
    """``x.mean(dims, keepdim)`` / ``x.amax(...)`` (and ``torch.mean`` / ``torch.amax``) over every
    spatial axis: global average or max pooling."""
    reduction = "max" if is_max else "mean"

    def handler(walker, node, name):
        x = walker.tensor(node.args[0])
        dims = walker.literal(node, 1, "dim", None)
        keep = bool(walker.literal(node, 2, "keepdim", False))
        rank = len(walker.graph.source_shape(x)) + 1
        dims = [dims] if isinstance(dims, int) else list(dims or [])
        dims = sorted(d + rank if d < 0 else d for d in dims)
        x = pooled_over(walker.graph, x, dims, name)
        if not dims or dims != pooled_axes(walker.graph, x):
            raise Unsupported(
                f"a {reduction} over dims {dims} of a {_described(x, rank)}; the catalog has the "
                f"{reduction} over all spatial axes (global pooling)"
            )
        return global_pooling_layer(walker.graph, x, name, walker.source_kind(node), is_max, keep_dims=keep)

    return handler


def _described(x: Tensor, rank: int) -> str:
    return f"rank-{rank} {'channels-first ' if x.form == CF else ''}tensor"


TORCH_MODULES: dict = {
    "MaxPool1d": _torch_pool,
    "MaxPool2d": _torch_pool,
    "AvgPool1d": _torch_pool,
    "AvgPool2d": _torch_pool,
    "AdaptiveAvgPool1d": _torch_adaptive_pool,
    "AdaptiveAvgPool2d": _torch_adaptive_pool,
    "AdaptiveMaxPool1d": _torch_adaptive_pool,
    "AdaptiveMaxPool2d": _torch_adaptive_pool,
}
TORCH_FUNCTIONS: dict = {
    "torch.mean": _global_reduction(is_max=False),
    "torch.amax": _global_reduction(is_max=True),
    "torch.nn.functional.adaptive_avg_pool1d": _adaptive_pool_function(is_max=False, rank=1),
    "torch.nn.functional.adaptive_avg_pool2d": _adaptive_pool_function(is_max=False, rank=2),
    "torch.nn.functional.adaptive_max_pool1d": _adaptive_pool_function(is_max=True, rank=1),
    "torch.nn.functional.adaptive_max_pool2d": _adaptive_pool_function(is_max=True, rank=2),
    "torch.nn.functional.max_pool1d": _pool_function(is_max=True, rank=1),
    "torch.nn.functional.max_pool2d": _pool_function(is_max=True, rank=2),
    "torch.nn.functional.avg_pool1d": _pool_function(is_max=False, rank=1),
    "torch.nn.functional.avg_pool2d": _pool_function(is_max=False, rank=2),
}
TORCH_METHODS: dict = {"mean": _global_reduction(is_max=False), "amax": _global_reduction(is_max=True)}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


def _pooling_from_onnx(walker, node, inputs, name, index):
    x = walker.graph.to_cf(walker.data(inputs), name)
    if len([output for output in node.output if output]) > 1:
        raise Unsupported("returns the indices of the maxima too")
    rank = len(walker.graph.keras_shape(x)) - 1
    window = walker.window(node, x, rank)
    attrs = window["attrs"]
    if set(window["dilations"]) != {1}:
        raise Unsupported(f"dilations={window['dilations']}: the catalog's poolings have none")
    return pooling_layer(
        walker.graph,
        x,
        name,
        node.op_type,
        node.op_type == "MaxPool",
        window["kernel"],
        window["strides"],
        window["pads"],
        count_include_pad=bool(attrs.get("count_include_pad", 0)),
        ceil_mode=bool(attrs.get("ceil_mode", 0)),
    )


def _global_pooling_from_onnx(walker, node, inputs, name, index):
    is_max = node.op_type == "GlobalMaxPool"
    x = walker.graph.to_cf(walker.data(inputs), name)
    return global_pooling_layer(walker.graph, x, name, node.op_type, is_max, keep_dims=True)


def _reduce_from_onnx(walker, node, inputs, name, index):
    """ReduceMean / ReduceMax over every spatial axis of an image: a global pooling."""
    x = walker.data(inputs)
    attrs = walker.attrs(node)
    axes = attrs.get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = walker.constant(inputs, 1, "axes").tolist()
    rank = len(walker.graph.source_shape(x)) + 1
    axes = positive_axes(axes or [], rank)
    what = "maximum" if node.op_type == "ReduceMax" else "mean"
    x = pooled_over(walker.graph, x, axes, name)
    if not axes or axes != pooled_axes(walker.graph, x):
        raise Unsupported(
            f"a {what} over axes {axes} of a {_described(x, rank)}; the catalog has the {what} over "
            "all spatial axes (global pooling)"
        )
    keep = bool(attrs.get("keepdims", 1))
    return global_pooling_layer(walker.graph, x, name, node.op_type, what == "maximum", keep_dims=keep)


ONNX_OPS: dict = {
    "MaxPool": _pooling_from_onnx,
    "AveragePool": _pooling_from_onnx,
    "GlobalAveragePool": _global_pooling_from_onnx,
    "GlobalMaxPool": _global_pooling_from_onnx,
    "ReduceMean": _reduce_from_onnx,
    "ReduceMax": _reduce_from_onnx,
}
