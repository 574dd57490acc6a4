"""A small overview of the whole model in the canvas's corner: where the view is, and a click to go.

It shows only when the model does not fit the view. It draws the same scene
(nodes far out are plain coloured blocks), with the visible part outlined.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGraphicsView, QWidget

SIZE = (180, 120)
MARGIN = 10  # from the canvas's edges
REFRESH_MS = 60


class Minimap(QGraphicsView):
    def __init__(self, view: QGraphicsView, parent: QWidget | None = None) -> None:
        super().__init__(view.scene(), parent or view)
        self.setObjectName("minimap")
        self.main_view = view
        self.setInteractive(False)
        self.setRenderHints(QPainter.RenderHint.Antialiasing)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.Box)
        self.setFixedSize(*SIZE)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("The whole model: click or drag to move the view")
        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        # bound methods: the connections end with the map (the scene may outlive it)
        view.scene().changed.connect(self.schedule)
        view.horizontalScrollBar().valueChanged.connect(self.schedule)
        view.verticalScrollBar().valueChanged.connect(self.schedule)
        self.hide()

    def schedule(self, *args) -> None:
        self._timer.start()

    def refresh(self) -> None:
        """Fit the model; show the map only while part of the model is out of view."""
        nodes = self.main_view.graph_scene.nodes_rect()
        visible = self.visible_rect()
        wanted = not nodes.isNull() and not visible.contains(nodes)
        self.place()
        if wanted:
            self.fitInView(nodes.adjusted(-40, -40, 40, 40), Qt.AspectRatioMode.KeepAspectRatio)
            self.viewport().update()
        self.setVisible(wanted)

    def place(self) -> None:
        area = self.main_view.viewport().geometry()
        self.move(area.right() - SIZE[0] - MARGIN, area.bottom() - SIZE[1] - MARGIN)

    def visible_rect(self) -> QRectF:
        return self.main_view.mapToScene(self.main_view.viewport().rect()).boundingRect()

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, QColor(self.main_view.graph_scene.theme.canvas))

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        color = QColor(self.main_view.graph_scene.theme.selection)
        painter.setPen(QPen(color, 0))
        color.setAlphaF(0.15)
        painter.setBrush(color)
        painter.drawRect(self.visible_rect())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._go(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._go(event.position())

    def wheelEvent(self, event) -> None:
        event.ignore()  # no zooming the map

    def _go(self, position: QPointF) -> None:
        self.main_view.centerOn(self.mapToScene(position.toPoint()))
        self.refresh()
