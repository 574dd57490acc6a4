"""The training dashboard: settings, Train/Stop, progress, live plots and the list of runs.

What is trained is the open project as the code view shows it: the panel
hands the project's JSON to ``RunConfig.from_project``, and the training
process generates the code from it. Runs live in child processes
(``studio.training``); this panel polls them through a
:class:`~widgets.run_driver.RunDriver` and never waits for them. A failed run
is explained in the panel and the status bar; the window carries on.

pyqtgraph, the dataset list and the device probe are loaded when the panel is
first shown (or a run starts), so they cost nothing at start-up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import shutil
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStyle,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.project import FRAMEWORKS, ProjectError, project_to_dict
from studio.training.run_metrics import (
    FRAMEWORK_TITLES,
    FrameworkMetrics,
    RunRecord,
    format_eta,
    model_of,
    scan_runs,
    write_csv,
)
from widgets import commands, edits
from widgets.device_list import DeviceDetector
from widgets.document import Document
from widgets.preflight import InputMismatch, dims, input_mismatch
from widgets.run_driver import RunDriver
from widgets.run_list import RunList, figure
from widgets.tensorboard_launcher import TensorBoardLauncher
from widgets.theme import LIGHT, Theme
from widgets.training_form import FRAMEWORK_CHOICES, TrainingForm
from widgets.warm_worker import WarmWorker

log = logging.getLogger(__name__)

RUNS_KEY = "training/runsRoot"
PAST_RUNS = 12
WEIGHT_FILES = {"keras": ("Keras model", "*.keras"), "pytorch": ("PyTorch weights", "*.pt")}


def default_runs_root(settings: QSettings | None = None) -> Path:
    configured = settings.value(RUNS_KEY) if settings is not None else None
    if configured:
        return Path(str(configured))
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".layer-studio") / "runs"


def explain(action, reason: str | None) -> None:
    """Enable ``action``, or disable it and say why (in its text, its tooltip and the status bar)."""
    base = action.data() or action.text()
    action.setData(base)
    action.setEnabled(reason is None)
    action.setText(base if reason is None else f"{base.rstrip('…')} — {reason}")
    action.setToolTip("" if reason is None else reason)
    action.setStatusTip("" if reason is None else reason)


def _normal(value):
    """JSON's view of ``value`` (tuples become lists), for comparing models."""
    return json.loads(json.dumps(value))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


