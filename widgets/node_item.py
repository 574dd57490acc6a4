"""One layer on the canvas: name, kind, output shape, parameter count and ports.

The item keeps no copy of the node: it reads the graph and the analysis from
the canvas when painted. ``refresh()`` is called when either may have changed;
it repaints only if what the item shows did change (painting is cached per
item in device coordinates, so panning and zooming repaint nothing else).
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyle, QStyleOptionGraphicsItem, QWidget

from studio.analysis import ERROR
from studio.catalog import format_shape
from widgets.icons import category_color, category_icon
from widgets.node_geometry import (
    HEADER_HEIGHT,
    LEFT_TO_RIGHT,
    PORT_HIT_RADIUS,
    PORT_RADIUS,
    PortRef,
    input_port_count,
    input_port_position,
    node_size,
    output_port_position,
)

if TYPE_CHECKING:
    from widgets.edge_item import EdgeItem
    from widgets.scene import GraphScene

CORNER = 7.0
SIMPLE_DRAWING_BELOW = 0.6  # zoom level under which a node is a badge: name, shape and kind, large
OVERVIEW_POINT_SIZE = 7.5  # on-screen size of that name
OVERVIEW_TEXT_BELOW = 0.16  # farther out still, nodes are plain blocks
OVERVIEW_SHAPE_FROM = 0.3  # the output shape is shown under the name from this zoom on
LINE_HEIGHT = 16.0
OUTPUT_BADGE = "OUTPUT"


@cache
def fonts() -> dict[str, QFont]:
    name = QFont()
    name.setPointSizeF(9.5)
    name.setBold(True)
    body = QFont()
    body.setPointSizeF(8.5)
    mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    mono.setPointSizeF(8.5)
    badge = QFont()
    badge.setPointSizeF(6.5)
    badge.setBold(True)
    return {"name": name, "body": body, "mono": mono, "badge": badge}


@lru_cache(maxsize=64)
def _overview_font(point_size: int) -> tuple[QFont, QFontMetricsF]:
    font = QFont(fonts()["name"])
    font.setPointSizeF(point_size)
    return font, QFontMetricsF(font)


@lru_cache(maxsize=64)
def _blend(fill: str, category: str) -> QColor:
    """The node fill tinted with the category colour (opaque: one cheap fill)."""
    base, tint = QColor(fill), category_color(category)
    mix = 0.35
    return QColor.fromRgbF(
        base.redF() * (1 - mix) + tint.redF() * mix,
        base.greenF() * (1 - mix) + tint.greenF() * mix,
        base.blueF() * (1 - mix) + tint.blueF() * mix,
    )


class NodeItem(QGraphicsItem):
    def __init__(self, canvas: GraphScene, node_id: str) -> None:
        super().__init__()
        self.canvas = canvas
        self.node_id = node_id
        self.edges: set[EdgeItem] = set()
        self._shown: Any = None
        self._overview_text: tuple[Any, tuple[str, str]] = (None, ("", ""))
        self._size = self._compute_size()
        self._bounds = self._compute_bounds()
        flags = QGraphicsItem.GraphicsItemFlag
        self.setFlags(flags.ItemIsSelectable | flags.ItemIsMovable | flags.ItemSendsGeometryChanges)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setZValue(1)
        self.setPos(QPointF(*self.node.position))
        self.refresh()

    # ----- model access --------------------------------------------------------------

    @property
    def node(self):
        return self.canvas.document.graph.node(self.node_id)

    @property
    def size(self) -> tuple[float, float]:
        return self._size

    def _compute_size(self) -> tuple[float, float]:
        return node_size(self.port_count(), self.canvas.orientation)

    def port_count(self) -> int:
        return input_port_count(self.canvas.document.graph, self.node_id)

    def _display_key(self) -> tuple:
        """Everything the item shows; when it changes, the item repaints."""
        graph, analysis = self.canvas.document.graph, self.canvas.document.analysis
        node = self.node
        problems = tuple(problem.message for problem in self.canvas.problems_for_node(self.node_id))
        connected = tuple(edge.port for edge in graph.input_edges(self.node_id))
        count = analysis.params.get(self.node_id)
        return (
            node.name,
            analysis.shapes.get(self.node_id),
            count.total if count else None,
            problems,
            self.node_id in analysis.outputs,
            connected,
            bool(graph.output_edges(self.node_id)),
            self.canvas.orientation,
            self.port_count(),  # MultiHeadAttention's mask port comes with padding_mask
        )

    # ----- updates -------------------------------------------------------------------

    def refresh(self) -> None:
        """Repaint if what the item shows changed (name, shape, problems, ports...)."""
        key = self._display_key()
        if key == self._shown:
            return
        self._shown = key
        size = self._compute_size()
        if size != self._size:
            self.prepareGeometryChange()
            self._size = size
            self._bounds = self._compute_bounds()
            self.update_edges()
        self.setToolTip(self._tooltip())
        self.update()

    def invalidate(self) -> None:
        """Force a repaint (theme change)."""
        self._shown = None
        self.refresh()

    def update_edges(self) -> None:
        for edge in self.edges:
            edge.update_path()

    def _tooltip(self) -> str:
        node = self.node
        analysis = self.canvas.document.analysis
        lines = [
            f"<b>{_escape(node.name)}</b> ({node.kind})",
            f"Output: {format_shape(analysis.shapes.get(self.node_id))}",
        ]
        for problem in self.canvas.problems_for_node(self.node_id):
            color = self.canvas.theme.error if problem.severity == ERROR else self.canvas.theme.warning
            lines.append(f"<span style='color:{color}'>{_escape(problem.message)}</span>")
        return "<br>".join(lines)

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.update_edges()
        return super().itemChange(change, value)

    # ----- ports ---------------------------------------------------------------------

    def input_port_pos(self, index: int) -> QPointF:
        count = max(self.port_count(), index + 1)
        return QPointF(*input_port_position(index, count, self._size, self.canvas.orientation))

    def output_port_pos(self) -> QPointF:
        return QPointF(*output_port_position(self._size, self.canvas.orientation))

    def port_scene_pos(self, port: PortRef) -> QPointF:
        local = self.input_port_pos(port.index) if port.is_input else self.output_port_pos()
        return self.mapToScene(local)

    def ports(self) -> list[PortRef]:
        refs = [PortRef(self.node_id, True, index) for index in range(self.port_count())]
        return [*refs, PortRef(self.node_id, False)]

    def port_at(self, scene_pos: QPointF) -> PortRef | None:
        local = self.mapFromScene(scene_pos)
        for port in self.ports():
            center = self.input_port_pos(port.index) if port.is_input else self.output_port_pos()
            delta = center - local
            if delta.x() ** 2 + delta.y() ** 2 <= PORT_HIT_RADIUS**2:
                return port
        return None

    # ----- painting ------------------------------------------------------------------

    def boundingRect(self) -> QRectF:
        return self._bounds

    def _compute_bounds(self) -> QRectF:
        margin = PORT_HIT_RADIUS + 2
        return QRectF(0, 0, *self._size).adjusted(-margin, -margin - 12, margin, margin)

    def shape(self) -> QPainterPath:
        """The node plus a margin where its ports stick out."""
        path = QPainterPath()
        margin = PORT_HIT_RADIUS
        path.addRoundedRect(
            QRectF(0, 0, *self._size).adjusted(-margin, -margin, margin, margin), CORNER, CORNER
        )
        return path

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if lod < SIMPLE_DRAWING_BELOW:
            self._paint_overview(painter, selected, lod)
            return
        self._paint_body(painter, selected)
        self._paint_header(painter)
        self._paint_text(painter)
        self._paint_ports(painter)

    def _outline(self, selected: bool) -> QPen:
        theme = self.canvas.theme
        problems = self.canvas.problems_for_node(self.node_id)
        if selected:
            return QPen(QColor(theme.selection), 2.4)
        if any(problem.severity == ERROR for problem in problems):
            return QPen(QColor(theme.error), 2.2)
        if problems:
            return QPen(QColor(theme.warning), 1.8)
        return QPen(QColor(theme.node_border), 1.0)

    def _paint_body(self, painter: QPainter, selected: bool) -> None:
        theme = self.canvas.theme
        rect = QRectF(0, 0, *self._size)
        painter.setPen(self._outline(selected))
        painter.setBrush(QColor(theme.node_fill))
        painter.drawRoundedRect(rect, CORNER, CORNER)
        header = QPainterPath()
        header.addRoundedRect(rect.adjusted(1, 1, -1, 0), CORNER - 1, CORNER - 1)
        clip = QPainterPath()
        clip.addRect(QRectF(0, 0, rect.width(), HEADER_HEIGHT))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._category_tint(0.22 if theme.name == "light" else 0.35))
        painter.drawPath(header.intersected(clip))

    def _category_tint(self, alpha: float) -> QColor:
        tint = category_color(self.canvas.document.graph.spec(self.node_id).category)
        tint.setAlphaF(alpha)
        return tint

    def _paint_overview(self, painter: QPainter, selected: bool, lod: float) -> None:
        """Zoomed far out: a coloured block with the name, large enough to read. Kept cheap."""
        rect = QRectF(0, 0, *self._size)
        pen = self._outline(selected)
        pen.setWidthF(pen.widthF() / max(lod, 0.05))
        painter.setPen(pen)
        category = self.canvas.document.graph.spec(self.node_id).category
        painter.setBrush(_blend(self.canvas.theme.node_fill, category))
        painter.drawRoundedRect(rect, CORNER, CORNER)
        if lod < OVERVIEW_TEXT_BELOW:
            return
        size = int(min(48.0, OVERVIEW_POINT_SIZE / lod))
        font, metrics = _overview_font(size)
        shape = self.canvas.document.analysis.shapes.get(self.node_id)
        kind = self.canvas.document.graph.spec(self.node_id).key
        shape = (
            f"{'×'.join('?' if size is None else str(size) for size in shape)} · {kind}" if shape else kind
        )
        key = (self.node.name, shape, size)
        if self._overview_text[0] != key:
            width = rect.width() - 12
            # Middle: an imported name keeps its end (features.1.0.attn_12 -> features…attn_12).
            name = metrics.elidedText(key[0], Qt.TextElideMode.ElideMiddle, width)
            small = _overview_font(max(1, int(size * 0.8)))[1]
            self._overview_text = (key, (name, small.elidedText(shape, Qt.TextElideMode.ElideRight, width)))
        name, shape = self._overview_text[1]
        two_lines = lod >= OVERVIEW_SHAPE_FROM
        name_rect = rect.adjusted(0, 0, 0, -rect.height() / 2) if two_lines else rect
        align = Qt.AlignmentFlag.AlignHCenter | (
            Qt.AlignmentFlag.AlignBottom if two_lines else Qt.AlignmentFlag.AlignVCenter
        )
        painter.setFont(font)
        painter.setPen(QColor(self.canvas.theme.node_text))
        painter.drawText(name_rect, align, name)
        if two_lines:
            painter.setFont(_overview_font(max(1, int(size * 0.8)))[0])
            painter.setPen(QColor(self.canvas.theme.node_muted))
            shape_rect = rect.adjusted(0, rect.height() / 2 + 2, 0, 0)
            painter.drawText(shape_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, shape)

    def _paint_header(self, painter: QPainter) -> None:
        theme = self.canvas.theme
        node = self.node
        spec = self.canvas.document.graph.spec(self.node_id)
        category_icon(spec.category).paint(painter, QRectF(8, 6, 16, 16).toRect())
        right = self._size[0] - 10
        if self.node_id in self.canvas.document.analysis.outputs:
            right = self._paint_output_badge(painter, right)
        painter.setFont(fonts()["name"])
        painter.setPen(QColor(theme.node_text))
        metrics = QFontMetricsF(fonts()["name"])
        name = metrics.elidedText(node.name, Qt.TextElideMode.ElideMiddle, right - 32)
        painter.drawText(QRectF(30, 0, right - 30, HEADER_HEIGHT), Qt.AlignmentFlag.AlignVCenter, name)

    def _paint_output_badge(self, painter: QPainter, right: float) -> float:
        theme = self.canvas.theme
        width = QFontMetricsF(fonts()["badge"]).horizontalAdvance(OUTPUT_BADGE) + 10
        badge = QRectF(right - width, 7.5, width, 13)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(theme.ok))
        painter.drawRoundedRect(badge, 6.5, 6.5)
        painter.setFont(fonts()["badge"])
        painter.setPen(QColor("#ffffff"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, OUTPUT_BADGE)
        return badge.left() - 4

    def _paint_text(self, painter: QPainter) -> None:
        theme = self.canvas.theme
        analysis = self.canvas.document.analysis
        node = self.node
        left = self._text_left()
        width = self._size[0] - left - 10
        top = HEADER_HEIGHT + 5
        count = analysis.params.get(self.node_id)
        rows = [
            ("body", theme.node_muted, node.kind),
            ("mono", theme.node_text, format_shape(analysis.shapes.get(self.node_id))),
            ("body", theme.node_muted, f"{count.total:,} params" if count else "– params"),
        ]
        for index, (font_key, color, text) in enumerate(rows):
            painter.setFont(fonts()[font_key])
            painter.setPen(QColor(color))
            metrics = QFontMetricsF(fonts()[font_key])
            text = metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)
            painter.drawText(
                QRectF(left, top + index * LINE_HEIGHT, width, LINE_HEIGHT),
                Qt.AlignmentFlag.AlignVCenter,
                text,
            )

    def _text_left(self) -> float:
        names = self.canvas.document.graph.spec(self.node_id).input_names
        if names and self.canvas.orientation == LEFT_TO_RIGHT:
            return 14 + max(QFontMetricsF(fonts()["badge"]).horizontalAdvance(name) for name in names)
        return 12.0

    def _paint_ports(self, painter: QPainter) -> None:
        graph = self.canvas.document.graph
        connected = {edge.port for edge in graph.input_edges(self.node_id)}
        names = graph.spec(self.node_id).input_names
        for port in self.ports():
            if port.is_input:
                center, filled = self.input_port_pos(port.index), port.index in connected
            else:
                center, filled = self.output_port_pos(), bool(graph.output_edges(self.node_id))
            self._paint_port(painter, center, filled, port == self.canvas.highlighted_port)
            if port.is_input and port.index < len(names):
                self._paint_port_label(painter, center, names[port.index])

    def _paint_port(self, painter: QPainter, center: QPointF, filled: bool, highlighted: bool) -> None:
        theme = self.canvas.theme
        if highlighted:
            painter.setPen(Qt.PenStyle.NoPen)
            glow = QColor(theme.selection)
            glow.setAlphaF(0.35)
            painter.setBrush(glow)
            painter.drawEllipse(center, PORT_RADIUS + 5, PORT_RADIUS + 5)
        painter.setPen(QPen(QColor(theme.port), 1.6))
        painter.setBrush(QColor(theme.port if filled else theme.port_free))
        painter.drawEllipse(center, PORT_RADIUS, PORT_RADIUS)

    def _paint_port_label(self, painter: QPainter, center: QPointF, text: str) -> None:
        painter.setFont(fonts()["badge"])
        painter.setPen(QColor(self.canvas.theme.node_muted))
        if self.canvas.orientation == LEFT_TO_RIGHT:
            rect = QRectF(center.x() + 9, center.y() - 7, 60, 14)
            painter.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
        else:
            rect = QRectF(center.x() + 8, center.y() - 16, 60, 12)
            painter.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
