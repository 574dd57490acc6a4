"""Writes resume checkpoints on a background thread.

The engine captures the state after every epoch (a copy in memory) and
hands it over here; the training loop never waits for the disk. Only the
newest snapshot is kept, and files are written at most once per
``min_interval`` seconds (tiny epochs would otherwise spend more time on
files than on training): snapshots that arrive meanwhile replace each
other. A run killed mid-epoch therefore keeps a checkpoint at most about
``min_interval`` seconds older than its last whole epoch; each file is
replaced atomically, so it is never half-written. ``flush`` writes the
newest snapshot at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class CheckpointWriter:
    def __init__(self, write: Callable[[Any], None], min_interval: float = 0.0) -> None:
        self._write = write
        self.min_interval = min_interval
        self._changed = threading.Condition()
        self._pending: Any = None
        self._busy = False
        self._pausing = False  # the writer waits out min_interval and then takes the newest snapshot
        self._hurry = False  # flush() is waiting: no pause between writes
        self._last_write = -float("inf")
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, snapshot: Any) -> None:
        """Write ``snapshot`` soon, replacing any snapshot still waiting; raises an earlier write's error."""
        with self._changed:
            self._raise_error()
            self._pending = snapshot
            if not self._pausing:  # waking a pausing writer would only cost the training thread time
                self._changed.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="checkpoint-writer", daemon=True)
            self._thread.start()

    def flush(self) -> None:
        """Wait until every submitted snapshot is on disk; raises the error of a failed write."""
        with self._changed:
            self._hurry = True
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._pending is None and not self._busy)
            self._hurry = False
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending is not None)
                while not self._hurry:
                    pause = self._last_write + self.min_interval - time.monotonic()
                    if pause <= 0:
                        break
                    self._pausing = True
                    self._changed.wait(pause)
                    self._pausing = False
                snapshot, self._pending, self._busy = self._pending, None, True
                self._last_write = time.monotonic()
            try:
                self._write(snapshot)
            except BaseException as error:  # noqa: BLE001 - handed to the training thread
                with self._changed:
                    self._error = error
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()
