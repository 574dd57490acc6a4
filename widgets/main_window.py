"""The main window: the canvas is the screen; palette, inspector, code and problems are docks.

Two workspaces share the centre: *Design* (the canvas, with the docks around
it) and *Training* (the dashboard at full width; the docks step aside and come
back as they were). A toolbar holds the everyday actions. Default layout: the
palette on the left, the inspector above the code and problems (tabs) on the
right, narrow enough that the canvas keeps most of the window.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QWidget,
)

from studio import __version__
from studio.analysis import ERROR
from widgets.canvas_actions import CanvasActions
from widgets.code_view import CodeView
from widgets.document import Document
from widgets.file_controller import FileController
from widgets.find_bar import FindBar
from widgets.fit_layout import orientation_of
from widgets.icons import app_icon
from widgets.inspector import Inspector
from widgets.menus import build_actions, build_menus, build_toolbar, canvas_context_actions, shortcut_rows
from widgets.model_export import ModelExporter
from widgets.model_import import ModelImporter
from widgets.palette import Palette
from widgets.problems_panel import ProblemsPanel
from widgets.recovery import default_recovery_dir
from widgets.scene import GraphScene
from widgets.status_summary import StatusSummary
from widgets.templates import EXAMPLES_DIR, FIRST_EXAMPLE, Template
from widgets.theme import DARK, LIGHT, apply_theme
from widgets.training_panel import TrainingPanel
from widgets.view import GraphView
from widgets.warm_worker import WarmWorker

DEFAULT_SIZE = (1400, 900)
DOCK_AREAS = {
    "palette": Qt.DockWidgetArea.LeftDockWidgetArea,
    "inspector": Qt.DockWidgetArea.RightDockWidgetArea,
    "codeView": Qt.DockWidgetArea.RightDockWidgetArea,
    "problems": Qt.DockWidgetArea.RightDockWidgetArea,
}
DOCK_TITLES = {
    "palette": "Layers",
    "inspector": "Inspector",
    "codeView": "Code",
    "problems": "Problems",
}
STATE_VERSION = 3  # 3: training is a workspace, not a dock
DESIGN, TRAINING = "design", "training"
RIGHT_WIDTH = (230, 260)  # inspector, code and problems: the least, the most
RIGHT_SHARE = 0.2  # of the window's width, within RIGHT_WIDTH
SIDE_MINIMUM = 200  # a dock's contents may be narrower than they ask for


def initial_size() -> tuple[int, int]:
    """DEFAULT_SIZE, or more of a large screen (never more than fits): the canvas gets the extra room."""
    screen = QGuiApplication.primaryScreen()
    if screen is None or QGuiApplication.platformName() in ("offscreen", "minimal"):
        return DEFAULT_SIZE
    available = screen.availableGeometry()
    width = min(int(available.width() * 0.94), max(DEFAULT_SIZE[0], int(available.width() * 0.85)))
    height = min(int(available.height() * 0.92), max(DEFAULT_SIZE[1], int(available.height() * 0.85)))
    return width, height


class _AfterFirstPaint(QObject):
    """Calls ``then`` once, right after ``widget`` is first painted."""

    def __init__(self, widget: QWidget, then) -> None:
        super().__init__(widget)
        self.then = then
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self.then)
        return False


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: QSettings | None = None,
        recovery_dir: Path | None = None,
        examples_dir: Path = EXAMPLES_DIR,
        restore_layout: bool = True,
        runs_root: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowIcon(app_icon())
        self.settings = settings if settings is not None else QSettings()
        self.examples_dir = Path(examples_dir)
        self.document = Document(parent=self)
        self._create_views(runs_root)
        self.files = FileController(
            self, self.document, self.settings, recovery_dir or default_recovery_dir(), self.examples_dir
        )
        self.canvas_actions = CanvasActions(self.document, self.scene, self.view, self)
        self.importer = ModelImporter(self)
        self.exporter = ModelExporter(self)
        self.docks: dict[str, QDockWidget] = {}
        self.compare_dialog = None  # created when first asked for
        self._design_state: bytes | None = None  # the docks as they were before the Training workspace
        self._create_docks()
        self.actions = build_actions(self)
        build_menus(self, self.actions)
        self.toolbar: QToolBar = build_toolbar(self, self.actions)
        self.view.context_actions = canvas_context_actions(self.actions)
        QShortcut(QKeySequence("F"), self.view, self.view.fit_all, context=Qt.ShortcutContext.WidgetShortcut)
        self.statusBar().addPermanentWidget(self.status_summary)
        self._connect()
        self.resize(*initial_size())
        self.default_layout()
        self._restore_settings(restore_layout)
        self._update_title()

    # ----- construction --------------------------------------------------------------

    def _create_views(self, runs_root: Path | None) -> None:
        self.scene = GraphScene(self.document, self)
        self.view = GraphView(self.scene)
        self.palette_widget = Palette()
        self.inspector = Inspector(self.document, self.scene)
        self.warm = WarmWorker(self)  # started by the app once the window shows (start_soon)
        # The code generators load once the canvas has been painted: the window shows first.
        self.code_view = CodeView(self.document, warm=self.warm, generate_now=False)
        _AfterFirstPaint(self.view.viewport(), self.code_view.regenerate)  # a child of the viewport
        self.problems = ProblemsPanel(self.document)
        self.status_summary = StatusSummary(self.document)
        self.find_bar = FindBar(self.document)
        self.training = TrainingPanel(self.document, self.settings, runs_root, warm=self.warm)
        self.workspace = QStackedWidget(objectName="workspace")
        self.workspace.addWidget(self.view)
        self.workspace.addWidget(self.training)
        self.setCentralWidget(self.workspace)

    def _create_docks(self) -> None:
        contents = {
            "palette": self.palette_widget,
            "inspector": self.inspector,
            "codeView": self.code_view,
            "problems": self.problems,
        }
        for name, widget in contents.items():
            if name != "palette":
                widget.setMinimumWidth(SIDE_MINIMUM)
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
        """Palette left; inspector above code and problems (tabs) on the right; the canvas gets the rest."""
        self.set_workspace(DESIGN)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        for name, dock in self.docks.items():
            dock.setFloating(False)
            self.addDockWidget(DOCK_AREAS[name], dock)
            dock.show()
        self.splitDockWidget(self.docks["inspector"], self.docks["codeView"], Qt.Orientation.Vertical)
        self.tabifyDockWidget(self.docks["codeView"], self.docks["problems"])
        self.docks["codeView"].raise_()
        self.toolbar.show()
        width, height = self.width(), self.height()
        palette = self.palette_widget.preferred_width()
        right = min(RIGHT_WIDTH[1], max(RIGHT_WIDTH[0], int(width * RIGHT_SHARE)))
        self.resizeDocks([self.docks["palette"]], [palette], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["inspector"]], [right], Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.docks["inspector"], self.docks["codeView"]],
            [int(height * 0.45), int(height * 0.55)],
            Qt.Orientation.Vertical,
        )

    # ----- workspaces ----------------------------------------------------------------

    @property
    def current_workspace(self) -> str:
        return TRAINING if self.workspace.currentWidget() is self.training else DESIGN

    def set_workspace(self, name: str) -> None:
        """Design: the canvas and the docks. Training: the dashboard alone, at full width."""
        if name == self.current_workspace:
            self._check_workspace_actions()
            return
        if name == TRAINING:
            self._design_state = self.saveState(STATE_VERSION)
            for dock in self.docks.values():
                dock.hide()
            self.workspace.setCurrentWidget(self.training)
        else:
            self.workspace.setCurrentWidget(self.view)
            if self._design_state is not None:
                self.restoreState(self._design_state, STATE_VERSION)
            self._design_state = None
        self._check_workspace_actions()

    def _check_workspace_actions(self) -> None:
        self.actions["show_design"].setChecked(self.current_workspace == DESIGN)
        self.actions["show_training"].setChecked(self.current_workspace == TRAINING)

    def show_training(self) -> None:
        self.set_workspace(TRAINING)

    def show_design(self) -> None:
        self.set_workspace(DESIGN)

    def start_training(self) -> None:
        self.show_training()
        self.training.start()

    def compare_frameworks(self) -> None:
        """Open the comparison of both frameworks (Train menu); it starts when the user presses Start."""
        from widgets.compare_dialog import CompareDialog

        if self.compare_dialog is None:
            self.compare_dialog = CompareDialog(self.document, self.training.runs_root, self)
        self.compare_dialog.show()
        self.compare_dialog.raise_()

    def verify(self) -> None:
        self.show_design()
        self.docks["codeView"].show()
        self.docks["codeView"].raise_()
        self.code_view.verify()

    def reset_layout(self) -> None:
        self.default_layout()

    def _connect(self) -> None:
        self.document.dirtyChanged.connect(self._update_title)
        self.document.pathChanged.connect(self._update_title)
        self.document.projectReplaced.connect(self._on_project_replaced)
        self.document.analysisChanged.connect(self._update_problem_title)
        self.palette_widget.addRequested.connect(self.canvas_actions.add_from_palette)
        self.problems.nodeActivated.connect(self.select_and_center)
        self.find_bar.found.connect(self.select_and_center)
        self.code_view.problemLinkActivated.connect(self.jump_to_problem)
        self.status_summary.problemsClicked.connect(self.jump_to_problem)
        self.find_bar.message.connect(self.show_message)
        self.scene.nodeActivated.connect(self._edit_node)
        self.scene.message.connect(self.show_message)
        self.canvas_actions.message.connect(self.show_message)
        self.training.message.connect(self.show_message)
        self.training.runStarted.connect(self._update_training_actions)
        self.training.runEnded.connect(self._update_training_actions)
        self.importer.message.connect(self.show_message)
        self.exporter.message.connect(self.show_message)
        self.code_view.verified.connect(lambda result: self.show_message(f"Verification: {result.verdict}"))
        self._update_problem_title()
        self._update_training_actions()

    # ----- settings ------------------------------------------------------------------

    def _restore_settings(self, layout: bool) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if layout and geometry is not None:
            self.restoreGeometry(geometry)
        if layout and state is not None:
            self.restoreState(state, STATE_VERSION)
        if layout and self.settings.value("window/workspace") == TRAINING:
            self.set_workspace(TRAINING)
        self.actions["dark"].setChecked(self.settings.value("theme", "light") == DARK.name)
        self.set_dark(self.actions["dark"].isChecked())

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        design = self._design_state if self.current_workspace == TRAINING else None
        self.settings.setValue("window/state", design or self.saveState(STATE_VERSION))
        self.settings.setValue("window/workspace", self.current_workspace)

    # ----- appearance ----------------------------------------------------------------

    def set_dark(self, dark: bool) -> None:
        theme = DARK if dark else LIGHT
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, theme)
        self.scene.set_theme(theme)
        self.view.resetCachedContent()
        self.code_view.set_theme(theme)
        self.training.set_theme(theme)
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
        """Each project keeps its own orientation (read from its layout), and opens fitted."""
        self._update_title()
        self.scene.set_orientation(orientation_of(self.document.graph))
        self.view.fit_readable()

    def canvas_size(self) -> tuple[int, int]:
        """The canvas viewport's size; before the window is first laid out, an estimate."""
        if self.view.isVisible():
            return self.view.viewport().width(), self.view.viewport().height()
        right = min(RIGHT_WIDTH[1], max(RIGHT_WIDTH[0], int(self.width() * RIGHT_SHARE)))
        return self.width() - self.palette_widget.preferred_width() - right, self.height() - 80

    def _update_training_actions(self) -> None:
        running = self.training.is_running
        self.actions["train"].setEnabled(not running)
        self.actions["stop_training"].setEnabled(running)

    # ----- selection -----------------------------------------------------------------

    def select_and_center(self, node_id: str) -> None:
        """Select and show a layer; one inside a collapsed block shows as its block, selected."""
        self.scene.select_nodes([node_id])
        self.view.center_on_node(node_id)

    def find_layer(self) -> None:
        self.show_design()
        self.find_bar.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.find_bar.selectAll()

    def jump_to_problem(self) -> str | None:
        """Select and show the layer of the next problem (errors first); None when there is none."""
        problems = sorted(self.document.analysis.problems, key=lambda problem: problem.severity != ERROR)
        node_ids = list(dict.fromkeys(problem.node_id for problem in problems if problem.node_id))
        if not node_ids:
            self.show_message("No layer has a problem.")
            return None
        selected = self.scene.selected_node_ids()
        current = node_ids.index(selected[0]) if len(selected) == 1 and selected[0] in node_ids else -1
        node_id = node_ids[(current + 1) % len(node_ids)]
        self.show_design()
        self.select_and_center(node_id)
        message = next(p.message for p in problems if p.node_id == node_id)
        self.show_message(f"{self.document.graph.node(node_id).name}: {message}")
        return node_id

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

    def export_diagram(self, path: str | None = None) -> Path | None:
        """Save the diagram as PNG or SVG (asked for with a file dialog when ``path`` is None)."""
        from PySide6.QtWidgets import QFileDialog

        from widgets.diagram_export import export_diagram

        if path is None:
            folder = self.document.path.parent if self.document.path else Path.home()
            suggestion = folder / f"{self.document.display_name}.svg"
            path, _ = QFileDialog.getSaveFileName(
                self, "Export diagram", str(suggestion), "SVG drawing (*.svg);;PNG image (*.png)"
            )
            if not path:
                return None
        try:
            target = export_diagram(self.scene, path)
        except OSError as error:
            QMessageBox.warning(self, "Export failed", str(error))
            return None
        self.show_message(f"Diagram saved to {target}")
        return target

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

    def _confirm_stop_training(self) -> bool:
        if not self.training.is_running or not self.files.interactive:
            return True
        answer = QMessageBox.question(
            self,
            "Training is running",
            "Stop the training run and close Layer Studio?\n\nWhat was trained so far is kept in the run's folder.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Yes,
        )
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._confirm_stop_training() or not self.files.maybe_save():
            event.ignore()
            return
        self.training.shutdown()
        self.code_view.shutdown()
        self.warm.shutdown()
        if self.compare_dialog is not None:
            self.compare_dialog.cancel()
        self.importer.process.kill()
        self.exporter.process.kill()
        self.files.autosaver.stop()
        self.files.autosaver.discard()
        self._save_settings()
        event.accept()
