"""Image folders (one sub-folder per class) and MNIST-format IDX files."""

from __future__ import annotations

import gzip
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from studio.datasets.core import DatasetError, Samples, check_finite, classification_task, integer_classes
from studio.files import DATA_LIMIT, limit, limit_text, read_regular_file, too_large

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"})


def read_image_folder(folder: Path, image_size: tuple[int, int] | None = None) -> Samples:
    """Images under ``folder/<class>/``: channels-last float32 in [0, 1], one size, grey or RGB.

    Class names are the sorted sub-folder names. Files without an image suffix
    and hidden files are skipped; a file with an image suffix that cannot be
    read is an error. The common size is ``image_size`` (height, width) or the
    size of the first image; all are grey (1 channel) unless one has colour.
    """
    label = folder.name + "/"
    if image_size is not None and not (
        len(image_size) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in image_size)
    ):
        raise DatasetError(
            f"image_size must be two positive integers (height, width). Received: {image_size!r}"
        )
    files = _class_files(folder, label)
    class_names = sorted(files)
    headers = {path: _peek(path, folder) for name in class_names for path in files[name]}
    first = files[class_names[0]][0]
    height, width = image_size if image_size is not None else (headers[first][1][1], headers[first][1][0])
    grey = all(mode in _GREY_MODES for mode, _ in headers.values())
    channels = 1 if grey else 3
    _check_decoded_sizes(headers, folder, len(headers) * height * width * channels * 4)
    x = np.empty((len(headers), height, width, channels), dtype=np.float32)
    y = np.empty(len(headers), dtype=np.int64)
    row = 0
    for index, name in enumerate(class_names):
        for path in files[name]:
            x[row] = _read_image(path, folder, (height, width), grey)
            y[row] = index
            row += 1
    return Samples(
        x,
        y,
        classification_task(len(class_names)),
        len(class_names),
        class_names,
        kind="scaled",
        scale=1 / 255,
    )


def is_image_folder(folder: Path) -> bool:
    return any(child.is_dir() and not child.name.startswith(".") for child in folder.iterdir())


