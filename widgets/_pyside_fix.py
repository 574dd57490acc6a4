"""Keep Python 3.11 alive under PySide6 6.12: make ``None`` effectively immortal.

PySide6 6.12 is a stable-ABI (abi3) build compiled with Python 3.12+ headers,
where ``None`` is immortal and returning it needs no new reference. On Python
3.11 every PySide6 call that returns ``None`` (all void methods: ``setPen``,
``setPos``, ``setText``...) therefore drops one reference to ``None``. The
count starts near 5,000, so painting a few hundred nodes ends the process with
"Fatal Python error: none_dealloc: deallocating None".

Python 3.12 solved this by giving ``None`` an enormous reference count; we do
the same on 3.11. ``None`` is never deallocated in a correct program, so this
changes nothing else. On Python 3.12+ it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

# Far more releases than a process can make, and far from overflowing the counter.
_HEADROOM = 1 << 48


def protect_none() -> bool:
    """Raise None's reference count out of reach; True if it was needed here."""
    if sys.version_info >= (3, 12):
        return False
    refcount = ctypes.c_ssize_t.from_address(id(None))
    if refcount.value < _HEADROOM // 2:
        refcount.value += _HEADROOM
    return True
