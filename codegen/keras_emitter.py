"""Keras 3 functional-API code for a model plan (channels-last, TensorFlow backend).

Each layer kind maps to a function returning the layer constructor and its
arguments; defaults that Keras already has are left out, except where the
value matters for equivalence with PyTorch (batch-norm momentum and epsilon).
"""

from __future__ import annotations

from collections.abc import Callable

from codegen.plan import LayerPlan, ModelPlan
from codegen.writer import Block, py

Constructor = tuple[str, list[str]]  # ("layers.Dense", ["10", 'activation="relu"'])


def _compact(value: tuple) -> str:
    """``(3, 3)`` -> ``3``: Keras accepts one integer for a square window."""
    return py(value[0]) if len(set(value)) == 1 else py(value)


def _activation(layer: LayerPlan) -> list[str]:
    name = layer.params.get("activation", "linear")
    return [] if name == "linear" else [f"activation={py(name)}"]


def _use_bias(layer: LayerPlan) -> list[str]:
    return [] if layer.params.get("use_bias", True) else ["use_bias=False"]


def _window(layer: LayerPlan) -> list[str]:
    params, args = layer.params, []
    strides = params.get("strides")
    if strides is not None and set(_as_tuple(strides)) != {1}:
        args.append(f"strides={_compact(_as_tuple(strides))}")
    if params.get("padding", "valid") != "valid":
        args.append(f"padding={py(params['padding'])}")
    dilation = params.get("dilation_rate")
    if dilation is not None and set(_as_tuple(dilation)) != {1}:
        args.append(f"dilation_rate={_compact(_as_tuple(dilation))}")
    return args


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _dense(layer: LayerPlan) -> Constructor:
    return "layers.Dense", [str(layer.params["units"]), *_activation(layer), *_use_bias(layer)]


def _activation_layer(layer: LayerPlan) -> Constructor:
    params = layer.params
    name = params["activation"]
    if name == "leaky_relu":
        return "layers.LeakyReLU", [f"negative_slope={py(params['negative_slope'])}"]
    if name == "elu" and params["alpha"] != 1.0:
        return "layers.ELU", [f"alpha={py(params['alpha'])}"]
    return "layers.Activation", [py(name)]


def _dropout(layer: LayerPlan) -> Constructor:
    return "layers.Dropout", [py(layer.params["rate"])]


