"""Running framework code that recurses once per layer.

Keras (and optree, which it uses to walk nested structures) builds and calls a functional
model recursively, a few Python frames per layer: a chain of a few thousand layers exceeds
the default recursion limit and the main thread's C stack. Such work runs here in a thread
with a large stack and a raised recursion limit. Our own code walks graphs iteratively.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEEP_STACK_BYTES = 1024 * 2**20  # reserved address space; only the pages used are committed
DEEP_RECURSION_LIMIT = 200_000


def call_with_deep_stack(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a thread with a deep stack; its exception is re-raised here."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = error

    previous_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous_limit, DEEP_RECURSION_LIMIT))
    previous_size = threading.stack_size(DEEP_STACK_BYTES)
    try:
        worker = threading.Thread(target=target, name="deep-stack", daemon=True)
        worker.start()
    finally:
        threading.stack_size(previous_size)
    try:
        worker.join()
    finally:
        sys.setrecursionlimit(previous_limit)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
