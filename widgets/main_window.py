"""The main window: canvas in the middle, palette, inspector, code and problems in docks."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QMessageBox, QWidget

from studio import __version__
from widgets.canvas_actions import CanvasActions
from widgets.code_view import CodeView
from widgets.document import Document
from widgets.file_controller import FileController
from widgets.icons import app_icon
from widgets.inspector import Inspector
from widgets.menus import build_actions, build_menus, canvas_context_actions, shortcut_rows
from widgets.palette import Palette
from widgets.problems_panel import ProblemsPanel
from widgets.recovery import default_recovery_dir
from widgets.scene import GraphScene
from widgets.status_summary import StatusSummary
from widgets.templates import EXAMPLES_DIR, FIRST_EXAMPLE, Template
from widgets.theme import DARK, LIGHT, apply_theme
from widgets.view import GraphView

DEFAULT_SIZE = (1400, 900)
DOCK_AREAS = {
    "palette": Qt.DockWidgetArea.LeftDockWidgetArea,
    "inspector": Qt.DockWidgetArea.RightDockWidgetArea,
    "codeView": Qt.DockWidgetArea.RightDockWidgetArea,
    "problems": Qt.DockWidgetArea.BottomDockWidgetArea,
}
DOCK_TITLES = {"palette": "Layers", "inspector": "Inspector", "codeView": "Code", "problems": "Problems"}
STATE_VERSION = 1


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: QSettings | None = None,
        recovery_dir: Path | None = None,
        examples_dir: Path = EXAMPLES_DIR,
        restore_layout: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowIcon(app_icon())
        self.settings = settings if settings is not None else QSettings()
        self.examples_dir = Path(examples_dir)
        self.document = Document(parent=self)
        self._create_views()
        self.files = FileController(
            self, self.document, self.settings, recovery_dir or default_recovery_dir(), self.examples_dir
        )
        self.canvas_actions = CanvasActions(self.document, self.scene, self.view, self)
        self.docks: dict[str, QDockWidget] = {}
        self._create_docks()
        self.actions = build_actions(self)
        build_menus(self, self.actions)
        self.view.context_actions = canvas_context_actions(self.actions)
        QShortcut(QKeySequence("F"), self.view, self.view.fit_all, context=Qt.ShortcutContext.WidgetShortcut)
        self.statusBar().addPermanentWidget(self.status_summary)
        self._connect()
        self.resize(*DEFAULT_SIZE)
        self.default_layout()
        self._restore_settings(restore_layout)
        self._update_title()

    # ----- construction --------------------------------------------------------------

    def _create_views(self) -> None:
        self.scene = GraphScene(self.document, self)
        self.view = GraphView(self.scene)
        self.setCentralWidget(self.view)
        self.palette_widget = Palette()
        self.inspector = Inspector(self.document, self.scene)
        self.code_view = CodeView(self.document)
        self.problems = ProblemsPanel(self.document)
        self.status_summary = StatusSummary(self.document)

    def _create_docks(self) -> None:
        contents = {
            "palette": self.palette_widget,
            "inspector": self.inspector,
            "codeView": self.code_view,
            "problems": self.problems,
        }
        for name, widget in contents.items():
            dock = QDockWidget(DOCK_TITLES[name], self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            self.docks[name] = dock

    def default_layout(self) -> None:
        """Palette left; inspector above code on the right; problems under the canvas."""
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        for name, dock in self.docks.items():
            dock.setFloating(False)
            self.addDockWidget(DOCK_AREAS[name], dock)
            dock.show()
        self.splitDockWidget(self.docks["inspector"], self.docks["codeView"], Qt.Orientation.Vertical)
        width, height = self.width(), self.height()
        self.resizeDocks([self.docks["palette"]], [int(width * 0.14)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["inspector"]], [int(width * 0.31)], Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.docks["inspector"], self.docks["codeView"]],
            [int(height * 0.42), int(height * 0.58)],
            Qt.Orientation.Vertical,
        )
        self.resizeDocks([self.docks["problems"]], [int(height * 0.15)], Qt.Orientation.Vertical)

    def reset_layout(self) -> None:
        self.default_layout()

    def _connect(self) -> None:
        self.document.dirtyChanged.connect(self._update_title)
        self.document.pathChanged.connect(self._update_title)
        self.document.projectReplaced.connect(self._on_project_replaced)
        self.document.analysisChanged.connect(self._update_problem_title)
        self.palette_widget.addRequested.connect(self.canvas_actions.add_from_palette)
        self.problems.nodeActivated.connect(self.select_and_center)
        self.scene.nodeActivated.connect(self._edit_node)
        self.scene.message.connect(self.show_message)
        self.canvas_actions.message.connect(self.show_message)
        self._update_problem_title()

    # ----- settings ------------------------------------------------------------------

    def _restore_settings(self, layout: bool) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if layout and geometry is not None:
            self.restoreGeometry(geometry)
        if layout and state is not None:
            self.restoreState(state, STATE_VERSION)
        self.actions["dark"].setChecked(self.settings.value("theme", "light") == DARK.name)
        self.set_dark(self.actions["dark"].isChecked())
        orientation = self.settings.value("canvas/orientation", "LR")
        self.scene.set_orientation(orientation if orientation in ("LR", "TB") else "LR")

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(STATE_VERSION))
        self.settings.setValue("canvas/orientation", self.scene.orientation)

    # ----- appearance ----------------------------------------------------------------

    def set_dark(self, dark: bool) -> None:
        theme = DARK if dark else LIGHT
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, theme)
        self.scene.set_theme(theme)
        self.view.resetCachedContent()
        self.code_view.set_theme(theme)
        self.status_summary.set_theme(theme)
        self.settings.setValue("theme", theme.name)

    def _update_title(self, *args) -> None:
        star = "*" if self.document.is_dirty else ""
        self.setWindowTitle(f"{self.document.display_name}{star} — Layer Studio")
        self.setWindowFilePath(str(self.document.path) if self.document.path else "")

    def _update_problem_title(self) -> None:
        count = len(self.document.analysis.problems)
        self.docks["problems"].setWindowTitle(f"Problems ({count})" if count else "Problems")

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    # ----- opening -------------------------------------------------------------------

    def open_initial(self, path: str | Path | None = None, interactive: bool = True) -> bool:
        """At start-up: the given project, else the last one, else the first example."""
        if path is not None:
            return self.files.open_path(Path(path), ask=False, offer_recovery=interactive)
        if interactive and self.files.recover(None):
            return True
        recent = [item for item in self.files.recent_files() if Path(item).exists()]
        if recent and self.files.open_path(Path(recent[0]), ask=False, offer_recovery=interactive):
            return True
        example = self.examples_dir / FIRST_EXAMPLE
        if example.exists():
            return self.files.new_from(Template("", "", example))
        return True  # the blank project with one Input is already open

    def _on_project_replaced(self) -> None:
        self._update_title()
        self.view.fit_all()

    # ----- selection -----------------------------------------------------------------

    def select_and_center(self, node_id: str) -> None:
        self.scene.select_nodes([node_id])
        self.view.center_on_node(node_id)

    def _edit_node(self, node_id: str) -> None:
        self.scene.select_nodes([node_id])
        self.rename_selected()

    def rename_selected(self) -> None:
        if len(self.scene.selected_node_ids()) == 1:
            self.docks["inspector"].show()
            self.docks["inspector"].raise_()
            self.inspector.focus_name()

    def export_code(self, framework: str) -> None:
        self.code_view.regenerate()
        self.code_view.tabs.setCurrentIndex(list(self.code_view.editors).index(framework))
        if not self.code_view.results[framework].ok:
            self.show_message("The model has problems; fix them to export code (see the Problems panel).")
            return
        self.code_view.export_current()

    # ----- dialogs -------------------------------------------------------------------

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About Layer Studio",
            f"<h3>Layer Studio {__version__}</h3>"
            "<p>Design neural networks visually, and get equivalent Keras 3 and PyTorch code.</p>",
        )

    def show_shortcuts(self) -> None:
        rows = "".join(
            f"<tr><td>{name}</td><td><b>{keys}</b></td></tr>" for name, keys in shortcut_rows(self.actions)
        )
        extra = (
            "<tr><td>Pan</td><td><b>Middle button drag, or Space + drag</b></td></tr>"
            "<tr><td>Zoom</td><td><b>Mouse wheel</b></td></tr>"
            "<tr><td>Connect</td><td><b>Drag from an output port to an input port</b></td></tr>"
        )
        QMessageBox.information(self, "Keyboard shortcuts", f"<table cellspacing='6'>{rows}{extra}</table>")

    # ----- closing -------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.files.maybe_save():
            event.ignore()
            return
        self.files.autosaver.stop()
        self.files.autosaver.discard()
        self._save_settings()
        event.accept()
