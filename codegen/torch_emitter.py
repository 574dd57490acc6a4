"""PyTorch code for a model plan: an ``nn.Module`` with layers in ``__init__``, wiring in ``forward``.

Each layer's lowering (``codegen.layers``) writes its module and forward
steps; this walker converts each input to the layout the layer needs and
lays the code out.
"""

from __future__ import annotations

from codegen.layers import LOWERINGS
from codegen.layers.base import CF, CL, FLAT_CF, Layout, TorchCode
from codegen.plan import LayerPlan, ModelPlan
from codegen.writer import INDENT, LINE_LENGTH, Block, py


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


# ----- the module -----------------------------------------------------------------------


def layer_code(plan: ModelPlan, layer: LayerPlan) -> TorchCode:
    """The layer's code, its inputs converted to the layout the layer needs."""
    xs = []
    for source_id in layer.inputs:
        source = plan.layer(source_id)
        target = layer.input_layout or source.layout.kind
        xs.append(convert_layout(source.ident, source.layout, target, len(source.shape)))
    return LOWERINGS[layer.kind].torch(layer, xs)


def emit_module(plan: ModelPlan) -> list[str]:
    init, forward = Block(2), Block(2)
    matched = plan.project.training.init == "matched"
    if matched:
        init.line('# training.init is "matched": the weights start as Keras initialises them.')
    for layer in plan.layers:
        if layer.spec.is_source:
            continue
        code = layer_code(plan, layer)
        if code.module:
            func, args = code.module
            init.statement(f"self.{layer.ident} = {func}", args)
        keras_init = LOWERINGS[layer.kind].keras_init
        extra = code.init + (keras_init(layer) if matched and keras_init is not None else [])
        for line in extra:
            _statement(init, line.replace("{ident}", layer.ident))
        for step in code.steps:
            if isinstance(step, str) and step.startswith("#"):  # a comment on the step that follows
                forward.line(step)
                continue
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


def _statement(block: Block, text: str) -> None:
    """A statement or comment on one line if it fits, else a call exploded one argument per line."""
    head, args = _split_call(text)
    if len(INDENT * block.level + text) <= LINE_LENGTH or head is None:
        block.line(text)
    else:
        block.statement(head, args)


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
