"""PyTorch code for a model plan: an ``nn.Module`` with layers in ``__init__``, wiring in ``forward``.

Every Keras semantic that PyTorch spells differently is written out:
'same' padding with strides becomes an explicit ``F.pad`` (Keras puts the
odd extra pixel at the end), pooling pads with -inf or averages over valid
cells only, batch-norm momentum is ``1 - keras_momentum``, leaky-relu slopes
and softmax dims are always passed, and the RNN final states are taken the
way Keras returns them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from codegen.keras_emitter import scale_literal
from codegen.plan import CF, CL, FLAT_CF, LayerPlan, Layout, ModelPlan
from codegen.writer import INDENT, LINE_LENGTH, Block, py


@dataclass
class TorchCode:
    """One layer's PyTorch code: an optional module for ``__init__`` and ``forward`` steps.

    Each step is an expression assigned to the layer's variable in turn, or a
    ``(target, expression)`` pair for tuple unpacking; ``{ident}`` stands for
    the layer's variable.
    """

    module: tuple[str, list[str]] | None = None  # ("nn.Linear", ["64", "10"])
    steps: list[str | tuple[str, str]] = field(default_factory=list)


# ----- helpers --------------------------------------------------------------------------


def same_padding(length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras 'same' padding along one axis: (before, after), the extra unit at the end."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def _pads(layer: LayerPlan, kernel: tuple, strides: tuple, dilation: tuple) -> list[tuple[int, int]]:
    """Per spatial axis (in Keras order) the (before, after) padding Keras applies."""
    spatial = layer.input_shapes[0][:-1]
    padding = layer.params["padding"]
    if padding == "valid":
        return [(0, 0)] * len(spatial)
    if padding == "causal":
        return [((kernel[0] - 1) * dilation[0], 0)]
    return [same_padding(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilation, strict=True)]


def _pad_arg(pads: list[tuple[int, int]]) -> str:
    """F.pad's argument: the last axis first, ``(left, right, top, bottom)``."""
    flat = [value for pair in reversed(pads) for value in pair]
    return py(tuple(flat))


def _tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _size(values: tuple) -> str:
    """``(3, 3)`` -> ``3``, ``(3,)`` -> ``3``, ``(3, 5)`` -> ``(3, 5)``."""
    return str(values[0]) if len(set(values)) == 1 else py(values)


def activation(name: str, expr: str, layout: str, params: dict | None = None) -> str:
    """``F.relu(x)`` and friends; softmax runs over the channel axis of the tensor's layout."""
    params = params or {}
    if name == "linear":
        return expr
    if name == "leaky_relu":
        return f"F.leaky_relu({expr}, {py(params.get('negative_slope', 0.2))})"
    if name == "elu":
        alpha = params.get("alpha", 1.0)
        return f"F.elu({expr})" if alpha == 1.0 else f"F.elu({expr}, alpha={py(alpha)})"
    if name == "softmax":
        return f"torch.softmax({expr}, dim={1 if layout == CF else -1})"
    functions = {
        "relu": "F.relu",
        "relu6": "F.relu6",
        "gelu": "F.gelu",
        "silu": "F.silu",
        "sigmoid": "torch.sigmoid",
        "tanh": "torch.tanh",
        "softplus": "F.softplus",
        "hard_sigmoid": "F.hardsigmoid",
    }
    return f"{functions[name]}({expr})"


def convert_layout(expr: str, source: Layout, target: str, rank: int) -> str:
    """Rewrite ``expr`` from one PyTorch layout to another (rank excludes the batch axis)."""
    if source.kind == target or rank < 2 and source.kind != FLAT_CF:
        return expr
    if source.kind == FLAT_CF:
        shape = source.source
        channels_first = (shape[-1], *shape[:-1])
        cf = f"{expr}.reshape(-1, {', '.join(map(str, channels_first))})"
        return f"{convert_layout(cf, Layout(CF), CL, len(shape))}.flatten(1)"
    if rank == 2:
        return f"{expr}.transpose(1, 2)"
    order = (0, rank, *range(1, rank)) if target == CF else (0, *range(2, rank + 1), 1)
    return f"{expr}.permute{py(order)}"


