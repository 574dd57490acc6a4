"""Convolutions: Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose.

PyTorch runs them channels-first. Keras 'same' padding with strides (or an
even kernel) pads the odd extra pixel at the end, where PyTorch's symmetric
``padding`` cannot: those get an explicit ``F.pad``. Kernels move from Keras
``(k..., in, out)`` to PyTorch ``(out, in, k...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.activations import torch_activation
from codegen.layers.base import (
    CF,
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
    as_tuple,
    compact,
    glorot_uniform,
    kernel_and_bias,
    module_call,
    use_bias_arg,
    zeros,
)
from codegen.layers.keras_config import activation_name, channels_last, ints, one
from codegen.layers.torch_source import array, fold_padding, pair, torch_pads
from codegen.layers.windows import keras_pads, pad_arg
from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan


# ----- shared --------------------------------------------------------------------------------


def window_args(layer: LayerPlan) -> list[str]:
    """Keras ``strides=``, ``padding=`` and ``dilation_rate=``, where they differ from the defaults."""
    params, args = layer.params, []
    strides = params.get("strides")
    if strides is not None and set(as_tuple(strides)) != {1}:
        args.append(f"strides={compact(strides)}")
    if params.get("padding", "valid") != "valid":
        args.append(f"padding={py(params['padding'])}")
    dilation = params.get("dilation_rate")
    if dilation is not None and set(as_tuple(dilation)) != {1}:
        args.append(f"dilation_rate={compact(dilation)}")
    return args


def layer_pads(layer: LayerPlan, kernel: tuple, strides: tuple, dilation: tuple) -> list[tuple[int, int]]:
    """The (before, after) padding Keras applies to this layer's input, per spatial axis."""
    spatial = layer.input_shapes[0][:-1]
    return keras_pads(spatial, layer.params["padding"], kernel, strides, dilation)


def padding_steps(layer: LayerPlan, x: str, pads: list[tuple[int, int]]) -> tuple[list[str], str]:
    """Explicit padding when Keras pads asymmetrically or with strides; returns (steps, padding arg)."""
    if all(pair == (0, 0) for pair in pads):
        return [], ""
    stride_one = set(as_tuple(layer.params.get("strides", 1))) == {1}
    if layer.params["padding"] == "same" and stride_one:
        return [], 'padding="same"'
    # Keras puts the odd extra pixel at the end; PyTorch's padding= is symmetric: pad explicitly.
    return [f"F.pad({x}, {pad_arg(pads)})"], ""


def torch_window_args(strides: tuple, padding: str, dilation: tuple) -> list[str]:
    """A PyTorch convolution's stride, padding and dilation arguments, where they differ from the defaults."""
    args = [f"stride={compact(strides)}"] if set(strides) != {1} else []
    args += [padding] if padding else []
    return args + ([f"dilation={compact(dilation)}"] if set(dilation) != {1} else [])


# ----- Conv1D, Conv2D, DepthwiseConv2D -------------------------------------------------------


def _conv_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [str(params["filters"]), compact(params["kernel_size"])] + window_args(layer)
    if params.get("groups", 1) != 1:
        args.append(f"groups={params['groups']}")
    return KerasLayer(f"layers.{layer.kind}", args + activation_arg(layer) + use_bias_arg(layer))


def _depthwise_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [compact(params["kernel_size"])] + window_args(layer)
    if params["depth_multiplier"] != 1:
        args.append(f"depth_multiplier={params['depth_multiplier']}")
    return KerasLayer("layers.DepthwiseConv2D", args + activation_arg(layer) + use_bias_arg(layer))


def _conv_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    rank = len(layer.shape) - 1
    kernel = as_tuple(params["kernel_size"])
    strides = as_tuple(params["strides"])
    dilation = as_tuple(params["dilation_rate"])
    channels = layer.input_shapes[0][-1]
    groups, out_channels = params.get("groups", 1), params.get("filters")
    if "depth_multiplier" in params:  # depthwise: one group per input channel
        groups, out_channels = channels, channels * params["depth_multiplier"]
    pads = layer_pads(layer, kernel, strides, dilation)
    steps, padding = padding_steps(layer, xs[0], pads)
    module_args = [
        str(channels),
        str(out_channels),
        compact(kernel),
        *torch_window_args(strides, padding, dilation),
    ]
    if groups != 1:
        module_args.append(f"groups={groups}")
    if not params["use_bias"]:
        module_args.append("bias=False")
    source = "{ident}" if steps else xs[0]
    steps.append(torch_activation(params["activation"], module_call(layer, source), CF))
    return TorchCode((f"nn.Conv{rank}d", module_args), steps)


