"""Text from files made safe to print.

Names and descriptions come from project and model files. Printed raw, an escape sequence in
one could move the cursor, retitle or clear the terminal, or hide text; a lone surrogate (a
JSON ``\\ud800`` escape) cannot be encoded at all. Every such character becomes ``?``.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls but tab, newline and carriage return; DEL and the C1 controls (U+009B is a CSI);
# lone surrogates; the bidirectional overrides and isolates, which reorder what is displayed.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with every control, escape, lone surrogate and bidi override replaced by ``?``."""
    return _UNSAFE.sub("?", text)


class SafeStream:
    """A text stream that writes :func:`terminal_safe` text to the stream it wraps."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(terminal_safe(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
