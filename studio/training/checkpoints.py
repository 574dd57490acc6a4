"""Writes resume checkpoints on a background thread.

The engine captures the state after every epoch (a copy in memory) and
hands it over here; the training loop never waits for the disk. Only the
newest snapshot is kept: if epochs end faster than files are written, the
in-between ones are skipped. A run killed mid-epoch therefore keeps the
checkpoint of its last whole epoch (or of the epoch before, when it dies
while that one is being written: each file is replaced atomically).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class CheckpointWriter:
    def __init__(self, write: Callable[[Any], None]) -> None:
        self._write = write
        self._changed = threading.Condition()
        self._pending: Any = None
        self._busy = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, snapshot: Any) -> None:
        """Write ``snapshot`` soon, replacing any snapshot still waiting; raises an earlier write's error."""
        with self._changed:
            self._raise_error()
            self._pending = snapshot
            self._changed.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="checkpoint-writer", daemon=True)
            self._thread.start()

    def flush(self) -> None:
        """Wait until every submitted snapshot is on disk; raises the error of a failed write."""
        with self._changed:
            self._changed.wait_for(lambda: self._pending is None and not self._busy)
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending is not None)
                snapshot, self._pending, self._busy = self._pending, None, True
            try:
                self._write(snapshot)
            except BaseException as error:  # noqa: BLE001 - handed to the training thread
                with self._changed:
                    self._error = error
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()
