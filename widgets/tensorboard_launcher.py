"""``tensorboard --logdir RUN_DIR`` as a child process on a free local port, never waited for.

One server at a time: opening another run's events stops the previous one,
and :meth:`TensorBoardLauncher.stop` (the window closing) ends it.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Signal

HOST = "127.0.0.1"
STOP_WAIT_MS = 3000


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def tensorboard_command(logdir: Path, port: int) -> list[str]:
    """The TensorBoard installed beside this Python, serving ``logdir`` on ``HOST:port`` only."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        HOST,
        "--port",
        str(port),
    ]


class TensorBoardLauncher(QObject):
    failed = Signal(str)  # why TensorBoard could not start or stopped by itself

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None
        self.url = ""
        self.logdir: Path | None = None

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def open(self, logdir: Path) -> str:
        """Serve ``logdir`` (the one already served: nothing to do); returns the URL."""
        logdir = Path(logdir)
        if self.is_running and self.logdir == logdir:
            return self.url
        self.stop()
        port = free_port()
        command = tensorboard_command(logdir, port)
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.errorOccurred.connect(lambda error: self._on_error(process, error))
        process.finished.connect(lambda code, status: self._on_finished(process, code))
        process.readyRead.connect(lambda: process.readAll())  # its log is not kept; the pipe stays drained
        process.start(command[0], command[1:])
        self.process, self.logdir, self.url = process, logdir, f"http://{HOST}:{port}/"
        return self.url

    def _on_error(self, process: QProcess, error) -> None:
        if process is self.process and error == QProcess.ProcessError.FailedToStart:
            self.failed.emit(f"TensorBoard could not start: {process.errorString()}")

    def _on_finished(self, process: QProcess, code: int) -> None:
        if process is self.process and code:
            self.failed.emit(f"TensorBoard stopped (exit code {code}); is the tensorboard package installed?")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.state() != QProcess.ProcessState.NotRunning:
            process.terminate()
            if not process.waitForFinished(STOP_WAIT_MS):
                process.kill()
                process.waitForFinished(STOP_WAIT_MS)
        process.deleteLater()