def _conv_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    kernel = weights[0]  # (k..., in / groups, out) -> (out, in / groups, k...); both order groups alike
    rank = kernel.ndim
    return kernel_and_bias(kernel.transpose(rank - 1, rank - 2, *range(rank - 2)), weights)


def depthwise_kernel(kernel: np.ndarray) -> np.ndarray:
    """(kh, kw, C, M) -> (C*M, 1, kh, kw): channel c's m-th filter is output c*M + m in both."""
    kh, kw, channels, multiplier = kernel.shape
    return kernel.reshape(kh, kw, 1, channels * multiplier).transpose(3, 2, 0, 1)


def _depthwise_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    return kernel_and_bias(depthwise_kernel(weights[0]), weights)


def _kernel_init(layer: LayerPlan, last_axes: tuple[int, int]) -> list[str]:
    """glorot_uniform over the Keras kernel ``(*window, *last_axes)``, and a zero bias."""
    shape = (*as_tuple(layer.params["kernel_size"]), *last_axes)
    lines = [glorot_uniform("self.{ident}.weight", shape)]
    return lines + ([zeros("self.{ident}.bias")] if layer.params["use_bias"] else [])


def _conv_keras_init(layer: LayerPlan) -> list[str]:
    params = layer.params
    return _kernel_init(layer, (layer.input_shapes[0][-1] // params["groups"], params["filters"]))


def _depthwise_keras_init(layer: LayerPlan) -> list[str]:
    return _kernel_init(layer, (layer.input_shapes[0][-1], layer.params["depth_multiplier"]))


def _conv_transpose_keras_init(layer: LayerPlan) -> list[str]:
    return _kernel_init(layer, (layer.params["filters"], layer.input_shapes[0][-1]))  # (k..., out, in)


# ----- SeparableConv2D -----------------------------------------------------------------------


def _separable_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [str(params["filters"]), compact(params["kernel_size"])] + window_args(layer)
    if params["depth_multiplier"] != 1:
        args.append(f"depth_multiplier={params['depth_multiplier']}")
    return KerasLayer("layers.SeparableConv2D", args + activation_arg(layer) + use_bias_arg(layer))


def _separable_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    kernel, strides, dilation = params["kernel_size"], params["strides"], params["dilation_rate"]
    channels = layer.input_shapes[0][-1]
    middle = channels * params["depth_multiplier"]
    pads = layer_pads(layer, kernel, strides, dilation)
    steps, padding = padding_steps(layer, xs[0], pads)
    depthwise = [str(channels), str(middle), compact(kernel), *torch_window_args(strides, padding, dilation)]
    depthwise += [f"groups={channels}", "bias=False"]
    pointwise = [str(middle), str(params["filters"]), "1"] + ([] if params["use_bias"] else ["bias=False"])
    module = ("nn.Sequential", [f"nn.Conv2d({', '.join(depthwise)})", f"nn.Conv2d({', '.join(pointwise)})"])
    source = "{ident}" if steps else xs[0]
    steps.append(torch_activation(params["activation"], module_call(layer, source), CF))
    return TorchCode(module, steps)


def _separable_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    state = {"0.weight": depthwise_kernel(weights[0]), "1.weight": weights[1].transpose(3, 2, 0, 1)}
    if len(weights) > 2:
        state["1.bias"] = weights[2]
    return state


def _separable_keras_init(layer: LayerPlan) -> list[str]:
    params = layer.params
    channels, multiplier = layer.input_shapes[0][-1], params["depth_multiplier"]
    lines = [
        glorot_uniform("self.{ident}[0].weight", (*params["kernel_size"], channels, multiplier)),
        glorot_uniform("self.{ident}[1].weight", (1, 1, channels * multiplier, params["filters"])),
    ]
    return lines + ([zeros("self.{ident}[1].bias")] if params["use_bias"] else [])


# ----- Conv2DTranspose -----------------------------------------------------------------------


def _conv_transpose_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    kernel, strides = params["kernel_size"], params["strides"]
    in_h, in_w, channels = layer.input_shapes[0]
    args = [str(channels), str(params["filters"]), compact(kernel)]
    if set(strides) != {1}:
        args.append(f"stride={compact(strides)}")
    # Keras 'valid' gives (n-1)*s + max(k, s); torch (n-1)*s + k, so add output_padding.
    # Keras 'same' gives n*s, cropping the full output at floor/ceil((k-s)/2).
    padding, output_padding, crops = [], [], []
    for k, s in zip(kernel, strides, strict=True):
        extra = max(s - k, 0)
        crop = max(k - s, 0) if params["padding"] == "same" else 0
        if crop % 2 == 0:
            padding.append(crop // 2)
            crops.append((0, 0))
        else:
            padding.append(0)
            crops.append((crop // 2, crop - crop // 2))
        output_padding.append(extra)
    if any(padding):
        args.append(f"padding={compact(tuple(padding))}")
    if any(output_padding):
        args.append(f"output_padding={compact(tuple(output_padding))}")
    if not params["use_bias"]:
        args.append("bias=False")
    steps = [module_call(layer, xs[0])]
    if any(crop != (0, 0) for crop in crops):
        # An odd crop: Keras crops the extra pixel at the end, which padding= cannot express.
        full_h = (in_h - 1) * strides[0] + kernel[0] + output_padding[0] - 2 * padding[0]
        full_w = (in_w - 1) * strides[1] + kernel[1] + output_padding[1] - 2 * padding[1]
        (top, bottom), (left, right) = crops
        steps.append(f"{{ident}}[:, :, {top}:{full_h - bottom}, {left}:{full_w - right}]")
    if params["activation"] != "linear":
        steps.append(torch_activation(params["activation"], "{ident}", CF))
    return TorchCode(("nn.ConvTranspose2d", args), steps)


def _conv_transpose_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    return kernel_and_bias(
        weights[0].transpose(3, 2, 0, 1), weights
    )  # (kh, kw, out, in) -> (in, out, kh, kw)


LOWERINGS = (
    Lowering("Conv1D", _conv_keras, _conv_torch, CF, weights=_conv_weights, keras_init=_conv_keras_init),
    Lowering("Conv2D", _conv_keras, _conv_torch, CF, weights=_conv_weights, keras_init=_conv_keras_init),
    Lowering(
        "DepthwiseConv2D",
        _depthwise_keras,
        _conv_torch,
        CF,
        weights=_depthwise_weights,
        keras_init=_depthwise_keras_init,
    ),
    Lowering(
        "SeparableConv2D",
        _separable_keras,
        _separable_torch,
        CF,
        weights=_separable_weights,
        keras_init=_separable_keras_init,
    ),
    Lowering(
        "Conv2DTranspose",
        _conv_keras,
        _conv_transpose_torch,
        CF,
        weights=_conv_transpose_weights,
        keras_init=_conv_transpose_keras_init,
    ),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _groups(cfg) -> int:
    groups = cfg.get("groups")
    return 1 if groups is None else int(groups)


def _conv_from_keras(kind: str, rank: int):
    """Conv1D, Conv2D, SeparableConv2D: the inverse of ``_conv_keras`` / ``_separable_keras``."""

    def mapping(cfg, context) -> Mapped:
        channels_last(cfg)
        params = {
            "filters": int(cfg["filters"]),
            "padding": cfg.get("padding", "valid"),
            "activation": activation_name(cfg.get("activation")),
            "use_bias": bool(cfg.get("use_bias", True)),
        }
        if rank == 1:
            params |= {
                "kernel_size": one(cfg["kernel_size"]),
                "strides": one(cfg.get("strides", 1)),
                "dilation_rate": one(cfg.get("dilation_rate", 1)),
            }
        else:
            params |= {
                "kernel_size": ints(cfg["kernel_size"], 2),
                "strides": ints(cfg.get("strides", 1), 2),
                "dilation_rate": ints(cfg.get("dilation_rate", 1), 2),
            }
        if kind == "SeparableConv2D":
            params["depth_multiplier"] = int(cfg.get("depth_multiplier", 1))
        elif _groups(cfg) != 1:
            params["groups"] = _groups(cfg)
        return Mapped(kind, params)

    return mapping


def _conv_transpose_from_keras(cfg, context) -> Mapped:
    channels_last(cfg)
    if set(ints(cfg.get("dilation_rate", 1), 2)) != {1}:
        raise Unsupported(
            f"dilation_rate={cfg['dilation_rate']!r}: the catalog's Conv2DTranspose has no dilation"
        )
    if cfg.get("output_padding") is not None:
        raise Unsupported(f"output_padding={cfg['output_padding']!r}: the catalog's Conv2DTranspose has none")
    if _groups(cfg) != 1:  # Keras 3's Conv2DTranspose has no groups; a tf.keras config might
        raise Unsupported(f"groups={_groups(cfg)}: the catalog's Conv2DTranspose is not grouped")
    return Mapped(
        "Conv2DTranspose",
        {
            "filters": int(cfg["filters"]),
            "kernel_size": ints(cfg["kernel_size"], 2),
            "strides": ints(cfg.get("strides", 1), 2),
            "padding": cfg.get("padding", "valid"),
            "activation": activation_name(cfg.get("activation")),
            "use_bias": bool(cfg.get("use_bias", True)),
        },
    )


def _depthwise_from_keras(cfg, context) -> Mapped:
    channels_last(cfg)
    return Mapped(
        "DepthwiseConv2D",
        {
            "kernel_size": ints(cfg["kernel_size"], 2),
            "strides": ints(cfg.get("strides", 1), 2),
            "padding": cfg.get("padding", "valid"),
            "depth_multiplier": int(cfg.get("depth_multiplier", 1)),
            "dilation_rate": ints(cfg.get("dilation_rate", 1), 2),
            "activation": activation_name(cfg.get("activation")),
            "use_bias": bool(cfg.get("use_bias", True)),
        },
    )


KERAS_CLASSES: dict = {
    "Conv1D": _conv_from_keras("Conv1D", 1),
    "Conv2D": _conv_from_keras("Conv2D", 2),
    "SeparableConv2D": _conv_from_keras("SeparableConv2D", 2),
    "Conv2DTranspose": _conv_transpose_from_keras,
    "DepthwiseConv2D": _depthwise_from_keras,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


def conv_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    weight: np.ndarray,
    bias: np.ndarray | None,
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[tuple[int, int]],
    groups: int,
) -> Tensor:
    """Conv1D, Conv2D or DepthwiseConv2D for a convolution with weight ``(out, in / groups, k...)``.

    Grouped convolutions keep their groups (Keras and PyTorch order the groups
    alike); one filter per input channel (``groups == in``, one input channel per
    filter) is a DepthwiseConv2D, output ``c*M + m`` being channel c's m-th filter.
    """
    rank = weight.ndim - 2
    if rank not in (1, 2):
        raise Unsupported(f"a {rank}-D convolution; the catalog has 1-D and 2-D convolutions")
    x = graph.to_cf(x, name)
    channels = graph.keras_shape(x)[-1]
    out_channels = weight.shape[0]
    kernel = tuple(int(k) for k in weight.shape[2:])
    x, padding = graph.window_padding(x, pads, kernel, strides, dilations, name, "conv")
    common = {"padding": padding, "use_bias": bias is not None}
    if groups != 1:
        common["groups"] = groups
    if rank == 1:
        kind = "Conv1D"
        params = {
            "filters": out_channels,
            "kernel_size": kernel[0],
            "strides": int(strides[0]),
            "dilation_rate": int(dilations[0]),
            **common,
        }
        weights = [weight.transpose(2, 1, 0)]
    elif groups == 1 or groups != channels:
        kind = "Conv2D"
        params = {
            "filters": out_channels,
            "kernel_size": kernel,
            "strides": tuple(strides),
            "dilation_rate": tuple(dilations),
            **common,
        }
        weights = [weight.transpose(2, 3, 1, 0)]
    else:
        kind = "DepthwiseConv2D"
        multiplier = out_channels // channels
        params = {
            "kernel_size": kernel,
            "strides": tuple(strides),
            "dilation_rate": tuple(dilations),
            "depth_multiplier": multiplier,
            "padding": padding,
            "use_bias": bias is not None,
        }
        weights = [weight.transpose(2, 3, 1, 0).reshape(*kernel, channels, multiplier)]
    if bias is not None:
        weights.append(bias)
    return graph.add(kind, name, [x], params, weights, source_kind=source_kind)


def conv_transpose_layer(
    graph: SourceGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    weight: np.ndarray,
    bias: np.ndarray | None,
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    output_padding: Sequence[int],
) -> Tensor:
    """Conv2DTranspose (+ Cropping2D) for weight ``(in, out, kh, kw)``, pads (begin, end) per axis.

    The source's output is the full transposed convolution ``(n-1)*s + k`` cropped
    by ``begin`` and ``end - output_padding``; Keras 'valid' gives the full output
    (for k >= s), and 'same' crops ``((k-s)//2, (k-s) - (k-s)//2)``.
    """
    if weight.ndim != 4:
        raise Unsupported("only 2-D transposed convolutions are in the catalog")
    x = graph.to_cf(x, name)
    kernel = tuple(int(k) for k in weight.shape[2:])
    crops = []
    for k, s, (before, after), extra in zip(kernel, strides, pads, output_padding, strict=True):
        if k < s:
            if (before, after, extra) != (0, 0, s - k):
                raise Unsupported(
                    f"kernel {k} < stride {s} with pads or output_padding that Keras cannot express"
                )
            crops.append((0, 0))
            continue
        if after - extra < 0 or before < 0:
            raise Unsupported(f"output_padding {extra} larger than the padding {after}")
        crops.append((before, after - extra))
    same = [((k - s) // 2, (k - s) - (k - s) // 2) for k, s in zip(kernel, strides, strict=True)]
    padding = "valid"
    if all(k >= s for k, s in zip(kernel, strides, strict=True)) and crops == same and crops != [(0, 0)] * 2:
        padding, crops = "same", [(0, 0), (0, 0)]
    params = {
        "filters": int(weight.shape[1]),
        "kernel_size": kernel,
        "strides": tuple(strides),
        "padding": padding,
        "use_bias": bias is not None,
    }
    weights = [weight.transpose(2, 3, 1, 0)] + ([bias] if bias is not None else [])
    result = graph.add("Conv2DTranspose", name, [x], params, weights, source_kind=source_kind)
    if crops != [(0, 0), (0, 0)]:
        (top, bottom), (left, right) = crops
        result = graph.add(
            "Cropping2D",
            f"{name}_crop",
            [result],
            {"cropping": [top, bottom, left, right]},
            source_kind=source_kind,
        )
    return result


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


def _torch_conv(walker, node, module, name):
    if module.padding_mode != "zeros":
        raise Unsupported(f"padding_mode={module.padding_mode!r}; the catalog pads with zeros")
    rank = len(module.kernel_size)
    pads = torch_pads(module.padding, module.kernel_size, module.dilation)
    x, folded = fold_padding(walker.value(node.args[0]), pads, 0.0)  # F.pad with zeros before it
    if x is None:
        x = walker.tensor(node.args[0])
    else:
        pads = folded
    x = walker.graph.to_cf(x, name)
    return conv_layer(
        walker.graph,
        x,
        name,
        type(module).__name__,
        array(module.weight),
        array(module.bias),
        pair(module.stride, rank),
        pair(module.dilation, rank),
        pads,
        module.groups,
    )


def _torch_conv_transpose(walker, node, module, name):
    if module.groups != 1:
        raise Unsupported(f"groups={module.groups}: Keras's Conv2DTranspose has no groups")
    if set(module.dilation) != {1}:
        raise Unsupported(f"dilation={tuple(module.dilation)}: the catalog's Conv2DTranspose has no dilation")
    if module.padding_mode != "zeros":
        raise Unsupported(f"padding_mode={module.padding_mode!r}; the catalog pads with zeros")
    pads = [(int(p), int(p)) for p in pair(module.padding)]
    return conv_transpose_layer(
        walker.graph,
        walker.tensor(node.args[0]),
        name,
        "ConvTranspose2d",
        array(module.weight),
        array(module.bias),
        pair(module.stride),
        pads,
        pair(module.output_padding),
    )


def _torch_conv_function(walker, node, name):
    """``F.conv1d`` / ``F.conv2d`` (and ``torch.conv*``) with a constant weight (a parameter or buffer)."""
    weight = walker.value(walker.argument(node, 1, "weight"))
    bias = walker.value(walker.argument(node, 2, "bias"))
    if not isinstance(weight, np.ndarray) or not (bias is None or isinstance(bias, np.ndarray)):
        raise Unsupported(
            "a weight or bias computed in the forward pass; the catalog's weights are constants"
        )
    rank = weight.ndim - 2
    kernel = tuple(int(k) for k in weight.shape[2:])
    dilation = pair(walker.literal(node, 5, "dilation", 1), rank)
    pads = torch_pads(walker.literal(node, 4, "padding", 0), kernel, dilation)
    x, folded = fold_padding(walker.value(node.args[0]), pads, 0.0)
    if x is None:
        x = walker.tensor(node.args[0])
    else:
        pads = folded
    return conv_layer(
        walker.graph,
        walker.graph.to_cf(x, name),
        name,
        walker.source_kind(node),
        weight.astype(np.float32),
        None if bias is None else bias.astype(np.float32),
        pair(walker.literal(node, 3, "stride", 1), rank),
        dilation,
        pads,
        int(walker.literal(node, 6, "groups", 1)),
    )


TORCH_MODULES: dict = {
    "Conv1d": _torch_conv,
    "Conv2d": _torch_conv,
    "ConvTranspose2d": _torch_conv_transpose,
}
TORCH_FUNCTIONS: dict = {
    f"{namespace}.{function}": _torch_conv_function
    for function in ("conv1d", "conv2d")
    for namespace in ("torch.nn.functional", "torch")
}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# Handlers (walker, node, inputs, name, index); see codegen.layers.onnx_source for the walker.


def _conv_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    weight = walker.weight(node, inputs, 1, "weight")
    bias = walker.weight(node, inputs, 2, "bias")
    rank = weight.ndim - 2
    if rank not in (1, 2):
        raise Unsupported(f"a {rank}-D convolution; the catalog has 1-D and 2-D convolutions")
    x = walker.graph.to_cf(x, name)
    window = walker.window(node, x, rank, kernel=weight.shape[2:])
    groups = int(window["attrs"].get("group", 1))
    return conv_layer(
        walker.graph,
        x,
        name,
        node.op_type,
        weight,
        bias,
        window["strides"],
        window["dilations"],
        window["pads"],
        groups,
    )


def _conv_transpose_from_onnx(walker, node, inputs, name, index):
    x = walker.data(inputs)
    weight = walker.weight(node, inputs, 1, "weight")
    bias = walker.weight(node, inputs, 2, "bias")
    attrs = walker.attrs(node)
    if weight.ndim != 4:
        raise Unsupported("only 2-D transposed convolutions are in the catalog")
    if int(attrs.get("group", 1)) != 1:
        raise Unsupported(f"group={attrs['group']}: Keras's Conv2DTranspose has no groups")
    if set(attrs.get("dilations", [1, 1])) != {1}:
        raise Unsupported(f"dilations={list(attrs['dilations'])}: the catalog's Conv2DTranspose has none")
    if "output_shape" in attrs or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise Unsupported("output_shape or auto_pad SAME: the importer needs explicit pads")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    return conv_transpose_layer(
        walker.graph,
        x,
        name,
        node.op_type,
        weight,
        bias,
        list(attrs.get("strides", [1, 1])),
        list(zip(pads[:2], pads[2:], strict=True)),
        list(attrs.get("output_padding", [0, 0])),
    )


ONNX_OPS: dict = {"Conv": _conv_from_onnx, "ConvTranspose": _conv_transpose_from_onnx}
