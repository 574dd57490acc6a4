"""User tables: CSV files with a header row, and NumPy ``.npz`` archives."""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path

import numpy as np

from studio.datasets.core import (
    DatasetError,
    Samples,
    check_finite,
    classification_task,
    encode_labels,
    integer_classes,
)
from studio.files import (
    DATA_LIMIT,
    FileTooLargeError,
    NotRegularFileError,
    check_npz_declared_sizes,
    check_regular_file,
    limit,
    read_regular_file,
)

# A numeric target is read as class labels when every value is a whole number
# written without a decimal point and there are at most this many of them.
MAX_INTEGER_CLASSES = 32

_DELIMITERS = (",", ";", "\t")
FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_csv(path: Path, target: str | None = None, task: str | None = None) -> Samples:
    """Parse a CSV table: numeric feature columns and one target column (default: the last)."""
    name = path.name
    rows = _read_rows(path)
    if not rows:
        raise DatasetError(f"{name}: the file is empty")
    header_line, header = rows[0]
    header = [column.strip() for column in header]
    if len(header) < 2:
        raise DatasetError(
            f"{name} line {header_line}: expected a header with at least 2 columns "
            f"(features and a target), found {len(header)}"
        )
    if all(_is_number(column) for column in header):
        raise DatasetError(
            f"{name} line {header_line}: expected a header row naming the columns, "
            f"found only numbers ({', '.join(header[:3])}, ...)"
        )
    seen: set[str] = set()  # a set, not a scan of the columns before: linear in the header
    for index, column in enumerate(header):
        if not column:
            raise DatasetError(f"{name} line {header_line}: column {index + 1} has no name")
        if column in seen:
            raise DatasetError(f"{name} line {header_line}: the column name {column!r} appears twice")
        seen.add(column)
    if target is None:
        target_index = len(header) - 1
    elif target in header:
        target_index = header.index(target)
    else:
        raise DatasetError(
            f"{name}: no column named {target!r} to use as the target "
            f"(columns: {', '.join(header[:20])}{', ...' if len(header) > 20 else ''})"
        )
    data = rows[1:]
    if not data:
        raise DatasetError(f"{name}: there are no data rows after the header")
    feature_columns = [i for i in range(len(header)) if i != target_index]
    x = np.empty((len(data), len(feature_columns)), dtype=np.float32)
    targets: list[str] = []
    for row_number, (line, row) in enumerate(data):
        if len(row) != len(header):
            raise DatasetError(f"{name} line {line}: expected {len(header)} values, found {len(row)}")
        for out, column in enumerate(feature_columns):
            x[row_number, out] = _parse_feature(row[column].strip(), name, line, header[column])
        value = row[target_index].strip()
        if not value:
            raise DatasetError(f"{name} line {line}: the target column {header[target_index]!r} is empty")
        targets.append(value)
    where = f"{name} column {header[target_index]!r}"
    feature_names = [header[i] for i in feature_columns]
    return _target_samples(x, targets, where, task, feature_names)


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank row."""
    try:
        text = read_regular_file(path, limit(DATA_LIMIT)).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path.name}: not UTF-8 text (byte {error.start} is invalid)") from None
    except OSError as error:
        raise DatasetError(f"{path.name}: cannot be read ({error.strerror})") from None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else max(_DELIMITERS, key=first.count)
    if not first.count(delimiter):
        delimiter = ","
    rows = []
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        for row in reader:
            if any(field.strip() for field in row):
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise DatasetError(f"{path.name} line {reader.line_num}: {error}") from None
    return rows


def _parse_feature(value: str, name: str, line: int, column: str) -> float:
    if not value:
        raise DatasetError(
            f"{name} line {line}: column {column!r} is empty (missing values are not supported)"
        )
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(
            f"{name} line {line}: column {column!r} has the non-numeric value {value!r}"
        ) from None
    if not math.isfinite(number):
        raise DatasetError(f"{name} line {line}: column {column!r} has the non-finite value {value!r}")
    if abs(number) > FLOAT32_MAX:
        raise DatasetError(
            f"{name} line {line}: column {column!r} has the value {value!r}, beyond the float32 range (±3.4e38)"
        )
    return number


def _target_samples(
    x: np.ndarray, targets: list[str], where: str, task: str | None, feature_names: list[str]
) -> Samples:
    numeric = all(_is_number(value) for value in targets)
    if task is None:
        whole = numeric and all(_is_whole(value) for value in targets)
        task = (
            "classification"
            if not numeric or (whole and len(set(targets)) <= MAX_INTEGER_CLASSES)
            else "regression"
        )
    if task == "regression":
        if not numeric:
            bad = next(value for value in targets if not _is_number(value))
            raise DatasetError(f"{where}: a regression target must be numeric, found {bad!r}")
        with np.errstate(over="ignore"):
            y = np.array([float(value) for value in targets], dtype=np.float32)
        check_finite(y, f"{where}: the target")
        return Samples(x, y, "regression", feature_names=feature_names, kind="tabular")
    if task not in ("classification", "binary"):
        raise DatasetError(f"task must be 'classification' or 'regression'. Received: task={task!r}")
    if numeric:
        # Sort numerically, so that the labels 1, 2, 10 become classes 0, 1, 2.
        values = sorted(set(targets), key=float)
        index = {value: i for i, value in enumerate(values)}
        if len(values) < 2:
            raise DatasetError(f"{where}: classification needs at least 2 classes, found only {values[0]!r}")
        y = np.array([index[value] for value in targets], dtype=np.int64)
        names = values
    else:
        y, names = encode_labels(np.array(targets), where)
    return Samples(x, y, classification_task(len(names)), len(names), names, feature_names, kind="tabular")


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _is_whole(value: str) -> bool:
    text = value.strip().lstrip("+-")
    return text.isdigit()


# ----- .npz ---------------------------------------------------------------------------

_SPLIT_KEYS = (("x_train", "y_train", "x_val", "y_val"), ("x_train", "y_train", "x_test", "y_test"))


def read_npz(path: Path, task: str | None = None) -> Samples:
    """Arrays ``x`` and ``y``, or a split given as ``x_train``, ``y_train``, ``x_val`` (or ``x_test``), ``y_val``."""
    name = path.name
    try:
        check_regular_file(path, limit(DATA_LIMIT))
        check_npz_declared_sizes(path, limit(DATA_LIMIT))
        archive = np.load(path, allow_pickle=False)
    except (NotRegularFileError, FileTooLargeError) as error:
        raise DatasetError(f"{name}: {error.strerror}") from None
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError) as error:
        # RuntimeError: an encrypted member, or (NotImplementedError) an unknown zip version
        raise DatasetError(f"{name}: not a readable .npz archive ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(
            f"{name}: a single array, not an .npz archive with 'x' and 'y' "
            "(save both with np.savez(path, x=x, y=y))"
        )
    with archive:
        keys = set(archive.files)
        if {"x", "y"} <= keys:
            x, y = _array(archive, "x", name), _array(archive, "y", name)
            x_val = y_val = None
        else:
            names = next((names for names in _SPLIT_KEYS if set(names) <= keys), None)
            if names is None:
                found = ", ".join(repr(key) for key in sorted(keys)) or "no arrays"
                raise DatasetError(
                    f"{name}: expected arrays 'x' and 'y' (or 'x_train', 'y_train', 'x_val', "
                    f"'y_val' for a given split); found {found}"
                )
            x, y, x_val, y_val = (_array(archive, key, name) for key in names)
    pairs = (
        [(x, y, "x", "y")]
        if x_val is None
        else [(x, y, "x_train", "y_train"), (x_val, y_val, names[2], names[3])]
    )
    for xs, ys, x_key, y_key in pairs:
        _check_pair(xs, ys, x_key, y_key, name)
    if x_val is not None and x.shape[1:] != x_val.shape[1:]:
        raise DatasetError(
            f"{name}: '{names[0]}' has samples of shape {x.shape[1:]} but '{names[2]}' has {x_val.shape[1:]}"
        )
    if x_val is not None:
        for train, val, train_key, val_key in (
            (x, x_val, names[0], names[2]),
            (y, y_val, names[1], names[3]),
        ):
            if _dtype_family(train) != _dtype_family(val):
                raise DatasetError(
                    f"{name}: {train_key!r} holds {train.dtype} values but {val_key!r} holds {val.dtype}; "
                    "both parts of a split need the same kind of values"
                )
    return _npz_samples(name, x, y, x_val, y_val, task)


def _dtype_family(array: np.ndarray) -> str:
    """uint8 (scaled images), other integers, floats or strings: what the two parts of a split must share."""
    if array.dtype == np.uint8:
        return "uint8"
    return {"b": "i", "u": "i"}.get(array.dtype.kind, array.dtype.kind)


def _array(archive: np.lib.npyio.NpzFile, key: str, name: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as error:
        if "allow_pickle" in str(error) or "Object arrays" in str(error):
            raise DatasetError(
                f"{name}: array {key!r} holds Python objects, which would need unpickling; "
                "save it as a numeric (or string) array instead"
            ) from None
        raise DatasetError(f"{name}: array {key!r} cannot be read ({error})") from None
    except (OSError, RuntimeError, zipfile.BadZipFile, EOFError) as error:
        raise DatasetError(f"{name}: array {key!r} cannot be read ({error})") from None
    except MemoryError as error:  # e.g. a damaged header declaring a shape of terabytes
        raise DatasetError(f"{name}: array {key!r} is too large to load ({error})") from None


def _check_pair(x: np.ndarray, y: np.ndarray, x_key: str, y_key: str, name: str) -> None:
    if x.ndim == 0 or y.ndim == 0:
        raise DatasetError(f"{name}: {x_key!r} and {y_key!r} must be arrays with a sample axis first")
    if len(x) != len(y):
        raise DatasetError(f"{name}: {x_key!r} has {len(x)} samples but {y_key!r} has {len(y)}")
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{name}: {x_key!r} must be numeric. Received: dtype {x.dtype}")
    if y.dtype.kind not in "biufU":
        raise DatasetError(f"{name}: {y_key!r} must be numbers or strings. Received: dtype {y.dtype}")
    for array, key in ((x, x_key), (y, y_key)):
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DatasetError(f"{name}: {key!r} contains NaN or infinite values")
        if array.dtype.kind == "f" and array.size and np.abs(array).max() > FLOAT32_MAX:
            raise DatasetError(f"{name}: {key!r} has values beyond the float32 range (±3.4e38)")


def _npz_samples(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    task: str | None,
) -> Samples:
    xs = [x] if x_val is None else [x, x_val]
    ys = [y] if y_val is None else [y, y_val]
    kind, scale = "raw", None
    if x.dtype == np.uint8:
        xs, kind, scale = [part.astype(np.float32) / 255.0 for part in xs], "scaled", 1 / 255
    elif x.dtype.kind in "iu":
        if any(
            part.size and (part.min() < np.iinfo(np.int32).min or part.max() > np.iinfo(np.int32).max)
            for part in xs
        ):
            raise DatasetError(f"{name}: integer inputs (token ids) must fit in int32")
        xs = [part.astype(np.int32) for part in xs]
    else:
        xs = [part.astype(np.float32) for part in xs]
        kind = "tabular" if x.ndim == 2 else "raw"
    ys, target = _npz_targets(name, ys, task)
    samples = Samples(xs[0], ys[0], kind=kind, scale=scale, **target)
    if x_val is not None:
        samples.x_val, samples.y_val = xs[1], ys[1]
    return samples


def _npz_targets(name: str, ys: list[np.ndarray], task: str | None) -> tuple[list[np.ndarray], dict]:
    if task != "regression":
        ys = [_from_one_hot(part) for part in ys]
    ys = [part.reshape(len(part)) if part.ndim == 2 and part.shape[1] == 1 else part for part in ys]
    kind = ys[0].dtype.kind
    if task is None:
        task = "regression" if kind == "f" else "classification"
    if task == "regression":
        if kind not in "biuf":
            raise DatasetError(f"{name}: a regression target must be numeric. Received: dtype {ys[0].dtype}")
        return [part.astype(np.float32) for part in ys], {"task": "regression"}
    if task not in ("classification", "binary"):
        raise DatasetError(f"task must be 'classification' or 'regression'. Received: task={task!r}")
    if kind == "U":
        y, names = encode_labels(np.concatenate(ys), f"{name}: 'y'")
        parts = np.split(y, [len(ys[0])]) if len(ys) == 2 else [y]
        return parts, {
            "task": classification_task(len(names)),
            "num_classes": len(names),
            "class_names": names,
        }
    if kind == "f" and any(not np.array_equal(part, np.round(part)) for part in ys):
        raise DatasetError(f"{name}: class labels must be whole numbers; 'y' has fractional values")
    # Count the classes before the cast to int64, which would wrap huge labels around.
    count = integer_classes(np.concatenate([part.ravel() for part in ys]), f"{name}: 'y'")
    ys = [part.astype(np.int64) for part in ys]
    names = [str(i) for i in range(count)]
    return ys, {"task": classification_task(count), "num_classes": count, "class_names": names}


def _from_one_hot(y: np.ndarray) -> np.ndarray:
    """One-hot rows (0/1 values, one 1 per row, at least 2 columns) become class indices."""
    if y.ndim != 2 or y.shape[1] < 2 or y.dtype.kind not in "biuf" or len(y) == 0:
        return y
    if np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        return y.argmax(axis=1).astype(np.int64)
    return y
