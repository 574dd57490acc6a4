"""File > Export > Model File: the deployment formats of ``studio export --format``, off the GUI thread.

The export runs as ``python -m studio export PROJECT --format F -o FILE [--run RUN_DIR]`` in a
child process (the window never imports torch or TensorFlow): the selected run's trained weights
when it saved any, else the project's weights file, else a seeded initialisation. The command
loads the file back in its runtime and compares it with the model before writing it; the status
bar shows its verdict, or its error.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

from widgets.studio_process import StudioProcess, last_error_line

# format -> (menu title, file dialog filter; "" for a folder)
MODEL_FORMATS = {
    "keras": ("Keras Model (.keras)", "Keras model (*.keras)"),
    "pytorch": ("PyTorch state_dict (.pt)", "PyTorch state_dict (*.pt)"),
    "onnx": ("ONNX (.onnx)", "ONNX model (*.onnx)"),
    "pt2": ("PyTorch ExportedProgram (.pt2)", "torch.export program (*.pt2)"),
    "litert": ("LiteRT (.tflite)", "LiteRT model (*.tflite)"),
    "savedmodel": ("TensorFlow SavedModel (folder)", ""),
}
SUFFIXES = {
    "keras": ".keras",
    "pytorch": ".pt",
    "onnx": ".onnx",
    "pt2": ".pt2",
    "litert": ".tflite",
    "savedmodel": "",
}


class ModelExporter(QObject):
    """Asks where to write, runs the export in a child process, reports the result."""

    message = Signal(str)
    finished = Signal(int)  # the command's exit code

    def __init__(self, window, parent: QObject | None = None) -> None:
        super().__init__(parent or window)
        self.window = window
        self.process = StudioProcess(self)
        self.process.done.connect(self._on_done)
        self.interactive = True
        self._target = ""

    def unavailable(self) -> str | None:
        """Why no model file can be exported now; None when one can."""
        if self.process.is_running:
            return "an export is running"
        if not self.window.document.analysis.is_valid:
            return "the model has problems: fix them first (see the Problems panel)"
        return None

    def weights_folder(self) -> Path | None:
        """The folder of the selected run's trained weights, if it saved any."""
        record = self.window.training.selected_record()
        if record is None:
            return None
        for framework in ("keras", "pytorch"):
            weights = record.weights_file(framework)
            if weights is not None:
                return weights.parent
        return None

    def export(self, fmt: str, path: str | None = None) -> bool:
        """Start exporting the model as ``fmt`` to ``path`` (asked if None); True if it started."""
        reason = self.unavailable()
        if reason is not None:
            self.message.emit(f"Cannot export: {reason}")
            return False
        if not self.window.files.maybe_save():
            return False
        project = self.window.document.path
        if project is None:
            self.message.emit("Cannot export: save the project first")
            return False
        path = path or self._ask(fmt, Path(project))
        if not path:
            return False
        arguments = ["-m", "studio", "export", str(project), "--format", fmt, "-o", path]
        run = self.weights_folder()
        if run is not None:
            arguments += ["--run", str(run)]
        self._target = path
        self.process.start(arguments)
        self.message.emit(f"Exporting {MODEL_FORMATS[fmt][0]} to {path}…")
        return True

    def _ask(self, fmt: str, project: Path) -> str | None:
        title, file_filter = MODEL_FORMATS[fmt]
        stem = project.name.removesuffix(".json").removesuffix(".layers")
        suggestion = str(project.with_name(stem + SUFFIXES[fmt]))
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export {title}", suggestion, file_filter)
        return path or None

    def _on_done(self, code: int, stdout: str, stderr: str) -> None:
        if code == 0:
            lines = [line for line in stdout.splitlines() if line.strip()]
            self.message.emit(lines[-1] if lines else f"Saved {self._target}")
        else:
            error = last_error_line(stderr)
            if self.interactive:
                QMessageBox.warning(self.window, "Export failed", error)
            self.message.emit(f"Export failed: {error}")
        self.finished.emit(code)
