"""A connection on the canvas: a curve from a node's output to an input port of another."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyle, QStyleOptionGraphicsItem, QWidget

from studio.graph import Edge
from widgets.node_geometry import LEFT_TO_RIGHT, PortRef

if TYPE_CHECKING:
    from widgets.node_item import NodeItem
    from widgets.scene import GraphScene

HIT_WIDTH = 12.0


def curve(start: QPointF, end: QPointF, orientation: str) -> QPainterPath:
    """A smooth S-curve that leaves and enters the ports along the flow direction."""
    path = QPainterPath(start)
    if orientation == LEFT_TO_RIGHT:
        bend = max(40.0, abs(end.x() - start.x()) * 0.5)
        path.cubicTo(start + QPointF(bend, 0), end - QPointF(bend, 0), end)
    else:
        bend = max(40.0, abs(end.y() - start.y()) * 0.5)
        path.cubicTo(start + QPointF(0, bend), end - QPointF(0, bend), end)
    return path


class EdgeItem(QGraphicsPathItem):
    def __init__(self, canvas: GraphScene, edge: Edge, source: NodeItem, target: NodeItem) -> None:
        super().__init__()
        self.canvas = canvas
        self.edge = edge
        self.source_item = source
        self.target_item = target
        self._problems: tuple[str, ...] = ()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(0)
        source.edges.add(self)
        target.edges.add(self)
        self.update_path()
        self.refresh()

    def detach(self) -> None:
        self.source_item.edges.discard(self)
        self.target_item.edges.discard(self)

    def update_path(self) -> None:
        start = self.source_item.port_scene_pos(PortRef(self.edge.source, False))
        end = self.target_item.port_scene_pos(PortRef(self.edge.target, True, self.edge.port))
        self.setPath(curve(start, end, self.canvas.orientation))

    def refresh(self) -> None:
        """Follow the analysis: red when the edge carries a problem."""
        problems = tuple(problem.message for problem in self.canvas.problems_for_edge(self.edge))
        graph = self.canvas.document.graph
        text = f"{graph.node(self.edge.source).name} → {graph.node(self.edge.target).name} (input {self.edge.port + 1})"
        tooltip = "\n".join([text, *problems])
        if tooltip != self.toolTip():
            self.setToolTip(tooltip)
        if problems != self._problems:
            self._problems = problems
            self.update()

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(HIT_WIDTH)
        return stroker.createStroke(self.path())

    def boundingRect(self):
        return super().boundingRect().adjusted(-4, -4, 4, 4)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        theme = self.canvas.theme
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            pen = QPen(QColor(theme.selection), 2.6)
        elif self._problems:
            pen = QPen(QColor(theme.error), 2.2)
        else:
            pen = QPen(QColor(theme.edge), 1.6)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())
