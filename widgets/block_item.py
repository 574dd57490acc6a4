"""Blocks on the canvas: a collapsed block is one node-like item, an expanded one a labelled frame.

Both are views of a :class:`studio.graph.Block`; the scene makes them again whenever
the blocks or their members' positions change. Edges to a member of a collapsed
block attach to the block's item (see :meth:`GraphScene.end_item`).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsSceneMouseEvent,
    QStyle,
    QStyleOptionGraphicsItem,
    QWidget,
)

from studio.graph import Block
from studio.layout import BLOCK_SIZE
from widgets.commands import layers_text
from widgets.node_geometry import HEADER_HEIGHT, LEFT_TO_RIGHT, PortRef

if TYPE_CHECKING:
    from widgets.scene import GraphScene

STACK_OFFSET = 5.0  # the card drawn behind a collapsed block, so that it reads as several layers
CORNER = 8.0
FRAME_PADDING = 30.0  # half the layout's widest gap between two layers, so that neighbours join
FRAME_LABEL = 22.0  # the frame's title, in the padding above its top-left member
BUTTON = 14.0  # the frame's collapse button
OVERVIEW_BELOW = 0.6  # as NodeItem: under this zoom the name is drawn large


def _font(point_size: float, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(point_size)
    font.setBold(bold)
    return font


def _short_shape(shape: tuple | None) -> str:
    """``56×56×64``: as the overview of a node shows a shape (the analysis leaves out the batch)."""
    if shape is None:
        return "?"
    return "×".join("?" if size is None else str(size) for size in shape) or "scalar"


def _paint_button(painter: QPainter, button: QRectF, theme, plus: bool) -> None:
    """A small boxed + (expand) or − (collapse)."""
    color = QColor(theme.selection)
    painter.setPen(QPen(color, 1.2))
    painter.setBrush(QColor(theme.node_fill))
    painter.drawRoundedRect(button, 3, 3)
    center = button.center()
    reach = button.width() / 2 - 3.5
    painter.drawLine(QPointF(center.x() - reach, center.y()), QPointF(center.x() + reach, center.y()))
    if plus:
        painter.drawLine(QPointF(center.x(), center.y() - reach), QPointF(center.x(), center.y() + reach))


class CollapsedBlockItem(QGraphicsItem):
    """A collapsed block: its name, its number of layers and its input and output shapes."""

    def __init__(self, canvas: GraphScene, block: Block) -> None:
        super().__init__()
        self.canvas = canvas
        self.name = block.name
        self.members = list(block.members)
        self.size = BLOCK_SIZE
        self.press_position: QPointF | None = None
        flags = QGraphicsItem.GraphicsItemFlag
        self.setFlags(flags.ItemIsSelectable | flags.ItemIsMovable | flags.ItemSendsGeometryChanges)
        self.setZValue(1)
        graph = canvas.document.graph
        positions = [graph.node(node_id).position for node_id in self.members]
        self.setPos(min(x for x, _ in positions), min(y for _, y in positions))
        self.inputs, self.outputs = self._boundary_shapes()
        # Escaped: a tooltip that looks like HTML is shown as rich text, and names come from files.
        self.setToolTip(
            f"Block <b>{html.escape(self.name)}</b>: {layers_text(len(self.members))}. Double-click to expand."
        )

    def _boundary_shapes(self) -> tuple[list[str], list[str]]:
        """The shapes that enter the block and those that leave it (or are model outputs)."""
        graph, analysis = self.canvas.document.graph, self.canvas.document.analysis
        inside = set(self.members)
        entering, leaving = [], []
        for node_id in self.members:
            for edge in graph.input_edges(node_id):
                if edge.source not in inside:
                    entering.append(edge.source)
            if node_id in analysis.outputs or any(
                edge.target not in inside for edge in graph.output_edges(node_id)
            ):
                leaving.append(node_id)
        shapes = analysis.shapes

        def texts(node_ids: list[str]) -> list[str]:
            return list(
                dict.fromkeys(_short_shape(shapes.get(node_id)) for node_id in dict.fromkeys(node_ids))
            )

        return texts(entering), texts(leaving)

    def shape_line(self) -> str:
        return f"{' + '.join(self.inputs) or '—'} → {' + '.join(self.outputs) or '—'}"

    # ----- ports: every edge from outside enters at one point and leaves at another ---

    def port_scene_pos(self, port: PortRef) -> QPointF:
        width, height = self.size
        if self.canvas.orientation == LEFT_TO_RIGHT:
            local = QPointF(0.0 if port.is_input else width, height / 2)
        else:
            local = QPointF(width / 2, 0.0 if port.is_input else height)
        return self.mapToScene(local)

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.canvas.update_block_edges(self.members)
        return super().itemChange(change, value)

    # ----- painting ------------------------------------------------------------------

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, *self.size).adjusted(-4, -4, STACK_OFFSET + 4, STACK_OFFSET + 4)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        theme = self.canvas.theme
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(0, 0, *self.size)
        border = QPen(QColor(theme.selection if selected else theme.node_border), 2.4 if selected else 1.2)
        border.setCosmetic(lod < OVERVIEW_BELOW)
        painter.setPen(border)
        painter.setBrush(QColor(theme.node_fill))
        painter.drawRoundedRect(rect.translated(STACK_OFFSET, STACK_OFFSET), CORNER, CORNER)
        tint = QColor(theme.selection)
        tint.setAlphaF(0.16 if theme.name == "light" else 0.3)
        painter.drawRoundedRect(rect, CORNER, CORNER)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(tint)
        painter.drawRoundedRect(rect.adjusted(1, 1, -1, -1), CORNER - 1, CORNER - 1)
        if lod < OVERVIEW_BELOW:
            self._paint_overview(painter, rect, lod)
        else:
            self._paint_details(painter, rect)

    def button_rect(self) -> QRectF:
        """The expand button, at the right of the title."""
        return QRectF(self.size[0] - 10 - BUTTON, (HEADER_HEIGHT - BUTTON) / 2, BUTTON, BUTTON)

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.button_rect().contains(event.pos()):
            self.canvas.blockToggled.emit(self.name, False)
            event.accept()
            return
        super().mousePressEvent(event)

    def _paint_details(self, painter: QPainter, rect: QRectF) -> None:
        theme = self.canvas.theme
        _paint_button(painter, self.button_rect(), theme, plus=True)
        width = rect.width() - 30 - BUTTON
        name_font, small = _font(10, bold=True), _font(8.5)
        painter.setFont(name_font)
        painter.setPen(QColor(theme.node_text))
        name = QFontMetricsF(name_font).elidedText(self.name, Qt.TextElideMode.ElideMiddle, width)
        painter.drawText(QRectF(10, 0, width, HEADER_HEIGHT), Qt.AlignmentFlag.AlignVCenter, name)
        painter.setFont(small)
        painter.setPen(QColor(theme.node_muted))
        metrics = QFontMetricsF(small)
        lines = [f"Block · {layers_text(len(self.members))}", self.shape_line()]
        for index, line in enumerate(lines):
            text = metrics.elidedText(line, Qt.TextElideMode.ElideRight, width)
            painter.drawText(
                QRectF(10, HEADER_HEIGHT + 4 + index * 20, width, 18), Qt.AlignmentFlag.AlignVCenter, text
            )

    def _paint_overview(self, painter: QPainter, rect: QRectF, lod: float) -> None:
        """Zoomed out: the name and the number of layers, drawn large enough to read."""
        theme = self.canvas.theme
        lod = max(lod, 0.05)
        size = min(40.0, 9.0 / lod)
        width = rect.width() - 10
        # A long name is drawn smaller, down to 6.5 points on screen, before it is elided.
        advance = QFontMetricsF(_font(size, bold=True)).horizontalAdvance(self.name)
        fitted = 0.92 * size * width / max(advance, 1.0)  # font sizes round: leave some room
        size = max(min(size, fitted), min(size, 6.5 / lod))
        font = _font(size, bold=True)
        painter.setFont(font)
        painter.setPen(QColor(theme.node_text))
        name = QFontMetricsF(font).elidedText(self.name, Qt.TextElideMode.ElideMiddle, width)
        top, bottom = (
            rect.adjusted(5, 0, -5, -rect.height() / 2),
            rect.adjusted(5, rect.height() / 2 + 2, -5, 0),
        )
        painter.drawText(top, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, name)
        painter.setFont(_font(size * 0.75))
        painter.setPen(QColor(theme.node_muted))
        painter.drawText(
            bottom, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, layers_text(len(self.members))
        )


class BlockFrame(QGraphicsItem):
    """An expanded block: a translucent outline hugging its members, titled, with a collapse button.

    The outline is the union of the members' rectangles grown by FRAME_PADDING (enough to bridge
    the gaps of the layout), so a block whose layers wrap into several rows frames only them."""

    def __init__(self, canvas: GraphScene, block: Block, member_rects: list[QRectF]) -> None:
        super().__init__()
        self.canvas = canvas
        self.name = block.name
        self.count = len(block.members)
        self.path = QPainterPath()
        self.path.setFillRule(Qt.FillRule.WindingFill)
        for rect in member_rects:  # square corners: rounded ones leave notches where rectangles join
            self.path.addRect(rect.adjusted(-FRAME_PADDING, -FRAME_PADDING, FRAME_PADDING, FRAME_PADDING))
        self.path = self.path.simplified()
        # The title sits in the padding above the block's first member.
        anchor = member_rects[0]
        self.title = QRectF(
            anchor.left() - FRAME_PADDING + 6, anchor.top() - FRAME_PADDING + 4, 0, FRAME_LABEL
        )
        self.title.setRight(anchor.right() + FRAME_PADDING - 6)
        self.setZValue(-1)
        self.setToolTip(
            f"Block <b>{html.escape(self.name)}</b>: {layers_text(self.count)}. "
            "Click − or double-click here to collapse."
        )

    def button_rect(self) -> QRectF:
        return QRectF(self.title.left() + 2, self.title.center().y() - BUTTON / 2, BUTTON, BUTTON)

    def boundingRect(self) -> QRectF:
        return self.path.boundingRect().adjusted(-2, -2, 2, 2)

    def shape(self) -> QPainterPath:
        return self.path

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.button_rect().contains(event.scenePos()):
            self.canvas.blockToggled.emit(self.name, True)
            event.accept()
            return
        event.ignore()  # a press on the frame starts a rubber band as on the empty canvas

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        theme = self.canvas.theme
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = QColor(theme.selection)
        pen = QPen(color, 1.2, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        fill = QColor(color)
        fill.setAlphaF(0.07 if theme.name == "light" else 0.12)
        painter.setPen(pen)
        painter.setBrush(fill)
        painter.drawPath(self.path)
        button = self.button_rect()
        _paint_button(painter, button, theme, plus=False)
        font = _font(10, bold=True)
        painter.setFont(font)
        painter.setPen(QColor(theme.node_text))
        left = button.right() + 6
        width = self.title.right() - left
        text = f"{self.name} · {layers_text(self.count)}"
        text = QFontMetricsF(font).elidedText(text, Qt.TextElideMode.ElideRight, width)
        painter.drawText(
            QRectF(left, self.title.top(), width, FRAME_LABEL), Qt.AlignmentFlag.AlignVCenter, text
        )
