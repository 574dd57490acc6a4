"""Typed layer parameters: defaults, ranges, choices and a one-line doc each.

A parameter turns a raw value (from a project file, the inspector or the CLI)
into a clean, validated value, or raises :class:`ParamError` saying what was
expected and what was received, in the Keras style::

    expected a positive integer. Received: units=-3
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class ParamError(ValueError):
    """A parameter value is invalid. The message names the parameter."""


# The largest size an integer parameter may hold (and the inspector's spin boxes allow):
# far beyond any layer that fits in memory, and small enough that shapes and parameter
# counts computed from it stay exact, printable integers.
MAX_INT = 2**31 - 1

# The most axes a shape parameter (an Input's shape, a Reshape target, a permutation) may
# list, batch excluded: beyond what any layer here computes on, and what both frameworks run.
MAX_RANK = 8


@dataclass(frozen=True)
class Param:
    """Base class of all parameter types."""

    name: str
    default: Any
    doc: str

    type_name = "value"

    def validate(self, value: Any) -> Any:
        """Return the clean value, or raise ParamError."""
        raise NotImplementedError

    def to_json(self, value: Any) -> Any:
        """The JSON form of a clean value."""
        return value

    def describe(self) -> str:
        """A short human description of what values are allowed."""
        return self.type_name

    def _fail(self, expected: str, value: Any) -> ParamError:
        return ParamError(f"expected {expected}. Received: {self.name}={value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounds_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"between {minimum} and {maximum}"
    if minimum is not None:
        return f">= {minimum}"
    if maximum is not None:
        return f"<= {maximum}"
    return ""


@dataclass(frozen=True)
class IntParam(Param):
    minimum: int | None = None
    maximum: int | None = None
    type_name = "integer"

    def validate(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_int(value):
            raise self._fail(self.describe_expected(), value)
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise self._fail(self.describe_expected(), value)
        if abs(value) > MAX_INT:
            raise self._fail(f"{self.describe_expected()} of at most {MAX_INT} in size", value)
        return value

    def describe_expected(self) -> str:
        if self.minimum == 1 and self.maximum is None:
            return "a positive integer"
        bounds = _bounds_text(self.minimum, self.maximum)
        return f"an integer {bounds}".strip()

    def describe(self) -> str:
        return self.describe_expected()


@dataclass(frozen=True)
class FloatParam(Param):
    minimum: float | None = None
    maximum: float | None = None
    exclusive_maximum: bool = False
    exclusive_minimum: bool = False
    type_name = "number"

    def validate(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(self.describe(), value)
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            raise self._fail(self.describe(), value) from None
        if not math.isfinite(value):
            raise self._fail(self.describe(), value)
        low, high = self.minimum, self.maximum
        if low is not None and (value < low or (self.exclusive_minimum and value == low)):
            raise self._fail(self.describe(), value)
        if high is not None and (value > high or (self.exclusive_maximum and value == high)):
            raise self._fail(self.describe(), value)
        return value

    def describe(self) -> str:
        low = "" if self.minimum is None else f"{'>' if self.exclusive_minimum else '>='} {self.minimum}"
        high = "" if self.maximum is None else f"{'<' if self.exclusive_maximum else '<='} {self.maximum}"
        bounds = " and ".join(part for part in (low, high) if part)
        return f"a finite number {bounds}".strip()


@dataclass(frozen=True)
class BoolParam(Param):
    type_name = "boolean"

    def validate(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self._fail("true or false", value)
        return value


@dataclass(frozen=True)
class ChoiceParam(Param):
    choices: tuple[str, ...] = ()
    type_name = "choice"

    def validate(self, value: Any) -> str:
        if value not in self.choices:
            raise self._fail(self.describe(), value)
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(choice) for choice in self.choices)


@dataclass(frozen=True)
class IntTupleParam(Param):
    """A tuple of integers: a kernel size, a shape, a permutation.

    ``length`` fixes the number of items (a bare integer is then repeated,
    as Keras accepts ``kernel_size=3`` for ``(3, 3)``); ``None`` allows any
    non-empty length. ``allow_minus_one`` lets one item be -1 (Reshape).
    """

    length: int | None = None
    minimum: int = 1
    allow_minus_one: bool = False
    nullable: bool = False
    type_name = "integer tuple"

    def validate(self, value: Any) -> tuple[int, ...] | None:
        if value is None and self.nullable:
            return None
        if _is_int(value) and self.length is not None:
            value = (value,) * self.length
        if not isinstance(value, (list, tuple)) or not value:
            raise self._fail(self.describe(), value)
        if self.length is not None and len(value) != self.length:
            raise self._fail(self.describe(), value)
        if len(value) > MAX_RANK:
            raise ParamError(
                f"expected at most {MAX_RANK} integers (axes besides the batch). "
                f"Received: {self.name} with {len(value):,} items"
            )
        items = []
        for item in value:
            if isinstance(item, float) and item.is_integer():
                item = int(item)
            ok = _is_int(item) and (item >= self.minimum or (self.allow_minus_one and item == -1))
            if not ok:
                raise self._fail(self.describe(), value)
            if item > MAX_INT:
                raise self._fail(f"{self.describe()}, each at most {MAX_INT}", value)
            items.append(item)
        if self.allow_minus_one and items.count(-1) > 1:
            raise self._fail("at most one -1", value)
        return tuple(items)

    def to_json(self, value: Any) -> Any:
        return None if value is None else list(value)

    def describe(self) -> str:
        count = f"{self.length} integers" if self.length else "a list of integers"
        text = f"{count} >= {self.minimum}"
        if self.allow_minus_one:
            text += " (one may be -1)"
        if self.nullable:
            text += ", or null"
        return text
