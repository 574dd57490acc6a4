"""The weights file that sits beside a project: ``<project>.weights.npz``.

Format (version 1): a plain NumPy ``.npz`` archive (``np.savez``; no pickled
objects, read back with ``allow_pickle=False``) holding

- ``"__format__"``: the string ``"layer-studio-weights 1"``;
- ``"<layer name>/<index>"``: the layer's weights in **Keras layout and Keras
  order**, exactly what ``keras_layer.get_weights()`` returns for the layer
  that the generated Keras program builds for that node. For example a
  Conv2D ``"conv1"`` has ``"conv1/0"`` (kernel ``(kh, kw, in, out)``) and
  ``"conv1/1"`` (bias); a BatchNormalization has gamma, beta, moving mean
  and moving variance; an LSTM has kernel, recurrent kernel and one bias.

Layer names are the project's node names (the name may itself contain
``/``: the index is what follows the last one). Layers without weights have
no entries. All arrays are float32.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from studio.files import (
    DATA_LIMIT,
    FileTooLargeError,
    check_npz_declared_sizes,
    check_regular_file,
    limit,
    write_output,
)
from studio.interop.errors import WeightsError

FORMAT_KEY = "__format__"
FORMAT_TAG = "layer-studio-weights 1"
SUFFIX = ".weights.npz"
PROJECT_SUFFIX = ".layers.json"

Weights = dict[str, list[np.ndarray]]


def weights_path_for(project_path: str | os.PathLike) -> Path:
    """``models/net.layers.json`` -> ``models/net.weights.npz``."""
    path = Path(project_path)
    name = path.name
    for suffix in (PROJECT_SUFFIX, ".json"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + SUFFIX)


def save_weights(weights: Mapping[str, Sequence[np.ndarray]], path: str | os.PathLike) -> Path:
    """Write ``weights`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {FORMAT_KEY: np.array(FORMAT_TAG)}
    for name, layer_weights in weights.items():
        for index, array in enumerate(layer_weights):
            # np.array, not np.ascontiguousarray, which turns a scalar (a sample count) into shape (1,)
            arrays[f"{name}/{index}"] = np.array(array, dtype=np.float32, order="C")
    write_atomic(path, lambda handle: np.savez(handle, **arrays))
    return path


def load_weights(path: str | os.PathLike) -> Weights:
    """Read a weights file; raises WeightsError naming the problem."""
    path = Path(path)
    try:
        check_regular_file(path, limit(DATA_LIMIT))
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file") from None
    except OSError as error:
        raise WeightsError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        check_npz_declared_sizes(path, limit(DATA_LIMIT), noun="entry")
        archive = np.load(path, allow_pickle=False)
    except FileTooLargeError as error:
        raise WeightsError(f"{path}: an entry is too large to load ({error.strerror})") from None
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError) as error:
        # RuntimeError: an encrypted member, or (NotImplementedError) an unknown zip version
        raise WeightsError(f"{path}: not a Layer Studio weights file ({_first_line(error)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise WeightsError(f"{path}: not a Layer Studio weights file (a bare array, not an .npz archive)")
    with archive:
        try:
            return _read_archive(archive, path)
        except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError) as error:
            raise WeightsError(f"{path}: the weights file is damaged ({_first_line(error)})") from None
        except MemoryError as error:  # e.g. a damaged header declaring a shape of terabytes
            raise WeightsError(f"{path}: an entry is too large to load ({_first_line(error)})") from None


def _read_archive(archive, path: Path) -> Weights:
    if FORMAT_KEY not in archive.files:
        raise WeightsError(f'{path}: not a Layer Studio weights file (no "{FORMAT_KEY}" entry)')
    tag = str(archive[FORMAT_KEY])
    if tag != FORMAT_TAG:
        raise WeightsError(f"{path}: unknown weights format {tag!r}; expected {FORMAT_TAG!r}")
    indexed: dict[str, dict[int, np.ndarray]] = {}
    for key in archive.files:
        if key == FORMAT_KEY:
            continue
        name, _, index = key.rpartition("/")
        if not name or not index.isdigit():
            raise WeightsError(f'{path}: entry {key!r} is not named "<layer name>/<index>"')
        array = archive[key]
        if array.dtype.kind != "f":
            raise WeightsError(f"{path}: entry {key!r} holds {array.dtype} values; expected floats")
        with np.errstate(over="ignore"):
            converted = array.astype(np.float32, copy=False)
        if (np.isinf(converted) & np.isfinite(array)).any():
            raise WeightsError(f"{path}: entry {key!r} holds values beyond the float32 range (±3.4e38)")
        indexed.setdefault(name, {})[int(index)] = converted
    weights: Weights = {}
    for name, items in indexed.items():
        if sorted(items) != list(range(len(items))):
            raise WeightsError(
                f"{path}: layer {name!r} has weights numbered {sorted(items)}; expected 0 to {len(items) - 1}"
            )
        weights[name] = [items[index] for index in range(len(items))]
    return weights


def write_atomic(path: Path, write, suffix: str = "") -> None:
    """Call ``write(binary_handle)`` on a temporary file, then put it at ``path`` in one step.

    A regular file is replaced by a rename; a FIFO or a terminal is written through (studio.files).
    """
    write_output(path, write, suffix)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
