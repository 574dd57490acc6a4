"""A connection on the canvas: a curve from a node's output to an input port of another.

An edge whose curve would pass behind other nodes (a skip connection, the
jump from the end of one row to the start of the next) is routed around
them instead: out of the port, along a free line above, below or between
them, and into the port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyle, QStyleOptionGraphicsItem, QWidget

from studio.graph import Edge
from widgets.node_geometry import LEFT_TO_RIGHT, PortRef

if TYPE_CHECKING:
    from widgets.node_item import NodeItem
    from widgets.scene import GraphScene

HIT_WIDTH = 12.0
STUB = 20.0  # how far a routed edge runs out of and into its ports
CLEARANCE = 14.0  # between a routed edge and the nodes it passes
CORNER_RADIUS = 12.0
SPAN = 1e6  # "every node across" for the scene query


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


def route_level(
    start: tuple[float, float], end: tuple[float, float], obstacles: list[tuple[float, float, float, float]]
) -> float | None:
    """In flow coordinates (x along the flow): the y of a free line from ``start`` to ``end``, or
    None when the plain curve is free. ``obstacles`` are node rectangles (left, top, right, bottom)."""
    (sx, sy), (ex, ey) = start, end
    low, high = min(sy, ey) - 4, max(sy, ey) + 4
    forward = ex > sx + 2 * STUB
    if forward and not any(r[0] < ex - 1 and r[2] > sx + 1 and r[1] < high and r[3] > low for r in obstacles):
        return None
    left, right = min(sx, ex) - STUB, max(sx, ex) + STUB
    covered = sorted((r[1] - CLEARANCE, r[3] + CLEARANCE) for r in obstacles if r[0] < right and r[2] > left)
    if not covered:
        return None
    candidates = [covered[0][0], max(bottom for _, bottom in covered)]
    reach = covered[0][1]
    for top, bottom in covered[1:]:
        if top > reach:
            candidates.append((reach + top) / 2)  # a free band between nodes
        reach = max(reach, bottom)
    return min(candidates, key=lambda y: abs(y - sy) + abs(y - ey))


def rounded_polyline(points: list[QPointF], radius: float = CORNER_RADIUS) -> QPainterPath:
    path = QPainterPath(points[0])
    for before, corner, after in zip(points, points[1:], points[2:], strict=False):
        into, out = corner - before, after - corner
        length_in = (into.x() ** 2 + into.y() ** 2) ** 0.5
        length_out = (out.x() ** 2 + out.y() ** 2) ** 0.5
        cut = min(radius, length_in / 2, length_out / 2)
        if cut <= 0.01:
            path.lineTo(corner)
            continue
        path.lineTo(corner - into * (cut / length_in))
        path.quadTo(corner, corner + out * (cut / length_out))
    path.lineTo(points[-1])
    return path


def routed(start: QPointF, end: QPointF, orientation: str, obstacles: list[QRectF]) -> QPainterPath:
    """The plain curve if it passes no node, else a path around them."""
    flip = orientation != LEFT_TO_RIGHT  # work left to right: swap the axes of a top-to-bottom canvas

    def frame(x: float, y: float) -> tuple[float, float]:
        return (y, x) if flip else (x, y)

    rects = []
    for rect in obstacles:
        left, top = frame(rect.left(), rect.top())
        right, bottom = frame(rect.right(), rect.bottom())
        rects.append((left, top, right, bottom))
    (sx, sy), (ex, ey) = frame(start.x(), start.y()), frame(end.x(), end.y())
    level = route_level((sx, sy), (ex, ey), rects)
    if level is None:
        return curve(start, end, orientation)
    corners = [(sx, sy), (sx + STUB, sy), (sx + STUB, level), (ex - STUB, level), (ex - STUB, ey), (ex, ey)]
    return rounded_polyline([QPointF(*frame(x, y)) for x, y in corners])


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
        # A member of a collapsed block: the edge attaches to the block.
        source, target = self.canvas.end_item(self.edge.source), self.canvas.end_item(self.edge.target)
        start = source.port_scene_pos(PortRef(self.edge.source, False))
        end = target.port_scene_pos(PortRef(self.edge.target, True, self.edge.port))
        self.setPath(routed(start, end, self.canvas.orientation, self._obstacles(start, end)))

    def _obstacles(self, start: QPointF, end: QPointF) -> list[QRectF]:
        """The bodies of the nodes the edge could pass, with its own two ends on their sides."""
        from widgets.block_item import CollapsedBlockItem
        from widgets.node_item import NodeItem

        if self.canvas.orientation == LEFT_TO_RIGHT:
            region = QRectF(
                min(start.x(), end.x()) - STUB, -SPAN, abs(end.x() - start.x()) + 2 * STUB, 2 * SPAN
            )
        else:
            region = QRectF(
                -SPAN, min(start.y(), end.y()) - STUB, 2 * SPAN, abs(end.y() - start.y()) + 2 * STUB
            )
        rects = []
        for item in self.canvas.items(region):
            if isinstance(item, (NodeItem, CollapsedBlockItem)) and item.isVisible():
                rects.append(
                    QRectF(item.pos(), QPointF(item.pos().x() + item.size[0], item.pos().y() + item.size[1]))
                )
        return rects

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
