"""Errors of model import and export. Each says what was expected and what was found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codegen.layers.base import Unsupported  # raised by the lowerings' import mappings

__all__ = [
    "CodeExecutionRefused",
    "InteropError",
    "ModelFileError",
    "Unsupported",
    "UnsupportedLayer",
    "UnsupportedModelError",
    "WeightsError",
]


class InteropError(Exception):
    """Base class: a model could not be imported or exported."""


class ModelFileError(InteropError):
    """The file cannot be read: missing, truncated, corrupt, or not the expected format."""


class CodeExecutionRefused(InteropError):
    """Importing would execute Python code and the user has not allowed it."""


class WeightsError(InteropError):
    """A weights file is unreadable or does not fit the project."""


@dataclass(frozen=True)
class UnsupportedLayer:
    """One layer (or operator) of the source model that has no catalog equivalent."""

    name: str
    source_kind: str  # the source's class or operator, e.g. "GroupNormalization", "Conv"
    reason: str

    def __str__(self) -> str:
        return f"{self.source_kind} '{self.name}': {self.reason}"


class UnsupportedModelError(InteropError):
    """The model uses layers or parameters that the catalog cannot express.

    ``problems`` lists every such layer, so the user sees all of them at once.

    The message groups them by source kind, with counts, in the order they were found::

        model.onnx cannot be imported: 5 unsupported layers
          - LSTM (2): lstm_1, lstm_2: <the reason they share>
          - Conv (3):
              conv_1: <its reason>
              conv_2, conv_3: <their reason>
    """

    def __init__(self, problems: Sequence[UnsupportedLayer], source: str = "the model") -> None:
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        noun = "layer" if count == 1 else "layers"
        lines = [f"{source} cannot be imported: {count} unsupported {noun}"]
        kinds: dict[str, list[UnsupportedLayer]] = {}
        for problem in self.problems:
            kinds.setdefault(problem.source_kind, []).append(problem)
        for kind, found in kinds.items():
            reasons: dict[str, list[str]] = {}  # reason -> the layers it is given for
            for problem in found:
                reasons.setdefault(problem.reason, []).append(problem.name)
            heading = f"  - {kind} ({len(found)}):"
            if len(reasons) == 1:
                ((reason, names),) = reasons.items()
                lines.append(f"{heading} {', '.join(names)}: {reason}")
            else:
                lines.append(heading)
                lines += [f"      {', '.join(names)}: {reason}" for reason, names in reasons.items()]
        super().__init__("\n".join(lines))
