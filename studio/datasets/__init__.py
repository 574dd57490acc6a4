"""Datasets for training: built-in sets, user files, and keras.datasets downloads.

:func:`load_dataset` takes what ``TrainingSettings.dataset`` holds, a name or
a path, and returns a :class:`Dataset` split into training and validation
parts with a seeded shuffle: float32 channels-last inputs (images in [0, 1],
tables standardised with training-split statistics) and int64 class indices
or float32 regression targets. :func:`fit_to_model` then checks it against
the model's input and output before any training starts, and
:func:`epoch_order` gives both frameworks the same batch order.

Nothing here imports torch, TensorFlow or Keras at module level; sklearn and
PIL are imported by the loaders that need them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from studio.datasets import builtin, downloads, images, tables
from studio.datasets.builtin import make_smooth_regression, make_spirals
from studio.datasets.core import (
    TASKS,
    Dataset,
    DatasetError,
    assemble,
    batch_indices,
    batches,
    epoch_order,
    num_batches,
    split_indices,
)
from studio.datasets.fitting import LOSSES, fit_to_model, is_trivial_reshape
from studio.datasets.images import IMAGE_SUFFIXES, read_idx

__all__ = [
    "LOSSES",
    "TASKS",
    "Dataset",
    "DatasetError",
    "IMAGE_SUFFIXES",
    "batch_indices",
    "batches",
    "epoch_order",
    "fit_to_model",
    "is_trivial_reshape",
    "list_builtin",
    "list_downloadable",
    "load_csv",
    "load_dataset",
    "load_for_training",
    "load_idx",
    "load_image_folder",
    "load_npz",
    "make_smooth_regression",
    "make_spirals",
    "num_batches",
    "read_idx",
    "split_indices",
]

PathLike = str | os.PathLike


def list_builtin() -> dict[str, str]:
    """Built-in dataset names -> one-line descriptions; all load offline."""
    return dict(builtin.DESCRIPTIONS)


def list_downloadable() -> dict[str, str]:
    """keras.datasets names -> one-line descriptions; these need the network the first time."""
    return dict(downloads.DESCRIPTIONS)


def load_dataset(
    spec: PathLike,
    *,
    validation_split: float = 0.2,
    seed: int = 0,
    target: str | None = None,
    task: str | None = None,
    image_size: tuple[int, int] | None = None,
    normalize: bool = True,
    base_dir: PathLike | None = None,
) -> Dataset:
    """A built-in name, a keras.datasets name, or a path (relative paths are taken from ``base_dir``).

    Paths: ``.csv``/``.tsv`` tables, ``.npz`` archives, IDX files, a folder of
    IDX files (MNIST layout) or a folder with one sub-folder of images per
    class. ``target`` picks the CSV target column and ``task`` forces
    "classification" or "regression" for CSV and NPZ targets. Datasets that
    come split (keras.datasets, NPZ with x_train/x_val, IDX with t10k files)
    keep their split and ignore ``validation_split``. The result is the same
    for the same arguments.
    """
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"expected a dataset name or path. Received: {spec!r}")
    split_indices(0, validation_split, seed)  # check the arguments before reading anything
    options = {"validation_split": validation_split, "seed": seed, "normalize": normalize}
    if isinstance(spec, str) and (text in builtin.DESCRIPTIONS or text in downloads.DESCRIPTIONS):
        if target is not None:
            raise DatasetError(f"target={target!r} picks a CSV column, but {text!r} is a built-in dataset")
        if text in builtin.DESCRIPTIONS:
            return assemble(text, builtin.load_builtin(text, seed), source="built-in", **options)
        return assemble(text, downloads.load_keras(text), source="keras.datasets", **options)
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "~name" of a user that does not exist, or no home folder
        user = text.split("/", 1)[0]
        raise DatasetError(f"{text}: there is no user {user[1:]!r}, so {user} names no home folder") from None
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.exists():
        raise DatasetError(
            f"unknown dataset {text!r}: not a built-in dataset ({', '.join(builtin.DESCRIPTIONS)}), "
            f"a Keras dataset ({', '.join(downloads.DESCRIPTIONS)}), or an existing file or folder"
        )
    return _load_path(path, target=target, task=task, image_size=image_size, **options)


def load_for_training(settings: Any, base_dir: PathLike | None = None) -> Dataset:
    """The dataset of a project's ``TrainingSettings`` (dataset, validation_split, seed)."""
    return load_dataset(
        settings.dataset, validation_split=settings.validation_split, seed=settings.seed, base_dir=base_dir
    )


def load_csv(
    path: PathLike,
    target: str | None = None,
    *,
    task: str | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
    normalize: bool = True,
) -> Dataset:
    """A CSV table with a header row; ``target`` names the target column (default: the last).

    Features must be numbers. A target of strings, or of at most 32 distinct
    whole numbers, gives classes (names sorted, numerically for numbers);
    otherwise it is a regression target. ``task`` overrides that choice.
    """
    path = Path(path)
    samples = tables.read_csv(path, target=target, task=task)
    return assemble(
        path.name,
        samples,
        validation_split=validation_split,
        seed=seed,
        normalize=normalize,
        source=str(path),
    )


