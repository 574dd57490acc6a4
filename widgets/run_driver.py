"""Drive one training run from the GUI thread without ever blocking it.

A :class:`RunDriver` polls ``run.poll()`` on a QTimer and puts every message
into the run's :class:`~studio.training.run_metrics.RunRecord` (numpy buffers); the
plots redraw on their own timer. ``TrainingRun.stop()`` and ``close()`` wait
for the training process, so they run on a short-lived worker thread while
the timer keeps watching; nothing touches the run object from two threads
at once (polling pauses while the worker holds it).

Any object with ``start()``, ``poll()``, ``is_running``, ``stop()`` and
``close()`` can be driven: ``TrainingRun``, ``BothRun``, or
:class:`widgets.fake_run.FakeRun` in tests and benchmarks.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from studio.training.run_metrics import RunRecord

log = logging.getLogger(__name__)

POLL_MS = 40
TRAINING_NICENESS = 5  # when CPUs are short, the window is served first; idle CPUs still go to training


def lower_priority(run: Any) -> None:
    """Lower the scheduling priority of the run's training processes (Unix; best effort).

    Set before the framework starts its worker threads, which inherit it.
    """
    if not hasattr(os, "setpriority"):
        return
    runs = list(getattr(run, "runs", {}).values()) or [run]
    for item in runs:
        pid = getattr(item, "pid", None)
        if pid:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, TRAINING_NICENESS)
            except OSError:
                pass


class RunDriver(QObject):
    updated = Signal()  # new messages arrived (emitted at most once per poll)
    ended = Signal()  # the run ended (finished, failed or stopped) and its process is gone

    def __init__(self, run: Any, record: RunRecord, parent: QObject | None = None, poll_ms: int = POLL_MS):
        super().__init__(parent)
        self.run = run
        self.record = record
        self.timer = QTimer(self, interval=poll_ms)
        self.timer.timeout.connect(self._tick)
        self._worker: threading.Thread | None = None
        self._worker_result: list[dict[str, Any]] = []
        self._stop_requested = False
        self._finished = False

    # ----- control -------------------------------------------------------------------

    def start(self) -> None:
        """Start the run (raises what ``run.start()`` raises, e.g. ConfigError) and begin polling."""
        self.run.start()
        if self.record.folder is None:  # known now: a run that fails at once is still listed once
            self.record.folder = getattr(self.run, "run_dir", None)
        lower_priority(self.run)
        self.record.live = True
        self.timer.start()

    @property
    def is_active(self) -> bool:
        return not self._finished

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def stop(self) -> None:
        """Ask the run to stop; returns at once. ``ended`` follows when the process is gone."""
        if self._finished or self._stop_requested:
            return
        self._stop_requested = True
        self._drain()  # what already arrived is kept
        self._start_worker(lambda: self.run.stop() + self._close_run())

    def shutdown(self) -> None:
        """Stop now, waiting for the process (the window is closing)."""
        if self._finished:
            return
        self.timer.stop()
        if self._worker is not None:
            self._worker.join()
            self.record.add_messages(self._worker_result)
        else:
            try:
                self.record.add_messages(self.run.stop())
            except Exception:  # noqa: BLE001 - closing must not fail
                log.exception("stopping the run failed")
        self._close_run()
        self._end()

    # ----- polling -------------------------------------------------------------------

    def _tick(self) -> None:
        if self._worker is not None:
            if self._worker.is_alive():
                return
            self._worker.join()
            self._worker = None
            received, self._worker_result = self._worker_result, []
            self.record.add_messages(received)
            self.updated.emit()
            self._end()
            return
        self._drain()
        if not self.run.is_running:
            self._start_worker(self._close_run)  # the process exits right after its last message

    def _drain(self) -> None:
        try:
            received = self.run.poll()
        except Exception as error:  # noqa: BLE001 - a broken queue must not take the window down
            log.exception("polling the training run failed")
            received = [{"type": "failed", "framework": self.record.kind, "message": str(error)}]
        if received:
            self.record.add_messages(received)
            self.updated.emit()

    def _start_worker(self, function) -> None:
        def work() -> None:
            try:
                self._worker_result = list(function() or [])
            except Exception:  # noqa: BLE001
                log.exception("finishing the training run failed")

        self._worker = threading.Thread(target=work, name="studio-run-stop", daemon=True)
        self._worker.start()

    def _close_run(self) -> list[dict[str, Any]]:
        close = getattr(self.run, "close", None)
        if close is not None:
            close()
        return []

    def _end(self) -> None:
        self.timer.stop()
        self._finished = True
        self.record.live = False
        for name, metrics in self.record.frameworks.items():
            if metrics.outcome is None:  # e.g. the second framework of a "both" run never started
                metrics.outcome = {"type": "stopped", "framework": name, "summary": {}}
        self.ended.emit()