class TrainingPanel(QWidget):
    message = Signal(str)  # for the status bar
    runStarted = Signal()
    runEnded = Signal()

    def __init__(
        self,
        document: Document,
        settings: QSettings | None = None,
        runs_root: Path | None = None,
        parent: QWidget | None = None,
        warm: WarmWorker | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPanelWidget")
        self.document = document
        self.warm = warm  # its spare process, already warm, becomes the next single-framework run
        self.runs_root = Path(runs_root) if runs_root is not None else default_runs_root(settings)
        self.theme: Theme = LIGHT
        self.driver: RunDriver | None = None
        self.plots = None  # TrainingPlots, created when first needed (imports pyqtgraph)
        self.confusion = None  # ConfusionView, created with the plots
        self.tabs: QTabWidget | None = None
        self.launcher = TensorBoardLauncher(self)
        self.interactive = True  # False: no dialogs (screenshots, benchmarks)
        self._past_loaded = False
        self.detector = DeviceDetector(self)
        self.form = TrainingForm()
        self._build()
        self._connect()
        self._on_training_changed()
        self._update_controls()

    @property
    def records(self) -> list[RunRecord]:
        """Every run listed, oldest first."""
        return self.runs.records

    # ----- construction --------------------------------------------------------------

    def _build(self) -> None:
        style = self.style()
        self.settings_toggle = QToolButton(text="Settings", checkable=True, checked=True)
        self.settings_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.settings_toggle.setArrowType(Qt.ArrowType.DownArrow)
        self.settings_toggle.setAutoRaise(True)
        self.settings_toggle.setToolTip("Show or hide the training settings")
        self.train_button = QPushButton(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Train", objectName="trainButton"
        )
        self.train_button.setToolTip("Train the model as the code view shows it (F5)")
        self.train_button.setDefault(True)
        self.stop_button = QPushButton(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop", objectName="stopButton"
        )
        self.stop_button.setToolTip("Stop the run after the current batch; what was trained is kept")
        self.progress = QProgressBar(objectName="trainingProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setTextVisible(True)
        self.status = QLabel("Press Train to train this model.", objectName="trainingStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.error = QLabel(objectName="trainingError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setFrameShape(QFrame.Shape.StyledPanel)
        self.error.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.error.hide()
        self.fix_button = QPushButton(objectName="preflightFix")
        self.fix_button.hide()
        self._fix = None  # what the fix button does

        self.log_scale = QCheckBox("Log scale", objectName="logScaleCheck")
        self.log_scale.setToolTip("Show the loss on a logarithmic axis")
        self.export_png_button = QToolButton(text="PNG…", toolTip="Save the plots as a PNG image")
        self.export_csv_button = QToolButton(
            text="CSV…", toolTip="Save the metrics of the checked runs as CSV"
        )
        self.tensorboard_button = QToolButton(text="Open in TensorBoard", objectName="openTensorBoard")
        self.tensorboard_button.setToolTip(
            "Serve the selected run's TensorBoard events on a local port (runs trained with TensorBoard on)"
        )
        self.plot_area = QWidget(objectName="plotArea")
        plot_layout = QVBoxLayout(self.plot_area)
        plot_layout.setContentsMargins(0, 0, 0, 0)
        plot_layout.setSpacing(2)

        self.runs = RunList()

        controls = QHBoxLayout()
        controls.setSpacing(6)
        controls.addWidget(self.train_button)
        controls.addWidget(self.stop_button)
        controls.addWidget(self.form.tensorboard)
        controls.addWidget(self.progress, 1)
        plot_bar = QHBoxLayout()
        plot_bar.setContentsMargins(0, 0, 0, 0)
        plot_bar.addWidget(self.tensorboard_button)
        plot_bar.addStretch(1)
        plot_bar.addWidget(self.log_scale)
        plot_bar.addWidget(QLabel("Export:"))
        plot_bar.addWidget(self.export_png_button)
        plot_bar.addWidget(self.export_csv_button)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.plot_area)
        self.splitter.addWidget(self.runs)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([400, 90])
        self.runs.setMinimumHeight(48)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addWidget(self.settings_toggle)
        layout.addWidget(self.form)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        error_row = QHBoxLayout()
        error_row.setSpacing(6)
        error_row.addWidget(self.error, 1)
        error_row.addWidget(self.fix_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(error_row)
        layout.addLayout(plot_bar)
        layout.addWidget(self.splitter, 1)

    def _connect(self) -> None:
        self.train_button.clicked.connect(self.start)
        self.fix_button.clicked.connect(self._apply_fix)
        self.stop_button.clicked.connect(self.stop)
        self.settings_toggle.toggled.connect(self._show_settings)
        self.log_scale.toggled.connect(self.set_log_scale)
        self.export_png_button.clicked.connect(lambda: self.export_png())
        self.export_csv_button.clicked.connect(lambda: self.export_csv())
        self.runs.visibilityToggled.connect(lambda record: self.set_record_visible(record, record.visible))
        self.runs.menuRequested.connect(self._run_menu)
        self.runs.currentItemChanged.connect(lambda *_: self.refresh_run_views())
        self.tensorboard_button.clicked.connect(lambda: self.open_tensorboard())
        self.launcher.failed.connect(self._on_tensorboard_failed)
        self.form.settingEdited.connect(self.edit_setting)
        self.detector.detected.connect(self.form.device.set_devices)
        self.document.trainingChanged.connect(self._on_training_changed)
        self.document.pathChanged.connect(self._on_path_changed)
        self.document.projectReplaced.connect(self._on_project_replaced)
        self.document.analysisChanged.connect(self._update_controls)

    def _show_settings(self, shown: bool) -> None:
        self.form.setVisible(shown)
        self.settings_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    # ----- lazy parts ----------------------------------------------------------------

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self, self.ready_if_seen)

    def ready_if_seen(self) -> None:
        """Load the lazy parts once the panel is on screen (a tab behind the code view is not)."""
        if self.isVisible() and not self.visibleRegion().isEmpty():
            self.ensure_ready()

    def ensure_ready(self, detect_devices: bool = True) -> None:
        """Create the plots, list the datasets and past runs, and start the device probe (once)."""
        if self.plots is None:
            from widgets.confusion_view import ConfusionView
            from widgets.training_plots import TrainingPlots

            self.plots = TrainingPlots()
            self.plots.set_theme(self.theme)
            self.plots.set_log_scale(self.log_scale.isChecked())
            self.confusion = ConfusionView()
            self.confusion.set_theme(self.theme)
            self.tabs = QTabWidget(objectName="dashboardTabs")
            self.tabs.setDocumentMode(True)
            self.tabs.addTab(self.plots, "Curves")
            self.tabs.addTab(self.confusion, "Confusion matrix")
            self.plot_area.layout().addWidget(self.tabs)
        self.form.list_datasets()
        if detect_devices:
            self.detector.start()
        if not self._past_loaded:
            self._past_loaded = True
            self.load_past_runs()
        self.refresh_run_views()

    def load_past_runs(self) -> None:
        """List the open project's recent runs (unchecked): those in its ``runs/`` folder, where
        ``studio train`` puts them, and those of the runs folder that trained a project of its name."""
        known = {Path(record.run_folder()).resolve() for record in self.records if record.run_folder()}
        folders = [self.runs_root]
        if self.document.path is not None:
            folders.append(self.document.path.parent / "runs")
        for folder in folders:
            own_folder = folder != self.runs_root
            for record in scan_runs(folder, PAST_RUNS * (1 if own_folder else 4)):
                if Path(record.folder).resolve() in known or not (own_folder or self._is_ours(record)):
                    continue
                known.add(Path(record.folder).resolve())
                record.number = self.runs.next_number()
                self.runs.add(record)

    def _is_ours(self, record: RunRecord) -> bool:
        trained = record.trained_project()
        return trained is not None and trained.get("name") == self.document.project.name

    def _on_project_replaced(self) -> None:
        """Another project: the dashboard lists its runs (a run still training stays listed)."""
        if not self.is_running:
            self.clear_error()  # it was about the other project
        for record in [record for record in self.records if not record.live]:
            self.runs.remove(record)
        if self.plots is not None:
            self.plots.show_records(self.visible_records())
        if self._past_loaded:
            self.load_past_runs()

    # ----- settings ------------------------------------------------------------------

    def _on_training_changed(self) -> None:
        self.form.load(self.document.project.training)

    def _on_path_changed(self) -> None:
        self.form.base_dir = self.document.path.parent if self.document.path else None
        if self._past_loaded:
            self.load_past_runs()

    def edit_setting(self, name: str, value) -> None:
        current = self.document.project.training
        if getattr(current, name) == value:
            return
        settings = dataclasses.replace(current, **{name: value})
        try:
            settings.check()
        except ProjectError as error:
            self.show_error(str(error))
            self.form.load(current)
            return
        commands.push(self.document.undo_stack, commands.SetTraining(self.document, settings, name))

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.settings_toggle.setStyleSheet(
            f"QToolButton {{ border: none; font-weight: 600; padding: 1px; color: {theme.text}; }}"
        )
        self.error.setStyleSheet(
            f"QLabel#trainingError {{ color: {theme.error}; border: 1px solid {theme.error}; "
            "border-radius: 3px; padding: 4px; }"
        )
        if self.plots is not None:
            self.plots.set_theme(theme)
            self.confusion.set_theme(theme)

    # ----- running -------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self.driver is not None and self.driver.is_active

    def start(self) -> bool:
        """Train the open project with the form's settings; False (and a message) if it cannot start."""
        if self.is_running:
            return False
        self.ensure_ready(detect_devices=False)
        self.clear_error()
        if not self.document.analysis.is_valid:
            self.show_error("The model has problems; fix them before training (see the Problems panel).")
            return False
        mismatch = input_mismatch(self.document.project)
        if mismatch is not None:
            self.show_error(mismatch.message, fix=(mismatch.fix_text, lambda: self.fit_input(mismatch)))
            self.message.emit(f"Cannot train yet: {mismatch.fix_text} (see the Training workspace).")
            return False
        framework = self.form.framework_choice()
        try:
            run, folder = self._make_run(framework)
        except (ProjectError, ValueError, OSError) as error:
            self.show_error(f"Cannot start training: {error}")
            return False
        record = RunRecord.create(self.runs.next_number(), self._label(), framework, folder)
        return self.start_run(run, record)

    def can_resume(self, record: RunRecord) -> bool:
        return self.resume_unavailable(record) is None

    def resume_unavailable(self, record: RunRecord) -> str | None:
        """Why ``record`` cannot go on; None for a run that ended early (stopped, failed, killed),
        left a checkpoint for each framework, and trained the model as it is now."""
        if self.is_running:
            return "a run is training"
        if record.live or record.status not in ("stopped", "failed"):
            return "the run finished" if record.status == "finished" else "the run is still training"
        if not all(metrics.checkpoint_file() is not None for metrics in record.frameworks.values()):
            return "the run left no checkpoint"
        trained = record.trained_project()
        try:
            current = project_to_dict(self.document.project)
        except ProjectError:
            return "the project's training settings are invalid"
        if trained is None or _normal(model_of(trained)) != _normal(model_of(current)):
            return "the model changed since this run; its checkpoint no longer fits"
        return None

    def resume(self, record: RunRecord) -> bool:
        """Continue ``record`` in its run folder, from its last checkpoint, up to the form's epochs."""
        if not self.can_resume(record):
            return False
        self.ensure_ready(detect_devices=False)
        self.clear_error()
        if not self.document.analysis.is_valid:
            self.show_error("The model has problems; fix them before training (see the Problems panel).")
            return False
        try:
            run, folder = self._make_run(record.kind, resume_from=record.run_folder())
        except (ProjectError, ValueError, OSError) as error:
            self.show_error(f"Cannot resume training: {error}")
            return False
        resumed = RunRecord.create(self.runs.next_number(), f"{record.label} (resumed)", record.kind, folder)
        return self.start_run(run, resumed)

    def start_run(self, run, record: RunRecord) -> bool:
        """Drive ``run`` (anything with start/poll/is_running/stop/close) into ``record``."""
        self.ensure_ready(detect_devices=False)
        driver = RunDriver(run, record, self)
        driver.updated.connect(self._on_update)
        driver.ended.connect(self._on_ended)
        try:
            driver.start()
        except (ProjectError, ValueError, OSError) as error:
            driver.deleteLater()
            self.show_error(f"Cannot start training: {error}")
            return False
        self.driver = driver
        self.settings_toggle.setChecked(False)  # the plots get the room while it trains
        for other in self.records:
            other.visible = False
        record.visible = True
        self.runs.add(record)
        self.runs.refresh_all()
        self.plots.show_records(self.visible_records())
        self.plots.start_live()
        note = f" ({run.note})" if getattr(run, "note", "") else ""
        self.status.setText(f"Starting {FRAMEWORK_CHOICES.get(record.kind, record.kind)} training{note}…")
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self._update_controls()
        self.runStarted.emit()
        return True

    def _make_run(self, framework: str, resume_from: str | None = None):
        from studio.training import BothRun, RunConfig, TrainingRun

        project = self.document.project
        base_dir = str(self.document.path.parent) if self.document.path else None
        options = {**self.form.run_options(), "runs_root": str(self.runs_root), "base_dir": base_dir}
        if resume_from is not None:  # it goes on in the same folder
            first = "keras" if framework == "both" else framework
            config = RunConfig.from_project(project, first, resume_from=resume_from, **options)
            if framework == "both":
                return BothRun(config, parallel=True), resume_from
            return TrainingRun(config, warm=self._warm_process()), None
        self.runs_root.mkdir(parents=True, exist_ok=True)
        if framework == "both":
            stamp = time.strftime("%Y%m%d-%H%M%S")
            folder = self.runs_root / f"{_slug(self.document.display_name)}-both-{stamp}"
            counter = 1
            while folder.exists():
                counter += 1
                folder = self.runs_root / f"{_slug(self.document.display_name)}-both-{stamp}-{counter}"
            config = RunConfig.from_project(project, "keras", out_dir=str(folder), **options)
            return BothRun(config, parallel=True), str(folder)
        config = RunConfig.from_project(project, framework, **options)
        return TrainingRun(config, warm=self._warm_process()), None

    def _warm_process(self):
        """The warm spare process for a run to take over, or None (the run then spawns its own).

        Side-by-side runs always spawn both: one warm and one cold framework would not race fairly.
        """
        return self.warm.take_spare() if self.warm is not None else None

    def _label(self) -> str:
        name, dataset = self.document.display_name, Path(self.document.project.training.dataset).name
        return name if dataset.lower() in name.lower() else f"{name} · {dataset}"

    def stop(self) -> None:
        if self.is_running and not self.driver.stopping:
            self.driver.stop()
            self.status.setText("Stopping after the current batch…")
            self._update_controls()

    def shutdown(self) -> None:
        """Stop everything this panel started, waiting for it (the window is closing)."""
        if self.driver is not None:
            self.driver.shutdown()
        self.detector.kill()
        self.launcher.stop()
        if self.plots is not None:
            self.plots.timer.stop()

    # ----- progress ------------------------------------------------------------------

    def _on_update(self) -> None:
        record = self.driver.record if self.driver else None
        if record is None:
            return
        lines = []
        for name, metrics in record.frameworks.items():
            if metrics.started is None:
                continue
            parts = [f"epoch {max(metrics.epoch, 1)}/{metrics.total_epochs or '?'}"]
            if metrics.batches_per_epoch:
                parts.append(f"step {metrics.step}/{metrics.batches_per_epoch}")
            if metrics.samples_per_s and not math.isnan(metrics.samples_per_s):
                parts.append(f"{metrics.samples_per_s:,.0f} samples/s")
            device = metrics.started.get("device")
            if device:
                parts.append(str(device))
            prefix = f"{FRAMEWORK_TITLES[name]}: " if len(record.frameworks) > 1 else ""
            lines.append(prefix + " · ".join(parts))
        if lines and not self.driver.stopping:
            self.status.setText("\n".join(lines))
        fraction = record.progress()
        self.progress.setValue(int(fraction * 1000))
        eta = format_eta(record.eta_seconds())
        self.progress.setFormat(f"{fraction:.0%}" + (f" · ETA {eta}" if eta else ""))
        errors = record.errors()
        if errors:
            self.show_error("Training failed. " + "\n".join(errors))
        self.runs.refresh(record)

    def _on_ended(self) -> None:
        driver = self.driver
        record = driver.record
        self._on_update()
        self.plots.stop_live()
        self.driver = None
        driver.deleteLater()
        summary = self._outcome_text(record)
        self.status.setText(summary)
        if record.status == "finished":
            self.progress.setValue(1000)
            self.progress.setFormat("done")
        else:
            self.progress.setFormat(record.status)
        errors = record.errors()
        if errors:
            self.show_error("Training failed. " + "\n".join(errors))
            self.message.emit("Training failed: " + errors[0])
        else:
            self.message.emit(self._short_outcome(record))
        self.runs.refresh(record)
        self._update_controls()
        self.refresh_run_views()
        self.runEnded.emit()

    def _outcome_text(self, record: RunRecord) -> str:
        parts = []
        for name, metrics in record.frameworks.items():
            outcome = metrics.outcome or {}
            summary = outcome.get("summary") or {}
            last = metrics.last_epoch() or {}
            state = outcome.get("type", "stopped")
            text = f"{FRAMEWORK_TITLES[name]} {state}"
            if state != "failed":
                text += f" after {summary.get('epochs_completed', metrics.epoch)} epochs"
                if last:
                    text += f": val loss {figure(last.get('val_loss'))}"
                    if not math.isnan(last.get("val_accuracy", math.nan)):
                        text += f", val accuracy {figure(last.get('val_accuracy'), percent=True)}"
                if summary.get("wall_time"):
                    text += f" ({summary['wall_time']:.1f} s)"
            parts.append(text)
        gap = self._loss_gap(record)
        return "; ".join(parts) + (f". {gap}" if gap else "")

    @staticmethod
    def _short_outcome(record: RunRecord) -> str:
        """One short line for the status bar."""
        parts = []
        for name, metrics in record.frameworks.items():
            last = metrics.last_epoch() or {}
            text = f"val loss {figure(last.get('val_loss'))}" if last else "no epoch"
            if not math.isnan(last.get("val_accuracy", math.nan)):
                text += f", {figure(last.get('val_accuracy'), percent=True)}"
            parts.append(f"{FRAMEWORK_TITLES[name]} {text}")
        return f"Training {record.status}: " + " · ".join(parts)

    @staticmethod
    def _loss_gap(record: RunRecord) -> str:
        """Both frameworks start from the same weights on the same batches: how far apart did they end?"""
        if record.kind != "both" or len(record.frameworks) != 2:
            return ""
        from studio.training.compare import loss_curve_difference

        keras, torch = (record.frameworks[name].batches.column(FrameworkMetrics.BLOSS) for name in FRAMEWORKS)
        gap, step = loss_curve_difference(keras.tolist(), torch.tolist())
        if gap is None:
            return ""
        return f"Largest batch-loss gap Keras vs PyTorch: {gap:.3g} (step {step} of {min(len(keras), len(torch))})"

    def show_error(self, text: str, fix: tuple[str, object] | None = None) -> None:
        """Show ``text``; with ``fix`` (a button's text and what it does), offer to fix it."""
        self.error.setText(text)
        self.error.show()
        self._fix = fix[1] if fix else None
        self.fix_button.setText(fix[0] if fix else "")
        self.fix_button.setVisible(fix is not None)

    def clear_error(self) -> None:
        self.error.clear()
        self.error.hide()
        self._fix = None
        self.fix_button.hide()

    def _apply_fix(self) -> None:
        fix = self._fix
        self.clear_error()
        if fix is not None:
            fix()

    def fit_input(self, mismatch: InputMismatch) -> None:
        """Give the model's Input the dataset's sample shape (one undoable edit)."""
        edits.set_params(self.document, mismatch.node_id, {"shape": mismatch.have})
        self.message.emit(f"Input {mismatch.input_name!r} set to {dims(mismatch.have)}.")

    def _update_controls(self) -> None:
        running = self.is_running
        valid = self.document.analysis.is_valid
        self.train_button.setEnabled(not running)
        self.train_button.setToolTip(
            "Train the model as the code view shows it (F5)"
            if valid
            else "The model has problems; fix them to train it (see the Problems panel)"
        )
        self.stop_button.setEnabled(running and not self.driver.stopping)
        self.form.framework.setEnabled(not running)

    # ----- the list of runs ----------------------------------------------------------

    def refresh_run_views(self) -> None:
        """The confusion matrix and the TensorBoard button follow the selected run."""
        record = self.selected_record()
        if self.confusion is not None:
            self.confusion.show_record(record)
        reason = self.tensorboard_unavailable(record)
        self.tensorboard_button.setEnabled(reason is None)
        self.tensorboard_button.setToolTip(
            reason or f"Serve the events of {record.label} in TensorBoard on a local port"
        )

    @staticmethod
    def tensorboard_unavailable(record: RunRecord | None) -> str | None:
        if record is None:
            return "Train with TensorBoard on (in the settings) to watch a run in TensorBoard"
        if not any(metrics.tensorboard_folder() for metrics in record.frameworks.values()):
            return "The selected run was trained without TensorBoard (turn it on in the settings)"
        return None

    def open_tensorboard(self, record: RunRecord | None = None) -> str | None:
        """Serve ``record``'s (default: the selected run's) folder in TensorBoard; returns the URL."""
        record = record or self.selected_record()
        reason = self.tensorboard_unavailable(record)
        if reason is not None:
            self.message.emit(reason)
            return None
        url = self.launcher.open(Path(record.run_folder()))
        self.message.emit(f"TensorBoard for {record.label}: {url} (it stops when the studio closes)")
        if self.interactive:
            box = QMessageBox(
                QMessageBox.Icon.Information,
                "TensorBoard",
                f"TensorBoard serves {record.label} at",
                parent=self,
            )
            box.setInformativeText(url)
            box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            browse = box.addButton("Open in Browser", QMessageBox.ButtonRole.AcceptRole)
            copy = box.addButton("Copy Link", QMessageBox.ButtonRole.ActionRole)
            box.addButton(QMessageBox.StandardButton.Close)
            box.exec()
            if box.clickedButton() is browse:
                QDesktopServices.openUrl(QUrl(url))
            elif box.clickedButton() is copy:
                QGuiApplication.clipboard().setText(url)
        return url

    def _on_tensorboard_failed(self, text: str) -> None:
        self.message.emit(text)
        self.show_error(text)

    def visible_records(self) -> list[RunRecord]:
        return self.runs.visible_records()

    def selected_record(self) -> RunRecord | None:
        return self.runs.selected_record()

    def set_record_visible(self, record: RunRecord, visible: bool) -> None:
        record.visible = visible
        self.runs.refresh(record)
        if self.plots is not None:
            self.plots.show_records(self.visible_records())

    def _run_menu(self, record: RunRecord, position) -> None:
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        folder = record.run_folder()
        menu.addAction(
            "Open Run Folder", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder))
        ).setEnabled(bool(folder))
        for framework, (title, _) in WEIGHT_FILES.items():
            action = menu.addAction(f"Export {title}…", lambda fw=framework: self.export_weights(fw))
            explain(action, record.unavailable(framework))
        explain(menu.addAction("Export ONNX Model…", lambda: self.export_onnx()), record.unavailable("onnx"))
        tensorboard = menu.addAction("Open in TensorBoard", lambda: self.open_tensorboard(record))
        explain(tensorboard, self.tensorboard_unavailable(record))
        menu.addSeparator()
        resume = menu.addAction("Resume Training", lambda: self.resume(record))
        explain(resume, self.resume_unavailable(record))
        self.last_menu = menu  # tests read its actions
        if self.interactive:
            menu.exec(position)

    # ----- files ---------------------------------------------------------------------

    def _save_path(self, title: str, suggestion: str, file_filter: str) -> str | None:
        folder = self.document.path.parent if self.document.path else Path.home()
        path, _ = QFileDialog.getSaveFileName(self, title, str(folder / suggestion), file_filter)
        return path or None

    def _copy(self, source: Path, target: str) -> Path | None:
        try:
            shutil.copyfile(source, target)
        except OSError as error:
            self._warn("Export failed", f"Could not write {target}:\n{error.strerror or error}")
            return None
        self.message.emit(f"Saved {target}")
        return Path(target)

    def export_weights(self, framework: str, path: str | None = None) -> Path | None:
        """Copy the selected run's trained weights (final, else best) to ``path`` (asked if None)."""
        record = self.selected_record()
        source = record.weights_file(framework) if record else None
        if source is None:
            self._warn(
                "No trained weights", f"The selected run has no {FRAMEWORK_TITLES[framework]} weights."
            )
            return None
        title, pattern = WEIGHT_FILES[framework]
        suggestion = f"{_slug(self.document.display_name)}{pattern.lstrip('*')}"
        path = path or self._save_path(f"Export {title}", suggestion, f"{title} ({pattern})")
        return self._copy(source, path) if path else None

    def export_onnx(self, path: str | None = None) -> Path | None:
        record = self.selected_record()
        source = record.onnx_file() if record else None
        if source is None:
            self._warn(
                "No ONNX model", "The selected run has no ONNX model (it is exported after PyTorch training)."
            )
            return None
        suggestion = f"{_slug(self.document.display_name)}.onnx"
        path = path or self._save_path("Export ONNX model", suggestion, "ONNX model (*.onnx)")
        return self._copy(source, path) if path else None

    def export_csv(self, path: str | None = None) -> int | None:
        """The metrics of the checked runs (else the selected one) as CSV; returns the number of rows."""
        records = self.visible_records() or ([self.selected_record()] if self.selected_record() else [])
        if not records:
            self._warn(
                "Nothing to export", "Train the model first; the metrics of the checked runs are saved."
            )
            return None
        suggestion = f"{_slug(self.document.display_name)}-metrics.csv"
        path = path or self._save_path("Export metrics", suggestion, "CSV table (*.csv)")
        if not path:
            return None
        try:
            rows = write_csv(records, path)
        except OSError as error:
            self._warn("Export failed", f"Could not write {path}:\n{error.strerror or error}")
            return None
        self.message.emit(f"Saved {rows} rows of metrics to {path}")
        return rows

    def export_png(self, path: str | None = None) -> bool:
        self.ensure_ready(detect_devices=False)
        suggestion = f"{_slug(self.document.display_name)}-training.png"
        path = path or self._save_path("Export plots", suggestion, "PNG image (*.png)")
        if not path:
            return False
        self.plots.redraw()
        ok = self.plots.export_png(path)
        if ok:
            self.message.emit(f"Saved {path}")
        else:
            self._warn("Export failed", f"Could not write {path}.")
        return ok

    def set_log_scale(self, enabled: bool) -> None:
        if self.log_scale.isChecked() != enabled:
            self.log_scale.setChecked(enabled)
            return
        if self.plots is not None:
            self.plots.set_log_scale(enabled)

    def _warn(self, title: str, text: str) -> None:
        if self.interactive:
            QMessageBox.warning(self, title, text)
        else:
            self.message.emit(f"{title}: {text}")
