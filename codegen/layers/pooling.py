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
from codegen.layers.windows import pad_arg
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
    if is_max:
        # Keras pads max pooling with -inf (never chosen); PyTorch's padding= would too, but only symmetrically.
        return TorchCode(
            (name, args), [module_call(layer, f'F.pad({xs[0]}, {pad_arg(pads)}, value=float("-inf"))')]
        )
    symmetric = all(before == after for before, after in pads)
    if symmetric and all(before <= k // 2 for (before, _), k in zip(pads, pool, strict=True)):
        args += [f"padding={compact(tuple(before for before, _ in pads))}", "count_include_pad=False"]
        return TorchCode((name, args), [call])
    # Keras averages over the valid cells only: divide by the pooled mask of ones.
    pad = pad_arg(pads)
    step = f"{module_call(layer, f'F.pad({xs[0]}, {pad})')} / {module_call(layer, f'F.pad(torch.ones_like({xs[0]}), {pad})')}"
    return TorchCode((name, args), [step])


def _global_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer(f"layers.{layer.kind}")


def _global_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    rank = len(layer.input_shapes[0]) - 1
    dims = "2" if rank == 1 else py(tuple(range(2, rank + 2)))
    reduce = "mean" if "Average" in layer.kind else "amax"
    return TorchCode(steps=[f"{xs[0]}.{reduce}(dim={dims})"])


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
        if cfg.get("keepdims"):
            raise Unsupported("keepdims=True: the catalog's global poolings return (channels,)")
        return Mapped(kind)

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
    """MaxPooling / AveragePooling 1D or 2D, its padding made Keras-exact or refused."""
    x = graph.to_cf(x, name)
    rank = len(graph.keras_shape(x)) - 1
    if rank not in (1, 2) or len(kernel) != rank:
        raise Unsupported(f"a {len(kernel)}-D pooling on a rank-{rank + 2} tensor")
    if ceil_mode:
        spatial = graph.keras_shape(x)[:-1]
        for size, k, s, (before, after) in zip(spatial, kernel, strides, pads, strict=True):
            if (size + before + after - k) % s:
                raise Unsupported("ceil_mode adds a partial window here; Keras pools whole windows only")
    mode = "max" if is_max else ("avg_include" if count_include_pad else "avg_exclude")
    x, padding = graph.window_padding(x, pads, kernel, strides, (1,) * rank, name, mode)
    kind = f"{'Max' if is_max else 'Average'}Pooling{rank}D"
    params = {"pool_size": tuple(kernel), "strides": tuple(strides), "padding": padding}
    return graph.add(kind, name, [x], params, source_kind=source_kind, nonneg=x.nonneg)


def global_pooling_layer(
    graph: SourceGraph, x: Tensor, name: str, source_kind: str, is_max: bool, keep_dims: bool
) -> Tensor:
    """Global pooling over every spatial axis; with ``keep_dims`` the source keeps unit axes."""
    x = graph.to_cf(x, name)
    rank = len(graph.keras_shape(x)) - 1
    if rank not in (1, 2):
        raise Unsupported(f"a {rank}-D global pooling; the catalog has 1-D and 2-D")
    kind = f"Global{'Max' if is_max else 'Average'}Pooling{rank}D"
    result = graph.add(kind, name, [x], source_kind=source_kind, form=SQUEEZED, nonneg=x.nonneg)
    return Tensor(result.layer, SQUEEZED, x.nonneg, ones=rank if keep_dims else 0)


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------

TORCH_MODULES: dict = {}
TORCH_FUNCTIONS: dict = {}
TORCH_METHODS: dict = {}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.

from codegen.layers.onnx_source import positive_axes  # noqa: E402 - the ONNX section's own imports


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
    return global_pooling_layer(walker.graph, walker.data(inputs), name, node.op_type, is_max, keep_dims=True)


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
    if x.form != CF or axes != list(range(2, rank)):
        raise Unsupported(
            f"a {what} over axes {axes}; the catalog has the {what} over all spatial axes (global pooling)"
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
