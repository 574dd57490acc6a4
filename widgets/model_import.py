"""File → Import Model… and File → New from Model Zoo…: models become projects, in a child process.

Importing loads TensorFlow or torch, so ``studio import MODEL -o PROJECT
--weights`` runs in a QProcess and the window opens the new project when it
is done. A PyTorch model is a Python file that the import executes: the user
names the class, gives the input shape and confirms that the file may run
(``--allow-code``) first. A zoo model (``studio import zoo:NAME``) is picked
from a searchable list of the architectures whose library is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressDialog,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from studio.catalog.params import MAX_INT, MAX_RANK
from studio.files import PROJECT_LIMIT, limit, read_regular_file
from studio.project import EXTENSION, ProjectError, load_project, save_project
from widgets.studio_process import StudioProcess, last_error_line

MODEL_FILTER = (
    "Models (*.keras *.h5 *.hdf5 *.json *.onnx *.py);;Keras models (*.keras *.h5 *.hdf5 *.json);;"
    "ONNX models (*.onnx);;PyTorch models (*.py);;All files (*)"
)
SHAPE = re.compile(r"^\s*\d+(\s*[,x×]\s*\d+)*\s*$")


def module_candidates(source: str) -> list[str]:
    """Classes that look like ``nn.Module`` subclasses, then functions, in file order."""
    classes = re.findall(r"^class\s+(\w+)\s*\(([^)]*)\)", source, flags=re.MULTILINE)
    modules = [name for name, bases in classes if "Module" in bases or "Sequential" in bases]
    functions = re.findall(r"^def\s+(\w+)\s*\(\s*\)", source, flags=re.MULTILINE)
    return modules + [name for name in functions if not name.startswith("_")]


def parse_shape(text: str) -> list[int] | None:
    if not SHAPE.match(text or ""):
        return None
    parts = [part.strip() for part in re.split(r"[,x×]", text) if part.strip()]
    if not parts or len(parts) > MAX_RANK or any(len(part) > 10 for part in parts):
        return None  # more axes than any layer takes, or a size beyond any tensor
    dims = [int(part) for part in parts]
    return dims if min(dims) > 0 and max(dims) <= MAX_INT else None


class PythonModelDialog(QDialog):
    """Which module to build, its input shape, and consent to run the file."""

    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pythonModelDialog")
        self.setWindowTitle("Import a PyTorch model")
        try:
            # Only a regular file of sensible size: a FIFO would block the window.
            source = read_regular_file(path, limit(PROJECT_LIMIT)).decode("utf-8", errors="replace")
            candidates = module_candidates(source)
        except OSError:
            candidates = []
        self.entry = QLineEdit(candidates[0] if candidates else "", objectName="entryEdit")
        self.entry.setPlaceholderText("class or function returning an nn.Module")
        if candidates:
            self.entry.setToolTip("Found in the file: " + ", ".join(candidates))
        self.shape = QLineEdit(objectName="shapeEdit")
        self.shape.setPlaceholderText("e.g. 3,32,32 (channels first, without the batch)")
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(32, 32))
        warning = QLabel(
            f"<b>Importing runs {path.name}.</b> A PyTorch model is Python code: building it executes the "
            "file with your permissions. Only continue with files you trust."
        )
        warning.setWordWrap(True)
        self.consent = QCheckBox("I trust this file; run it to import the model", objectName="consentCheck")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run and Import")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Model", self.entry)
        form.addRow("Input shape", self.shape)
        top = QVBoxLayout(self)
        row = QFormLayout()
        row.addRow(icon, warning)
        top.addLayout(row)
        top.addLayout(form)
        top.addWidget(self.consent)
        top.addWidget(self.buttons)
        for signal in (self.entry.textChanged, self.shape.textChanged, self.consent.toggled):
            signal.connect(self._update)
        self._update()
        self.resize(480, self.sizeHint().height())

    def _update(self) -> None:
        ok = self.entry.text().strip().isidentifier() and parse_shape(self.shape.text()) is not None
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok and self.consent.isChecked())

    def values(self) -> tuple[str, list[int]] | None:
        shape = parse_shape(self.shape.text())
        if not self.consent.isChecked() or shape is None or not self.entry.text().strip().isidentifier():
            return None
        return self.entry.text().strip(), shape


class ZooDialog(QDialog):
    """A searchable list of the model zoo's architectures, and whether to load pretrained weights."""

    def __init__(self, parent: QWidget | None = None) -> None:
        from studio.interop.zoo import available_models

        super().__init__(parent)
        self.setObjectName("zooDialog")
        self.setWindowTitle("New from Model Zoo")
        self.search = QLineEdit(objectName="zooSearch")
        self.search.setPlaceholderText("Search, e.g. resnet, keras/, vit")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget(objectName="zooList")
        for model in available_models():
            shape = "×".join(map(str, model.input_shape))
            item = QListWidgetItem(f"{model.name}    ({model.framework}, input {shape})")
            item.setData(Qt.ItemDataRole.UserRole, model.name)
            self.list.addItem(item)
        note = QLabel(
            "Built by its own library (torchvision, timm, keras.applications, keras-hub) with random weights, "
            "then imported as an editable project."
        )
        note.setWordWrap(True)
        self.pretrained = QCheckBox(
            "Pretrained weights (downloaded by the library; needs a network connection)",
            objectName="pretrainedCheck",
        )
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        top = QVBoxLayout(self)
        for widget in (note, self.search, self.list, self.pretrained, self.buttons):
            top.addWidget(widget)
        self.search.textChanged.connect(self._filter)
        self.list.currentItemChanged.connect(self._update)
        self.list.itemDoubleClicked.connect(self.accept)
        self._update()
        self.resize(520, 480)

    def _filter(self, text: str) -> None:
        words = text.lower().split()
        first = None
        for row in range(self.list.count()):
            item = self.list.item(row)
            hidden = not all(word in item.text().lower() for word in words)
            item.setHidden(hidden)
            if first is None and not hidden:
                first = item
        current = self.list.currentItem()
        if current is None or current.isHidden():
            self.list.setCurrentItem(first)
        self._update()

    def _update(self) -> None:
        current = self.list.currentItem()
        ok = current is not None and not current.isHidden()
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def selected(self) -> str | None:
        current = self.list.currentItem()
        return None if current is None or current.isHidden() else current.data(Qt.ItemDataRole.UserRole)


