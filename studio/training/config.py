"""What one training run does: :class:`RunConfig`, built from a project's TrainingSettings plus overrides.

The config travels to the training process as JSON and is written to the run
folder as ``config.json``, so a run can always be told, and repeated, from
its folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from studio.project import (
    FRAMEWORKS,
    Project,
    ProjectError,
    TrainingSettings,
    load_project,
    project_to_dict,
)

DEVICE_WORDS = ("auto", "cpu", "gpu", "cuda", "mps")

# The fields that TrainingSettings also has; they default to the project's values.
SETTINGS_FIELDS = tuple(f.name for f in fields(TrainingSettings))


class ConfigError(ValueError):
    """A run configuration is invalid. The message names the field and the value received."""


@dataclass
class RunConfig:
    """One training run. ``project`` is a project file path or the project's JSON dict.

    ``out_dir`` is the run folder itself; when it is None the run gets
    ``<runs_root>/<project-name>-<framework>-<timestamp>/`` (a resumed run
    goes on in the folder it resumes). ``same_start`` makes a PyTorch run
    start from the weights Keras initialises from ``seed`` (converted with
    codegen.weights), as ``compare`` and side-by-side runs do; otherwise a
    PyTorch run uses PyTorch's own initialisation after ``torch.manual_seed(seed)``.
    """

    project: str | dict[str, Any]
    framework: str = "keras"
    dataset: str = "digits"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    validation_split: float = 0.2
    seed: int = 0
    target: str = "labels"
    init: str = "framework"
    lr_schedule: str = "constant"
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    lr_warmup_epochs: float = 1.0
    lr_min: float = 0.0
    precision: str = "fp32"
    device: str = "auto"
    early_stopping_patience: int = 0
    resume_from: str | None = None
    out_dir: str | None = None
    runs_root: str = "runs"
    same_start: bool = False
    export_onnx: bool = True
    threads: int = 0  # compute threads (intra- and inter-op) of the framework; 0: its own default
    benchmark: bool = False  # after training, also measure inference latency (studio compare)
    tensorboard: bool = False  # write TensorBoard event files into RUN_DIR/tensorboard
    base_dir: str | None = None  # relative dataset paths are taken from here (default: the project's folder)

    @classmethod
    def from_project(
        cls, project: str | os.PathLike | dict[str, Any] | Project, framework: str = "keras", **overrides: Any
    ) -> RunConfig:
        """The project's own TrainingSettings, with ``overrides`` (None values are ignored) on top.

        Raises ProjectError when the project cannot be read, ConfigError when a setting is invalid.
        """
        source, settings, base_dir = _read_project(project)
        values = {name: getattr(settings, name) for name in SETTINGS_FIELDS}
        values.update({key: value for key, value in overrides.items() if value is not None})
        values.setdefault("base_dir", base_dir)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown run setting {unknown[0]!r}")
        config = cls(project=source, framework=framework, **values)
        config.check()
        return config

    def settings(self) -> TrainingSettings:
        return TrainingSettings(**{name: getattr(self, name) for name in SETTINGS_FIELDS})

    def check(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        try:
            self.settings().check("config")
        except ProjectError as error:
            raise ConfigError(str(error)) from None
        if self.framework not in FRAMEWORKS:
            raise ConfigError(
                f"config.framework: expected one of {', '.join(FRAMEWORKS)}. Received: {self.framework!r}"
            )
        if not is_device_name(self.device):
            raise ConfigError(
                "config.device: expected auto, cpu, gpu, cuda, cuda:N, gpu:N or mps. "
                f"Received: {self.device!r}"
            )
        patience = self.early_stopping_patience
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise ConfigError(
                f"config.early_stopping_patience: expected an integer >= 0 (0 = off). Received: {patience!r}"
            )
        threads = self.threads
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ConfigError(
                f"config.threads: expected an integer >= 0 (0 = the framework's default). Received: {threads!r}"
            )
        if not isinstance(self.tensorboard, bool):
            raise ConfigError(f"config.tensorboard: expected true or false. Received: {self.tensorboard!r}")
        if not isinstance(self.project, (str, dict)):
            raise ConfigError(
                f"config.project: expected a project file path or a project dict. Received: {self.project!r}"
            )

    @property
    def classification(self) -> bool:
        """Whether accuracy is measured (class labels with a cross-entropy loss)."""
        return self.target == "labels" and self.loss in ("cross_entropy", "binary_cross_entropy")

    def project_name(self) -> str:
        if isinstance(self.project, dict):
            return str(self.project.get("name") or "untitled")
        try:
            return load_project(self.project).name
        except ProjectError:
            return Path(self.project).name.split(".")[0] or "untitled"

    def with_changes(self, **changes: Any) -> RunConfig:
        config = replace(self, **changes)
        config.check()
        return config

    # ----- JSON -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a JSON object. Received: {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown run setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        if "project" not in data:
            raise ConfigError('a run config needs "project"')
        config = cls(**data)
        config.check()
        return config

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"run config is not valid JSON: {error.msg} at line {error.lineno}") from None
        return cls.from_dict(data)


def is_device_name(device: Any) -> bool:
    if not isinstance(device, str):
        return False
    if device in DEVICE_WORDS:
        return True
    kind, _, index = device.partition(":")
    return kind in ("cuda", "gpu") and index.isdigit()


def _read_project(
    project: str | os.PathLike | dict[str, Any] | Project,
) -> tuple[str | dict[str, Any], TrainingSettings, str | None]:
    """(what the config stores, the project's settings, the folder for relative dataset paths)."""
    if isinstance(project, Project):
        return project_to_dict(project), project.training, None
    if isinstance(project, dict):
        settings = TrainingSettings.from_dict(project.get("training", {}), "training")
        return project, settings, None
    training = load_project(project).training  # errors name the file as the user gave it
    path = Path(project).resolve()
    return str(path), training, str(path.parent)
