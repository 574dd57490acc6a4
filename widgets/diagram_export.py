"""The model's diagram as a PNG or SVG file, for papers and slides: every node, no grid, no selection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem

from widgets.scene import GraphScene

MARGIN = 24.0
PNG_SCALE = 2.0  # crisp on high-density screens and in print


@contextlib.contextmanager
def _for_export(scene: GraphScene) -> Iterator[None]:
    """A plain background, nothing selected, and nodes painted afresh (vectors in SVG, not cached pixels)."""
    selected = scene.selected_node_ids()
    scene.clearSelection()
    scene.plain_background = True
    items = scene.node_items()
    for item in items:
        item.setCacheMode(QGraphicsItem.CacheMode.NoCache)
    try:
        yield
    finally:
        for item in items:
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        scene.plain_background = False
        scene.select_nodes(selected)


def export_diagram(scene: GraphScene, path: str | Path) -> Path:
    """Write the diagram to ``path`` (.svg: vector drawing, else PNG); raises OSError when it cannot."""
    target = Path(path)
    source = scene.itemsBoundingRect().adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN)
    with _for_export(scene):
        if target.suffix.lower() == ".svg":
            _write_svg(scene, source, target)
        else:
            _write_png(scene, source, target)
    return target


def _write_png(scene: GraphScene, source: QRectF, target: Path) -> None:
    size = QSize(max(1, int(source.width() * PNG_SCALE)), max(1, int(source.height() * PNG_SCALE)))
    image = QImage(size, QImage.Format.Format_ARGB32)
    image.fill(QColor(scene.theme.canvas))
    painter = QPainter(image)
    painter.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
    scene.render(
        painter, QRectF(0, 0, size.width(), size.height()), source, Qt.AspectRatioMode.KeepAspectRatio
    )
    painter.end()
    if not image.save(str(target), "PNG"):
        raise OSError(f"could not write {target}")


def _write_svg(scene: GraphScene, source: QRectF, target: Path) -> None:
    from PySide6.QtSvg import QSvgGenerator  # only when a drawing is exported

    generator = QSvgGenerator()
    generator.setFileName(str(target))
    generator.setSize(QSize(int(source.width()), int(source.height())))
    generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
    generator.setTitle("Layer Studio model")
    painter = QPainter()
    if not painter.begin(generator):
        raise OSError(f"could not write {target}")
    scene.render(painter, QRectF(0, 0, source.width(), source.height()), source)
    painter.end()
    if not target.exists():
        raise OSError(f"could not write {target}")
