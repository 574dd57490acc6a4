"""Line emitters: build Python source a line at a time, formatted as ``ruff format`` would.

Calls that do not fit the line are exploded one argument per line with a
trailing comma, which is the stable form ruff (and black) keep as is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

LINE_LENGTH = 88
INDENT = "    "


def py(value: object) -> str:
    """A Python literal for a parameter value: strings are escaped, never interpolated raw."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        if math.isinf(value):
            return 'float("inf")' if value > 0 else 'float("-inf")'
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (tuple, list)):
        items = ", ".join(py(item) for item in value)
        if isinstance(value, tuple) and len(value) == 1:
            return f"({items},)"
        return f"({items})" if isinstance(value, tuple) else f"[{items}]"
    return repr(value)


def _string(text: str) -> str:
    """A double-quoted string literal, as ruff format prefers."""
    body = repr(text)
    if body.startswith("'") and '"' not in text:
        body = '"' + body[1:-1].replace("\\'", "'") + '"'
    return body


def docstring_text(text: str) -> str:
    """User text made safe inside a generated docstring: one line, no quotes or escapes to break out."""
    text = "".join(char if char.isprintable() else " " for char in text)
    return text.replace("\\", "/").replace('"', "'")


class Block:
    """A list of lines at an indentation level, with helpers for statements."""

    def __init__(self, level: int = 0) -> None:
        self.level = level
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        self.lines.append(INDENT * self.level + text if text else "")

    def statement(self, head: str, args: Iterable[str], tail: str = "") -> None:
        """``head(args)tail`` on one line if it fits, else exploded, one argument per line."""
        args = list(args)
        one_line = f"{INDENT * self.level}{head}({', '.join(args)}){tail}"
        if len(one_line) <= LINE_LENGTH or not args:
            self.lines.append(one_line)
            return
        self.line(f"{head}(")
        for arg in args:
            self.line(f"{INDENT}{arg},")
        self.line(f"){tail}")

    def extend(self, lines: Iterable[str]) -> None:
        for text in lines:
            self.line(text)

    def text(self) -> str:
        return "\n".join(self.lines)
