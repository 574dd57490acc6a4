"""The training settings form: dataset, hyperparameters, framework and device.

Project settings (dataset, loss, optimizer, learning rate and its schedule,
batch size, epochs, validation split, seed, target, precision) are the project's ``TrainingSettings``: the
form shows them and reports each edit with ``settingEdited(name, value)``;
the panel turns that into an undoable command, so the generated code (its
defaults) and the saved project follow. Framework, device, early-stopping
patience and TensorBoard belong to a run only.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

from studio.project import ANNEALING, FRAMEWORK_TITLES, LOSSES, LR_SCHEDULES, OPTIMIZERS, TrainingSettings
from widgets.device_list import DeviceCombo

CHOOSE_FILE = "\0file"
CHOOSE_FOLDER = "\0folder"
DATA_FILE_FILTER = (
    "Data files (*.csv *.tsv *.txt *.npz *-ubyte *-ubyte.gz *.idx *.idx.gz);;"
    "CSV tables (*.csv *.tsv *.txt);;NumPy archives (*.npz);;IDX images (*-ubyte *-ubyte.gz);;All files (*)"
)
FRAMEWORK_CHOICES = {**FRAMEWORK_TITLES, "both": "Both, side by side"}
LOSS_TITLES = {
    "cross_entropy": "cross-entropy",
    "binary_cross_entropy": "binary CE",
    "mse": "MSE",
    "mae": "MAE",
}
LOSS_TIPS = {
    "cross_entropy": "cross-entropy over classes",
    "binary_cross_entropy": "binary cross-entropy (one sigmoid output, or independent labels)",
    "mse": "mean squared error (regression)",
    "mae": "mean absolute error (regression)",
}
TARGET_TITLES = {"labels": "labels", "inputs": "inputs"}
SCHEDULE_TIPS = {
    "constant": "The same learning rate for every batch",
    "step": "Multiply the learning rate by Gamma every Step epochs",
    "cosine": "Cosine decay from the learning rate down to Min LR over the run",
    "onecycle": "From lr/25 up to lr over the first 30% of the batches, then down to Min LR",
    "warmup-cosine": "Linear warm-up over Warm-up epochs, then cosine decay to Min LR",
}
PRECISION_TITLES = {"fp32": "fp32", "bf16": "bf16 (mixed)", "fp16": "fp16 (mixed, CUDA)"}
PRECISION_TIPS = {
    "fp32": "float32 throughout",
    "bf16": "Mixed bfloat16: autocast in PyTorch, the mixed_bfloat16 policy in Keras (output layer in float32)",
    "fp16": "Mixed float16 with loss scaling; CUDA GPUs only",
}
FIELD_MIN_WIDTH = 64


class LogSpinBox(QDoubleSpinBox):
    """A learning rate: shown as 0.001 or 1e-05, stepped 1 → 2 → 5 → 10."""

    LADDER = (1.0, 2.0, 5.0)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(10)
        self.setRange(1e-7, 9.99)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, position: int):
        try:
            float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, position
        return QValidator.State.Acceptable, text, position

    def stepBy(self, steps: int) -> None:
        value = self.value()
        if value <= 0:  # a final learning rate of 0: up to the smallest step, not below
            if steps > 0:
                self.setValue(1e-6)
            return
        exponent = math.floor(math.log10(value))
        ladder = [m * 10.0**e for e in range(exponent - 1, exponent + 2) for m in self.LADDER]
        if steps > 0:
            above = [v for v in ladder if v > value * 1.0001]
            target = above[min(steps, len(above)) - 1]
        else:
            below = [v for v in ladder if v < value * 0.9999]
            target = below[-min(-steps, len(below))]
        self.setValue(float(f"{target:.6g}"))


class TrainingForm(QWidget):
    settingEdited = Signal(str, object)  # a TrainingSettings field and its new value
    frameworkChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingForm")
        self.base_dir: Path | None = None  # data files under it are stored relative to it
        self._loading = False
        self._datasets_listed = False
        self._dataset = "digits"
        self.dataset = QComboBox(objectName="datasetCombo")
        self.framework = QComboBox(objectName="frameworkCombo")
        for key, title in FRAMEWORK_CHOICES.items():
            self.framework.addItem(title, key)
        self.framework.setToolTip("Both trains Keras and PyTorch at once from the same initial weights")
        self.device = DeviceCombo()
        self.epochs = self._spin("epochsSpin", 1, 100_000)
        self.batch_size = self._spin("batchSizeSpin", 1, 65_536)
        self.learning_rate = LogSpinBox()
        self.learning_rate.setObjectName("learningRateSpin")
        self.optimizer = self._combo("optimizerCombo", {name: name for name in OPTIMIZERS})
        self.loss = self._combo("lossCombo", {name: LOSS_TITLES.get(name, name) for name in LOSSES})
        self.target = self._combo("targetCombo", TARGET_TITLES)
        self.validation_split = QDoubleSpinBox(objectName="validationSplitSpin")
        self.validation_split.setRange(0.0, 0.9)
        self.validation_split.setSingleStep(0.05)
        self.validation_split.setDecimals(2)
        self.validation_split.setKeyboardTracking(False)
        self.seed = self._spin("seedSpin", 0, 2**31 - 1)
        self.lr_schedule = self._combo("lrScheduleCombo", {name: name for name in LR_SCHEDULES})
        self.lr_step_epochs = self._spin("lrStepEpochsSpin", 1, 100_000)
        self.lr_step_epochs.setSuffix(" ep")
        self.lr_gamma = QDoubleSpinBox(objectName="lrGammaSpin", decimals=3, minimum=0.001, maximum=1.0)
        self.lr_gamma.setSingleStep(0.05)
        self.lr_warmup_epochs = QDoubleSpinBox(
            objectName="lrWarmupSpin", decimals=2, minimum=0.0, maximum=1e5
        )
        self.lr_warmup_epochs.setSuffix(" ep")
        self.lr_min = LogSpinBox()
        self.lr_min.setObjectName("lrMinSpin")
        self.lr_min.setRange(0.0, 9.99)
        self.lr_min.setSpecialValueText("0")
        self.precision = self._combo("precisionCombo", PRECISION_TITLES)
        self.tensorboard = QCheckBox("TensorBoard", objectName="tensorboardCheck")
        self.tensorboard.setToolTip("Write TensorBoard event files into the run folder (RUN_DIR/tensorboard)")
        for spin in (self.lr_gamma, self.lr_warmup_epochs):
            spin.setKeyboardTracking(False)
        for index, name in enumerate(LR_SCHEDULES):
            self.lr_schedule.setItemData(index, SCHEDULE_TIPS[name], Qt.ItemDataRole.ToolTipRole)
        for index, name in enumerate(PRECISION_TITLES):
            self.precision.setItemData(index, PRECISION_TIPS[name], Qt.ItemDataRole.ToolTipRole)
        self.patience = self._spin("patienceSpin", 0, 10_000)
        self.patience.setSpecialValueText("off")
        self.patience.setToolTip("Stop when the validation loss has not improved for this many epochs")
        self.target.setToolTip(
            "labels: learn the dataset's targets; inputs: reproduce the input (autoencoder)"
        )
        for index, name in enumerate(LOSSES):
            self.loss.setItemData(index, LOSS_TIPS.get(name, name), Qt.ItemDataRole.ToolTipRole)
        self._layout()
        self._connect()
        self._enable_schedule_fields()
        self.dataset.addItem("digits", "digits")

    @staticmethod
    def _spin(name: str, low: int, high: int) -> QSpinBox:
        spin = QSpinBox(objectName=name)
        spin.setRange(low, high)
        spin.setKeyboardTracking(False)
        spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.UpDownArrows)
        return spin

    @staticmethod
    def _combo(name: str, items: dict[str, str]) -> QComboBox:
        combo = QComboBox(objectName=name)
        for key, title in items.items():
            combo.addItem(title, key)
        return combo

    def _layout(self) -> None:
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        rows = [
            [("Dataset", self.dataset, 5)],
            [("Framework", self.framework, 1), ("Device", self.device, 3)],
            [
                ("Epochs", self.epochs, 1),
                ("Batch size", self.batch_size, 1),
                ("Learning rate", self.learning_rate, 1),
            ],
            [("Optimizer", self.optimizer, 1), ("Loss", self.loss, 1), ("Learn", self.target, 1)],
            [
                ("Validation", self.validation_split, 1),
                ("Seed", self.seed, 1),
                ("Early stop", self.patience, 1),
            ],
            [
                ("LR schedule", self.lr_schedule, 1),
                ("Step", self.lr_step_epochs, 1),
                ("Gamma", self.lr_gamma, 1),
            ],
            [
                ("Warm-up", self.lr_warmup_epochs, 1),
                ("Min LR", self.lr_min, 1),
                ("Precision", self.precision, 1),
            ],
        ]
        for row, cells in enumerate(rows):
            column = 0
            for title, widget, span in cells:
                widget.setMinimumWidth(FIELD_MIN_WIDTH)
                widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
                if isinstance(widget, QComboBox):
                    widget.setSizeAdjustPolicy(
                        QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
                    )
                    widget.setMinimumContentsLength(4)
                label = QLabel(title)
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                label.setBuddy(widget)
                grid.addWidget(label, row, column)
                grid.addWidget(widget, row, column + 1, 1, span)
                column += 1 + span
        for column in (1, 3, 5):
            grid.setColumnStretch(column, 1)
        self.validation_split.setToolTip("Part of the data held out to measure validation loss and accuracy")
        self.learning_rate.setToolTip("Learning rate; the arrows step 1, 2, 5, 10…")
        self.lr_step_epochs.setToolTip("step schedule: epochs between two decays")
        self.lr_gamma.setToolTip("step schedule: the factor of each decay")
        self.lr_warmup_epochs.setToolTip("warmup-cosine: epochs of linear warm-up")
        self.lr_min.setToolTip("cosine, onecycle, warmup-cosine: the learning rate at the end of the run")

    def _connect(self) -> None:
        self.dataset.activated.connect(self._on_dataset_activated)
        self.framework.currentIndexChanged.connect(
            lambda: self.frameworkChanged.emit(self.framework_choice())
        )
        for name in ("epochs", "batch_size", "seed", "lr_step_epochs"):
            getattr(self, name).valueChanged.connect(lambda value, n=name: self._edited(n, int(value)))
        for name in ("lr_gamma", "lr_warmup_epochs", "lr_min"):
            getattr(self, name).valueChanged.connect(
                lambda value, n=name: self._edited(n, float(f"{value:.6g}"))
            )
        self.learning_rate.valueChanged.connect(
            lambda value: self._edited("learning_rate", float(f"{value:.6g}"))
        )
        self.validation_split.valueChanged.connect(
            lambda value: self._edited("validation_split", round(value, 4))
        )
        for name in ("optimizer", "loss", "target", "lr_schedule", "precision"):
            combo: QComboBox = getattr(self, name)
            combo.activated.connect(lambda index, n=name, c=combo: self._edited(n, c.itemData(index)))
        self.lr_schedule.currentIndexChanged.connect(self._enable_schedule_fields)

    def _enable_schedule_fields(self) -> None:
        """Only the fields the chosen schedule reads are editable."""
        schedule = self.lr_schedule.currentData()
        self.lr_step_epochs.setEnabled(schedule == "step")
        self.lr_gamma.setEnabled(schedule == "step")
        self.lr_warmup_epochs.setEnabled(schedule == "warmup-cosine")
        self.lr_min.setEnabled(schedule in ANNEALING)

    def _edited(self, name: str, value) -> None:
        if not self._loading:
            self.settingEdited.emit(name, value)

    # ----- datasets ------------------------------------------------------------------

    def list_datasets(self) -> None:
        """Fill the dataset list (imports studio.datasets, so it waits until the panel is first shown)."""
        if self._datasets_listed:
            return
        from studio.datasets import list_builtin, list_downloadable

        self._datasets_listed = True
        self._loading = True
        try:
            self.dataset.clear()
            for name, description in list_builtin().items():
                self.dataset.addItem(name, name)
                self.dataset.setItemData(self.dataset.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
            self.dataset.insertSeparator(self.dataset.count())
            for name, description in list_downloadable().items():
                size = description.rpartition("(")[2].rstrip(")") if "download" in description else ""
                self.dataset.addItem(f"{name}  ({size})" if size else name, name)
                self.dataset.setItemData(self.dataset.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
            self.dataset.insertSeparator(self.dataset.count())
            self.dataset.addItem("File… (CSV, NPZ, IDX)", CHOOSE_FILE)
            self.dataset.addItem("Folder… (images by class, or MNIST IDX files)", CHOOSE_FOLDER)
            self._select_dataset(self._dataset)
        finally:
            self._loading = False

    def _select_dataset(self, spec: str) -> None:
        if not self._datasets_listed:
            self.dataset.clear()
        index = self.dataset.findData(spec)
        if index < 0:
            index = self.dataset.count() - 2 if self._datasets_listed else 0
            self.dataset.insertItem(index, _path_title(spec), spec)
            self.dataset.setItemData(index, spec, Qt.ItemDataRole.ToolTipRole)
        self.dataset.setCurrentIndex(index)

    def _on_dataset_activated(self, index: int) -> None:
        data = self.dataset.itemData(index)
        if data in (CHOOSE_FILE, CHOOSE_FOLDER):
            chosen = self.choose_data_path(folder=data == CHOOSE_FOLDER)
            if chosen is None:
                self._select_dataset(self._dataset)
                return
            data = chosen
        self.set_dataset(str(data), edited=True)

    def choose_data_path(self, folder: bool) -> str | None:
        start = str(self.base_dir or Path.home())
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Choose a data folder", start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a data file", start, DATA_FILE_FILTER)
        if not path:
            return None
        return self._relative(Path(path))

    def _relative(self, path: Path) -> str:
        """A path under the project's folder is stored relative to it (the project can move)."""
        if self.base_dir is not None and path.is_relative_to(self.base_dir):
            return path.relative_to(self.base_dir).as_posix()
        return str(path)

    def set_dataset(self, spec: str, edited: bool = False) -> None:
        self._dataset = spec
        self._loading = True
        try:
            self._select_dataset(spec)
        finally:
            self._loading = False
        if edited:
            self._edited("dataset", spec)

    # ----- reading and writing -------------------------------------------------------

    def load(self, settings: TrainingSettings) -> None:
        """Show the project's settings (no settingEdited signals)."""
        self._loading = True
        try:
            self.set_dataset(settings.dataset)
            self._loading = True
            self.epochs.setValue(settings.epochs)
            self.batch_size.setValue(settings.batch_size)
            self.learning_rate.setValue(settings.learning_rate)
            self.validation_split.setValue(settings.validation_split)
            self.seed.setValue(settings.seed)
            self.lr_step_epochs.setValue(settings.lr_step_epochs)
            self.lr_gamma.setValue(settings.lr_gamma)
            self.lr_warmup_epochs.setValue(settings.lr_warmup_epochs)
            self.lr_min.setValue(settings.lr_min)
            for name in ("optimizer", "loss", "target", "lr_schedule", "precision"):
                combo: QComboBox = getattr(self, name)
                combo.setCurrentIndex(max(0, combo.findData(getattr(settings, name))))
        finally:
            self._loading = False

    def framework_choice(self) -> str:
        return str(self.framework.currentData())

    def set_framework(self, framework: str) -> None:
        self.framework.setCurrentIndex(max(0, self.framework.findData(framework)))

    def run_options(self) -> dict:
        """The RunConfig overrides that are not project settings."""
        return {
            "device": self.device.device(),
            "early_stopping_patience": int(self.patience.value()),
            "tensorboard": self.tensorboard.isChecked(),
        }


def _path_title(spec: str) -> str:
    """``table.csv — /data/tables`` for a path (the full path is the tooltip); a name as it is."""
    path = Path(spec)
    if path.name and path.name != spec:
        return f"{path.name}  —  {path.parent}"
    return spec
