"""Run a ``python -m studio ...`` command (or another module) in a QProcess; never blocks the GUI.

The window never imports torch or TensorFlow: the equivalence proof, model
imports and device detection run in child processes whose output is read
when they finish. :meth:`StudioProcess.kill` ends one at once (on close).
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Sequence

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

OUT, ERR = "stdout", "stderr"
QUIET_FRAMEWORKS = {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "PYTHONUNBUFFERED": "1"}


class StudioProcess(QObject):
    """One child process; ``done(exit_code, stdout, stderr)`` when it ends (exit code -1: it crashed).

    ``outputLine`` and ``stderrLine`` pass on each whole line as it comes, for progress.
    """

    done = Signal(int, str, str)
    outputLine = Signal(str)
    stderrLine = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process = QProcess(self)
        self.process.setProgram(sys.executable)
        environment = QProcessEnvironment.systemEnvironment()
        for key, value in QUIET_FRAMEWORKS.items():
            if key not in os.environ:
                environment.insert(key, value)
        self.process.setProcessEnvironment(environment)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self.process.readyReadStandardOutput.connect(lambda: self._read_channel(OUT))
        self.process.readyReadStandardError.connect(lambda: self._read_channel(ERR))
        self._reported = False
        self._reset()

    def _reset(self) -> None:
        self._text = {OUT: "", ERR: ""}  # what was read so far
        self._decoders = {channel: codecs.getincrementaldecoder("utf-8")("replace") for channel in (OUT, ERR)}

    @property
    def is_running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, arguments: Sequence[str]) -> None:
        self._reported = False
        self._reset()
        self.process.setArguments(list(arguments))
        self.process.start()

    def kill(self) -> None:
        """End the process now and wait for it (at most a second)."""
        if self.is_running:
            self._reported = True  # nobody waits for its answer any more
            self.process.kill()
            self.process.waitForFinished(1000)

    def _read(self) -> tuple[str, str]:
        for channel in (OUT, ERR):
            self._read_channel(channel)
        return self._text[OUT], self._text[ERR]

    def _read_channel(self, channel: str) -> None:
        read = self.process.readAllStandardOutput if channel == OUT else self.process.readAllStandardError
        text = self._decoders[channel].decode(bytes(read().data()))
        if not text:
            return
        complete = self._text[channel].count("\n")
        self._text[channel] += text
        signal = self.outputLine if channel == OUT else self.stderrLine
        for line in self._text[channel].split("\n")[complete:-1]:
            signal.emit(line)

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        if self._reported:
            return
        self._reported = True
        out, err = self._read()
        code = exit_code if status == QProcess.ExitStatus.NormalExit else -1
        self.done.emit(code, out, err)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and not self._reported:
            self._reported = True
            self.done.emit(-1, "", f"could not start {sys.executable}: {self.process.errorString()}")


def last_error_line(stderr: str) -> str:
    """The ``error: ...`` lines a studio command printed, else the last non-empty line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error:")]
    if errors:
        return "\n".join(errors)
    return lines[-1] if lines else "the command ended without saying why"
