"""Light and dark themes: one palette for the widgets, plus the canvas and code colours."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class Theme:
    name: str
    window: str
    base: str
    alternate_base: str
    text: str
    muted_text: str
    button: str
    highlight: str
    highlighted_text: str
    # Canvas
    canvas: str
    grid_minor: str
    grid_major: str
    node_fill: str
    node_border: str
    node_text: str
    node_muted: str
    port: str
    port_free: str
    edge: str
    selection: str
    error: str
    warning: str
    ok: str
    # Code
    code_keyword: str
    code_builtin: str
    code_string: str
    code_number: str
    code_comment: str
    code_definition: str
    code_decorator: str
    code_self: str
    # Training plots: one colour per framework, readable on ``base``
    plot_keras: str
    plot_pytorch: str
    plot_grid_alpha: float

    def color(self, field_name: str) -> QColor:
        return QColor(getattr(self, field_name))


LIGHT = Theme(
    name="light",
    window="#eef0f3",
    base="#ffffff",
    alternate_base="#f5f6f8",
    text="#1f2328",
    muted_text="#656d76",
    button="#e6e8ec",
    highlight="#2f6fde",
    highlighted_text="#ffffff",
    canvas="#f7f8fa",
    grid_minor="#eceef2",
    grid_major="#dde1e7",
    node_fill="#ffffff",
    node_border="#b9c0ca",
    node_text="#1f2328",
    node_muted="#5b636e",
    port="#5b6573",
    port_free="#ffffff",
    edge="#7d8794",
    selection="#2f6fde",
    error="#d1242f",
    warning="#bf8700",
    ok="#1a7f37",
    code_keyword="#cf222e",
    code_builtin="#8250df",
    code_string="#0a3069",
    code_number="#0550ae",
    code_comment="#6e7781",
    code_definition="#6639ba",
    code_decorator="#953800",
    code_self="#953800",
    plot_keras="#d62728",
    plot_pytorch="#1f6fc5",
    plot_grid_alpha=0.18,
)

DARK = Theme(
    name="dark",
    window="#25272b",
    base="#1c1e21",
    alternate_base="#232529",
    text="#e6e8eb",
    muted_text="#9aa1ab",
    button="#2f3237",
    highlight="#3d7be0",
    highlighted_text="#ffffff",
    canvas="#1b1d20",
    grid_minor="#222428",
    grid_major="#2b2e33",
    node_fill="#2a2d32",
    node_border="#4a4f57",
    node_text="#eceef1",
    node_muted="#a4abb5",
    port="#aab2bd",
    port_free="#2a2d32",
    edge="#8a939f",
    selection="#5b9bff",
    error="#ff6b6b",
    warning="#e3b341",
    ok="#3fb950",
    code_keyword="#ff7b72",
    code_builtin="#d2a8ff",
    code_string="#a5d6ff",
    code_number="#79c0ff",
    code_comment="#8b949e",
    code_definition="#d2a8ff",
    code_decorator="#ffa657",
    code_self="#ffa657",
    plot_keras="#ff6b6b",
    plot_pytorch="#58a6ff",
    plot_grid_alpha=0.22,
)


def build_palette(theme: Theme) -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: theme.window,
        QPalette.ColorRole.WindowText: theme.text,
        QPalette.ColorRole.Base: theme.base,
        QPalette.ColorRole.AlternateBase: theme.alternate_base,
        QPalette.ColorRole.ToolTipBase: theme.base,
        QPalette.ColorRole.ToolTipText: theme.text,
        QPalette.ColorRole.PlaceholderText: theme.muted_text,
        QPalette.ColorRole.Text: theme.text,
        QPalette.ColorRole.Button: theme.button,
        QPalette.ColorRole.ButtonText: theme.text,
        QPalette.ColorRole.BrightText: theme.error,
        QPalette.ColorRole.Highlight: theme.highlight,
        QPalette.ColorRole.HighlightedText: theme.highlighted_text,
        QPalette.ColorRole.Link: theme.highlight,
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(theme.muted_text))
    return palette


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Fusion style with the theme's palette: looks the same on every platform."""
    app.setStyle("Fusion")
    app.setPalette(build_palette(theme))
