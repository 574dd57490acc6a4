"""Undoable edits. Each command calls Graph methods only, and says what it does.

Use :func:`push` rather than ``QUndoStack.push``: it performs the edit first,
so an invalid request raises GraphError/ParamError to the caller and nothing
lands on the stack (an exception raised inside a C++-called ``redo`` would be
swallowed, leaving a broken command behind).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from PySide6.QtGui import QUndoCommand, QUndoStack

from studio.graph import Edge, Graph

Position = tuple[float, float]

_SET_PARAMS_ID = 1001
_SET_TRAINING_ID = 1002
MERGE_WINDOW_S = 1.5  # spin-box clicks on one parameter within this time are one undo step


class GraphCommand(QUndoCommand):
    """A command whose first ``redo`` may already have been done by :func:`push`."""

    def __init__(self, graph: Graph, text: str = "") -> None:
        super().__init__(text)
        self.graph = graph
        self._skip_redo = False

    def do(self) -> None:
        raise NotImplementedError

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        self.do()


def push(stack: QUndoStack, command: GraphCommand) -> GraphCommand:
    """Do ``command`` (raising if the graph refuses it), then put it on the stack."""
    command.do()
    command._skip_redo = True
    stack.push(command)
    return command


def format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(str(item) for item in value) + ")"
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def layers_text(count: int) -> str:
    return f"{count} layer{'s' if count != 1 else ''}"


class AddNode(GraphCommand):
    def __init__(
        self,
        graph: Graph,
        kind: str,
        position: Position,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        spec = graph.registry.get(kind)
        self.kind = kind
        self.name = name or graph.unique_name(spec.default_name)
        self.params = dict(params or {})
        self.position = position
        self.node_id: str | None = None
        super().__init__(graph, f"Add {kind} '{self.name}'")

    def do(self) -> None:
        node = self.graph.add_node(self.kind, self.name, self.params, self.position, node_id=self.node_id)
        self.node_id = node.id

    def undo(self) -> None:
        self.graph.remove_node(self.node_id)


class RemoveNode(GraphCommand):
    """Remove a node; undo restores it with the same id, its edges and the outputs list."""

    def __init__(self, graph: Graph, node_id: str) -> None:
        self.node_id = node_id
        self.edges: list[Edge] = []
        self.outputs: list[str] = []
        self.snapshot = None
        self.block: tuple[str, bool] | None = None  # the block it was in: name, collapsed
        super().__init__(graph, f"Delete {graph.label(node_id)}")

    def do(self) -> None:
        node = self.graph.node(self.node_id)
        self.snapshot = (node.kind, node.name, dict(node.params), node.position)
        self.edges = self.graph.input_edges(self.node_id) + self.graph.output_edges(self.node_id)
        self.outputs = self.graph.declared_outputs
        block = self.graph.block_of(self.node_id)
        self.block = None if block is None else (block.name, block.collapsed)
        self.graph.remove_node(self.node_id)

    def undo(self) -> None:
        kind, name, params, position = self.snapshot
        with self.graph.batch():
            self.graph.add_node(kind, name, params, position, node_id=self.node_id)
            for edge in self.edges:
                self.graph.connect(edge.source, edge.target, edge.port)
            self.graph.set_outputs(self.outputs)
            if self.block is not None:  # back into its block, made again if it left it empty
                block, collapsed = self.block
                if any(other.name == block for other in self.graph.blocks):
                    self.graph.add_to_block(block, self.node_id)
                else:
                    self.graph.add_block(block, [self.node_id], collapsed)


class Connect(GraphCommand):
    def __init__(self, graph: Graph, source: str, target: str, port: int | None = None) -> None:
        self.source, self.target, self.port = source, target, port
        text = f"Connect {graph.node(source).name} → {graph.node(target).name}"
        super().__init__(graph, text)

    def do(self) -> None:
        edge = self.graph.connect(self.source, self.target, self.port)
        self.port = edge.port

    def undo(self) -> None:
        self.graph.disconnect(self.target, self.port)


class Disconnect(GraphCommand):
    def __init__(self, graph: Graph, target: str, port: int) -> None:
        self.target, self.port = target, port
        self.source = next(edge.source for edge in graph.input_edges(target) if edge.port == port)
        text = f"Disconnect {graph.node(self.source).name} → {graph.node(target).name}"
        super().__init__(graph, text)

    def do(self) -> None:
        self.source = self.graph.disconnect(self.target, self.port).source

    def undo(self) -> None:
        self.graph.connect(self.source, self.target, self.port)


class RenameNode(GraphCommand):
    def __init__(self, graph: Graph, node_id: str, name: str) -> None:
        self.node_id = node_id
        self.old = graph.node(node_id).name
        self.new = name
        super().__init__(graph, f"Rename '{self.old}' to '{name}'")

    def do(self) -> None:
        self.graph.rename_node(self.node_id, self.new)

    def undo(self) -> None:
        self.graph.rename_node(self.node_id, self.old)


class SetParams(GraphCommand):
    """Change parameters of one node. Quick successive changes of one parameter merge."""

    def __init__(self, graph: Graph, node_id: str, values: Mapping[str, Any]) -> None:
        node = graph.node(node_id)
        self.node_id = node_id
        self.time = time.monotonic()
        self.new = dict(values)
        self.old = {name: node.params[name] for name in values if name in node.params}
        super().__init__(graph, self._describe(node.name))

    def _describe(self, node_name: str) -> str:
        if len(self.new) == 1:
            ((name, value),) = self.new.items()
            return f"Set {name} of '{node_name}' to {format_value(value)}"
        return f"Set {len(self.new)} parameters of '{node_name}'"

    def do(self) -> None:
        self.graph.set_params(self.node_id, self.new)

    def undo(self) -> None:
        self.graph.set_params(self.node_id, self.old)

    def id(self) -> int:
        return _SET_PARAMS_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if (
            not isinstance(other, SetParams)
            or other.node_id != self.node_id
            or other.new.keys() != self.new.keys()
        ):
            return False
        if other.time - self.time > MERGE_WINDOW_S:
            return False
        self.new, self.time = dict(other.new), other.time
        self.setText(self._describe(self.graph.node(self.node_id).name))
        return True


class MoveNodes(GraphCommand):
    """Move several nodes at once: a drag, or an automatic layout."""

    def __init__(self, graph: Graph, moves: Mapping[str, tuple[Position, Position]], text: str | None = None):
        self.moves = dict(moves)
        if text is None:
            if len(self.moves) == 1:
                text = f"Move '{graph.node(next(iter(self.moves))).name}'"
            else:
                text = f"Move {layers_text(len(self.moves))}"
        super().__init__(graph, text)

    def _apply(self, index: int) -> None:
        with self.graph.batch():
            for node_id, positions in self.moves.items():
                self.graph.move_node(node_id, positions[index])

    def do(self) -> None:
        self._apply(1)

    def undo(self) -> None:
        self._apply(0)


class SetOutputs(GraphCommand):
    def __init__(self, graph: Graph, outputs: list[str], text: str = "Set the model outputs") -> None:
        self.old = graph.declared_outputs
        self.new = list(outputs)
        super().__init__(graph, text)

    def do(self) -> None:
        self.graph.set_outputs(self.new)

    def undo(self) -> None:
        self.graph.set_outputs(self.old)


class GroupBlock(GraphCommand):
    """Group layers into a named block."""

    def __init__(self, graph: Graph, name: str, members: list[str], collapsed: bool = False) -> None:
        self.name, self.members, self.collapsed = name, list(members), collapsed
        super().__init__(graph, f"Group {layers_text(len(members))} as '{name}'")

    def do(self) -> None:
        self.graph.add_block(self.name, self.members, self.collapsed)

    def undo(self) -> None:
        self.graph.remove_block(self.name)


class Ungroup(GraphCommand):
    """Remove a block; its layers stay."""

    def __init__(self, graph: Graph, name: str) -> None:
        block = graph.block(name)
        self.name, self.members, self.collapsed = name, list(block.members), block.collapsed
        super().__init__(graph, f"Ungroup '{name}'")

    def do(self) -> None:
        self.graph.remove_block(self.name)

    def undo(self) -> None:
        self.graph.add_block(self.name, self.members, self.collapsed)


class RenameBlock(GraphCommand):
    def __init__(self, graph: Graph, name: str, new_name: str) -> None:
        self.old, self.new = name, new_name
        super().__init__(graph, f"Rename block '{name}' to '{new_name}'")

    def do(self) -> None:
        self.graph.rename_block(self.old, self.new)

    def undo(self) -> None:
        self.graph.rename_block(self.new, self.old)


class SetBlockCollapsed(GraphCommand):
    def __init__(self, graph: Graph, name: str, collapsed: bool) -> None:
        self.name, self.collapsed = name, collapsed
        super().__init__(graph, f"{'Collapse' if collapsed else 'Expand'} block '{name}'")

    def do(self) -> None:
        self.graph.set_block_collapsed(self.name, self.collapsed)

    def undo(self) -> None:
        self.graph.set_block_collapsed(self.name, not self.collapsed)


class SetTraining(QUndoCommand):
    """Change the project's training settings; edits of one setting within a moment merge."""

    def __init__(self, document, settings, changed: str) -> None:
        super().__init__(self._describe(settings, changed))
        self.document = document
        self.before = document.project.training
        self.after = settings
        self.changed = changed
        self.time = time.monotonic()
        self._skip_redo = False

    @staticmethod
    def _describe(settings, changed: str) -> str:
        return f"Set training {changed.replace('_', ' ')} to {format_value(getattr(settings, changed))}"

    def do(self) -> None:
        self.document.set_training(self.after)

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        self.do()

    def undo(self) -> None:
        self.document.set_training(self.before)

    def id(self) -> int:
        return _SET_TRAINING_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetTraining) or other.changed != self.changed:
            return False
        if other.time - self.time > MERGE_WINDOW_S:
            return False
        self.after, self.time = other.after, other.time
        self.setText(self._describe(self.after, self.changed))
        return True
