"""The canvas view: zoom with the wheel, pan with the middle button or space+drag, fit."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QKeyEvent, QMouseEvent, QPainter, QTransform, QWheelEvent
from PySide6.QtWidgets import QGraphicsView, QMenu, QWidget

from widgets.minimap import Minimap
from widgets.scene import GraphScene

MIN_ZOOM = 0.08
MAX_ZOOM = 3.0
MAX_FIT_ZOOM = 1.0
READABLE_ZOOM = 0.4  # from here on a node shows at least its name, kind and shape (as a badge)
ZOOM_STEP = 1.2
FIT_MARGIN = 40.0


class GraphView(QGraphicsView):
    def __init__(self, scene: GraphScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setObjectName("canvas")
        self.context_actions: list[QAction | None] = []  # None draws a separator
        self._pan_from: QPoint | None = None
        self._space_down = False
        self._configure()
        self.minimap = Minimap(self)

    @property
    def graph_scene(self) -> GraphScene:
        return self.scene()

    def _configure(self) -> None:
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.ItemSelectionMode.IntersectsItemShape)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # ----- zoom ----------------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        target = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom() * factor))
        if target != self.zoom():
            self.scale(target / self.zoom(), target / self.zoom())
            self.resetCachedContent()
            self.minimap.schedule()

    def setTransform(self, matrix: QTransform, combine: bool = False) -> None:
        super().setTransform(matrix, combine)
        self.minimap.schedule()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.minimap.schedule()

    def zoom_in(self) -> None:
        self._zoom_centered(ZOOM_STEP)

    def zoom_out(self) -> None:
        self._zoom_centered(1 / ZOOM_STEP)

    def reset_zoom(self) -> None:
        self._zoom_centered(1 / self.zoom())

    def _zoom_centered(self, factor: float) -> None:
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.zoom_by(factor)
        self.setTransformationAnchor(anchor)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(ZOOM_STEP**steps)
        event.accept()

    def fit_all(self) -> None:
        """Show every node, without magnifying a small model past 100 %."""
        self.fit_rect(self.graph_scene.nodes_rect())

    def fit_readable(self) -> None:
        """Show the model on opening: fitted if that stays readable, else its inputs at a readable zoom.

        A long model fitted into the view shrinks every layer to a block; showing
        where it starts at ``READABLE_ZOOM`` (the rest a pan or Fit away) reads better.
        """
        rect = self.graph_scene.nodes_rect()
        self.fit_rect(rect)
        if rect.isNull() or self.zoom() >= READABLE_ZOOM - 1e-6:
            return
        self.setTransform(QTransform.fromScale(READABLE_ZOOM, READABLE_ZOOM))
        width = self.viewport().width() / READABLE_ZOOM
        height = self.viewport().height() / READABLE_ZOOM
        inputs = [
            self.graph_scene.node_item(node_id) for node_id in self.graph_scene.document.graph.input_nodes
        ]
        anchor = inputs[0].sceneBoundingRect().center() if inputs else rect.topLeft()
        if self.graph_scene.orientation == "TB":
            x = rect.center().x() if rect.width() + 2 * FIT_MARGIN <= width else anchor.x()
            y = rect.top() - FIT_MARGIN + height / 2
        else:
            x = rect.left() - FIT_MARGIN + width / 2
            y = rect.center().y() if rect.height() + 2 * FIT_MARGIN <= height else anchor.y()
        self.centerOn(x, y)
        self.resetCachedContent()

    def fit_rect(self, rect: QRectF) -> None:
        if rect.isNull():
            self.centerOn(0, 0)
            return
        self.fitInView(
            rect.adjusted(-FIT_MARGIN, -FIT_MARGIN, FIT_MARGIN, FIT_MARGIN),
            Qt.AspectRatioMode.KeepAspectRatio,
        )
        zoom = min(MAX_FIT_ZOOM, max(MIN_ZOOM, self.zoom()))
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self.centerOn(rect.center())
        self.resetCachedContent()

    def center_on_node(self, node_id: str) -> None:
        item = self.graph_scene.end_item(node_id)  # a layer in a collapsed block: the block
        self.centerOn(item.sceneBoundingRect().center())

    def visible_scene_center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    # ----- pan -----------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.viewport().unsetCursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:
        self._space_down = False
        super().focusOutEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        panning = event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._space_down
        )
        if panning:
            self._pan_from = event.position().toPoint()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            point = event.position().toPoint()
            delta = point - self._pan_from
            self._pan_from = point
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            if self._space_down:
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            else:
                self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    # ----- context menu --------------------------------------------------------------

    def contextMenuEvent(self, event) -> None:
        scene_pos = self.mapToScene(event.pos())
        item = self.graph_scene.node_at(scene_pos)
        if item is not None and not item.isSelected():
            self.graph_scene.select_nodes([item.node_id])
        menu = QMenu(self)
        for action in self.context_actions:
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        if not menu.isEmpty():
            menu.exec(event.globalPos())
