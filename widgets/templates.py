"""Example projects (assets/examples/) and the New-project template gallery."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from studio.project import EXTENSION, Project, ProjectError, load_project
from widgets.document import blank_project
from widgets.icons import ASSETS_DIR, app_icon

log = logging.getLogger(__name__)

EXAMPLES_DIR = ASSETS_DIR / "examples"
FIRST_EXAMPLE = "lenet_digits" + EXTENSION


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    path: Path | None  # None: the blank project

    def create(self) -> Project:
        """A fresh project from this template (raises ProjectError for a broken example)."""
        return blank_project() if self.path is None else load_project(self.path)


BLANK = Template("Blank", "An empty model with one Input layer.", None)


def example_templates(directory: Path = EXAMPLES_DIR) -> list[Template]:
    """Every readable example project, sorted by name."""
    templates = []
    for path in sorted(Path(directory).glob(f"*{EXTENSION}")):
        try:
            project = load_project(path)
        except ProjectError as error:
            log.warning("skipping a broken example: %s", error)
            continue
        templates.append(Template(project.name, project.description, path))
    return sorted(templates, key=lambda template: template.name.lower())


class TemplateDelegate(QStyledItemDelegate):
    """Name in bold, description below it in a quieter colour."""

    PADDING = 6
    ICON = 28

    def _texts(self, index) -> tuple[str, str]:
        name, _, description = index.data(Qt.ItemDataRole.DisplayRole).partition("\n")
        return name, description

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        bold = QFont(option.font)
        bold.setBold(True)
        return bold, QFont(option.font)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        name, description = self._texts(index)
        bold, plain = self._fonts(option)
        rect = option.rect.adjusted(self.PADDING, self.PADDING, -self.PADDING, -self.PADDING)
        app_icon().paint(painter, QRect(rect.left(), rect.top() + 2, self.ICON, self.ICON))
        text_rect = rect.adjusted(self.ICON + 10, 0, 0, 0)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.save()
        painter.setPen(option.palette.color(role))
        painter.setFont(bold)
        line = QFontMetrics(bold).height()
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, name)
        if not selected:
            painter.setPen(option.palette.color(QPalette.ColorRole.PlaceholderText))
        painter.setFont(plain)
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap
        painter.drawText(text_rect.adjusted(0, line + 2, 0, 0), flags, description)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index) -> QSize:
        name, description = self._texts(index)
        bold, plain = self._fonts(option)
        width = max(
            200,
            (option.widget.viewport().width() if option.widget else 500) - self.ICON - 10 - 2 * self.PADDING,
        )
        flags = Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap
        lines = QFontMetrics(plain).boundingRect(QRect(0, 0, width, 1000), flags, description).height()
        height = QFontMetrics(bold).height() + 2 + lines + 2 * self.PADDING
        return QSize(width, max(height, self.ICON + 2 * self.PADDING))


class TemplateDialog(QDialog):
    """Pick Blank or an example to start a new project from."""

    def __init__(self, templates: list[Template], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("templateDialog")
        self.setWindowTitle("New project")
        self.resize(580, 500)
        self.templates = templates
        self.list = QListWidget()
        self.list.setObjectName("templateList")
        self.list.setIconSize(QSize(28, 28))
        self.list.setSpacing(3)
        self.list.setWordWrap(True)
        self.list.setItemDelegate(TemplateDelegate(self.list))
        for template in templates:
            self.list.addItem(self._item(template))
        self.list.setCurrentRow(0)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.list.itemActivated.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Start from a blank model or from one of the examples:"))
        layout.addWidget(self.list)
        layout.addWidget(buttons)

    def _item(self, template: Template) -> QListWidgetItem:
        description = template.description or "No description."
        item = QListWidgetItem(app_icon(), f"{template.name}\n{description}")
        item.setToolTip(str(template.path) if template.path else "A new, empty model")
        item.setData(Qt.ItemDataRole.UserRole, template.name)
        return item

    def selected(self) -> Template | None:
        row = self.list.currentRow()
        return self.templates[row] if 0 <= row < len(self.templates) else None
