"""Check, before training, that a dataset fits a model's input and output; reshape when trivial."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from studio.catalog.base import format_shape
from studio.datasets.core import Dataset, DatasetError
from studio.project import LOSSES


def fit_to_model(
    dataset: Dataset,
    input_shape: Sequence[int | None],
    output_shape: Sequence[int | None],
    loss: str,
    *,
    input_name: str = "input",
    input_dtype: str | None = None,
) -> Dataset:
    """The dataset with ``x`` and ``y`` shaped for a model with one input and one output.

    Shapes exclude the batch dimension and are channels-last; ``None`` matches
    any size. ``x`` is reshaped only when that cannot mix axes (flattening,
    unflattening, adding or removing size-1 axes). ``y`` comes back as:

    * cross_entropy: int64 class indices, shape ``(n, *output_shape[:-1])``;
    * binary_cross_entropy: float32 0/1, shape ``(n, *output_shape)``;
    * mse/mae: float32 values (one-hot for classes), shape ``(n, *output_shape)``.

    Raises :class:`DatasetError` naming both shapes when it does not fit.
    """
    if loss not in LOSSES:
        raise DatasetError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    input_shape, output_shape = tuple(input_shape), tuple(output_shape)
    x_train, x_val, notes = _fit_inputs(dataset, input_shape, input_name, input_dtype)
    y_train, y_val = (_fit_targets(dataset, y, output_shape, loss) for y in (dataset.y_train, dataset.y_val))
    return dataclasses.replace(
        dataset, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, notes=[*dataset.notes, *notes]
    )


def is_trivial_reshape(have: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """Same number of elements, and either side is flat or they differ only by size-1 axes."""
    if math.prod(have) != math.prod(want):
        return False
    if len(have) <= 1 or len(want) <= 1:
        return True
    return [dim for dim in have if dim != 1] == [dim for dim in want if dim != 1]


def _fit_inputs(
    dataset: Dataset, want: tuple[int | None, ...], input_name: str, input_dtype: str | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    have = dataset.input_shape
    x_train, x_val = dataset.x_train, dataset.x_val
    notes = []
    if is_channels_first_of(have, want):
        # Unambiguous: the samples are the model's channels-last input with the channels moved first.
        x_train = np.ascontiguousarray(np.moveaxis(x_train, 1, -1))
        x_val = np.ascontiguousarray(np.moveaxis(x_val, 1, -1))
        notes.append(
            f"dataset {dataset.name!r} holds channels-first samples {have}; they were transposed to the "
            f"model's channels-last input {tuple(want)}"
        )
        have = tuple(x_train.shape[1:])
    if not _matches(have, want):
        problem = (
            f"dataset {dataset.name!r} has samples of shape {have} but the model's input "
            f"{input_name!r} expects {format_shape(want)}"
        )
        if None in want or not is_trivial_reshape(have, tuple(want)):
            raise DatasetError(problem + _input_hint(have, want))
        x_train = x_train.reshape((len(x_train), *want))
        x_val = x_val.reshape((len(x_val), *want))
    if input_dtype == "int32" and x_train.dtype != np.int32:
        for part in (x_train, x_val):
            if part.size and not np.array_equal(part, np.round(part)):
                raise DatasetError(
                    f"the model's input {input_name!r} takes int32 token ids but dataset "
                    f"{dataset.name!r} has fractional float32 values"
                )
        x_train, x_val = x_train.astype(np.int32), x_val.astype(np.int32)
    elif input_dtype == "float32":
        x_train, x_val = x_train.astype(np.float32, copy=False), x_val.astype(np.float32, copy=False)
    elif input_dtype is not None:
        raise DatasetError(f"input_dtype must be 'float32' or 'int32'. Received: {input_dtype!r}")
    return x_train, x_val, notes


def is_channels_first_of(have: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    """True when ``have`` is the channels-first form of the channels-last image shape ``want``
    and cannot be read as channels-last (single-channel data reshapes without mixing axes)."""
    if len(want) < 3 or len(have) != len(want) or None in want or want[-1] == 1:
        return False
    channels_first = (want[-1], *want[:-1])
    return have == channels_first and have != tuple(want)


def _matches(have: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    return len(have) == len(want) and all(w is None or h == w for h, w in zip(have, want, strict=True))


def _input_hint(have: tuple[int, ...], want: tuple[int | None, ...]) -> str:
    if None in want:
        return ""
    size_have, size_want = math.prod(have), math.prod(want)
    if size_have == size_want:
        layouts = "shapes are channels-last: height, width, channels"
        if len(want) >= 3:
            layouts += f"; channels-first data would have shape {(want[-1], *want[:-1])} and is transposed"
        return f"; both hold {size_have} values, but reshaping would mix axes ({layouts})"
    return f" ({size_have} values per sample, the model takes {size_want})"


def _fit_targets(dataset: Dataset, y: np.ndarray, out: tuple[int | None, ...], loss: str) -> np.ndarray:
    name, n = dataset.name, len(y)
    out_size = math.prod(dim or 1 for dim in out)
    if dataset.task == "regression":
        if loss in ("cross_entropy", "binary_cross_entropy"):
            raise DatasetError(
                f"{loss} needs class labels but {name!r} has real-valued targets; use mse or mae"
            )
        size = math.prod(dataset.target_shape)
        if None in out or out_size != size:
            raise DatasetError(
                f"the model outputs {_values(out)} per sample but {name!r} has "
                f"{size} target value{'s' if size != 1 else ''} per sample"
            )
        return y.reshape((n, *out)).astype(np.float32)
    classes = dataset.num_classes
    if loss == "cross_entropy":
        if not out or out[-1] != classes:
            hint = (
                "; use binary_cross_entropy for a single output" if classes == 2 and out[-1:] == (1,) else ""
            )
            raise DatasetError(
                f"the model outputs {_values(out[-1:] or out)} per sample but {name!r} "
                f"has {classes} classes{hint}"
            )
        if not _matches(dataset.target_shape, out[:-1]):
            raise DatasetError(
                f"the model's output {format_shape(out)} gives class scores of shape "
                f"{format_shape(out[:-1])} but the labels of {name!r} have shape "
                f"{format_shape(dataset.target_shape)}"
            )
        return y
    if loss == "binary_cross_entropy":
        if classes != 2:
            raise DatasetError(
                f"binary_cross_entropy needs 2 classes but {name!r} has {classes}; use cross_entropy"
            )
        if None in out or out_size != math.prod(dataset.target_shape):
            raise DatasetError(
                f"the model outputs {_values(out)} per sample but binary_cross_entropy on "
                f"{name!r} needs 1 (the probability of class {_class_name(dataset, 1)!r})"
            )
        return y.reshape((n, *out)).astype(np.float32)
    # mse / mae on class labels: one value for 2 classes, or one-hot targets.
    if classes == 2 and out_size == math.prod(dataset.target_shape):
        return y.reshape((n, *out)).astype(np.float32)
    if out and out[-1] == classes and _matches(dataset.target_shape, out[:-1]):
        return np.eye(classes, dtype=np.float32)[y]
    raise DatasetError(
        f"the model outputs {_values(out)} per sample but {name!r} has {classes} classes "
        f"({loss} compares the output with one-hot targets of {classes} values)"
    )


def _values(shape: tuple[int | None, ...]) -> str:
    if None in shape:
        return f"shape {format_shape(shape)}"
    size = math.prod(shape)
    return f"{size} value{'s' if size != 1 else ''}"


def _class_name(dataset: Dataset, index: int) -> str:
    return dataset.class_names[index] if dataset.class_names else str(index)
