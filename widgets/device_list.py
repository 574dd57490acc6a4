"""Which devices can train: asked once of a child process (``python -m studio.training.devices``).

Importing torch and TensorFlow to ask takes seconds, so the combo box says
"detecting…" until the child answers; "auto" works meanwhile.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QComboBox, QWidget

from widgets.studio_process import StudioProcess

AUTO = "auto"
DETECTING = "Auto (detecting devices…)"


def parse_devices(stdout: str) -> list[dict[str, str]]:
    """The probe's JSON list of {id, name, framework}; just the CPU when it said nothing useful."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            items = json.loads(line)
        except ValueError:
            continue
        if isinstance(items, list) and all(isinstance(item, dict) and "id" in item for item in items):
            return items
    return [{"id": "cpu", "name": "CPU", "framework": "both"}]


def device_label(device: dict[str, str]) -> str:
    framework = {"pytorch": " — PyTorch", "keras": " — TensorFlow"}.get(device.get("framework", ""), "")
    if device["id"] == "cpu":
        return "CPU"
    return f"{device['id']}: {device.get('name', '')}{framework}"


class DeviceDetector(QObject):
    """Runs the probe once; ``detected(list)`` when it answers."""

    detected = Signal(list)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process = StudioProcess(self)
        self.process.done.connect(self._on_done)
        self.devices: list[dict[str, str]] | None = None

    @property
    def started(self) -> bool:
        return self.devices is not None or self.process.is_running

    def start(self) -> None:
        if not self.started:
            self.process.start(["-m", "studio.training.devices"])

    def kill(self) -> None:
        self.process.kill()

    def _on_done(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.devices = parse_devices(stdout if exit_code == 0 else "")
        self.detected.emit(self.devices)


class DeviceCombo(QComboBox):
    """ "auto" plus every detected device; the data of each item is the RunConfig ``device`` value."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("deviceCombo")
        self.addItem(DETECTING, AUTO)
        self.setToolTip("Where to train. Auto picks a GPU when the framework sees one, else the CPU.")
        self.ready = False

    def set_devices(self, devices: list[dict[str, str]]) -> None:
        current = self.currentData()
        self.clear()
        gpus = [device for device in devices if device["id"] != "cpu"]
        best = device_label(gpus[0]).split(":")[0] if gpus else "CPU"
        self.addItem(f"Auto ({best})", AUTO)
        for device in devices:
            self.addItem(device_label(device), device["id"])
        index = self.findData(current)
        self.setCurrentIndex(max(index, 0))
        self.ready = True

    def device(self) -> str:
        return str(self.currentData() or AUTO)
