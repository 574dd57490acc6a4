"""The dataset model, the seeded split and the shared batch order.

Every loader produces :class:`Samples` (all the data, or a split it came
with) and :func:`assemble` turns them into a :class:`Dataset`: a seeded
train/validation split, then normalisation with training-split statistics.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TASKS = ("classification", "binary", "regression")

# The most classes a dataset may have: labels are class indices, and one class name is
# made per index, so a stray huge label must not make millions of them.
MAX_CLASSES = 100_000

# Added to the seed of the per-epoch order, so that the batch order is not the
# same permutation as the train/validation split.
_EPOCH_STREAM = 0x5EED


class DatasetError(Exception):
    """A dataset cannot be loaded or does not fit the model. The message names the file and the problem."""


@dataclass
class Dataset:
    """Training and validation arrays, ready for either framework.

    ``x`` is float32 and channels-last (images in [0, 1]), or int32 token ids.
    ``y`` holds int64 class indices for "classification" and "binary", float32
    values for "regression"; its shape is ``(n,)`` or ``(n, *target_shape)``.
    (After :func:`fit_to_model` for binary_cross_entropy, mse or mae, the
    class targets of a classification set are float32: 0/1 or one-hot.)
    ``normalization`` records how ``x`` was scaled (JSON-compatible), so that
    the same transform can be applied at inference time.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: str
    num_classes: int | None = None
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    normalization: dict[str, Any] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)  # what fitting did to the data, said to the user

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r}"
        if self.task not in TASKS:
            raise DatasetError(
                f"{where}: task must be one of {', '.join(TASKS)}. Received: task={self.task!r}"
            )
        for part in ("train", "val"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if len(x) != len(y):
                raise DatasetError(f"{where}: x_{part} has {len(x)} samples but y_{part} has {len(y)}")
            if x.dtype not in (np.float32, np.int32):
                raise DatasetError(f"{where}: x_{part} must be float32 or int32. Received: {x.dtype}")
            wanted = ("float32",) if self.task == "regression" else ("int64", "float32")
            if y.dtype.name not in wanted:
                raise DatasetError(
                    f"{where}: y_{part} of a {self.task} task must be {' or '.join(wanted)}. "
                    f"Received: {y.dtype}"
                )
        if self.x_train.shape[1:] != self.x_val.shape[1:] or self.y_train.shape[1:] != self.y_val.shape[1:]:
            raise DatasetError(
                f"{where}: training samples {self.x_train.shape[1:]} -> {self.y_train.shape[1:]} "
                f"differ from validation samples {self.x_val.shape[1:]} -> {self.y_val.shape[1:]}"
            )
        if self.task == "regression":
            if self.num_classes is not None:
                raise DatasetError(
                    f"{where}: a regression task has no classes. Received: num_classes={self.num_classes}"
                )
        elif self.num_classes is None or self.num_classes < 2:
            raise DatasetError(
                f"{where}: a {self.task} task needs num_classes >= 2. Received: {self.num_classes}"
            )
        elif (self.task == "binary") != (self.num_classes == 2):
            raise DatasetError(f"{where}: task {self.task!r} does not match num_classes={self.num_classes}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise DatasetError(f"{where}: {len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, without the batch dimension (channels-last)."""
        return tuple(int(dim) for dim in self.x_train.shape[1:])

    @property
    def target_shape(self) -> tuple[int, ...]:
        """The shape of one target, without the batch dimension: ``()`` for one label or value."""
        return tuple(int(dim) for dim in self.y_train.shape[1:])

    @property
    def input_dtype(self) -> str:
        return str(self.x_train.dtype)

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    @property
    def num_val(self) -> int:
        return len(self.x_val)

    def describe(self) -> str:
        """One line, e.g. ``digits: 1438 training + 359 validation samples of shape (8, 8, 1) float32, 10 classes``."""
        if self.task == "regression":
            size = math.prod(self.target_shape)
            targets = f"regression on {size} value{'s' if size != 1 else ''} per sample"
        else:
            targets = f"{self.num_classes} classes"
            if self.class_names and len(self.class_names) <= 4:
                targets += " (" + ", ".join(self.class_names) + ")"
        return (
            f"{self.name}: {self.num_train} training + {self.num_val} validation samples of shape "
            f"{self.input_shape} {self.input_dtype}, {targets}"
        )


@dataclass
class Samples:
    """What a loader read, before the split. ``kind`` picks the normalisation.

    kind: "tabular" (standardised with training statistics), "scaled" (already
    in [0, 1], e.g. images) or "raw" (left alone: token ids, prepared arrays).
    """

    x: np.ndarray
    y: np.ndarray
    task: str
    num_classes: int | None = None
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    kind: str = "raw"
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    scale: float | None = None  # the factor applied to reach [0, 1], for "scaled"


def split_indices(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of ``range(n)`` cut into (train, validation) indices.

    The validation part has ``round(n * validation_split)`` samples, at least
    one when the split is positive and n >= 2, and never all of them.
    """
    if isinstance(validation_split, bool) or not 0 <= validation_split < 1:
        raise DatasetError(f"validation_split must be a number in [0, 1). Received: {validation_split!r}")
    _check_seed(seed)
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * validation_split)
    if validation_split > 0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(n - 1, 0))
    return order[n_val:], order[:n_val]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which to visit ``n`` training samples in ``epoch``: the same in Keras and PyTorch."""
    _check_seed(seed)
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise DatasetError(f"epoch must be a non-negative integer. Received: {epoch!r}")
    return np.random.default_rng([int(seed), int(epoch), _EPOCH_STREAM]).permutation(n)


def batch_indices(
    n: int, batch_size: int, seed: int, epoch: int, *, shuffle: bool = True, drop_last: bool = False
) -> Iterator[np.ndarray]:
    """Index arrays of each batch of one epoch, in the shared seeded order."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DatasetError(f"batch_size must be a positive integer. Received: {batch_size!r}")
    order = epoch_order(n, seed, epoch) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x_batch, y_batch)`` pairs of one epoch, in the order of :func:`epoch_order`."""
    if len(x) != len(y):
        raise DatasetError(f"x has {len(x)} samples but y has {len(y)}")
    for index in batch_indices(len(x), batch_size, seed, epoch, shuffle=shuffle, drop_last=drop_last):
        yield x[index], y[index]


def num_batches(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def assemble(
    name: str,
    samples: Samples,
    *,
    validation_split: float,
    seed: int,
    normalize: bool = True,
    source: str = "",
) -> Dataset:
    """Split (unless the samples came split), normalise with training statistics, build the Dataset."""
    if samples.x_val is not None and samples.y_val is not None:
        x_train, y_train, x_val, y_val = samples.x, samples.y, samples.x_val, samples.y_val
    else:
        if len(samples.x) == 0:
            raise DatasetError(f"{name}: there are no samples")
        train, val = split_indices(len(samples.x), validation_split, seed)
        x_train, y_train = samples.x[train], samples.y[train]
        x_val, y_val = samples.x[val], samples.y[val]
    if len(x_train) == 0:
        raise DatasetError(f"{name}: there are no training samples")
    if 0 in x_train.shape[1:]:
        raise DatasetError(f"{name}: each sample is empty (shape {x_train.shape[1:]})")
    normalization: dict[str, Any] | None = None
    if samples.kind == "tabular" and normalize:
        x_train, x_val, normalization = standardize(x_train, x_val)
    elif samples.kind == "scaled" and samples.scale is not None:
        normalization = {"kind": "scale", "factor": samples.scale}
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train),
        y_train=np.ascontiguousarray(y_train),
        x_val=np.ascontiguousarray(x_val),
        y_val=np.ascontiguousarray(y_val),
        task=samples.task,
        num_classes=samples.num_classes,
        class_names=samples.class_names,
        feature_names=samples.feature_names,
        normalization=normalization,
        source=source,
    )


def standardize(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Zero mean, unit variance per feature, with statistics of the training split only."""
    mean = x_train.astype(np.float64).mean(axis=0)
    std = x_train.astype(np.float64).std(axis=0)
    std[std < 1e-12] = 1.0  # a constant feature stays at zero
    scaled = [((x - mean) / std).astype(np.float32) for x in (x_train, x_val)]
    info = {"kind": "standardize", "mean": mean.tolist(), "std": std.tolist()}
    return scaled[0], scaled[1], info


