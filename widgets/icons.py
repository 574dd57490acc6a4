"""Category icons (SVG files in assets/icons/) and the colour of each layer category."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QColor, QIcon

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
ICONS_DIR = ASSETS_DIR / "icons"

# The same hue as the tile of the category's icon.
CATEGORY_COLORS = {
    "Core": "#4c78a8",
    "Convolution": "#f58518",
    "Pooling": "#54a24b",
    "Normalization": "#b279a2",
    "Sequence": "#e45756",
    "Attention": "#9467bd",
    "Merge": "#72b7b2",
    "Reshaping": "#d4a514",
    "Preprocessing": "#8c8c8c",
}
FALLBACK_COLOR = "#6b7280"


def category_color(category: str) -> QColor:
    return QColor(CATEGORY_COLORS.get(category, FALLBACK_COLOR))


def category_icon_path(category: str) -> Path:
    path = ICONS_DIR / f"{category.lower()}.svg"
    return path if path.exists() else ICONS_DIR / "layer.svg"


@cache
def category_icon(category: str) -> QIcon:
    return QIcon(str(category_icon_path(category)))


@cache
def app_icon() -> QIcon:
    return QIcon(str(ICONS_DIR / "app.svg"))
