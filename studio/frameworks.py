"""Quiet framework start-up for commands that import torch or TensorFlow in their own process.

TensorFlow's C++ side prints start-up lines to file descriptor 2 before its
logging is configured (``TF_CPP_MIN_LOG_LEVEL`` does not reach them all).
:func:`import_quietly` sets the environment first, holds back what the import
writes to descriptor 2, drops the lines known to be harmless and writes every
other line to stderr after all, so a real problem is never hidden.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator

QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}

# Start-up lines of TensorFlow, XLA and their CUDA stubs that say nothing about the user's work.
HARMLESS_LINES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "rebuild TensorFlow with the appropriate compiler flags",
)


def set_quiet_environment() -> None:
    """Quiet defaults for frameworks imported later (in this process or its children)."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def import_quietly(*names: str) -> None:
    """Import the modules ``names`` (e.g. "tensorflow", "torch") with their known start-up noise dropped."""
    set_quiet_environment()
    for name in names:
        if name in sys.modules:
            continue
        with filtered_stderr():
            importlib.import_module(name)
    if "absl.logging" in sys.modules:  # TensorFlow's Python logging
        absl_logging = sys.modules["absl.logging"]
        absl_logging.set_verbosity(absl_logging.ERROR)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Hold back what is written to descriptor 2 in the block; afterwards write the lines that
    are not known to be harmless."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if line.strip() and not is_harmless(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def is_harmless(line: str) -> bool:
    return any(known in line for known in HARMLESS_LINES)
