"""Keras 3 functional-API code for a model plan (channels-last, TensorFlow backend).

Each layer's lowering gives its constructor and arguments; defaults that
Keras already has are left out, except where the value matters for
equivalence with PyTorch (batch-norm momentum and epsilon).
"""

from __future__ import annotations

from codegen.layers import LOWERINGS
from codegen.layers.activations import GELU_TANH_KERAS
from codegen.plan import LayerPlan, ModelPlan
from codegen.writer import Block, py
from studio.catalog import format_shape


def emit_layer(block: Block, plan: ModelPlan, layer: LayerPlan) -> None:
    """``conv2d = layers.Conv2D(16, 3, name="conv2d")(input_)``."""
    if layer.spec.is_source:
        args = [f"shape={py(tuple(layer.shape))}"]
        if layer.params["dtype"] != "float32":
            args.append(f"dtype={py(layer.params['dtype'])}")
        block.statement(f"{layer.ident} = keras.Input", [*args, f"name={py(layer.ident)}"])
        return
    sources = [plan.layer(source).ident for source in layer.inputs]
    code = LOWERINGS[layer.kind].keras(layer, sources)
    call = code.call or f"({sources[0]})"
    block.statement(f"{layer.ident} = {code.func}", [*code.args, f"name={py(layer.ident)}"], call)


def emit_layer_classes(plan: ModelPlan) -> list[str]:
    """The Keras layer classes the program defines itself (kinds Keras has no layer for), once each,
    and the activation functions (gelu_tanh)."""
    lines: list[str] = []
    for kind in dict.fromkeys(layer.kind for layer in plan.layers):
        source = LOWERINGS[kind].keras_class if kind in LOWERINGS else ()
        if source:
            lines += [*source, "", ""]
    if any(layer.params.get("activation") == "gelu_tanh" for layer in plan.layers):
        lines += [*GELU_TANH_KERAS, "", ""]
    return lines


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
    ins = ", ".join(format_shape(layer.shape) for layer in plan.inputs)
    outs = ", ".join(format_shape(layer.shape) for layer in plan.outputs)
    return f"Input {ins}; output {outs}."