def classification_task(num_classes: int) -> str:
    return "binary" if num_classes == 2 else "classification"


def encode_labels(values: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """String labels -> int64 class indices, with the class names sorted."""
    names, indices = np.unique(values, return_inverse=True)
    if len(names) < 2:
        only = repr(str(names[0])) if len(names) else "none"
        raise DatasetError(f"{where}: classification needs at least 2 classes, found only {only}")
    return indices.astype(np.int64).reshape(values.shape), [str(name) for name in names]


def integer_classes(y: np.ndarray, where: str) -> int:
    """The number of classes of int labels 0..k-1 (k = max + 1); rejects negative labels."""
    if y.size == 0:
        raise DatasetError(f"{where}: there are no labels")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DatasetError(f"{where}: class labels must be whole numbers, found NaN or infinity")
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise DatasetError(f"{where}: class labels must be >= 0, found {low}")
    if high < 1:
        raise DatasetError(f"{where}: classification needs at least 2 classes, found only class {high}")
    if high >= MAX_CLASSES:
        raise DatasetError(
            f"{where}: class labels must be below {MAX_CLASSES:,}, found {high:,} "
            "(labels are class indices 0, 1, 2...)"
        )
    return high + 1


def check_finite(x: np.ndarray, where: str) -> None:
    """Refuse NaN, infinity, and values that overflowed float32 when converted."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DatasetError(f"{where} holds NaN, infinity, or values beyond the float32 range (±3.4e38)")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer. Received: {seed!r}")
