"""A warm framework process: torch and Keras/TensorFlow imported once, in the background.

Importing the frameworks takes seconds, so the GUI keeps one process that has
already paid for it. It is started with the *spawn* context (safe beside Qt),
imports the frameworks at a lower scheduling priority without running a
single operation, then waits for one of two requests:

* ``command``: run one ``studio`` command (verify, import, summary, ...) in
  the process, exactly as the command line would, and reply with its exit
  code and output. Lines the command prints as ``progress: ...`` on stderr
  are forwarded at once, so the caller can show stages while it runs.
* ``train``: become a training process (:func:`studio.training.child.child_main`).
  The process is handed over for good: it belongs to the run from then on,
  so a crash or a kill never touches the GUI, and the caller starts a new
  warm process for the next request.

A training hand-over is only accepted while no command has run, because a
command initialises TensorFlow, whose thread pools cannot be resized after
that (the run pins its threads): :attr:`WarmProcess.can_train` says so.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import queue as queue_module
import signal
import sys
import threading
import time
import traceback
from typing import Any

WARM_NICENESS = 10  # while importing: warming up never competes with the window or a training run
PROGRESS_PREFIX = "progress: "


class WarmProcess:
    """The caller's side: start, send a command or a run, poll replies, stop.

    ``prime`` runs one small proof after the imports (a process that will serve
    commands, not training): TensorFlow and torch initialise their runtimes on the
    first operation, and that is then paid before the user asks for anything.
    """

    def __init__(self, prime: bool = False) -> None:
        context = multiprocessing.get_context("spawn")
        self._requests = context.Queue()
        self._replies = context.Queue()
        self.train_queue = context.Queue()  # training messages, once handed over
        self.stop_event = context.Event()
        self.process = context.Process(
            target=warm_main,
            args=(self._requests, self._replies, self.train_queue, self.stop_event, os.getpid(), prime),
            name="studio-warm",
            daemon=True,
        )
        self.ready = False  # the frameworks are imported
        self.busy = False  # a command is running
        self.used = prime  # a command ran: TensorFlow is initialised, see the module docstring
        self.handed_over = False
        self.started_at: float | None = None
        self.ready_seconds: float | None = None
        self._next_id = 0

    def start(self) -> None:
        self.started_at = time.monotonic()
        with _sigint_ignored():  # Ctrl-C in a terminal goes to the caller, which decides
            self.process.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.pid is not None and self.process.is_alive()

    @property
    def can_train(self) -> bool:
        return self.ready and not self.busy and not self.used and not self.handed_over and self.alive

    @property
    def idle(self) -> bool:
        return self.ready and not self.busy and not self.handed_over and self.alive

    def send_command(self, argv: list[str]) -> int:
        """Run ``studio ARGV`` in the process; its reply comes from :meth:`poll`. Returns the request id."""
        if not self.idle:
            raise RuntimeError("the warm process is not ready for a command")
        self._next_id += 1
        self.busy = True
        self.used = True
        self._requests.put({"kind": "command", "id": self._next_id, "argv": list(argv)})
        return self._next_id

    def take(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        """Hand the process over to a training run of ``config`` (a RunConfig as a dict).

        Returns (process, message queue, stop event), which the run then owns.
        """
        if not self.can_train:
            raise RuntimeError("the warm process cannot take a training run now")
        self.handed_over = True
        self._requests.put({"kind": "train", "config": config})
        return self.process, self.train_queue, self.stop_event

    def poll(self) -> list[dict[str, Any]]:
        """Replies so far: ``ready``, ``progress`` (id, text) and ``done`` (id, exit_code, stdout, stderr)."""
        replies: list[dict[str, Any]] = []
        while True:
            try:
                reply = self._replies.get_nowait()
            except (queue_module.Empty, EOFError, OSError, ValueError):
                break
            if reply["kind"] == "ready":
                self.ready = True
                self.ready_seconds = time.monotonic() - (self.started_at or time.monotonic())
            elif reply["kind"] == "done":
                self.busy = False
            replies.append(reply)
        return replies

    def stop(self) -> None:
        """End the process now (unless a run owns it)."""
        if self.handed_over or self.process.pid is None:
            return
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
        for channel in (self._requests, self._replies, self.train_queue):
            channel.close()
            channel.cancel_join_thread()


@contextlib.contextmanager
def _sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ----- the process ------------------------------------------------------------------------


def warm_main(
    requests: Any, replies: Any, train_queue: Any, stop_event: Any, parent_pid: int, prime: bool = False
) -> None:
    """Import the frameworks, then serve commands until a training run takes the process over."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warming = threading.Thread(target=_import_frameworks, name="studio-warm-up")
    warming.start()
    warming.join()
    if prime:
        _prime()
    replies.put({"kind": "ready", "pid": os.getpid()})
    while True:
        try:
            request = requests.get()
        except (EOFError, OSError):  # the caller is gone
            os._exit(0)
        if request["kind"] == "train":
            from studio.training.child import child_main

            child_main(request["config"], train_queue, stop_event, parent_pid)  # exits the process
        replies.put(run_command(request["id"], request["argv"], replies))


def _import_frameworks() -> None:
    """Import torch, Keras/TensorFlow and the studio's modules, at a low priority.

    Linux gives each thread its own niceness, so only this thread runs niced: the
    commands and the training run later on the main thread, at the normal priority
    (the frameworks create their thread pools from there, lazily, on the first op).
    """
    with contextlib.suppress(OSError, AttributeError):
        os.nice(WARM_NICENESS)
    from studio.frameworks import import_quietly, set_quiet_environment

    set_quiet_environment()
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import_quietly("torch", "tensorflow", "keras")  # imports only: no operation runs yet
    import codegen.verify  # noqa: F401  - what every command needs, so the first pays nothing
    import studio.cli  # noqa: F401
    import studio.training.child  # noqa: F401


def _prime() -> None:
    """One proof of a small example, so that the frameworks' runtimes are initialised."""
    from codegen.verify import verify_project
    from studio.templates import create_project

    with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()):
        verify_project(create_project("mlp_iris"))
    _forget_models()


class _ProgressStream(io.TextIOBase):
    """stderr while a command runs: keeps its text, and forwards ``progress:`` lines at once."""

    def __init__(self, request_id: int, replies: Any) -> None:
        self.request_id = request_id
        self.replies = replies
        self.text = io.StringIO()
        self._line = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._line += text
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            if line.startswith(PROGRESS_PREFIX):
                self.replies.put(
                    {"kind": "progress", "id": self.request_id, "text": line[len(PROGRESS_PREFIX) :]}
                )
            else:
                self.text.write(line + "\n")
        return len(text)

    def getvalue(self) -> str:
        return self.text.getvalue() + self._line


def run_command(request_id: int, argv: list[str], replies: Any) -> dict[str, Any]:
    """``studio ARGV`` in this process, as the command line runs it; a crash becomes exit code 1."""
    from studio.cli import main

    out, err = io.StringIO(), _ProgressStream(request_id, replies)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 2
        except Exception:  # noqa: BLE001 - the reply says what went wrong; the process lives on
            print(traceback.format_exc(), file=sys.stderr)
            code = 1
    _forget_models()
    return {
        "kind": "done",
        "id": request_id,
        "exit_code": code,
        "stdout": out.getvalue(),
        "stderr": err.getvalue(),
    }


def _forget_models() -> None:
    """Free what the command built, so that the process does not grow request after request."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