# ----- layers ---------------------------------------------------------------------------


def _dense(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    args = [str(layer.input_shapes[0][-1]), str(params["units"])]
    if not params["use_bias"]:
        args.append("bias=False")
    step = activation(params["activation"], f"self.{layer.ident}({xs[0]})", CL)
    return TorchCode(("nn.Linear", args), [step])


def _activation_layer(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(steps=[activation(layer.params["activation"], xs[0], layer.layout.kind, layer.params)])


def _dropout(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(("nn.Dropout", [py(layer.params["rate"])]), [f"self.{layer.ident}({xs[0]})"])


def _conv_steps(
    layer: LayerPlan, x: str, pads: list[tuple[int, int]], fill: str = ""
) -> tuple[list[str], str]:
    """Explicit padding when Keras pads asymmetrically or with strides; returns (steps, padding arg)."""
    params = layer.params
    if all(pair == (0, 0) for pair in pads):
        return [], ""
    stride_one = set(_tuple(params.get("strides", 1))) == {1}
    if params["padding"] == "same" and stride_one and not fill:
        return [], 'padding="same"'
    value = f", value={fill}" if fill else ""
    return [f"F.pad({x}, {_pad_arg(pads)}{value})"], ""


def _window_args(strides: tuple, padding: str, dilation: tuple) -> list[str]:
    """A convolution's stride, padding and dilation arguments, where they differ from the defaults."""
    args = [f"stride={_size(strides)}"] if set(strides) != {1} else []
    args += [padding] if padding else []
    return args + ([f"dilation={_size(dilation)}"] if set(dilation) != {1} else [])


def _conv(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    rank = len(layer.shape) - 1
    kernel = _tuple(params["kernel_size"])
    strides = _tuple(params["strides"])
    dilation = _tuple(params["dilation_rate"])
    channels = layer.input_shapes[0][-1]
    groups, out_channels = 1, params.get("filters")
    if layer.kind == "DepthwiseConv2D":
        groups, out_channels = channels, channels * params["depth_multiplier"]
    pads = _pads(layer, kernel, strides, dilation)
    steps, padding = _conv_steps(layer, xs[0], pads)
    module_args = [str(channels), str(out_channels), _size(kernel), *_window_args(strides, padding, dilation)]
    if groups != 1:
        module_args.append(f"groups={groups}")
    if not params["use_bias"]:
        module_args.append("bias=False")
    source = "{ident}" if steps else xs[0]
    steps.append(activation(params["activation"], f"self.{layer.ident}({source})", CF))
    return TorchCode((f"nn.Conv{rank}d", module_args), steps)


def _separable(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    kernel, strides, dilation = params["kernel_size"], params["strides"], params["dilation_rate"]
    channels = layer.input_shapes[0][-1]
    middle = channels * params["depth_multiplier"]
    pads = _pads(layer, kernel, strides, dilation)
    steps, padding = _conv_steps(layer, xs[0], pads)
    depthwise = [str(channels), str(middle), _size(kernel), *_window_args(strides, padding, dilation)]
    depthwise += [f"groups={channels}", "bias=False"]
    pointwise = [str(middle), str(params["filters"]), "1"] + ([] if params["use_bias"] else ["bias=False"])
    module = ("nn.Sequential", [f"nn.Conv2d({', '.join(depthwise)})", f"nn.Conv2d({', '.join(pointwise)})"])
    source = "{ident}" if steps else xs[0]
    steps.append(activation(params["activation"], f"self.{layer.ident}({source})", CF))
    return TorchCode(module, steps)


def _conv_transpose(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    kernel, strides = params["kernel_size"], params["strides"]
    in_h, in_w, channels = layer.input_shapes[0]
    args = [str(channels), str(params["filters"]), _size(kernel)]
    if set(strides) != {1}:
        args.append(f"stride={_size(strides)}")
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
        args.append(f"padding={_size(tuple(padding))}")
    if any(output_padding):
        args.append(f"output_padding={_size(tuple(output_padding))}")
    if not params["use_bias"]:
        args.append("bias=False")
    steps = [f"self.{layer.ident}({xs[0]})"]
    if any(crop != (0, 0) for crop in crops):
        full_h = (in_h - 1) * strides[0] + kernel[0] + output_padding[0] - 2 * padding[0]
        full_w = (in_w - 1) * strides[1] + kernel[1] + output_padding[1] - 2 * padding[1]
        (top, bottom), (left, right) = crops
        steps.append(f"{{ident}}[:, :, {top}:{full_h - bottom}, {left}:{full_w - right}]")
    if params["activation"] != "linear":
        steps.append(activation(params["activation"], "{ident}", CF))
    return TorchCode(("nn.ConvTranspose2d", args), steps)


def _pooling(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    rank = len(layer.shape) - 1
    pool = params["pool_size"]
    strides = params["strides"] or pool
    pads = _pads(layer, pool, strides, (1,) * rank)
    args = [_size(pool)]
    if strides != pool:
        args.append(f"stride={_size(strides)}")
    is_max = layer.kind.startswith("Max")
    name = f"nn.{'Max' if is_max else 'Avg'}Pool{rank}d"
    if all(pair == (0, 0) for pair in pads):
        return TorchCode((name, args), [f"self.{layer.ident}({xs[0]})"])
    if is_max:
        return TorchCode(
            (name, args), [f'self.{layer.ident}(F.pad({xs[0]}, {_pad_arg(pads)}, value=float("-inf")))']
        )
    symmetric = all(before == after for before, after in pads)
    if symmetric and all(before <= k // 2 for (before, _), k in zip(pads, pool, strict=True)):
        args += [f"padding={_size(tuple(before for before, _ in pads))}", "count_include_pad=False"]
        return TorchCode((name, args), [f"self.{layer.ident}({xs[0]})"])
    # Keras averages over the valid cells only: divide by the pooled mask of ones.
    pad = _pad_arg(pads)
    step = (
        f"self.{layer.ident}(F.pad({xs[0]}, {pad})) / "
        f"self.{layer.ident}(F.pad(torch.ones_like({xs[0]}), {pad}))"
    )
    return TorchCode((name, args), [step])


def _global_pooling(layer: LayerPlan, xs: list[str]) -> TorchCode:
    rank = len(layer.input_shapes[0]) - 1
    dims = "2" if rank == 1 else py(tuple(range(2, rank + 2)))
    reduce = "mean" if "Average" in layer.kind else "amax"
    return TorchCode(steps=[f"{xs[0]}.{reduce}(dim={dims})"])


def _batch_norm(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    rank = len(layer.shape)
    name = "nn.BatchNorm2d" if rank == 3 else "nn.BatchNorm1d"
    momentum = round(1 - params["momentum"], 12)
    args = [str(layer.shape[-1]), f"eps={py(params['epsilon'])}", f"momentum={py(momentum)}"]
    if not params["center"]:
        args.append("affine=False")
    return TorchCode((name, args), [f"self.{layer.ident}({xs[0]})"])


def _layer_norm(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    args = [str(layer.shape[-1]), f"eps={py(params['epsilon'])}"]
    if not params["scale"]:
        args.append("elementwise_affine=False")
    elif not params["center"]:
        args.append("bias=False")
    return TorchCode(("nn.LayerNorm", args), [f"self.{layer.ident}({xs[0]})"])


def _embedding(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    return TorchCode(
        ("nn.Embedding", [str(params["input_dim"]), str(params["output_dim"])]),
        [f"self.{layer.ident}({xs[0]})"],
    )


RNN_MODULES = {"SimpleRNN": "nn.RNN", "LSTM": "nn.LSTM", "GRU": "nn.GRU"}


def _recurrent(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    args = [str(layer.input_shapes[0][-1]), str(params["units"]), "batch_first=True"]
    if params.get("activation", "tanh") != "tanh":
        args.append(f"nonlinearity={py(params['activation'])}")
    if params["bidirectional"]:
        args.append("bidirectional=True")
    module = (RNN_MODULES[layer.kind], args)
    call = f"self.{layer.ident}({xs[0]})"
    if params["return_sequences"]:
        return TorchCode(module, [("{ident}, _", call)])
    # Keras returns the final state: torch's h_n, whose last entries are the
    # forward and (when bidirectional) backward directions of the last layer.
    target = "_, ({ident}, _)" if layer.kind == "LSTM" else "_, {ident}"
    final = "torch.cat([{ident}[-2], {ident}[-1]], dim=1)" if params["bidirectional"] else "{ident}[-1]"
    return TorchCode(module, [(target, call), final])


def _attention(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    shapes = layer.input_shapes
    embed = shapes[0][-1]
    value_dim = shapes[1][-1] if len(shapes) > 1 else embed
    key_dim = shapes[2][-1] if len(shapes) > 2 else value_dim
    args = [str(embed), str(params["num_heads"])]
    if params["dropout"]:
        args.append(f"dropout={py(params['dropout'])}")
    if not params["use_bias"]:
        args.append("bias=False")
    if key_dim != embed:
        args.append(f"kdim={key_dim}")
    if value_dim != embed:
        args.append(f"vdim={value_dim}")
    args.append("batch_first=True")
    query = xs[0]
    value = xs[1] if len(xs) > 1 else query
    key = xs[2] if len(xs) > 2 else value
    # Keras calls (query, value, key); torch takes (query, key, value).
    step = f"self.{layer.ident}({query}, {key}, {value}, need_weights=False)"
    return TorchCode(("nn.MultiheadAttention", args), [("{ident}, _", step)])


def _merge(layer: LayerPlan, xs: list[str]) -> TorchCode:
    kind = layer.kind
    if kind == "Add":
        return TorchCode(steps=[" + ".join(xs)])
    if kind == "Subtract":
        return TorchCode(steps=[f"{xs[0]} - {xs[1]}"])
    if kind == "Multiply":
        return TorchCode(steps=[" * ".join(xs)])
    if kind == "Average":
        return TorchCode(steps=[f"({' + '.join(xs)}) / {len(xs)}"])
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


def _concatenate(layer: LayerPlan, xs: list[str]) -> TorchCode:
    dim = torch_axis(layer.params["axis"], len(layer.shape), layer.layout.kind)
    return TorchCode(steps=[f"torch.cat([{', '.join(xs)}], dim={dim})"])


def _flatten(layer: LayerPlan, xs: list[str]) -> TorchCode:
    if len(layer.input_shapes[0]) == 1:
        return TorchCode(steps=[xs[0]])
    return TorchCode(steps=[f"torch.flatten({xs[0]}, 1)"])


def _reshape(layer: LayerPlan, xs: list[str]) -> TorchCode:
    dims = ", ".join(str(dim) for dim in layer.shape)
    return TorchCode(steps=[f"{xs[0]}.reshape(-1, {dims})"])


def _permute(layer: LayerPlan, xs: list[str]) -> TorchCode:
    return TorchCode(steps=[f"{xs[0]}.permute{py((0, *layer.params['dims']))}"])


def _up_sampling(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    size = params["size"]
    scale = str(size[0]) if size[0] == size[1] else py(size)
    args = [f"scale_factor={scale}", f"mode={py(params['interpolation'])}"]
    if params["interpolation"] == "bilinear":
        args.append("align_corners=False")
    return TorchCode(("nn.Upsample", args), [f"self.{layer.ident}({xs[0]})"])


def _zero_padding(layer: LayerPlan, xs: list[str]) -> TorchCode:
    top, bottom, left, right = layer.params["padding"]
    return TorchCode(("nn.ZeroPad2d", [py((left, right, top, bottom))]), [f"self.{layer.ident}({xs[0]})"])


def _cropping(layer: LayerPlan, xs: list[str]) -> TorchCode:
    top, bottom, left, right = layer.params["cropping"]
    height, width, _ = layer.input_shapes[0]
    return TorchCode(steps=[f"{xs[0]}[:, :, {top}:{height - bottom}, {left}:{width - right}]"])


def _rescaling(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    expr = f"{xs[0]} * {scale_literal(params['scale'])}" if params["scale"] != 1 else xs[0]
    if params["offset"]:
        expr = f"{expr} + {py(params['offset'])}"
    return TorchCode(steps=[expr])


LAYERS: dict[str, Callable[[LayerPlan, list[str]], TorchCode]] = {
    "Dense": _dense,
    "Activation": _activation_layer,
    "Dropout": _dropout,
    "Conv1D": _conv,
    "Conv2D": _conv,
    "DepthwiseConv2D": _conv,
    "SeparableConv2D": _separable,
    "Conv2DTranspose": _conv_transpose,
    "MaxPooling1D": _pooling,
    "MaxPooling2D": _pooling,
    "AveragePooling1D": _pooling,
    "AveragePooling2D": _pooling,
    "GlobalAveragePooling1D": _global_pooling,
    "GlobalAveragePooling2D": _global_pooling,
    "GlobalMaxPooling1D": _global_pooling,
    "GlobalMaxPooling2D": _global_pooling,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Embedding": _embedding,
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "MultiHeadAttention": _attention,
    "Add": _merge,
    "Subtract": _merge,
    "Multiply": _merge,
    "Average": _merge,
    "Maximum": _merge,
    "Concatenate": _concatenate,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Permute": _permute,
    "UpSampling2D": _up_sampling,
    "ZeroPadding2D": _zero_padding,
    "Cropping2D": _cropping,
    "Rescaling": _rescaling,
}


# ----- the module -----------------------------------------------------------------------


def layer_code(plan: ModelPlan, layer: LayerPlan) -> TorchCode:
    """The layer's code, its inputs converted to the layout the layer needs."""
    xs = []
    for source_id in layer.inputs:
        source = plan.layer(source_id)
        target = layer.input_layout or source.layout.kind
        xs.append(convert_layout(source.ident, source.layout, target, len(source.shape)))
    return LAYERS[layer.kind](layer, xs)


def emit_module(plan: ModelPlan) -> list[str]:
    init, forward = Block(2), Block(2)
    for layer in plan.layers:
        if layer.spec.is_source:
            continue
        code = layer_code(plan, layer)
        if code.module:
            func, args = code.module
            init.statement(f"self.{layer.ident} = {func}", args)
        for step in code.steps:
            target, expr = step if isinstance(step, tuple) else ("{ident}", step)
            _assign(forward, target.replace("{ident}", layer.ident), expr.replace("{ident}", layer.ident))
    outputs = [layer.ident for layer in plan.outputs]
    forward.line(f"return {', '.join(outputs)}")
    arguments = ", ".join(["self", *(layer.ident for layer in plan.inputs)])
    return [
        f"class {plan.class_name}(nn.Module):",
        f'    """{_io_doc(plan)}"""',
        "",
        "    def __init__(self):",
        "        super().__init__()",
        *(init.lines or ["        pass"]),
        "",
        f"    def forward({arguments}):",
        *forward.lines,
    ]


def _assign(block: Block, target: str, expr: str) -> None:
    line = f"{INDENT * block.level}{target} = {expr}"
    if len(line) <= LINE_LENGTH:
        block.lines.append(line)
        return
    head, args = _split_call(expr)
    if head is None:
        block.line(f"{target} = (")
        block.line(f"{INDENT}{expr}")
        block.line(")")
    else:
        block.statement(f"{target} = {head}", args)


def _split_call(expr: str) -> tuple[str | None, list[str]]:
    """``f(a, g(b, c))`` -> ``("f", ["a", "g(b, c)"])``; (None, []) if ``expr`` is not one call."""
    if not expr.endswith(")") or "(" not in expr:
        return None, []
    start = expr.index("(")
    depth, args, current = 0, [], ""
    for index, char in enumerate(expr[start:], start):
        if char in "([{":
            depth += 1
            if depth == 1:
                continue
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                if index != len(expr) - 1:
                    return None, []
                break
        if depth == 1 and char == ",":
            args.append(current.strip())
            current = ""
        else:
            current += char
    args.append(current.strip())
    return expr[:start], [arg for arg in args if arg]


def _io_doc(plan: ModelPlan) -> str:
    ins = ", ".join(layer.torch_shape_text() for layer in plan.inputs)
    outs = ", ".join(layer.torch_shape_text() for layer in plan.outputs)
    return f"Input {ins}; output {outs}."
