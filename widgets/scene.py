"""The canvas scene: one item per node and per edge, kept in step with the graph's events.

Only the items an event names are touched; after an analysis, each item
compares what it shows with the new analysis and repaints only if needed.
Mouse gestures here: drag from a port to connect, drag nodes to move (one
undo step on release), drop a palette kind to add a layer.
"""

from __future__ import annotations

from collections import defaultdict

import shiboken6
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsSceneDragDropEvent,
    QGraphicsSceneMouseEvent,
)

from studio.analysis import Problem
from studio.catalog import ParamError
from studio.events import GraphEvent
from studio.graph import Edge, GraphError
from widgets import edits
from widgets.block_item import BlockFrame, CollapsedBlockItem
from widgets.clipboard import MIME_KIND
from widgets.document import Document
from widgets.edge_item import CLEARANCE, HIT_WIDTH, EdgeItem, curve
from widgets.node_geometry import LEFT_TO_RIGHT, NODE_HEIGHT, NODE_WIDTH, PortRef
from widgets.node_item import NodeItem
from widgets.theme import LIGHT, Theme

SCENE_EXTENT = 100_000.0
GRID = 20.0


class GraphScene(QGraphicsScene):
    message = Signal(str)  # a short explanation for the status bar (refused connection...)
    nodeActivated = Signal(str)  # a node was double-clicked
    blockToggled = Signal(str, bool)  # the user asked to collapse (True) or expand (False) a block

    def __init__(self, document: Document, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self.theme: Theme = LIGHT
        self.orientation = LEFT_TO_RIGHT
        self.plain_background = False
        self.highlighted_port: PortRef | None = None
        self._nodes: dict[str, NodeItem] = {}
        self._edges: dict[tuple[str, int], EdgeItem] = {}
        self._collapsed: dict[str, CollapsedBlockItem] = {}  # by block name
        self._frames: dict[str, BlockFrame] = {}
        self._hidden: set[str] = set()  # the members of collapsed blocks
        self._problems_by_node: dict[str, list[Problem]] = {}
        self._problems_by_edge: dict[Edge, list[Problem]] = {}
        self._press_positions: dict[str, QPointF] = {}
        self._wire: QGraphicsPathItem | None = None
        self._wire_start: PortRef | None = None
        self.setSceneRect(-SCENE_EXTENT / 2, -SCENE_EXTENT / 2, SCENE_EXTENT, SCENE_EXTENT)
        self._subscribe()
        self.rebuild()

    # ----- model events --------------------------------------------------------------

    def _subscribe(self) -> None:
        events = self.document.graph_events
        events.node_added.connect(self._on_node_added)
        events.node_removed.connect(self._on_node_removed)
        events.node_renamed.connect(self._on_node_changed)
        events.params_changed.connect(self._on_node_changed)
        events.node_moved.connect(self._on_node_moved)
        events.edge_added.connect(self._on_edge_added)
        events.edge_removed.connect(self._on_edge_removed)
        events.blocks_changed.connect(self._sync_blocks)
        events.changed.connect(self._on_changed)
        self.document.projectReplaced.connect(self.rebuild)
        self.document.analysisChanged.connect(self._on_analysis_changed)

    def rebuild(self) -> None:
        """Drop every item and create them again from the graph (a project was opened)."""
        self._cancel_wire()
        for item in list(self._edges.values()) + list(self._nodes.values()):
            self.removeItem(item)
        self._nodes.clear()
        self._edges.clear()
        self._hidden = set()
        self._index_problems()
        graph = self.document.graph
        for node in graph.nodes:
            self._add_node_item(node.id)
        for edge in graph.edges:
            self._add_edge_item(edge)
        self._sync_blocks()

    def _on_node_added(self, event: GraphEvent) -> None:
        self._add_node_item(event.node_id)

    def _add_node_item(self, node_id: str) -> None:
        item = NodeItem(self, node_id)
        self._nodes[node_id] = item
        self.addItem(item)

    def _on_node_removed(self, event: GraphEvent) -> None:
        self._hidden.discard(event.node_id)
        item = self._nodes.pop(event.node_id, None)
        if item is not None:
            for edge in list(item.edges):
                self._remove_edge_item(edge)
            self.removeItem(item)

    def _on_node_changed(self, event: GraphEvent) -> None:
        item = self._nodes.get(event.node_id)
        if item is not None:
            item.refresh()
            for edge in item.edges:
                edge.refresh()

    def _on_node_moved(self, event: GraphEvent) -> None:
        item = self._nodes.get(event.node_id)
        if item is None:
            return
        position = QPointF(*event.data["position"])
        before = item.sceneBoundingRect()
        if item.pos() != position:
            item.setPos(position)
        self._reroute_edges_near(before)
        if item.sceneBoundingRect() != before:
            self._reroute_edges_near(item.sceneBoundingRect())

    def _reroute_edges_near(self, rect: QRectF) -> None:
        """Edges that passed the area a node left or entered: their way around nodes may change."""
        for other in self.items(rect):
            if isinstance(other, EdgeItem):
                other.update_path()

    def _on_edge_added(self, event: GraphEvent) -> None:
        self._add_edge_item(Edge(event.data["source"], event.node_id, event.data["port"]))

    def _add_edge_item(self, edge: Edge) -> None:
        source, target = self._nodes[edge.source], self._nodes[edge.target]
        item = EdgeItem(self, edge, source, target)
        self._edges[(edge.target, edge.port)] = item
        self.addItem(item)
        source.refresh()
        target.refresh()

    def _on_edge_removed(self, event: GraphEvent) -> None:
        item = self._edges.get((event.node_id, event.data["port"]))
        if item is not None:
            self._remove_edge_item(item)

    def _remove_edge_item(self, item: EdgeItem) -> None:
        self._edges.pop((item.edge.target, item.edge.port), None)
        item.detach()
        self.removeItem(item)
        for node in (item.source_item, item.target_item):
            if node.node_id in self._nodes:
                node.refresh()

    def _on_analysis_changed(self) -> None:
        self._index_problems()
        for item in self._nodes.values():
            item.refresh()
        for edge in self._edges.values():
            edge.refresh()
        if self._collapsed:  # their shapes may have changed
            self._sync_blocks()

    # ----- blocks --------------------------------------------------------------------

    def _on_changed(self, event: GraphEvent) -> None:
        """Members moved, came or went: the blocks' items follow (once per edit)."""
        reasons = set(event.data.get("reasons", ()))
        if self.document.graph.blocks and reasons & {"node_moved", "node_added", "node_removed"}:
            self._sync_blocks()

    def _sync_blocks(self, event: GraphEvent | None = None) -> None:
        """Make the blocks' items again: a collapsed block hides its members, an expanded one frames them."""
        selected = {name for name, item in self._collapsed.items() if item.isSelected()}
        for item in [*self._collapsed.values(), *self._frames.values()]:
            self.removeItem(item)
        self._collapsed.clear()
        self._frames.clear()
        graph = self.document.graph
        hidden = set()
        for block in graph.blocks:
            if block.collapsed:
                item = CollapsedBlockItem(self, block)
                self._collapsed[block.name] = item
                self.addItem(item)
                item.setSelected(block.name in selected)
                hidden.update(block.members)
            else:
                frame = BlockFrame(self, block, [self._items_rect([self._nodes[n]]) for n in block.members])
                self._frames[block.name] = frame
                self.addItem(frame)
        touched = hidden | self._hidden  # the ends of these nodes' edges may have moved
        self._hidden = hidden
        for node_id in touched:
            item = self._nodes[node_id]
            item.setVisible(node_id not in hidden)
            if node_id in hidden:
                item.setSelected(False)
        edges = {edge for node_id in touched for edge in self._nodes[node_id].edges}
        # Edges that pass where a block now is go around it; those that went around a node now
        # hidden (or must avoid one now shown) take their shortest way again.
        places = [item.sceneBoundingRect() for item in self._collapsed.values()]
        places += [self._nodes[node_id].sceneBoundingRect() for node_id in touched]
        margin = CLEARANCE + HIT_WIDTH  # a detour runs this close around a node
        for place in places:
            near = place.adjusted(-margin, -margin, margin, margin)
            edges.update(other for other in self.items(near) if isinstance(other, EdgeItem))
        for edge in edges:
            source, target = self.end_item(edge.edge.source), self.end_item(edge.edge.target)
            edge.setVisible(source is not target or not isinstance(source, CollapsedBlockItem))
            if edge.isVisible():
                edge.update_path()

    def end_item(self, node_id: str) -> NodeItem | CollapsedBlockItem:
        """The item an edge to or from ``node_id`` attaches to: the node, or its collapsed block."""
        block = self.document.graph.block_of(node_id)
        if block is not None and block.name in self._collapsed:
            return self._collapsed[block.name]
        return self._nodes[node_id]

    def update_block_edges(self, members: list[str]) -> None:
        """A collapsed block is being dragged: its edges follow."""
        for node_id in members:
            for edge in self._nodes[node_id].edges:
                if edge.isVisible():
                    edge.update_path()

    def selected_block_names(self) -> list[str]:
        """Selected collapsed blocks, and the blocks of the selected layers, in block order."""
        names = {name for name, item in self._collapsed.items() if item.isSelected()}
        graph = self.document.graph
        for node_id in self.selected_node_ids():
            block = graph.block_of(node_id)
            if block is not None:
                names.add(block.name)
        return [block.name for block in graph.blocks if block.name in names]

    def _index_problems(self) -> None:
        by_node: dict[str, list[Problem]] = defaultdict(list)
        by_edge: dict[Edge, list[Problem]] = defaultdict(list)
        for problem in self.document.analysis.problems:
            if problem.edge is not None:
                by_edge[problem.edge].append(problem)
            if problem.node_id is not None:
                by_node[problem.node_id].append(problem)
        self._problems_by_node, self._problems_by_edge = dict(by_node), dict(by_edge)

    def problems_for_node(self, node_id: str) -> list[Problem]:
        return self._problems_by_node.get(node_id, [])

    def problems_for_edge(self, edge: Edge) -> list[Problem]:
        return self._problems_by_edge.get(edge, [])

    # ----- appearance ----------------------------------------------------------------

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        for item in self._nodes.values():
            item.invalidate()
        for edge in self._edges.values():
            edge.update()
        self.update()

    def set_orientation(self, orientation: str) -> None:
        if orientation == self.orientation:
            return
        self.orientation = orientation
        for item in self._nodes.values():
            item.invalidate()
        for edge in self._edges.values():
            edge.update_path()

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, QColor(self.theme.canvas))
        if self.plain_background:  # an exported diagram
            return
        scale = painter.worldTransform().m11()
        if scale > 0.55:
            self._draw_grid(painter, rect, GRID, self.theme.grid_minor)
        if scale > 0.12:
            self._draw_grid(painter, rect, GRID * 5, self.theme.grid_major)

    def _draw_grid(self, painter: QPainter, rect: QRectF, step: float, color: str) -> None:
        painter.setPen(QPen(QColor(color), 0))
        left, top = rect.left() - rect.left() % step, rect.top() - rect.top() % step
        lines = [QLineF(x, rect.top(), x, rect.bottom()) for x in _steps(left, rect.right(), step)]
        lines += [QLineF(rect.left(), y, rect.right(), y) for y in _steps(top, rect.bottom(), step)]
        painter.drawLines(lines)

    # ----- lookup and selection ------------------------------------------------------

    def node_item(self, node_id: str) -> NodeItem:
        return self._nodes[node_id]

    def node_items(self) -> list[NodeItem]:
        return list(self._nodes.values())

    def edge_item(self, target: str, port: int) -> EdgeItem:
        return self._edges[(target, port)]

    def selected_node_ids(self) -> list[str]:
        """Selected nodes in graph order, a selected collapsed block's members included (items
        already deleted at shutdown are skipped)."""
        members = {
            node_id
            for item in self._collapsed.values()
            if shiboken6.isValid(item) and item.isSelected()
            for node_id in item.members
        }
        return [
            node_id
            for node_id, item in self._nodes.items()
            if shiboken6.isValid(item) and (item.isSelected() or node_id in members)
        ]

    def selected_edges(self) -> list[Edge]:
        return sorted(item.edge for item in self._edges.values() if item.isSelected())

    def select_nodes(self, node_ids: list[str]) -> None:
        self.clearSelection()
        for node_id in node_ids:
            if node_id in self._nodes:
                self.end_item(node_id).setSelected(True)  # a layer in a collapsed block: the block

    def nodes_rect(self, node_ids: list[str] | None = None) -> QRectF:
        """What the nodes cover on the canvas; a member of a collapsed block counts as its block."""
        node_ids = list(self._nodes) if node_ids is None else [n for n in node_ids if n in self._nodes]
        return self._items_rect(list(dict.fromkeys(self.end_item(node_id) for node_id in node_ids)))

    @staticmethod
    def _items_rect(items: list) -> QRectF:
        rect = QRectF()
        for item in items:
            rect = rect.united(
                QRectF(item.pos(), QPointF(item.pos().x() + item.size[0], item.pos().y() + item.size[1]))
            )
        return rect

    def port_at(self, scene_pos: QPointF) -> PortRef | None:
        for item in self.items(scene_pos):
            if isinstance(item, NodeItem) and item.isVisible():
                port = item.port_at(scene_pos)
                if port is not None:
                    return port
        return None

    def node_at(self, scene_pos: QPointF) -> NodeItem | None:
        return next(
            (item for item in self.items(scene_pos) if isinstance(item, NodeItem) and item.isVisible()), None
        )

    # ----- adding layers -------------------------------------------------------------

    def add_layer(self, kind: str, center: QPointF, after: str | None = None) -> str | None:
        """Add a layer centred on ``center`` (fed by ``after`` when given); select it."""
        position = (round(center.x() - NODE_WIDTH / 2), round(center.y() - NODE_HEIGHT / 2))
        try:
            if after is not None:
                node_id = edits.add_node_after(self.document, kind, position, after)
            else:
                node_id = edits.add_node(self.document, kind, position)
        except (GraphError, ParamError) as error:
            self.message.emit(str(error))
            return None
        self.select_nodes([node_id])
        return node_id

    def dragEnterEvent(self, event: QGraphicsSceneDragDropEvent) -> None:
        if event.mimeData().hasFormat(MIME_KIND):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QGraphicsSceneDragDropEvent) -> None:
        if event.mimeData().hasFormat(MIME_KIND):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QGraphicsSceneDragDropEvent) -> None:
        if not event.mimeData().hasFormat(MIME_KIND):
            super().dropEvent(event)
            return
        kind = bytes(event.mimeData().data(MIME_KIND).data()).decode("utf-8")
        if kind in self.document.graph.registry:
            self.add_layer(kind, event.scenePos())
            event.acceptProposedAction()

    # ----- mouse: connecting and moving ----------------------------------------------

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            port = self.port_at(event.scenePos())
            if port is not None:
                self._start_wire(port, event.scenePos())
                event.accept()
                return
        super().mousePressEvent(event)
        self._press_positions = {item.node_id: item.pos() for item in self._selected_node_items()}
        for item in self._collapsed.values():
            item.press_position = item.pos() if item.isSelected() else None

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._wire is not None:
            self._drag_wire(event.scenePos())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._wire is not None:
            self._finish_wire(event.scenePos())
            event.accept()
            return
        super().mouseReleaseEvent(event)
        self._commit_move()

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        for item in self.items(event.scenePos()):
            if isinstance(item, NodeItem) and item.isVisible():
                self.nodeActivated.emit(item.node_id)
            elif isinstance(item, (CollapsedBlockItem, BlockFrame)):
                self.blockToggled.emit(item.name, isinstance(item, BlockFrame))
            else:
                continue
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def _selected_node_items(self) -> list[NodeItem]:
        return [item for item in self.selectedItems() if isinstance(item, NodeItem)]

    def _commit_move(self) -> None:
        moves = {}
        for node_id, old in self._press_positions.items():
            item = self._nodes.get(node_id)
            if item is not None and item.pos() != old:
                moves[node_id] = ((old.x(), old.y()), (item.pos().x(), item.pos().y()))
        self._press_positions = {}
        graph = self.document.graph
        for item in self._collapsed.values():  # a dragged block moves its members with it
            old, item.press_position = item.press_position, None
            if old is not None and item.pos() != old:
                delta = item.pos() - old
                for node_id in item.members:
                    x, y = graph.node(node_id).position
                    moves[node_id] = ((x, y), (x + delta.x(), y + delta.y()))
        if moves:
            edits.move_nodes(self.document, moves)

    def _start_wire(self, port: PortRef, scene_pos: QPointF) -> None:
        self._wire_start = port
        self._wire = QGraphicsPathItem()
        pen = QPen(QColor(self.theme.selection), 2.0, Qt.PenStyle.DashLine)
        self._wire.setPen(pen)
        self._wire.setZValue(3)
        self.addItem(self._wire)
        self._drag_wire(scene_pos)

    def _drag_wire(self, scene_pos: QPointF) -> None:
        start = self._nodes[self._wire_start.node_id].port_scene_pos(self._wire_start)
        target = self._wire_target(scene_pos)
        end = self._nodes[target.node_id].port_scene_pos(target) if target else scene_pos
        if self._wire_start.is_input:
            start, end = end, start
        self._wire.setPath(curve(start, end, self.orientation))
        self._set_highlight(target)

    def _wire_target(self, scene_pos: QPointF) -> PortRef | None:
        """The port that a release here would connect to, if the direction fits."""
        port = self.port_at(scene_pos)
        if port is not None and port.is_input != self._wire_start.is_input:
            return port
        return None

    def _set_highlight(self, port: PortRef | None) -> None:
        if port == self.highlighted_port:
            return
        previous, self.highlighted_port = self.highlighted_port, port
        for ref in (previous, port):
            if ref is not None and ref.node_id in self._nodes:
                self._nodes[ref.node_id].update()

    def _finish_wire(self, scene_pos: QPointF) -> None:
        start = self._wire_start
        target = self._wire_target(scene_pos)
        if target is None:
            node = self.node_at(scene_pos)
            if node is not None and node.node_id != start.node_id:
                target = PortRef(node.node_id, not start.is_input, -1)
        self._cancel_wire()
        if target is None:
            return
        source, sink = (target, start) if start.is_input else (start, target)
        port = None if sink.index < 0 else sink.index
        try:
            edits.connect(self.document, source.node_id, sink.node_id, port)
        except GraphError as error:
            self.message.emit(f"Cannot connect: {error}")

    def _cancel_wire(self) -> None:
        if self._wire is not None:
            self.removeItem(self._wire)
        self._wire = None
        self._wire_start = None
        self._set_highlight(None)


def _steps(start: float, stop: float, step: float) -> list[float]:
    count = int((stop - start) / step) + 1
    return [start + index * step for index in range(max(count, 0))]
