"""Permanent status-bar widgets: layer count, parameter count, FLOPs per sample, valid or not."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from studio.summary import flops_text, format_flops
from widgets.document import Document
from widgets.text import counted
from widgets.theme import LIGHT, Theme


class StatusSummary(QWidget):
    problemsClicked = Signal()  # the validity was clicked while the model has problems

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusSummary")
        self.document = document
        self.theme: Theme = LIGHT
        self.layers = QLabel(objectName="layerCount")
        self.params = QLabel(objectName="paramCount")
        self.flops = QLabel(objectName="flopCount")
        self.validity = QLabel(objectName="validity")
        self.validity.mousePressEvent = self._on_validity_clicked
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 6, 0)
        layout.setSpacing(16)
        for label in (self.layers, self.params, self.flops, self.validity):
            layout.addWidget(label)
        document.analysisChanged.connect(self.refresh)
        self.refresh()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.refresh()

    def _on_validity_clicked(self, event: QMouseEvent) -> None:
        if self.document.analysis.problems:
            self.problemsClicked.emit()

    def refresh(self) -> None:
        analysis = self.document.analysis
        count = len(self.document.graph)
        self.layers.setText(counted(count, "layer"))
        self.params.setText(counted(analysis.total_params.total, "parameter"))
        flops = analysis.total_flops
        self.flops.setText(format_flops(flops.flops))
        self.flops.setToolTip(f"One sample's forward pass: {flops_text(flops)}; 1 MAC = 2 FLOPs")
        errors = len(analysis.errors)
        warnings = len(analysis.problems) - errors
        if errors:
            text, color = f"✗ Invalid: {counted(errors, 'error')}", self.theme.error
        elif warnings:
            text, color = f"✓ Valid, {counted(warnings, 'warning')}", self.theme.warning
        else:
            text, color = "✓ Valid", self.theme.ok
        self.validity.setText(text)
        problems = bool(analysis.problems)
        self.validity.setCursor(Qt.CursorShape.PointingHandCursor if problems else Qt.CursorShape.ArrowCursor)
        self.validity.setToolTip("Click to show the next layer with a problem (F8)" if problems else "")
        self.validity.setStyleSheet(f"color: {color}; font-weight: 600;")
