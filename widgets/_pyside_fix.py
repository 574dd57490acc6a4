"""Keep Python 3.11 alive under PySide6 6.12: make ``None``, ``True`` and ``False`` effectively immortal.

PySide6 6.12 is a stable-ABI (abi3) build compiled with Python 3.12+ headers,
where these singletons are immortal and returning them needs no new
reference (``Py_RETURN_NONE``, ``Py_RETURN_TRUE`` no longer increment). On
Python 3.11 every PySide6 call that returns one of them therefore drops one
reference: all void methods (``setPen``, ``setPos``, ``setText``...) return
``None``, and every ``Signal.emit()`` returns ``True``. The counts start at a
few thousand, so painting a few hundred nodes, or a training run emitting
progress signals for a minute, ended the process with "Fatal Python error:
none_dealloc: deallocating None" (or ``bool_dealloc``).

Python 3.12 solved this by giving these objects an enormous reference count;
we do the same on 3.11. They are never deallocated in a correct program, so
this changes nothing else. On Python 3.12+ it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

# Far more releases than a process can make, and far from overflowing the counter.
_HEADROOM = 1 << 48
IMMORTALS = (None, True, False)


def protect_none() -> bool:
    """Raise the reference counts of None, True and False out of reach; True if it was needed here."""
    if sys.version_info >= (3, 12):
        return False
    for singleton in IMMORTALS:
        refcount = ctypes.c_ssize_t.from_address(id(singleton))
        if refcount.value < _HEADROOM // 2:
            refcount.value += _HEADROOM
    return True