class ModelImporter(QObject):
    """Asks for the model and where to save the project, runs the import, opens the result."""

    imported = Signal(Path)
    message = Signal(str)

    def __init__(self, window, parent: QObject | None = None) -> None:
        super().__init__(parent or window)
        self.window = window
        self.process = StudioProcess(self)
        self.process.done.connect(self._on_done)
        self.interactive = True
        self._output: Path | None = None
        self._progress: QProgressDialog | None = None

    @property
    def is_running(self) -> bool:
        return self.process.is_running

    def import_model(self, model: str | None = None, output: str | None = None) -> bool:
        """Start an import (asking for what is not given); True if the child process started."""
        if self.is_running or not self.window.files.maybe_save():
            return False
        if model is None:
            folder = str(self.window.files._folder())
            model, _ = QFileDialog.getOpenFileName(self.window, "Import model", folder, MODEL_FILTER)
            if not model:
                return False
        path = Path(model)
        arguments = [str(path)]
        if path.suffix.lower() == ".py":
            dialog = PythonModelDialog(path, self.window)
            values = dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None
            dialog.deleteLater()
            if values is None:
                return False
            entry, shape = values
            arguments = [f"{path}:{entry}", "--input-shape", ",".join(map(str, shape)), "--allow-code"]
            stem = entry
        else:
            stem = path.stem
        if output is None:
            suggestion = path.with_name(f"{stem}{EXTENSION}")
            output, _ = QFileDialog.getSaveFileName(
                self.window,
                "Save the imported project as",
                str(suggestion),
                f"Layer Studio project (*{EXTENSION})",
            )
            if not output:
                return False
        self._start(arguments, output, path.name)
        return True

    def import_zoo(
        self, name: str | None = None, output: str | None = None, pretrained: bool = False
    ) -> bool:
        """File → New from Model Zoo…: pick an architecture (unless named), import it; True if started."""
        if self.is_running or not self.window.files.maybe_save():
            return False
        if name is None:
            dialog = ZooDialog(self.window)
            accepted = dialog.exec() == QDialog.DialogCode.Accepted
            name, pretrained = (
                (dialog.selected(), dialog.pretrained.isChecked()) if accepted else (None, False)
            )
            dialog.deleteLater()
            if name is None:
                return False
        stem = re.sub(r"\W+", "_", name.rpartition("/")[2])
        if output is None:
            suggestion = self.window.files._folder() / f"{stem}{EXTENSION}"
            output, _ = QFileDialog.getSaveFileName(
                self.window, "Save the model as", str(suggestion), f"Layer Studio project (*{EXTENSION})"
            )
            if not output:
                return False
        self._start([f"zoo:{name}", *(["--pretrained"] if pretrained else [])], output, name)
        return True

    def _start(self, arguments: list[str], output: str, label: str) -> None:
        if not output.endswith(EXTENSION):
            output = output.removesuffix(".json") + EXTENSION
        self._output = Path(output)
        self.process.start(["-m", "studio", "import", *arguments, "-o", output, "--weights", "--force"])
        self._show_progress(label)
        self.message.emit(f"Importing {label}…")

    def _show_progress(self, name: str) -> None:
        if not self.interactive:
            return
        progress = QProgressDialog(f"Importing {name}…", "Cancel", 0, 0, self.window)
        progress.setWindowTitle("Import model")
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(400)
        progress.canceled.connect(self.cancel)
        self._progress = progress

    def _close_progress(self) -> None:
        if self._progress is not None:
            self._progress.canceled.disconnect(self.cancel)
            self._progress.reset()
            self._progress.deleteLater()
            self._progress = None

    def _fit_to_window(self, output: Path) -> None:
        """Lay the imported model out to fit the canvas (a long model wraps into rows), in its file."""
        try:
            project = load_project(output)
            self.window.files.fit_to_window(project)
            save_project(project, output)
        except (ProjectError, OSError):
            pass  # it opens as the import laid it out; open_path explains a file it cannot read

    def cancel(self) -> None:
        self.process.kill()
        self._close_progress()
        self.message.emit("Import cancelled")

    def _on_done(self, exit_code: int, stdout: str, stderr: str) -> None:
        self._close_progress()
        output = self._output
        if exit_code == 0 and output is not None and output.exists():
            self._fit_to_window(output)
            if self.window.files.open_path(output, ask=False, offer_recovery=False):
                summary = next((line for line in stdout.splitlines() if line.startswith("imported")), "")
                self.message.emit(
                    f"Imported {output.name}" + (f": {summary.removeprefix('imported ')}" if summary else "")
                )
                self.imported.emit(output)
            return
        detail = last_error_line(stderr)
        if exit_code == 1:
            self._show(
                "Model not supported", f"The model uses layers Layer Studio cannot express:\n\n{detail}"
            )
        else:
            self._show("Cannot import the model", detail)

    def _show(self, title: str, text: str) -> None:
        self.message.emit(f"{title}: {text.splitlines()[-1] if text else ''}")
        if self.interactive:
            QMessageBox.warning(self.window, title, text)
        else:
            print(f"error: {title}: {text}", file=sys.stderr)
