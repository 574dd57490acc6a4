"""Edit-menu operations on the canvas selection: add, delete, copy, paste, duplicate, arrange."""

from __future__ import annotations

import json
import os

from PySide6.QtCore import QObject, QPointF, QRectF, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QInputDialog

from studio.graph import GraphError
from widgets import edits
from widgets.clipboard import fragment, from_mime, to_mime
from widgets.document import Document
from widgets.fit_layout import fitted_layout
from widgets.node_geometry import LEFT_TO_RIGHT, NODE_HEIGHT, NODE_WIDTH
from widgets.node_item import NodeItem
from widgets.scene import GraphScene
from widgets.view import GraphView

ADD_GAP = 70.0
PASTE_STEP = 40.0
ARRANGE_TEXT = {"LR": "Arrange layers left to right", "TB": "Arrange layers top to bottom"}


class CanvasActions(QObject):
    message = Signal(str)

    def __init__(self, document: Document, scene: GraphScene, view: GraphView, parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.scene = scene
        self.view = view
        self._last_paste: tuple[str, int] = ("", 0)
        scene.blockToggled.connect(self.set_collapsed)

    # ----- adding --------------------------------------------------------------------

    def add_from_palette(self, kind: str) -> str | None:
        """Add ``kind`` after the single selected layer (connected to it), else at the view centre."""
        selected = self.scene.selected_node_ids()
        if selected:
            anchor = self.scene.nodes_rect(selected)
            center = self._next_to(anchor)
        else:
            center = self.view.visible_scene_center()
        center = self._free_spot(center)
        after = selected[0] if len(selected) == 1 else None
        node_id = self.scene.add_layer(kind, center, after=after)
        if node_id is not None:
            self.view.ensureVisible(self.scene.node_item(node_id), 40, 40)
        return node_id

    def _next_to(self, rect: QRectF) -> QPointF:
        if self.scene.orientation == LEFT_TO_RIGHT:
            return QPointF(rect.right() + ADD_GAP + NODE_WIDTH / 2, rect.center().y())
        return QPointF(rect.center().x(), rect.bottom() + ADD_GAP + NODE_HEIGHT / 2)

    def _free_spot(self, center: QPointF) -> QPointF:
        """Move ``center`` down (or right) until a new node there would overlap none."""
        step = (
            QPointF(0, NODE_HEIGHT + 30)
            if self.scene.orientation == LEFT_TO_RIGHT
            else QPointF(NODE_WIDTH + 30, 0)
        )
        for _ in range(200):
            rect = QRectF(center.x() - NODE_WIDTH / 2, center.y() - NODE_HEIGHT / 2, NODE_WIDTH, NODE_HEIGHT)
            if not any(
                isinstance(item, NodeItem) for item in self.scene.items(rect.adjusted(-10, -10, 10, 10))
            ):
                break
            center += step
        return center

    # ----- delete, copy, paste -------------------------------------------------------

    def delete_selection(self) -> None:
        nodes, edges = self.scene.selected_node_ids(), self.scene.selected_edges()
        if nodes or edges:
            edits.delete(self.document, nodes, edges)

    def copy(self) -> bool:
        nodes = self.scene.selected_node_ids()
        if not nodes:
            return False
        QGuiApplication.clipboard().setMimeData(to_mime(fragment(self.document.graph, nodes)))
        return True

    def cut(self) -> None:
        if self.copy():
            nodes = self.scene.selected_node_ids()
            with edits.macro(self.document, f"Cut {edits.layers_text(len(nodes))}"):
                edits.delete(self.document, nodes)

    def paste(self) -> list[str]:
        data = from_mime(QGuiApplication.clipboard().mimeData())
        if data is None:
            self.message.emit("The clipboard holds no layers to paste.")
            return []
        key = json.dumps(data, sort_keys=True)
        count = self._last_paste[1] + 1 if self._last_paste[0] == key else 1
        self._last_paste = (key, count)
        return self._paste(data, count * PASTE_STEP, "Paste")

    def duplicate(self) -> list[str]:
        nodes = self.scene.selected_node_ids()
        if not nodes:
            return []
        return self._paste(fragment(self.document.graph, nodes), PASTE_STEP, "Duplicate")

    def _paste(self, data: dict, offset: float, text: str) -> list[str]:
        new_ids = edits.paste(self.document, data, (offset, offset), text)
        self.scene.select_nodes(new_ids)
        return new_ids

    def select_all(self) -> None:
        self.scene.select_nodes([node.id for node in self.document.graph.nodes])

    # ----- blocks --------------------------------------------------------------------

    def group_selection(self, name: str | None = None) -> str | None:
        """Group the selected layers into a block (asking for its name unless given); returns it."""
        nodes = self.scene.selected_node_ids()
        if not nodes:
            self.message.emit("Select the layers to group first.")
            return None
        graph = self.document.graph
        if name is None:
            name, ok = QInputDialog.getText(
                self.view,
                "Group into a block",
                "Block name:",
                text=graph.unique_block_name(self._default_block_name(nodes)),
            )
            if not ok:
                return None
        try:
            edits.group(self.document, name.strip(), nodes)
        except GraphError as error:
            self.message.emit(f"Cannot group: {error}")
            return None
        return name.strip()

    def _default_block_name(self, nodes: list[str]) -> str:
        """The selected layers' common name prefix (``conv2_block1_``...), else ``block``."""
        prefix = os.path.commonprefix([self.document.graph.node(node_id).name for node_id in nodes])
        return prefix.rstrip("._/- ") or "block"

    def ungroup_selection(self) -> None:
        names = self.scene.selected_block_names()
        if not names:
            self.message.emit("Select a block, or a layer in one, to ungroup.")
            return
        with edits.macro(self.document, f"Ungroup {', '.join(names)}"):
            for name in names:
                edits.ungroup(self.document, name)

    def rename_block(self, name: str, new_name: str) -> None:
        try:
            edits.rename_block(self.document, name, new_name.strip())
        except GraphError as error:
            self.message.emit(f"Cannot rename the block: {error}")

    def ask_rename_block(self) -> None:
        names = self.scene.selected_block_names()
        if len(names) != 1:
            self.message.emit("Select one block to rename.")
            return
        new_name, ok = QInputDialog.getText(self.view, "Rename block", "Block name:", text=names[0])
        if ok:
            self.rename_block(names[0], new_name)

    def toggle_selected_blocks(self) -> None:
        """Expand the selected collapsed blocks, else collapse the blocks of the selected layers."""
        names = self.scene.selected_block_names()
        if not names:
            self.message.emit("Select a block, or a layer in one, to collapse or expand it.")
            return
        graph = self.document.graph
        collapse = not any(graph.block(name).collapsed for name in names)
        for name in names:
            self.set_collapsed(name, collapse)

    def set_collapsed(self, name: str, collapsed: bool) -> None:
        """Collapse or expand a block and lay the graph out again around it (one undo step)."""
        graph = self.document.graph
        if graph.block(name).collapsed == collapsed:
            return
        with edits.macro(self.document, f"{'Collapse' if collapsed else 'Expand'} block '{name}'"):
            edits.set_collapsed(self.document, name, collapsed)
            self._arrange_moves(self.scene.orientation)
        self.view.fit_all()
        if not collapsed:
            self.scene.select_nodes(graph.block(name).members)

    # ----- layout --------------------------------------------------------------------

    def arrange(self, direction: str = LEFT_TO_RIGHT) -> None:
        """Lay every node out in layers, long chains wrapped to fit the view (one undo step); show them all."""
        self.scene.set_orientation(direction)
        self._arrange_moves(direction, ARRANGE_TEXT[direction])
        self.view.fit_all()

    def _arrange_moves(self, direction: str, text: str | None = None) -> None:
        graph = self.document.graph
        viewport = self.view.viewport().size()
        positions = fitted_layout(graph, (viewport.width(), viewport.height()), (direction,)).positions
        moves = {node.id: (node.position, positions[node.id]) for node in graph.nodes}
        edits.move_nodes(self.document, moves, text)