def load_npz(
    path: PathLike,
    *,
    task: str | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
    normalize: bool = True,
) -> Dataset:
    """Arrays ``x``, ``y`` (or ``x_train``, ``y_train``, ``x_val``/``x_test``, ``y_val``/``y_test``), never unpickled.

    uint8 ``x`` is scaled to [0, 1]; other integer ``x`` becomes int32 token
    ids; 2-D float ``x`` is standardised; other float ``x`` is kept. Integer
    or string ``y`` (or one-hot rows) gives classes, float ``y`` regression.
    """
    path = Path(path)
    samples = tables.read_npz(path, task=task)
    return assemble(
        path.name,
        samples,
        validation_split=validation_split,
        seed=seed,
        normalize=normalize,
        source=str(path),
    )


def load_image_folder(
    folder: PathLike,
    *,
    image_size: tuple[int, int] | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """``folder/<class name>/<image>``: grey or RGB images resized to ``image_size`` (height, width)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder.name}: not a folder")
    samples = images.read_image_folder(folder, image_size)
    return assemble(folder.name, samples, validation_split=validation_split, seed=seed, source=str(folder))


def load_idx(
    images_path: PathLike,
    labels_path: PathLike,
    *,
    val_images_path: PathLike | None = None,
    val_labels_path: PathLike | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """MNIST-format IDX images and labels (plain or .gz); uint8 images are scaled to [0, 1]."""
    images_path, labels_path = Path(images_path), Path(labels_path)
    val = [Path(p) if p is not None else None for p in (val_images_path, val_labels_path)]
    samples = images.read_idx_pair(images_path, labels_path, *val)
    name = images_path.parent.name or images_path.name
    return assemble(name, samples, validation_split=validation_split, seed=seed, source=str(images_path))


def _load_path(
    path: Path,
    *,
    target: str | None,
    task: str | None,
    image_size: tuple[int, int] | None,
    validation_split: float,
    seed: int,
    normalize: bool,
) -> Dataset:
    split = {"validation_split": validation_split, "seed": seed}
    suffix = path.suffix.lower()
    if target is not None and not (path.is_file() and suffix in (".csv", ".tsv", ".txt")):
        raise DatasetError(f"target={target!r} picks a CSV column, but {path.name!r} is not a CSV file")
    if path.is_dir():
        return _load_folder(path, image_size=image_size, **split)
    if suffix in (".csv", ".tsv", ".txt"):
        return load_csv(path, target, task=task, normalize=normalize, **split)
    if suffix == ".npz":
        return load_npz(path, task=task, normalize=normalize, **split)
    if suffix == ".npy":
        raise DatasetError(
            f"{path.name}: a single .npy array has no labels; save inputs and labels together "
            "with np.savez(path, x=x, y=y)"
        )
    partner = _idx_labels_for(path)
    if partner is not None:
        return load_idx(path, partner, **split)
    raise DatasetError(
        f"{path.name}: unsupported file type {suffix or '(no suffix)'!r}; expected a .csv, "
        ".tsv or .npz file, an IDX images file next to its labels file, or a folder"
    )


def _load_folder(
    folder: Path, *, image_size: tuple[int, int] | None, validation_split: float, seed: int
) -> Dataset:
    found = images.find_idx_files(folder)
    if "train_images" in found or "train_labels" in found:
        for key, other in (("train_images", "train_labels"), ("train_labels", "train_images")):
            if key not in found:
                raise DatasetError(
                    f"{folder.name}/: has {found[other].name} but no {images.IDX_NAMES[key]} (optionally .gz)"
                )
        test = (found.get("test_images"), found.get("test_labels")) if len(found) == 4 else (None, None)
        return load_idx(
            found["train_images"],
            found["train_labels"],
            val_images_path=test[0],
            val_labels_path=test[1],
            validation_split=validation_split,
            seed=seed,
        )
    if images.is_image_folder(folder):
        return load_image_folder(folder, image_size=image_size, validation_split=validation_split, seed=seed)
    raise DatasetError(
        f"{folder.name}/: neither an image folder (one sub-folder of images per class) nor an "
        "MNIST-style folder (train-images-idx3-ubyte and train-labels-idx1-ubyte)"
    )


def _idx_labels_for(path: Path) -> Path | None:
    """The labels file next to an IDX images file: ``*images-idx3-ubyte`` -> ``*labels-idx1-ubyte``."""
    stem = path.name.lower().removesuffix(".gz").replace(".", "-")
    if not stem.endswith("images-idx3-ubyte"):
        return None
    wanted = stem.removesuffix("images-idx3-ubyte") + "labels-idx1-ubyte"
    for sibling in sorted(path.parent.iterdir()):
        if sibling.is_file() and sibling.name.lower().removesuffix(".gz").replace(".", "-") == wanted:
            return sibling
    raise DatasetError(f"{path.name}: no labels file {wanted} (optionally .gz) next to it")
