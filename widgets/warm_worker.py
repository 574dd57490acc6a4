"""The GUI's warm framework processes (:mod:`studio.warm`), started once the window is shown.

Two processes warm up one after the other, at a lower priority than the
window: the *service* runs studio commands (Verify, imports) with the
frameworks already imported, and the *spare* waits to become the next
training process. A process that dies, or that a run took over, is replaced
a moment later; until it is ready, callers fall back to a cold child process,
so the user sees at most the old, slower path. Nothing here blocks: a
QTimer polls the processes' replies.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from studio.warm import WarmProcess

log = logging.getLogger(__name__)

POLL_MS = 50
START_DELAY_MS = 1500  # after the window is shown: the first paint and the project come first
RESTART_DELAY_MS = 2000


class WarmWorker(QObject):
    serviceReady = Signal()
    progress = Signal(int, str)  # request id, stage text
    done = Signal(int, int, str, str)  # request id, exit code, stdout, stderr

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.service: WarmProcess | None = None
        self.spare: WarmProcess | None = None
        self.enabled = False
        self._pending: int | None = None  # the id of the command the service runs
        self._lent: WarmProcess | None = None  # the spare last given to a run that may not have started
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._restart = QTimer(self, singleShot=True, interval=RESTART_DELAY_MS)
        self._restart.timeout.connect(self._ensure_started)

    # ----- life cycle -------------------------------------------------------------------

    def start_soon(self, delay_ms: int = START_DELAY_MS) -> None:
        """Start warming up after ``delay_ms`` (call it once the window is shown)."""
        self.enabled = True
        QTimer.singleShot(delay_ms, self._ensure_started)

    def shutdown(self) -> None:
        self.enabled = False
        self._timer.stop()
        self._restart.stop()
        for process in (self.service, self.spare, self._lent):
            if process is not None:
                process.stop()
        self.service = self.spare = self._lent = None

    def _ensure_started(self) -> None:
        """Start the service, then (once it is ready) the spare: never two warming at once."""
        if not self.enabled:
            return
        if self._lent is not None and not self._lent.handed_over and self.spare is None:
            self.spare = self._lent  # the run did not start (e.g. a bad setting): keep it
        self._lent = None
        if self.service is None:
            self.service = self._start_process(prime=True)
        elif self.service.ready and self.spare is None:
            self.spare = self._start_process(prime=False)
        if not self._timer.isActive():
            self._timer.start()

    def _start_process(self, prime: bool) -> WarmProcess | None:
        process = WarmProcess(prime)
        try:
            process.start()
        except OSError as error:  # e.g. no memory for another process: the cold path still works
            log.warning("could not start a warm framework process: %s", error)
            return None
        return process

    # ----- requests --------------------------------------------------------------------

    @property
    def service_ready(self) -> bool:
        return self.service is not None and self.service.idle

    def run_command(self, argv: list[str]) -> int | None:
        """Run ``studio ARGV`` in the warm service; None when it is not ready (use a cold process)."""
        if not self.service_ready:
            return None
        self._pending = self.service.send_command(argv)
        return self._pending

    def cancel(self, request_id: int) -> None:
        """Abandon a running command: the service is killed and a fresh one warms up."""
        if self._pending == request_id and self.service is not None:
            self._pending = None
            self.service.stop()
            self.service = None
            self._restart.start()

    def take_spare(self) -> WarmProcess | None:
        """The spare, for a training run to take over (TrainingRun(warm=...)); None if not ready."""
        spare = self.spare
        if spare is None or not spare.can_train:
            return None
        self.spare = None
        self._lent = spare
        self._restart.start()  # the next spare warms up after the run has started
        return spare

    # ----- polling ---------------------------------------------------------------------

    def _poll(self) -> None:
        for process in (self.service, self.spare):
            if process is None:
                continue
            for reply in process.poll():
                self._dispatch(process, reply)
        self._replace_dead()

    def _dispatch(self, process: WarmProcess, reply: dict) -> None:
        kind = reply["kind"]
        if kind == "ready":
            if process is self.service:
                self.serviceReady.emit()
            self._ensure_started()
        elif kind == "progress":
            self.progress.emit(reply["id"], reply["text"])
        elif kind == "done":
            if reply["id"] == self._pending:
                self._pending = None
            self.done.emit(reply["id"], reply["exit_code"], reply["stdout"], reply["stderr"])

    def _replace_dead(self) -> None:
        if self.service is not None and not self.service.alive and self.service.pid is not None:
            if self._pending is not None:  # its caller hears about it, as from a crashed child process
                request, self._pending = self._pending, None
                self.done.emit(request, -1, "", "the framework process ended unexpectedly; try again")
            self.service = None
            self._restart.start()
        if self.spare is not None and not self.spare.alive and self.spare.pid is not None:
            self.spare = None
            self._restart.start()
