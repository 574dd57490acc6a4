"""User-level edits, each one undo step (a command, or a macro of commands).

Views call these; they raise GraphError/ParamError when the graph refuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from studio.catalog import ParamError
from studio.graph import Edge, GraphError
from widgets import commands
from widgets.commands import layers_text, push
from widgets.document import Document

Position = tuple[float, float]


@contextlib.contextmanager
def macro(document: Document, text: str) -> Iterator[None]:
    """Group commands into one undo step; on an error, undo what was done and re-raise.

    The graph's ``changed`` event fires once at the end, so the model is
    validated and re-inferred once per user edit, not once per command.
    """
    stack = document.undo_stack
    stack.beginMacro(text)
    failed = False
    try:
        with document.graph.batch():
            yield
    except BaseException:
        failed = True
        raise
    finally:
        stack.endMacro()
        if failed:
            stack.undo()
            stack.push(_Nothing())  # drops the half-done macro from the redo history


class _Nothing(commands.QUndoCommand):
    """Obsolete at birth: pushing it truncates the redo history and adds nothing."""

    def __init__(self) -> None:
        super().__init__("")
        self.setObsolete(True)


def add_node(document: Document, kind: str, position: Position) -> str:
    return push(document.undo_stack, commands.AddNode(document.graph, kind, position)).node_id


def add_node_after(document: Document, kind: str, position: Position, source: str) -> str:
    """Add a layer and feed it from ``source`` when that is allowed (one undo step)."""
    graph = document.graph
    spec = graph.registry.get(kind)
    if spec.is_source:
        return add_node(document, kind, position)
    name = graph.unique_name(spec.default_name)
    with macro(document, f"Add {kind} '{name}' after '{graph.node(source).name}'"):
        node_id = add_node(document, kind, position)
        push(document.undo_stack, commands.Connect(graph, source, node_id, 0))
    return node_id


def connect(document: Document, source: str, target: str, port: int | None = None) -> None:
    document.graph.check_connection(source, target, port)
    push(document.undo_stack, commands.Connect(document.graph, source, target, port))


def disconnect(document: Document, target: str, port: int) -> None:
    push(document.undo_stack, commands.Disconnect(document.graph, target, port))


def rename(document: Document, node_id: str, name: str) -> None:
    if document.graph.node(node_id).name != name:
        push(document.undo_stack, commands.RenameNode(document.graph, node_id, name))


def set_params(document: Document, node_id: str, values: Mapping[str, Any]) -> None:
    """Change parameters if they differ; raises ParamError (nothing pushed) when invalid."""
    node = document.graph.node(node_id)
    clean = document.graph.spec(node_id).validate_params({**node.params, **values})
    changed = {name: clean[name] for name in values if clean[name] != node.params.get(name)}
    if changed:
        push(document.undo_stack, commands.SetParams(document.graph, node_id, changed))


def move_nodes(
    document: Document, moves: Mapping[str, tuple[Position, Position]], text: str | None = None
) -> None:
    moves = {node_id: pair for node_id, pair in moves.items() if pair[0] != pair[1]}
    if moves:
        push(document.undo_stack, commands.MoveNodes(document.graph, moves, text))


def set_output(document: Document, node_id: str, is_output: bool) -> None:
    """Mark or unmark a layer as one of the model's outputs."""
    graph = document.graph
    current = graph.declared_outputs or graph.effective_outputs()
    if is_output == (node_id in current) and graph.declared_outputs:
        return
    if is_output:
        outputs = [*current, node_id] if node_id not in current else current
        text = f"Mark '{graph.node(node_id).name}' as an output"
    else:
        outputs = [other for other in current if other != node_id]
        if not outputs:
            raise GraphError("the model needs at least one output: mark another layer as an output first")
        text = f"Unmark '{graph.node(node_id).name}' as an output"
    if outputs != graph.declared_outputs:
        push(document.undo_stack, commands.SetOutputs(graph, outputs, text))


def delete(document: Document, node_ids: Iterable[str], edges: Iterable[Edge] = ()) -> None:
    """Delete layers and edges: one undo step."""
    graph = document.graph
    node_ids = [node_id for node_id in dict.fromkeys(node_ids) if node_id in graph]
    doomed = set(node_ids)
    edges = {edge for edge in edges if edge.target not in doomed and edge.source not in doomed}
    edges |= {edge for edge in graph.edges if edge.source in doomed or edge.target in doomed}
    if not node_ids and not edges:
        return
    with macro(document, _delete_text(document, node_ids, edges)):
        for edge in sorted(edges, key=lambda edge: (edge.target, -edge.port)):
            push(document.undo_stack, commands.Disconnect(graph, edge.target, edge.port))
        for node_id in node_ids:
            push(document.undo_stack, commands.RemoveNode(graph, node_id))


def group(document: Document, name: str, node_ids: Iterable[str]) -> None:
    """Group layers into a new block named ``name`` (raises GraphError when the graph refuses)."""
    push(document.undo_stack, commands.GroupBlock(document.graph, name, list(dict.fromkeys(node_ids))))


def ungroup(document: Document, name: str) -> None:
    push(document.undo_stack, commands.Ungroup(document.graph, name))


def rename_block(document: Document, name: str, new_name: str) -> None:
    if new_name != name:
        push(document.undo_stack, commands.RenameBlock(document.graph, name, new_name))


def set_collapsed(document: Document, name: str, collapsed: bool) -> None:
    if document.graph.block(name).collapsed != collapsed:
        push(document.undo_stack, commands.SetBlockCollapsed(document.graph, name, collapsed))


def _delete_text(document: Document, node_ids: list[str], edges: set[Edge]) -> str:
    if len(node_ids) == 1:
        return f"Delete {document.graph.label(node_ids[0])}"
    if node_ids:
        return f"Delete {layers_text(len(node_ids))}"
    if len(edges) == 1:
        edge = next(iter(edges))
        graph = document.graph
        return f"Disconnect {graph.node(edge.source).name} → {graph.node(edge.target).name}"
    return f"Delete {len(edges)} connections"


def paste(document: Document, data: Mapping[str, Any], offset: Position, text: str = "Paste") -> list[str]:
    """Add the layers of a clipboard fragment, with fresh ids and names. Returns the new ids."""
    graph = document.graph
    items = [
        item
        for item in data.get("nodes", [])
        if isinstance(item, dict) and item.get("kind") in graph.registry
    ]
    if not items:
        return []
    new_ids: dict[str, str] = {}
    with macro(document, f"{text} {layers_text(len(items))}"):
        for item in items:
            new_ids[item["id"]] = _paste_node(document, item, offset)
        for edge in data.get("edges", []):
            source, target = new_ids.get(edge.get("from")), new_ids.get(edge.get("to"))
            if source and target:
                push(document.undo_stack, commands.Connect(graph, source, target, edge.get("port")))
    return list(new_ids.values())


def _paste_node(document: Document, item: Mapping[str, Any], offset: Position) -> str:
    graph = document.graph
    name = item.get("name") or graph.registry.get(item["kind"]).default_name
    if graph.find(name) is not None:
        name = graph.unique_name(name)
    x, y = item.get("position", (0.0, 0.0))
    params = item.get("params", {})
    try:
        graph.registry.get(item["kind"]).validate_params(params)
    except ParamError:
        params = {}
    command = commands.AddNode(graph, item["kind"], (x + offset[0], y + offset[1]), name, params)
    return push(document.undo_stack, command).node_id
