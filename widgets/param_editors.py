"""One editor per parameter type, looked up in a dict keyed by the Param class.

An editor owns one widget, shows a value with ``set_value`` (without emitting),
and emits ``committed`` when the user finishes an edit. ``value()`` parses
the widget's content and raises ValueError with a readable message when the
text is not even of the right type; range checks belong to the spec.
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QObject, QSignalBlocker, Signal
from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox, QLineEdit, QSpinBox, QWidget

from studio.catalog.params import (
    MAX_INT,
    BoolParam,
    ChoiceParam,
    FloatParam,
    IntParam,
    IntTupleParam,
    Param,
)


class ParamEditor(QObject):
    committed = Signal()

    def __init__(self, param: Param) -> None:
        super().__init__()
        self.param = param
        self.widget = self._create()
        self.widget.setObjectName(f"param_{param.name}")
        self.widget.setToolTip(f"{param.doc}\nAllowed: {param.describe()}\nDefault: {param.default!r}")

    def _create(self) -> QWidget:
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self.widget):
            self._show(value)

    def _show(self, value: Any) -> None:
        raise NotImplementedError


class IntEditor(ParamEditor):
    param: IntParam

    def _create(self) -> QWidget:
        box = QSpinBox()
        low = -MAX_INT if self.param.minimum is None else self.param.minimum
        high = MAX_INT if self.param.maximum is None else self.param.maximum
        box.setRange(low, high)
        box.setKeyboardTracking(False)  # typing commits on Enter or focus out; arrows at once
        box.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
        box.setGroupSeparatorShown(False)
        box.valueChanged.connect(self.committed)
        return box

    def value(self) -> int:
        return self.widget.value()

    def _show(self, value: int) -> None:
        self.widget.setValue(value)


class FloatEditor(ParamEditor):
    """A line edit, so that 1e-3 and 0.00392156862745098 show exactly."""

    param: FloatParam

    def _create(self) -> QWidget:
        edit = QLineEdit()
        edit.editingFinished.connect(self.committed)
        return edit

    def value(self) -> float:
        text = self.widget.text().strip()
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number. Received: {self.param.name}={text!r}") from None

    def _show(self, value: float) -> None:
        self.widget.setText(repr(float(value)))


class BoolEditor(ParamEditor):
    def _create(self) -> QWidget:
        box = QCheckBox()
        box.toggled.connect(self.committed)
        return box

    def value(self) -> bool:
        return self.widget.isChecked()

    def _show(self, value: bool) -> None:
        self.widget.setChecked(bool(value))


class ChoiceEditor(ParamEditor):
    param: ChoiceParam

    def _create(self) -> QWidget:
        box = QComboBox()
        box.addItems(list(self.param.choices))
        box.activated.connect(self.committed)
        return box

    def value(self) -> str:
        return self.widget.currentText()

    def _show(self, value: str) -> None:
        self.widget.setCurrentText(value)


class IntTupleEditor(ParamEditor):
    """``3, 3`` in a line edit; empty means None for nullable parameters."""

    param: IntTupleParam

    def _create(self) -> QWidget:
        edit = QLineEdit()
        if self.param.nullable:
            edit.setPlaceholderText("default")
        else:
            edit.setPlaceholderText(", ".join(["3"] * (self.param.length or 2)))
        edit.editingFinished.connect(self.committed)
        return edit

    def value(self) -> tuple[int, ...] | int | None:
        text = self.widget.text().strip().strip("()[]")
        if not text and self.param.nullable:
            return None
        parts = [part for part in re.split(r"[,\s×x]+", text) if part]
        try:
            if len(parts) == 1 and self.param.length:
                return int(parts[0])  # the spec repeats it: 3 means (3, 3)
            return tuple(int(part) for part in parts)
        except ValueError:
            raise ValueError(
                f"expected integers separated by commas, like 3, 3. Received: {self.param.name}={text!r}"
            ) from None

    def _show(self, value: tuple[int, ...] | None) -> None:
        self.widget.setText("" if value is None else ", ".join(str(item) for item in value))


EDITORS: dict[type[Param], type[ParamEditor]] = {
    IntParam: IntEditor,
    FloatParam: FloatEditor,
    BoolParam: BoolEditor,
    ChoiceParam: ChoiceEditor,
    IntTupleParam: IntTupleEditor,
}


def editor_for(param: Param) -> ParamEditor:
    """The editor registered for the param's class (or its nearest base class)."""
    for cls in type(param).__mro__:
        if cls in EDITORS:
            return EDITORS[cls](param)
    raise TypeError(f"no editor for parameters of type {type(param).__name__} ({param.name})")
