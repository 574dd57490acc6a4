"""Generated Keras and PyTorch code, one read-only tab each, refreshed shortly after each edit.

When the graph has an error, the code is not lost: each tab keeps the last
valid code, dimmed, under a banner that names the error (its link jumps to the
layer). Without any valid code yet, the tab explains what is wrong instead.

The Verify button proves the two programs equivalent in a child process
(see :mod:`widgets.verify_panel`); the verdict shows in a strip under the code.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QGraphicsOpacityEffect,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.project import FRAMEWORK_TITLES
from widgets.codegen_bridge import CodeResult, generate_code
from widgets.document import Document
from widgets.highlighter import PythonHighlighter
from widgets.theme import LIGHT, Theme
from widgets.verify_panel import Verifier, VerifyPanel, VerifyResult
from widgets.warm_worker import WarmWorker

DEBOUNCE_MS = 60
CODE_POINT_SIZE = 8.5  # 88-column generated code in about 600 pixels
STALE_OPACITY = 0.45
BANNER_LINES = 3  # of the explanation, in the banner


class CodeView(QWidget):
    regenerated = Signal()
    verified = Signal(object)  # VerifyResult
    problemLinkActivated = Signal()  # the banner's link: show the layer with the problem

    def __init__(
        self,
        document: Document,
        parent: QWidget | None = None,
        warm: WarmWorker | None = None,
        generate_now: bool = True,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("codeViewWidget")
        self.document = document
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.editors: dict[str, QPlainTextEdit] = {}
        self.highlighters: dict[str, PythonHighlighter] = {}
        self.results: dict[str, CodeResult] = {}
        self.last_valid: dict[str, str] = {}  # the last generated code of each framework
        self.banner = QLabel(objectName="codeBanner", wordWrap=True, visible=False)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.banner.linkActivated.connect(lambda link: self.problemLinkActivated.emit())
        for framework, title in FRAMEWORK_TITLES.items():
            self.editors[framework] = self._make_editor(framework)
            self.tabs.addTab(self.editors[framework], title)
        self.copy_button = QToolButton(text="Copy", toolTip="Copy the code of this tab to the clipboard")
        self.export_button = QToolButton(text="Export…", toolTip="Save the code of this tab as a Python file")
        self.verify_button = QToolButton(
            text="Verify",
            objectName="verifyButton",
            toolTip="Prove the Keras and PyTorch programs equivalent: build both from this code, copy the "
            "weights, compare outputs, parameter counts and one SGD step (runs in the background)",
        )
        self.copy_button.clicked.connect(self.copy_current)
        self.export_button.clicked.connect(lambda: self.export_current())
        self.verify_button.clicked.connect(self.verify)
        self.tabs.currentChanged.connect(self._update_buttons)
        self.verifier = Verifier(self, warm)
        self.verifier.finished.connect(self._on_verified)
        self.verify_panel = VerifyPanel()
        self.verify_panel.cancelRequested.connect(self.verifier.cancel)
        self.verifier.stage.connect(self.verify_panel.show_stage)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self._buttons())
        layout.addWidget(self.verify_panel)
        self.set_theme(LIGHT)
        self.timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self.timer.timeout.connect(self.regenerate)
        document.analysisChanged.connect(self.timer.start)
        document.projectReplaced.connect(self.timer.start)
        document.trainingChanged.connect(self.timer.start)
        document.analysisChanged.connect(self.verify_panel.mark_stale)
        document.projectReplaced.connect(self.verify_panel.mark_stale)
        if generate_now:  # else the owner calls regenerate() (the main window: after its first paint)
            self.regenerate()

    def _make_editor(self, framework: str) -> QPlainTextEdit:
        editor = QPlainTextEdit(readOnly=True)
        editor.setObjectName(f"code_{framework}")
        editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSizeF(CODE_POINT_SIZE)
        editor.setFont(font)
        editor.setTabStopDistance(4 * editor.fontMetrics().horizontalAdvance(" "))
        self.highlighters[framework] = PythonHighlighter(editor.document())
        return editor

    def _buttons(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(4, 2, 4, 2)
        row.setSpacing(2)
        row.addStretch(1)
        row.addWidget(self.verify_button)
        row.addWidget(self.copy_button)
        row.addWidget(self.export_button)
        return box

    def set_theme(self, theme: Theme = LIGHT) -> None:
        for highlighter in self.highlighters.values():
            highlighter.set_theme(theme)
        self.verify_panel.set_theme(theme)
        self.banner.setStyleSheet(
            f"QLabel#codeBanner {{ color: {theme.error}; border: 1px solid {theme.error}; "
            "border-radius: 3px; padding: 4px; margin: 2px; }"
        )

    # ----- content -------------------------------------------------------------------

    def current_framework(self) -> str:
        return list(FRAMEWORK_TITLES)[self.tabs.currentIndex()]

    def text(self, framework: str) -> str:
        return self.editors[framework].toPlainText()

    def is_stale(self, framework: str) -> bool:
        """Whether the tab shows the last valid code rather than code of the model as it is."""
        return not self.results[framework].ok and framework in self.last_valid

    def regenerate(self) -> None:
        self.timer.stop()
        for framework in FRAMEWORK_TITLES:
            result = generate_code(self.document.project, self.document.analysis, framework)
            self.results[framework] = result
            if result.ok:
                self.last_valid[framework] = result.text
            editor = self.editors[framework]
            stale = self.is_stale(framework)
            shows_code = result.ok or stale
            wrap = (
                QPlainTextEdit.LineWrapMode.NoWrap if shows_code else QPlainTextEdit.LineWrapMode.WidgetWidth
            )
            editor.setLineWrapMode(wrap)  # code keeps its lines; explanations wrap
            self._show(editor, self.last_valid[framework] if stale else result.text)
            self._dim(editor, stale)
        self._update_banner()
        self._update_buttons()
        self.regenerated.emit()

    @staticmethod
    def _dim(editor: QPlainTextEdit, dimmed: bool) -> None:
        if dimmed and editor.viewport().graphicsEffect() is None:
            effect = QGraphicsOpacityEffect(editor.viewport())
            effect.setOpacity(STALE_OPACITY)
            editor.viewport().setGraphicsEffect(effect)
        elif not dimmed and editor.viewport().graphicsEffect() is not None:
            editor.viewport().setGraphicsEffect(None)

    def _update_banner(self) -> None:
        """Name the error above code kept from before it (hidden when the code is current)."""
        stale = [framework for framework in FRAMEWORK_TITLES if self.is_stale(framework)]
        if not stale:
            self.banner.hide()
            return
        lines = [line.lstrip("# ").strip() for line in self.results[stale[0]].text.splitlines()]
        lines = [line for line in lines if line]
        reason = " ".join(lines[:BANNER_LINES]) + (" …" if len(lines) > BANNER_LINES else "")
        link = " <a href='problem'>Show the layer</a>" if self.document.analysis.errors else ""
        self.banner.setText(f"<b>Showing the last valid code.</b> {_html(reason)}{link}")
        self.banner.setToolTip("\n".join(lines))
        self.banner.show()

    @staticmethod
    def _show(editor: QPlainTextEdit, text: str) -> None:
        if editor.toPlainText() == text:
            return
        scroll = editor.verticalScrollBar().value()
        editor.setPlainText(text)
        editor.verticalScrollBar().setValue(scroll)

    def _update_buttons(self) -> None:
        result = self.results.get(self.current_framework())
        ok = bool(result and result.ok)
        self.copy_button.setEnabled(ok)
        self.export_button.setEnabled(ok)
        valid = all(item.ok for item in self.results.values()) and bool(self.results)
        self.verify_button.setEnabled(valid and not self.verifier.is_running)

    # ----- verification --------------------------------------------------------------

    def verify(self) -> None:
        """Run the equivalence proof on the model as it is now; the verdict shows under the code."""
        if self.verifier.is_running:
            return
        if self.timer.isActive():
            self.regenerate()  # verify what the view is about to show
        if not all(result.ok for result in self.results.values()):
            self.verify_panel.show_result(
                VerifyResult(
                    False, error="The model has problems; fix them to verify it (see the Problems panel)."
                )
            )
            return
        self.verify_panel.show_running()
        self.verify_button.setText("Verifying…")
        self.verify_button.setEnabled(False)
        self.verifier.start(self.document.project)

    def _on_verified(self, result: VerifyResult) -> None:
        self.verify_button.setText("Verify")
        self._update_buttons()
        self.verify_panel.show_result(result)
        self.verified.emit(result)

    def shutdown(self) -> None:
        """Kill a running proof (the window is closing)."""
        self.verifier.kill()

    # ----- actions -------------------------------------------------------------------

    def copy_current(self) -> None:
        QGuiApplication.clipboard().setText(self.text(self.current_framework()))

    def export_current(self, path: str | None = None) -> Path | None:
        """Write the current tab's source to ``path`` (asked for with a file dialog if None)."""
        framework = self.current_framework()
        if path is None:
            suggestion = f"{_slug(self.document.display_name)}_{framework}.py"
            folder = self.document.path.parent if self.document.path else Path.home()
            path, _ = QFileDialog.getSaveFileName(
                self,
                f"Export {FRAMEWORK_TITLES[framework]} code",
                str(folder / suggestion),
                "Python source (*.py)",
            )
            if not path:
                return None
        target = Path(path)
        try:
            target.write_text(self.results[framework].text, encoding="utf-8")
        except OSError as error:
            QMessageBox.warning(
                self, "Export failed", f"Could not write {target}:\n{error.strerror or error}"
            )
            return None
        return target


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slug(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "model"
