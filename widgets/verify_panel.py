"""The equivalence proof from the code view: ``studio verify PROJECT --json`` in a child process.

:class:`Verifier` saves the open project to a temporary file and runs the
proof there, so the window never imports torch or TensorFlow and never
waits; :class:`VerifyPanel` shows the verdict and its figures under the code.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.project import Project, ProjectError, save_project
from studio.warm import PROGRESS_PREFIX
from widgets.studio_process import StudioProcess, last_error_line
from widgets.theme import LIGHT, Theme
from widgets.warm_worker import WarmWorker


@dataclass
class VerifyResult:
    ok: bool
    report: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # set when there is no report (the proof could not run)
    cancelled: bool = False

    @property
    def verdict(self) -> str:
        if self.cancelled:
            return "Cancelled"
        if self.error:
            return "Could not verify"
        return "EQUIVALENT" if self.ok else "NOT EQUIVALENT"


def parse_verify_output(exit_code: int, stdout: str, stderr: str) -> VerifyResult:
    """The report printed by ``studio verify --json`` (exit 0 or 1), or the error it printed."""
    text = stdout.strip()
    if text and exit_code in (0, 1):
        try:
            report = json.loads(text[text.index("{") :])
        except ValueError:
            report = None
        if isinstance(report, dict) and "ok" in report:
            return VerifyResult(bool(report["ok"]), report)
    return VerifyResult(False, error=last_error_line(stderr))


class Verifier(QObject):
    started = Signal()
    stage = Signal(int, int, str)  # stage number (from 1), number of stages, what it does
    finished = Signal(object)  # VerifyResult

    def __init__(self, parent: QObject | None = None, warm: WarmWorker | None = None) -> None:
        super().__init__(parent)
        self.process = StudioProcess(self)
        self.process.done.connect(self._on_done)
        self.process.stderrLine.connect(self._on_line)
        self.warm = warm
        self._request: int | None = None  # the warm process's request id, while it runs there
        if warm is not None:
            warm.progress.connect(self._on_warm_progress)
            warm.done.connect(self._on_warm_done)
        self._folder: str | None = None
        self.result: VerifyResult | None = None
        self.warm_used = False  # the last proof ran in the warm process

    @property
    def is_running(self) -> bool:
        return self._request is not None or self.process.is_running

    def start(self, project: Project) -> None:
        if self.is_running:
            return
        self._cleanup()
        self._folder = tempfile.mkdtemp(prefix="layer-studio-verify-")
        path = Path(self._folder) / "model.layers.json"
        try:
            save_project(project, path)
        except (OSError, ProjectError) as error:
            self._cleanup()
            self.result = VerifyResult(False, error=f"could not write a temporary copy of the model: {error}")
            self.finished.emit(self.result)
            return
        self.result = None
        argv = ["verify", str(path), "--json", "--skip-main", "--progress"]
        self._request = self.warm.run_command(argv) if self.warm is not None else None
        self.warm_used = self._request is not None
        if self._request is None:  # not warm yet: a fresh process imports the frameworks first
            self.stage.emit(0, 0, "Start Python and import TensorFlow and PyTorch")
            self.process.start(["-m", "studio", *argv])
        self.started.emit()

    def kill(self) -> None:
        if self._request is not None and self.warm is not None:
            self.warm.cancel(self._request)
        self._request = None
        self.process.kill()
        self._cleanup()

    def cancel(self) -> None:
        """Stop a running proof now; ``finished`` reports it as cancelled."""
        if not self.is_running:
            return
        self.kill()
        self.result = VerifyResult(
            False, error="Verification cancelled; press Verify to run it again.", cancelled=True
        )
        self.finished.emit(self.result)

    def _on_line(self, line: str) -> None:
        if line.startswith(PROGRESS_PREFIX):
            self._on_stage_text(line[len(PROGRESS_PREFIX) :])

    def _on_warm_progress(self, request: int, text: str) -> None:
        if request == self._request:
            self._on_stage_text(text)

    def _on_stage_text(self, text: str) -> None:
        """``K/N what`` as the command prints it."""
        counter, _, what = text.partition(" ")
        stage, _, stages = counter.partition("/")
        if stage.isdigit() and stages.isdigit():
            self.stage.emit(int(stage), int(stages), what)

    def _on_warm_done(self, request: int, exit_code: int, stdout: str, stderr: str) -> None:
        if request == self._request:
            self._request = None
            self._on_done(exit_code, stdout, stderr)

    def _on_done(self, exit_code: int, stdout: str, stderr: str) -> None:
        self._cleanup()
        self.result = parse_verify_output(exit_code, stdout, stderr)
        self.finished.emit(self.result)

    def _cleanup(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _figure(value: Any) -> str:
    return "–" if value is None else f"{value:.3g}"


def report_html(result: VerifyResult, theme: Theme) -> str:
    """The figures under the verdict: parameters, output difference, SGD step, first divergence."""
    if result.error:
        return escape(result.error).replace("\n", "<br>")
    report = result.report
    keras, torch = report.get("keras", {}), report.get("torch", {})
    outputs, step = report.get("outputs", {}), report.get("step_weights", {})
    losses = report.get("step_loss", {})
    mark = {
        True: f"<span style='color:{theme.ok}'>✓</span>",
        False: f"<span style='color:{theme.error}'>✗</span>",
    }
    rows = [
        (
            "Parameters",
            f"Keras {keras.get('trainable', 0):,} trainable + {keras.get('non_trainable', 0):,} fixed · "
            f"PyTorch {torch.get('parameters', 0):,} + {torch.get('buffers', 0):,} fixed "
            f"{mark[bool(report.get('counts_ok'))]}",
        ),
        (
            "Outputs",
            f"max abs diff {_figure(outputs.get('max_abs'))}, max rel diff {_figure(outputs.get('max_rel'))} "
            f"{mark[bool(outputs.get('ok'))]}",
        ),
        (
            "SGD step",
            f"loss Keras {_figure(losses.get('keras'))} / PyTorch {_figure(losses.get('torch'))}; "
            f"weights max abs diff {_figure(step.get('max_abs'))}, rel {_figure(step.get('max_rel'))} "
            f"{mark[bool(report.get('step_ok'))]}",
        ),
    ]
    if report.get("first_divergence"):
        rows.append(("First divergence", escape(str(report["first_divergence"]))))
    for check in report.get("training", []):
        text = f"{check['optimizer']}, {check['steps']} steps of each program's own optimizer and loss"
        if check.get("worst_layer"):
            text += f"; largest weight drift {_figure(check['worst_drift'])} ({check['worst_layer']})"
        if not check.get("ok"):
            text += f"; diverged at {check.get('first_divergence')}"
        rows.append(("Training", f"{escape(text, quote=False)} {mark[bool(check.get('ok'))]}"))
    if report.get("running_mean") is not None:
        rows.append(
            (
                "BatchNorm",
                f"running mean max abs diff {_figure(report['running_mean'].get('max_abs'))}; "
                f"running variance {_figure(report.get('running_var_max_abs'))} (not compared)",
            )
        )
    for note in report.get("notes", []):
        rows.append(("Note", escape(str(note))))
    cells = "".join(
        f"<tr><td style='color:{theme.muted_text}; padding-right:8px'>{name}</td><td>{value}</td></tr>"
        for name, value in rows
    )
    return f"<table cellspacing='0' cellpadding='1'>{cells}</table>"


class VerifyPanel(QFrame):
    """A closable strip under the code: while it runs, its stages, the time so far and Cancel;
    then the verdict in colour, the figures below it."""

    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("verifyPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.theme = LIGHT
        self.result: VerifyResult | None = None
        self.stale = False
        self.title = QLabel(objectName="verifyVerdict")
        self.details = QLabel(objectName="verifyDetails")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy = QProgressBar(objectName="verifyProgress", textVisible=False, maximumHeight=8)
        self.stages: list[str] = []  # begun so far; the last one runs
        self.cancel_button = QPushButton("Cancel", objectName="verifyCancel")
        self.cancel_button.setToolTip("Stop the verification")
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.close_button = QToolButton(text="✕", toolTip="Hide the verification result", autoRaise=True)
        self.close_button.clicked.connect(self.hide)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.cancel_button)
        top.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 6)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.busy)
        layout.addWidget(self.details)
        self._started_at = 0.0
        self.clock = QTimer(self, interval=500)
        self.clock.timeout.connect(self._show_stages)
        self.hide()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self._render()

    def show_running(self) -> None:
        self.result = None
        self.stale = False
        self._started_at = time.monotonic()
        self.stages = []
        self.busy.setRange(0, 0)  # until the first stage says how many there are
        self.title.setStyleSheet("font-weight: 600;")
        self.busy.show()
        self.cancel_button.show()
        self.close_button.hide()
        self._show_stages()
        self.clock.start()
        self.show()

    def show_stage(self, stage: int, stages: int, text: str) -> None:
        """Stage ``stage`` of ``stages`` has begun (0 of 0: a stage before the proof's own)."""
        if self.result is not None:
            return
        self.stages.append(text)
        if stages:
            self.busy.setRange(0, stages)
            self.busy.setValue(stage - 1)
        self._show_stages()

    def _show_stages(self) -> None:
        """The stages so far: those done ticked, the running one last."""
        seconds = int(time.monotonic() - self._started_at)
        self.title.setText(f"Verifying… {seconds} s")
        done = f"<span style='color:{self.theme.ok}'>✓</span>"
        rows = [f"{done} {escape(stage)}" for stage in self.stages[:-1]]
        rows += [f"… {escape(stage)}" for stage in self.stages[-1:]]
        self.details.setText("<br>".join([*rows, "Cancel stops it."]))

    def show_result(self, result: VerifyResult) -> None:
        self.clock.stop()
        self.busy.hide()
        self.cancel_button.hide()
        self.close_button.show()
        self.result = result
        self.stale = False
        self._render()
        self.show()

    def mark_stale(self) -> None:
        if self.result is not None and not self.stale:
            self.stale = True
            self._render()

    def _render(self) -> None:
        if self.result is None:
            return
        color = self.theme.ok if self.result.ok else self.theme.error
        model = self.result.report.get("model")
        suffix = f" — {escape(str(model))}" if model else ""
        if self.stale:
            suffix += " <span style='font-weight:400'>(the model changed since; verify again)</span>"
        self.title.setText(f"<span style='color:{color}'>{self.result.verdict}</span>{suffix}")
        self.title.setStyleSheet("font-weight: 700;")
        self.details.setText(report_html(self.result, self.theme))
