"""The training process: started with multiprocessing's *spawn* context by studio.training.run.

It ignores Ctrl-C (the caller decides when to stop, through the stop
event), sends what it prints to the run folder's ``output.log``, and turns
any exception into a ``failed`` message with a readable text.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from typing import Any

from studio.stack import call_with_deep_stack
from studio.training import messages
from studio.training.config import RunConfig
from studio.training.emitter import Emitter
from studio.training.errors import readable_error
from studio.training.rundir import RunFolder
from studio.training.session import prepare_session

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def child_main(config_data: dict[str, Any], queue: Any, stop_event: Any, parent_pid: int | None) -> None:
    """Run one training run to its end; every outcome is a message on ``queue``."""
    started_at = time.perf_counter()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["KERAS_BACKEND"] = "tensorflow"  # the generated Keras programs target TensorFlow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    config = RunConfig.from_dict(config_data)
    if config.threads:  # before the framework is imported: its thread pools read these
        os.environ.update({name: str(config.threads) for name in THREAD_VARIABLES})
    folder = RunFolder(config.out_dir)
    _redirect_output(folder.log)
    emitter = Emitter(queue, folder.metrics)
    try:
        # Keras recurses once per layer: a deep model needs a deep stack (studio.stack).
        call_with_deep_stack(train_and_report, config, folder, emitter, stop_event, started_at, parent_pid)
    finally:
        emitter.close()
        _exit_now(queue)


def train_and_report(
    config: RunConfig,
    folder: RunFolder,
    emitter: Emitter,
    stop_event: Any = None,
    started_at: float | None = None,
    parent_pid: int | None = None,
) -> None:
    """:func:`run_training`, with any exception turned into a ``failed`` message (details to stderr)."""
    try:
        run_training(config, folder, emitter, stop_event, started_at, parent_pid)
    except Exception as error:  # noqa: BLE001 - every failure becomes a message
        message, reason = readable_error(error)
        details = traceback.format_exc()
        print(details, file=sys.stderr)
        emitter.emit(messages.failed(config.framework, message, details, reason))


def _exit_now(queue: Any) -> None:
    """Leave without the interpreter's shutdown, which takes about a second once torch or
    TensorFlow is loaded: every file is closed and the queue is flushed to the pipe first."""
    if queue is not None:
        queue.close()
        queue.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_training(
    config: RunConfig,
    folder: RunFolder,
    emitter: Emitter,
    stop_event: Any = None,
    started_at: float | None = None,
    parent_pid: int | None = None,
) -> None:
    """Prepare the session, save the generated code, and run the framework's engine."""
    session = prepare_session(config)
    code = session.code[config.framework]
    _write_code(folder, code.filename, code.source)
    if config.framework == "keras":
        from studio.training.keras_engine import KerasEngine as engine_class
    else:
        from studio.training.torch_engine import TorchEngine as engine_class
    engine = engine_class(session, folder, emitter, stop_event, started_at, parent_pid)
    engine.files["code"] = str(folder.path / code.filename)
    engine.run()


def _write_code(folder: RunFolder, filename: str, source: str) -> None:
    from studio.project import write_text_atomic

    write_text_atomic(folder.path / filename, source)


def _redirect_output(path) -> None:
    """Send file descriptors 1 and 2 (and so TensorFlow's C++ logging) to the run's log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
