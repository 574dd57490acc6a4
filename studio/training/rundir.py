"""The run folder: where a run keeps its config, metrics, generated code, weights and ONNX model.

    runs/mlp-on-iris-keras-20260518-204501/
        config.json        the RunConfig
        metrics.jsonl      every message, one JSON object a line, flushed per line
        output.log         what the training process printed (framework warnings)
        mlp_on_iris_keras.py  the generated program that was trained
        checkpoint.npz | checkpoint.pt   resume state of the last whole epoch (written on a
                                         background thread, at most once a second)
        final.keras, best.keras | final.pt, best.pt   native weights
        model.onnx         exported from the PyTorch model
        initial_weights.npz  PyTorch runs with same_start: the Keras initial weights, converted
        confusion_matrix.json  classification runs: the validation set's confusion matrix and
                               per-class precision, recall and F1 (final weights)
        tensorboard/       runs with tensorboard: event files, the same tags in both frameworks

Files that a partial write would make misleading are written to a temporary
name in the same folder and renamed.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.files import DATA_LIMIT, check_regular_file, limit
from studio.project import write_text_atomic
from studio.training.config import ConfigError, RunConfig

CONFIG, METRICS, LOG, ONNX = "config.json", "metrics.jsonl", "output.log", "model.onnx"
CONFUSION, TENSORBOARD = "confusion_matrix.json", "tensorboard"
CHECKPOINTS = {"keras": "checkpoint.npz", "pytorch": "checkpoint.pt"}
WEIGHT_SUFFIX = {"keras": ".keras", "pytorch": ".pt"}


LOCK = ".run.lock"


class RunFolder:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock: Any = None  # the open lock file while this process trains into the folder

    def lock(self) -> None:
        """Take the folder's lock (an flock on ``.run.lock``, freed when this process ends even
        if it is killed); ConfigError naming the process that holds it."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the check for an existing run still applies
            return
        handle = open(self.path / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held while the run lasts
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                f"{self.path} is in use by another training run (process {holder}); wait for it to end, "
                "or choose another folder with --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file frees the flock
            self._lock = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def confusion(self) -> Path:
        return self.path / CONFUSION

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def onnx(self) -> Path:
        return self.path / ONNX

    def weights(self, kind: str, framework: str) -> Path:
        """``final.keras``, ``best.pt``, ...: kind is "final" or "best"."""
        return self.path / f"{kind}{WEIGHT_SUFFIX[framework]}"

    def checkpoint(self, framework: str) -> Path:
        return self.path / CHECKPOINTS[framework]

    def read_config(self) -> RunConfig:
        return RunConfig.from_json(self.config.read_text(encoding="utf-8"))


def prepare_run(config: RunConfig, now: float | None = None) -> tuple[RunConfig, RunFolder]:
    """Pick and create the run folder, write config.json, and return the config with absolute paths."""
    changes: dict[str, str | None] = {}
    if isinstance(config.project, str):
        changes["project"] = str(Path(config.project).resolve())
    if config.base_dir is not None:
        changes["base_dir"] = str(Path(config.base_dir).resolve())
    if config.resume_from is not None:
        folder = resume_folder(config.resume_from, config.framework)
        changes["resume_from"] = str(folder.path)
        path = Path(config.out_dir).resolve() if config.out_dir else folder.path
    elif config.out_dir is not None:
        path = Path(config.out_dir).resolve()
    else:
        path = _new_folder_name(Path(config.runs_root).resolve(), config, now)
    changes["out_dir"] = str(path)
    config = config.with_changes(**changes)
    folder = RunFolder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        folder.lock()  # before looking for an earlier run: two runs starting at once cannot both pass
        if config.resume_from is None and ((path / METRICS).exists() or (path / CONFIG).exists()):
            folder.unlock()
            raise ConfigError(
                f"{path} already holds a training run; choose another folder, or resume that run"
            )
        write_text_atomic(path / CONFIG, config.to_json())
    except OSError as error:
        folder.unlock()
        raise ConfigError(f"cannot create the run folder {path}: {error.strerror}") from None
    return config, folder


def resume_folder(resume_from: str | os.PathLike, framework: str) -> RunFolder:
    """The run folder of ``resume_from`` (a run folder or its checkpoint file), checked for a checkpoint."""
    path = Path(resume_from).resolve()
    if not path.exists():
        raise ConfigError(f"cannot resume from {path}: no such file or folder")
    folder = RunFolder(path if path.is_dir() else path.parent)
    if path.is_file() and path.name not in CHECKPOINTS.values():
        raise ConfigError(
            f"cannot resume from {path.name}: pass a run folder or its checkpoint file "
            f"({' or '.join(CHECKPOINTS.values())})"
        )
    checkpoint = folder.checkpoint(framework)
    if checkpoint.exists() or checkpoint.is_symlink():
        try:
            check_regular_file(checkpoint, limit(DATA_LIMIT))  # a FIFO would block the reader
        except OSError as error:
            raise ConfigError(f"cannot resume from {checkpoint}: {error.strerror}") from None
    if not checkpoint.exists():
        other = next((fw for fw in CHECKPOINTS if fw != framework and folder.checkpoint(fw).exists()), None)
        hint = f"; it holds a {other} checkpoint: resume it with --framework {other}" if other else ""
        raise ConfigError(
            f"cannot resume from {folder.path}: it has no {framework} checkpoint "
            f"({CHECKPOINTS[framework]}){hint}"
        )
    return folder


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


def _new_folder_name(root: Path, config: RunConfig, now: float | None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = f"{slug(config.project_name())}-{config.framework}-{stamp}"
    path, counter = root / base, 1
    while path.exists():
        counter += 1
        path = root / f"{base}-{counter}"
    return path


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) that becomes ``path`` when the block succeeds."""
    temp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def trained_weights(path: str | os.PathLike) -> tuple[Path, str]:
    """(the weights file, what it is) of the run folder ``path``: the final weights of a finished
    run, else the resume checkpoint of one that was stopped. ConfigError when there are none."""
    folder = RunFolder(path)
    if not folder.path.is_dir():
        problem = "no such folder" if not folder.path.exists() else "not a folder"
        raise ConfigError(
            f"{folder.path}: {problem}; --run takes a run folder (runs/<project>-<framework>-<time>)"
        )
    frameworks = list(WEIGHT_SUFFIX)
    try:
        frameworks.sort(key=lambda name: name != folder.read_config().framework)
    except (OSError, ValueError, ConfigError):
        pass  # no readable config.json: whichever weights the folder holds
    for framework in frameworks:
        final = folder.weights("final", framework)
        if final.is_file():
            return final, f"the final {framework} weights of the run"
    for framework in frameworks:
        checkpoint = folder.checkpoint(framework)
        if checkpoint.is_file():
            return checkpoint, f"the last {framework} checkpoint of the run (it did not finish)"
    expected = ", ".join([*(f"final{suffix}" for suffix in WEIGHT_SUFFIX.values()), *CHECKPOINTS.values()])
    raise ConfigError(f"{folder.path} holds no trained weights ({expected})")
