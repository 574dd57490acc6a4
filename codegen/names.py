"""Python identifiers for generated code, made from user-chosen layer names.

Like torch.fx's namespace: invalid characters become ``_``, a leading digit
gets a prefix, keywords, builtins and names the generated code itself uses
get a trailing ``_``, and clashes get ``_1``, ``_2``...
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata

BUILTINS = frozenset(dir(builtins))

# Names that the generated programs use for modules and helpers.
RESERVED = frozenset(
    {
        "keras",
        "layers",
        "torch",
        "nn",
        "F",
        "np",
        "argparse",
        "self",
        "model",
        "args",
        "main",
        "build_model",
        "load_data",
        "train",
        "evaluate",
        "parser",
    }
)


def to_identifier(name: str) -> str:
    """A valid, lower-case-friendly Python identifier for ``name`` (not yet unique)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"\W+", "_", text).strip("_")
    if not text:
        text = "layer"
    if text[0].isdigit():
        text = f"layer_{text}"
    if keyword.iskeyword(text) or keyword.issoftkeyword(text) or text in BUILTINS or text in RESERVED:
        text = f"{text}_"
    return text


def to_class_name(name: str) -> str:
    """``"LeNet on digits"`` -> ``"LenetOnDigits"``."""
    words = re.findall(r"[A-Za-z0-9]+", unicodedata.normalize("NFKD", name))
    text = "".join(word[:1].upper() + word[1:].lower() for word in words) or "Model"
    if text[0].isdigit():
        text = f"Model{text}"
    if keyword.iskeyword(text) or text in BUILTINS or text in RESERVED:
        text = f"{text}Model"
    return text


class Namespace:
    """Hands out unique identifiers."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self._taken: set[str] = set(taken or ())

    def claim(self, name: str) -> str:
        base = to_identifier(name)
        candidate, index = base, 1
        while candidate in self._taken:
            candidate = f"{base}_{index}"
            index += 1
        self._taken.add(candidate)
        return candidate