def _class_files(folder: Path, label: str) -> dict[str, list[Path]]:
    try:
        children = sorted(child for child in folder.iterdir() if not child.name.startswith("."))
    except OSError as error:
        raise DatasetError(f"{label}: cannot be read ({error.strerror})") from None
    class_dirs = [child for child in children if child.is_dir()]
    if not class_dirs:
        loose = [child.name for child in children if child.suffix.lower() in IMAGE_SUFFIXES]
        found = f"found images directly inside ({loose[0]}, ...)" if loose else "found none"
        raise DatasetError(f"{label}: expected one sub-folder of images per class, {found}")
    files: dict[str, list[Path]] = {}
    for class_dir in class_dirs:
        images = sorted(
            path
            for path in class_dir.iterdir()
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise DatasetError(
                f"{label}: class folder {class_dir.name!r} has no readable images "
                f"(expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        files[class_dir.name] = images
    if len(files) < 2:
        raise DatasetError(
            f"{label}: classification needs at least 2 class folders, found only {class_dirs[0].name!r}"
        )
    return files


def _peek(path: Path, folder: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the image header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode, image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{_relative(path, folder)}: not a readable image ({error})") from None


def _check_decoded_sizes(headers: dict[Path, tuple[str, tuple[int, int]]], folder: Path, total: int) -> None:
    """Refuse, from the headers alone, an image or a whole set too large to decode within the limit."""
    maximum = limit(DATA_LIMIT)
    for path, (_, (width, height)) in headers.items():
        decoded = width * height * 4 * 2  # RGBA bytes, and the float32 copy of a resized grey image
        if decoded > maximum:
            raise DatasetError(
                f"{_relative(path, folder)}: an image of {width:,}x{height:,} pixels needs {decoded:,} bytes "
                f"to decode; {limit_text(maximum)}"
            )
    if total > maximum:
        raise DatasetError(
            f"{folder.name}/: the images need {total:,} bytes as float32; {limit_text(maximum)}"
        )


def _read_image(path: Path, folder: Path, size: tuple[int, int], grey: bool) -> np.ndarray:
    from PIL import Image

    height, width = size
    try:
        with Image.open(path) as image:
            image.load()
            if grey:
                pixels = _grey_pixels(image)
                resized = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
                return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)[..., np.newaxis]
            rgb = image.convert("RGB")
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{_relative(path, folder)}: not a readable image ({error})") from None


def _grey_pixels(image) -> np.ndarray:
    """A grey image as float32 in [0, 1] (8-bit, 16-bit and 1-bit modes)."""
    if image.mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        top = float(pixels.max()) if pixels.size else 1.0
        return pixels / (65535.0 if top > 255 else 255.0)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _relative(path: Path, folder: Path) -> str:
    return f"{folder.name}/{path.relative_to(folder).as_posix()}"


# ----- IDX (the MNIST file format) ------------------------------------------------------

# IDX type code -> big-endian numpy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_DIMS = 32  # NumPy's limit is 64; images have 3 (n, height, width) or 4 (with channels)
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """One IDX array (plain or gzip-compressed), in native byte order.

    The header is two zero bytes, a type code, the number of dimensions, then
    each dimension as a big-endian uint32; the data follows, big-endian.
    """
    name = path.name
    maximum = limit(DATA_LIMIT)
    try:
        raw = read_regular_file(path, maximum)
    except OSError as error:
        raise DatasetError(f"{name}: cannot be read ({error.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            # Never more than the limit: a small .gz can unpack to terabytes.
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unpacked:
                head = unpacked.read(4 + 4 * 255)  # the longest IDX header
                declared = _declared_idx_bytes(head)
                if declared is not None and declared > maximum:
                    raise DatasetError(f"{name}: the IDX data is {declared:,} bytes; {limit_text(maximum)}")
                budget = maximum if declared is None else declared
                raw = head + unpacked.read(max(0, budget + 1 - len(head)))
        except (OSError, EOFError, zlib.error) as error:
            raise DatasetError(f"{name}: a damaged gzip file ({error})") from None
        if len(raw) > maximum:
            raise DatasetError(
                f"{name}: the gzip file unpacks to more than {maximum:,} bytes; {limit_text(maximum)}"
            )
    if len(raw) < 4:
        raise DatasetError(
            f"{name}: not an IDX file (only {len(raw)} bytes, shorter than the 4-byte magic number)"
        )
    (magic,) = struct.unpack(">I", raw[:4])
    code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or code not in IDX_TYPES or ndim == 0:
        raise DatasetError(f"{name}: not an IDX file (magic number 0x{magic:08x})")
    if ndim > MAX_IDX_DIMS:
        raise DatasetError(
            f"{name}: the IDX header declares {ndim} dimensions; at most {MAX_IDX_DIMS} are supported"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetError(
            f"{name}: the IDX header is cut short ({ndim} dimensions need {header_size} bytes, "
            f"the file has {len(raw)})"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_size])
    dtype = np.dtype(IDX_TYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    if expected > maximum:
        declared = too_large(f"the header declares shape {dims} of {dtype.name}, which is", expected, maximum)
        raise DatasetError(f"{name}: {declared.strerror}")
    actual = len(raw) - header_size
    if actual != expected:
        raise DatasetError(
            f"{name}: the header declares shape {dims} of {dtype.name} ({expected} bytes of data) "
            f"but the file holds {actual} bytes of data"
        )
    try:
        array = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=header_size).reshape(dims)
    except ValueError as error:  # e.g. (0, 2**32 - 1, 2**32 - 1): no data, but too big a shape
        raise DatasetError(
            f"{name}: the header declares shape {dims}, which cannot be read ({error})"
        ) from None
    return array.astype(dtype.newbyteorder("="))


def _declared_idx_bytes(head: bytes) -> int | None:
    """Header and data bytes that an IDX header declares, or None if ``head`` is no IDX header."""
    if len(head) < 4 or head[0] or head[1] or head[2] not in IDX_TYPES or not head[3]:
        return None
    header_size = 4 + 4 * head[3]
    if len(head) < header_size:
        return None
    dims = struct.unpack(f">{head[3]}I", head[4:header_size])
    return header_size + math.prod(dims) * np.dtype(IDX_TYPES[head[2]]).itemsize


def read_idx_pair(
    images_path: Path,
    labels_path: Path,
    val_images_path: Path | None = None,
    val_labels_path: Path | None = None,
) -> Samples:
    """Images and labels from IDX files; uint8 images become float32 in [0, 1] with a channel axis."""
    x, y = _idx_pair(images_path, labels_path)
    samples = _idx_samples(x, y, images_path, labels_path)
    if val_images_path is not None and val_labels_path is not None:
        x_val, y_val = _idx_pair(val_images_path, val_labels_path)
        if x_val.shape[1:] != x.shape[1:]:
            raise DatasetError(
                f"{val_images_path.name}: images of shape {x_val.shape[1:]} but "
                f"{images_path.name} has {x.shape[1:]}"
            )
        val = _idx_samples(x_val, y_val, val_images_path, val_labels_path)
        count = max(samples.num_classes or 0, val.num_classes or 0)
        samples.x_val, samples.y_val = val.x, val.y
        samples.num_classes, samples.task = count, classification_task(count)
        samples.class_names = [str(i) for i in range(count)]
    return samples


def find_idx_files(folder: Path) -> dict[str, Path]:
    """The MNIST-layout IDX files in ``folder`` (optionally .gz), keyed train_images, train_labels, test_...."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = path.name.lower().removesuffix(".gz").replace(".", "-")
        for key, pattern in IDX_NAMES.items():
            if path.is_file() and stem.endswith(pattern):
                if key in found:
                    raise DatasetError(
                        f"{folder.name}/: both {found[key].name} and {path.name} look like {pattern}"
                    )
                found[key] = path
    return found


def _idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.ndim < 2:
        raise DatasetError(
            f"{images_path.name}: expected images (n, height, width), found a {x.ndim}-D array"
        )
    if y.ndim != 1:
        raise DatasetError(f"{labels_path.name}: expected a 1-D array of labels, found shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DatasetError(f"{labels_path.name}: labels must be integers. Received: {y.dtype}")
    if len(x) != len(y):
        raise DatasetError(
            f"{labels_path.name} has {len(y)} labels but {images_path.name} has {len(x)} images"
        )
    return x, y


def _idx_samples(x: np.ndarray, y: np.ndarray, images_path: Path, labels_path: Path) -> Samples:
    if x.ndim == 3:
        x = x[..., np.newaxis]
    kind, scale = "raw", None
    if x.dtype == np.uint8:
        x, kind, scale = x.astype(np.float32) / 255.0, "scaled", 1 / 255
    else:
        with np.errstate(over="ignore"):
            x = x.astype(np.float32)
        check_finite(x, images_path.name)
    count = integer_classes(y, labels_path.name)
    return Samples(
        x,
        y.astype(np.int64),
        classification_task(count),
        count,
        [str(i) for i in range(count)],
        kind=kind,
        scale=scale,
    )
