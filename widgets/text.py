"""Small wording helpers for what the window says."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 layer``, ``2 layers``, ``12,345 parameters``."""
    noun = singular if count == 1 else (plural or singular + "s")
    return f"{count:,} {noun}"
