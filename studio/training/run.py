"""The caller's side of a run: start a training process, poll its messages, stop it.

    run = TrainingRun(RunConfig.from_project("model.layers.json", "keras", epochs=5))
    run.start()
    while run.is_running:            # until the finished/failed/stopped message is polled
        for message in run.poll():   # never blocks
            ...
    # run.stop() at any time: returns once the process has ended (2 s at most, then terminated)

The process is started with the *spawn* context (safe beside Qt and
TensorFlow), so a script that starts runs needs the usual
``if __name__ == "__main__":`` guard. :class:`BothRun` runs Keras and
PyTorch side by side from the same initial weights.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue as queue_module
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from studio.training import messages
from studio.training.config import FRAMEWORKS, RunConfig
from studio.training.rundir import RunFolder, prepare_run

STOP_GRACE = 2.0  # seconds a stopping process gets before it is terminated


class TrainingRun:
    """One training process. ``keep_batches=False`` keeps batch messages out of ``messages``
    (poll() still returns them), for callers that buffer the curves themselves."""

    def __init__(self, config: RunConfig, keep_batches: bool = True, warm: Any = None) -> None:
        self.config = config
        self.warm = warm  # a studio.warm.WarmProcess to take over instead of spawning, if it can train
        self.folder: RunFolder | None = None
        self.messages: list[dict[str, Any]] = []  # everything received so far
        self.keep_batches = keep_batches
        self.outcome: dict[str, Any] | None = None  # the finished/failed/stopped message
        self._process: Any = None
        self._queue: Any = None
        self._stop: Any = None
        self._stopping = False

    @property
    def framework(self) -> str:
        return self.config.framework

    @property
    def run_dir(self) -> str | None:
        return None if self.folder is None else str(self.folder.path)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def is_running(self) -> bool:
        """True from start() until the outcome message has been polled (or the process is gone)."""
        if self._process is None:
            return False
        if self.outcome is not None:
            return False
        return True

    def start(self) -> None:
        """Create the run folder (ConfigError if it cannot be), then start the training process."""
        if self._process is not None:
            raise RuntimeError("this run was already started")
        self.config, self.folder = prepare_run(self.config)
        if self.warm is not None and self.warm.can_train:  # frameworks already imported: no wait
            self._process, self._queue, self._stop = self.warm.take(self.config.to_dict())
            return
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._stop = context.Event()
        from studio.training.child import child_main

        self._process = context.Process(
            target=child_main,
            args=(self.config.to_dict(), self._queue, self._stop, os.getpid()),
            name=f"studio-train-{self.framework}",
            daemon=True,
        )
        with _sigint_ignored():
            self._process.start()

    def poll(self) -> list[dict[str, Any]]:
        """New messages, without blocking. A process that died silently yields a ``failed`` message."""
        new = self._drain()
        if self.outcome is None and self._process is not None and not self._process.is_alive():
            new += self._drain()
            if self.outcome is None:
                new.append(self._synthesize())
        return new

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> list[dict[str, Any]]:
        """Poll until the outcome arrives (or ``timeout`` passes); returns the messages received."""
        return poll_until_done(self, timeout, interval)

    def stop(self, grace: float = STOP_GRACE) -> list[dict[str, Any]]:
        """Ask the process to stop; terminate it if it has not ended within ``grace`` seconds.

        Returns the messages received meanwhile (also kept in ``messages``).
        """
        if self._process is None:
            return []
        self._stopping = True
        self._stop.set()
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + grace
        while self._process.is_alive() and time.monotonic() < deadline:
            received += self._drain()
            self._process.join(0.02)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(1.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        received += self.poll()
        self._release()
        return received

    def close(self) -> None:
        """Stop the process if it still runs and free the queue."""
        if self._process is not None and self._process.is_alive():
            self.stop()
        self._release()

    # ----- internals ----------------------------------------------------------------------

    def _drain(self) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        if self._queue is None:
            return received
        while True:
            try:
                group = self._queue.get_nowait()
            except (queue_module.Empty, EOFError, OSError, ValueError):
                break
            for message in group:
                received.append(message)
                if message.get("type") in messages.TERMINAL and self.outcome is None:
                    self.outcome = message
                    self._unlock()
        if self.keep_batches:
            self.messages += received
        else:
            self.messages += [message for message in received if message.get("type") != messages.BATCH]
        return received

    def _synthesize(self) -> dict[str, Any]:
        """The outcome of a process that ended without sending one."""
        if self._stopping:
            message = messages.stopped(self.framework, self._partial_summary())
        else:
            message = messages.failed(self.framework, self._crash_text(), reason="crash")
        self._append_to_log(message)
        self.messages.append(message)
        self.outcome = message
        self._unlock()
        return message

    def _crash_text(self) -> str:
        """What a process that died without a word leaves behind, and where."""
        code = self._process.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                how += f", {signal.Signals(-code).name}"
        text = f"the training process ended unexpectedly ({how})"
        if self.folder is None:
            return text
        text += f"; metrics up to that point are in {self.folder.metrics}"
        checkpoint = self.folder.checkpoint(self.framework)
        if checkpoint.exists():
            text += f"; the checkpoint of the last whole epoch is {checkpoint} (resume from the run folder)"
        return text

    def _partial_summary(self) -> dict[str, Any]:
        epochs = [m for m in self.messages if m.get("type") == messages.EPOCH]
        last = epochs[-1] if epochs else {}
        return {
            "framework": self.framework,
            "run_dir": self.run_dir,
            "epochs_completed": last.get("epoch", 0),
            "final": {
                key: last.get(key) for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
            },
            "files": {},
            "warnings": ["the training process did not stop in time and was terminated"],
        }

    def _append_to_log(self, message: dict[str, Any]) -> None:
        if self.folder is None:
            return
        try:
            with open(self.folder.metrics, "a", encoding="utf-8") as log:
                log.write(json.dumps(message) + "\n")
        except OSError:
            pass

    def _unlock(self) -> None:
        """Free the run folder for the next run (or a resume) once this one has ended."""
        if self.folder is not None:
            self.folder.unlock()

    def _release(self) -> None:
        if self._process is None or not self._process.is_alive():
            self._unlock()
        if self._queue is not None and (self._process is None or not self._process.is_alive()):
            self._queue.close()
            self._queue.join_thread()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start children with Ctrl-C ignored (inherited through exec), so that a Ctrl-C in a terminal
    reaches only the caller, which then stops the run cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class BothRun:
    """Keras and PyTorch on the same data order from the same initial weights.

    ``parallel`` runs the two processes at once (live curves side by side);
    otherwise PyTorch starts when Keras has ended (fair timings). Folders:
    ``<out_dir>/keras`` and ``<out_dir>/pytorch`` when ``out_dir`` is set,
    otherwise one auto-named folder each; ``resume_from`` names such a pair's
    parent folder. Messages carry their "framework".
    """

    def __init__(self, config: RunConfig, parallel: bool = True, keep_batches: bool = True) -> None:
        self.parallel = parallel
        self.runs: dict[str, TrainingRun] = {}
        self.note = ""  # how the two share the machine, for the user
        shared: dict[str, Any] = {}
        if parallel and config.threads == 0:
            # Side by side, each framework's default would take every core and starve the other
            # (Keras once did 40 epochs to PyTorch's 7): each gets the same half.
            cores = os.cpu_count() or 1
            shared["threads"] = max(1, cores // 2)
            self.note = f"side by side, each framework on {shared['threads']} of the {cores} cores"
        for framework in FRAMEWORKS:
            changes: dict[str, Any] = {"framework": framework, "same_start": True, **shared}
            if config.out_dir is not None:
                changes["out_dir"] = os.path.join(config.out_dir, framework)
            if config.resume_from is not None:  # a BothRun folder holds keras/ and pytorch/
                changes["resume_from"] = os.path.join(config.resume_from, framework)
            self.runs[framework] = TrainingRun(config.with_changes(**changes), keep_batches)
        self._pending: list[str] = []

    @property
    def is_running(self) -> bool:
        return bool(self._pending) or any(run.is_running for run in self.runs.values())

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [message for run in self.runs.values() for message in run.messages]

    def start(self) -> None:
        order = list(self.runs)
        first = order if self.parallel else order[:1]
        self._pending = [] if self.parallel else order[1:]
        for framework in first:
            self.runs[framework].start()

    def poll(self) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        for run in self.runs.values():
            if run._process is not None:
                received += run.poll()
        if self._pending and not any(run.is_running for run in self.runs.values()):
            self.runs[self._pending.pop(0)].start()
        return received

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> list[dict[str, Any]]:
        return poll_until_done(self, timeout, interval)

    def stop(self) -> list[dict[str, Any]]:
        self._pending = []
        received: list[dict[str, Any]] = []
        for run in self.runs.values():
            received += run.stop()
        return received

    def close(self) -> None:
        self._pending = []
        for run in self.runs.values():
            run.close()


def poll_until_done(run, timeout: float | None, interval: float) -> list[dict[str, Any]]:
    """Poll ``run`` (a TrainingRun or BothRun) until it ends or ``timeout`` passes; the messages received."""
    deadline = None if timeout is None else time.monotonic() + timeout
    received: list[dict[str, Any]] = []
    while run.is_running and (deadline is None or time.monotonic() < deadline):
        received += run.poll()
        if run.is_running:
            time.sleep(interval)
    return received