def _conv(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [str(params["filters"]), _compact(_as_tuple(params["kernel_size"]))]
    return f"layers.{layer.kind}", args + _window(layer) + _activation(layer) + _use_bias(layer)


def _depthwise(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [_compact(params["kernel_size"])] + _window(layer)
    if params["depth_multiplier"] != 1:
        args.append(f"depth_multiplier={params['depth_multiplier']}")
    return "layers.DepthwiseConv2D", args + _activation(layer) + _use_bias(layer)


def _separable(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [str(params["filters"]), _compact(params["kernel_size"])] + _window(layer)
    if params["depth_multiplier"] != 1:
        args.append(f"depth_multiplier={params['depth_multiplier']}")
    return "layers.SeparableConv2D", args + _activation(layer) + _use_bias(layer)


def _pooling(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [_compact(params["pool_size"])]
    strides = params["strides"]
    if strides is not None and strides != params["pool_size"]:
        args.append(f"strides={_compact(strides)}")
    if params["padding"] != "valid":
        args.append(f"padding={py(params['padding'])}")
    return f"layers.{layer.kind}", args


def _no_args(layer: LayerPlan) -> Constructor:
    return f"layers.{layer.kind}", []


def _batch_norm(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [f"momentum={py(params['momentum'])}", f"epsilon={py(params['epsilon'])}"]
    if not params["center"]:
        args += ["center=False", "scale=False"]
    return "layers.BatchNormalization", args


def _layer_norm(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [f"epsilon={py(params['epsilon'])}"]
    args += [] if params["center"] else ["center=False"]
    args += [] if params["scale"] else ["scale=False"]
    return "layers.LayerNormalization", args


def _embedding(layer: LayerPlan) -> Constructor:
    return "layers.Embedding", [str(layer.params["input_dim"]), str(layer.params["output_dim"])]


def _recurrent(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [str(params["units"])]
    if params.get("activation", "tanh") != "tanh":
        args.append(f"activation={py(params['activation'])}")
    if params["return_sequences"]:
        args.append("return_sequences=True")
    return f"layers.{layer.kind}", args


def _attention(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [f"num_heads={params['num_heads']}", f"key_dim={params['key_dim']}"]
    if params["dropout"]:
        args.append(f"dropout={py(params['dropout'])}")
    return "layers.MultiHeadAttention", args + _use_bias(layer)


def _concatenate(layer: LayerPlan) -> Constructor:
    axis = layer.params["axis"]
    return "layers.Concatenate", [] if axis == -1 else [f"axis={axis}"]


def _reshape(layer: LayerPlan) -> Constructor:
    return "layers.Reshape", [py(tuple(layer.params["target_shape"]))]


def _permute(layer: LayerPlan) -> Constructor:
    return "layers.Permute", [py(tuple(layer.params["dims"]))]


def _up_sampling(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [] if params["size"] == (2, 2) else [f"size={_compact(params['size'])}"]
    if params["interpolation"] != "nearest":
        args.append(f"interpolation={py(params['interpolation'])}")
    return "layers.UpSampling2D", args


def _pairs(values: tuple) -> str:
    top, bottom, left, right = values
    return py(((top, bottom), (left, right)))


def _zero_padding(layer: LayerPlan) -> Constructor:
    return "layers.ZeroPadding2D", [f"padding={_pairs(layer.params['padding'])}"]


def _cropping(layer: LayerPlan) -> Constructor:
    return "layers.Cropping2D", [f"cropping={_pairs(layer.params['cropping'])}"]


def _rescaling(layer: LayerPlan) -> Constructor:
    params = layer.params
    args = [scale_literal(params["scale"])]
    if params["offset"]:
        args.append(f"offset={py(params['offset'])}")
    return "layers.Rescaling", args


def scale_literal(scale: float) -> str:
    """``1 / 255`` reads better than ``0.00392156862745098``."""
    for divisor in (255, 127.5, 256):
        if scale == 1 / divisor:
            return f"1 / {py(divisor)}"
    return py(scale)


CONSTRUCTORS: dict[str, Callable[[LayerPlan], Constructor]] = {
    "Dense": _dense,
    "Activation": _activation_layer,
    "Dropout": _dropout,
    "Conv1D": _conv,
    "Conv2D": _conv,
    "Conv2DTranspose": _conv,
    "DepthwiseConv2D": _depthwise,
    "SeparableConv2D": _separable,
    "MaxPooling1D": _pooling,
    "MaxPooling2D": _pooling,
    "AveragePooling1D": _pooling,
    "AveragePooling2D": _pooling,
    "GlobalAveragePooling1D": _no_args,
    "GlobalAveragePooling2D": _no_args,
    "GlobalMaxPooling1D": _no_args,
    "GlobalMaxPooling2D": _no_args,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Embedding": _embedding,
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "MultiHeadAttention": _attention,
    "Add": _no_args,
    "Subtract": _no_args,
    "Multiply": _no_args,
    "Average": _no_args,
    "Maximum": _no_args,
    "Concatenate": _concatenate,
    "Flatten": _no_args,
    "Reshape": _reshape,
    "Permute": _permute,
    "UpSampling2D": _up_sampling,
    "ZeroPadding2D": _zero_padding,
    "Cropping2D": _cropping,
    "Rescaling": _rescaling,
}

MERGE_KINDS = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate"})


def emit_layer(block: Block, plan: ModelPlan, layer: LayerPlan) -> None:
    """``conv2d = layers.Conv2D(16, 3, name="conv2d")(input_)``."""
    if layer.spec.is_source:
        args = [f"shape={py(tuple(layer.shape))}"]
        if layer.params["dtype"] != "float32":
            args.append(f"dtype={py(layer.params['dtype'])}")
        block.statement(f"{layer.ident} = keras.Input", [*args, f"name={py(layer.ident)}"])
        return
    func, args = CONSTRUCTORS[layer.kind](layer)
    args = [*args, f"name={py(layer.ident)}"]
    sources = [plan.layer(source).ident for source in layer.inputs]
    if layer.kind in ("SimpleRNN", "LSTM", "GRU") and layer.params["bidirectional"]:
        inner = f"{func}({', '.join(args[:-1])})"
        func, args = "layers.Bidirectional", [inner, args[-1]]
    if layer.kind in MERGE_KINDS:
        call_args = f"([{', '.join(sources)}])"
    elif layer.kind == "MultiHeadAttention":
        query = sources[0]
        value = sources[1] if len(sources) > 1 else query
        key = sources[2] if len(sources) > 2 else value
        call_args = f"({query}, {value})" if key == value else f"({query}, {value}, {key})"
    else:
        call_args = f"({sources[0]})"
    block.statement(f"{layer.ident} = {func}", args, call_args)


def emit_build_model(plan: ModelPlan) -> list[str]:
    block = Block(1)
    for layer in plan.layers:
        emit_layer(block, plan, layer)
    inputs = _list_or_single([layer.ident for layer in plan.inputs])
    outputs = _list_or_single([layer.ident for layer in plan.outputs])
    block.statement(
        "return keras.Model", [f"inputs={inputs}", f"outputs={outputs}", f"name={py(plan.model_name)}"]
    )
    return [
        "def build_model():",
        f'    """Build the Keras model (channels-last). {_io_doc(plan)}"""',
        *block.lines,
    ]


def _list_or_single(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"[{', '.join(names)}]"


def _io_doc(plan: ModelPlan) -> str:
    from studio.catalog import format_shape

    ins = ", ".join(format_shape(layer.shape) for layer in plan.inputs)
    outs = ", ".join(format_shape(layer.shape) for layer in plan.outputs)
    return f"Input {ins}; output {outs}."
