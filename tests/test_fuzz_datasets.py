"""Fuzz tests: malformed CSV, NPZ, IDX and image-folder datasets.

Each case writes a dataset that is slightly or badly wrong (ragged, empty, non-numeric,
missing target, BOM, NaN and overflowing values; missing keys, wrong dtypes, object
arrays, mismatched lengths, truncated zips, huge declared shapes; bad magic numbers,
wrong dimensions, truncated data, damaged gzip; non-image files, corrupt PNGs, mixed
sizes and modes, empty classes) and loads it with ``load_dataset``: the result is a
usable Dataset, or a DatasetError naming the file or folder. The files read are never
changed.

Profiles: STUDIO_FUZZ_PROFILE=ci (the default, bounded) or deep (a long local run);
see tests/fuzzing.py.
"""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from studio.datasets import Dataset, DatasetError, load_dataset, load_image_folder
from tests.fuzzing import ODD_TEXT, case, damaged_bytes, expect, fuzz_settings, huge_header_member


def check_dataset(dataset: Dataset) -> None:
    """What training relies on: samples with content, finite inputs, labels inside the classes."""
    assert isinstance(dataset, Dataset)
    dataset.describe()
    assert dataset.num_train > 0
    assert all(dim > 0 for dim in dataset.input_shape), dataset.input_shape
    for x, y in ((dataset.x_train, dataset.y_train), (dataset.x_val, dataset.y_val)):
        assert np.isfinite(x).all() if x.dtype.kind == "f" else True
        if dataset.task == "regression":
            assert np.isfinite(y).all()
        elif y.dtype.kind == "i" and y.size:
            assert 0 <= y.min() and y.max() < dataset.num_classes


def load(folder: Path, spec: Path, kind: str, names, **options):
    """``load_dataset(spec, **options)`` on files in ``folder``: the dataset, or the checked error."""
    with case(kind, folder):
        result = expect(lambda: load_dataset(spec, **options), DatasetError, names=[])
        if isinstance(result, DatasetError):
            message = str(result)
            assert any(name in message for name in names), f"the message names none of {names}: {message}"
            event("refused")
        else:
            check_dataset(result)
            event("loaded")
    return result


# ----- CSV ------------------------------------------------------------------------------------

NUMBERS = ["0", "1", "-1", "2", "3", "0.5", "-2.25", "1e3", "1e39", "-3.5e38", "1e400", "1e-320"]
NUMBERS += ["nan", "NaN", "inf", "-inf", "+7", " 4 ", "1_000", "0x10", "1,5", "٣", "9" * 400]
FIELDS = ["", " ", "a", "cat", "dog", '"quoted, comma"', '"unclosed', 'say ""hi""', "\x00", "é", "名"]


@st.composite
def csv_tables(draw) -> tuple[bytes, str | None]:
    """A table: header, rows (some ragged), odd fields, a delimiter, a line ending, maybe a BOM."""
    columns = draw(st.integers(0, 5))
    names = st.sampled_from(["a", "b", "x1", "label", "y"]) | st.text(max_size=6) | st.sampled_from(ODD_TEXT)
    header = draw(st.lists(names, min_size=columns, max_size=columns))
    field = st.integers(0, 9).flatmap(
        lambda roll: (
            st.sampled_from(FIELDS)
            if roll == 0
            else st.sampled_from(NUMBERS[:7])
            if roll < 7
            else st.sampled_from(NUMBERS)
        )
    )
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        width = max(columns + draw(st.sampled_from([0, 0, 0, 0, 0, 0, -1, 1])), 0)
        rows.append(draw(st.lists(field, min_size=width, max_size=width)))
    delimiter = draw(st.sampled_from([",", ",", ";", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [delimiter.join(header)] if draw(st.integers(0, 9)) else []
    lines += [delimiter.join(row) for row in rows]
    lines += [""] * draw(st.integers(0, 2))
    text = ("\ufeff" if draw(st.booleans()) else "") + newline.join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"]))
    raw = text.encode(encoding, "replace")
    target = draw(st.none() | st.sampled_from(header or ["y"]) | st.sampled_from(["missing", ""]))
    return raw, target


GOOD_CSV = (
    "sepal,petal,width,species\n"
    + "".join(
        f"{i * 0.1:.1f},{(i * 7) % 5},{i % 3 + 0.5},{['setosa', 'virginica', 'versicolor'][i % 3]}\n"
        for i in range(12)
    )
).encode()


@pytest.mark.slow
@fuzz_settings("CSV")
@given(
    table=csv_tables() | st.tuples(damaged_bytes(GOOD_CSV), st.none()),
    suffix=st.sampled_from([".csv", ".csv", ".tsv", ".txt"]),
    task=st.sampled_from([None, None, "classification", "regression", "binary"]),
)
def test_malformed_csv_tables_load_or_say_why(table, suffix, task):
    raw, target = table
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"table{suffix}"
        path.write_bytes(raw)
        load(Path(folder), path, "CSV", [path.name], target=target, task=task)


# ----- NPZ ------------------------------------------------------------------------------------

DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int32", "int64", "uint64", "bool"]
DTYPES += ["complex64", "<U3", "|S3", "object", "datetime64[s]", "f4,i4", "int16"]
SPECIAL = [np.nan, np.inf, -np.inf, 1e39, -1e300, 2**40, -1, 0, 1, 255, 256, 2**31, 2**63 - 1]


@st.composite
def arrays(draw, samples: int) -> np.ndarray:
    dtype = draw(
        st.sampled_from(["float32", "float32", "float64", "uint8", "int64"]) | st.sampled_from(DTYPES)
    )
    if draw(st.integers(0, 9)) == 0:
        return np.array(draw(st.sampled_from([1.5, "text", 7])))  # a 0-d array
    shape = (samples, *draw(st.lists(st.integers(0, 4), max_size=3)))
    values = np.random.default_rng(draw(st.integers(0, 99))).normal(2, 2, shape)
    if values.size and draw(st.booleans()):
        values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(SPECIAL))
    if dtype == "object":
        return np.array([{"sample": i} for i in range(samples)] + [None], dtype=object)[:samples]
    with np.errstate(all="ignore"):
        if dtype in ("<U3", "|S3"):
            labels = np.nan_to_num(values, posinf=1, neginf=2).sum(axis=tuple(range(1, values.ndim)))
            return np.array([str(int(v) % 4) for v in labels]).astype(dtype)
        if dtype == "f4,i4":
            return np.zeros(samples, dtype=dtype)
        if dtype.startswith(("int", "uint", "bool")):
            values = np.nan_to_num(
                np.abs(values) if dtype.startswith("uint") else values, posinf=9, neginf=-9
            )
            values = np.clip(values, -(2**62), 2**62)
        return values.astype(dtype)


@st.composite
def npz_archives(draw) -> bytes:
    keys = draw(
        st.sampled_from([("x", "y"), ("x", "y"), ("x_train", "y_train", "x_val", "y_val")])
        | st.sampled_from([("x_train", "y_train", "x_test", "y_test"), ("x",), ("y", "z"), ()])
    )
    samples = draw(st.integers(0, 8))
    members = {}
    for key in keys:
        size = samples if draw(st.integers(0, 7)) else draw(st.integers(0, 9))  # mismatched lengths
        members[key] = draw(arrays(size))
    if draw(st.integers(0, 5)) == 0:
        members[draw(st.text(min_size=1, max_size=5))] = np.zeros(2)
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    raw = buffer.getvalue()
    roll = draw(st.integers(0, 9))
    if roll == 0:
        raw = draw(damaged_bytes(raw))
    elif roll == 1:  # a member whose header declares far more data than it holds
        shape = draw(st.sampled_from([(10**6, 10**6), (2**62,), (10**5, 10**4), (3, 2**40), (0,)]))
        with zipfile.ZipFile(buffer := io.BytesIO(), "w") as archive:
            archive.writestr("x.npy", huge_header_member(shape, draw(st.sampled_from(["<f8", "|u1", "|O"]))))
            archive.writestr("y.npy", huge_header_member((3,), "<i8"))
        raw = buffer.getvalue()
    return raw


@fuzz_settings("NPZ dataset")
@given(raw=npz_archives(), task=st.sampled_from([None, None, "classification", "regression"]))
def test_malformed_npz_datasets_load_or_say_why(raw, task):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "arrays.npz"
        path.write_bytes(raw)
        load(Path(folder), path, "NPZ dataset", [path.name], task=task)


# ----- IDX ------------------------------------------------------------------------------------

IDX_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@st.composite
def idx_files(draw, labels: bool, count: int) -> bytes:
    code = draw(st.sampled_from([0x08, 0x08]) | st.sampled_from(sorted(IDX_CODES)) | st.integers(0, 255))
    dims = [count] if labels else [count, draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    roll = draw(st.integers(0, 9))
    if roll == 0:
        dims = draw(st.lists(st.integers(0, 4) | st.sampled_from([2**32 - 1, 2**31, 70_000]), max_size=5))
    elif roll == 1:
        dims = [count] + [1] * draw(st.sampled_from([2, 63, 64, 65, 200, 254]))
    dtype = np.dtype(IDX_CODES.get(code, ">u1"))
    items = int(np.prod(dims, dtype=object)) if len(dims) else 0
    items = items if items <= 4096 else 16
    data = np.random.default_rng(draw(st.integers(0, 99))).integers(0, 5, items).astype(dtype)
    if items and draw(st.integers(0, 4)) == 0:
        specials = [np.nan, np.inf, 1e300, -5.0] if dtype.kind == "f" else [-5, 127, 255, 2**15, 2**31 - 1]
        with np.errstate(all="ignore"):
            data[draw(st.integers(0, items - 1))] = np.array(draw(st.sampled_from(specials))).astype(dtype)
    magic = bytes([0, 0, code, min(len(dims), 255)])
    if draw(st.integers(0, 14)) == 0:
        magic = draw(st.binary(min_size=0, max_size=4))
    raw = magic + struct.pack(f">{len(dims)}I", *dims) + data.tobytes()
    if draw(st.integers(0, 5)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=3))
    if draw(st.integers(0, 3)) == 0:
        raw = gzip.compress(raw)
        if draw(st.booleans()):
            raw = draw(damaged_bytes(raw, max_edits=2))
    return raw


@st.composite
def idx_sets(draw) -> dict[str, bytes]:
    count = draw(st.integers(0, 6))
    files = {
        "train-images-idx3-ubyte": draw(idx_files(False, count)),
        "train-labels-idx1-ubyte": draw(
            idx_files(True, max(count + draw(st.sampled_from([0, 0, 0, 1, -1])), 0))
        ),
    }
    if draw(st.booleans()):
        test = draw(st.integers(1, 4))
        files["t10k-images-idx3-ubyte"] = draw(idx_files(False, test))
        files["t10k-labels-idx1-ubyte"] = draw(idx_files(True, test))
    if draw(st.integers(0, 5)) == 0:
        files.pop(draw(st.sampled_from(sorted(files))))
    if draw(st.booleans()):
        files = {name + ".gz": raw for name, raw in files.items()}
    return files


@fuzz_settings("IDX")
@given(files=idx_sets(), by_file=st.booleans())
def test_malformed_idx_files_load_or_say_why(files, by_file):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "mnist"
        root.mkdir()
        for name, raw in files.items():
            (root / name).write_bytes(raw)
        images = sorted(root.glob("train-images*"))
        spec = images[0] if by_file and images else root
        load(Path(folder), spec, "IDX", [root.name, *files])


# ----- image folders --------------------------------------------------------------------------

MODES = ["L", "RGB", "RGBA", "P", "1", "I;16", "I", "F", "LA", "CMYK"]
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".tif": "TIFF", ".ppm": "PPM"}


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR (valid CRC) declaring ``width`` x ``height``, then a broken IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\x00" * 32)[:-4]
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat) - 4)
        + idat
        + struct.pack(">I", zlib.crc32(idat))
    )


@st.composite
def image_files(draw) -> tuple[str, bytes]:
    roll = draw(st.integers(0, 19))
    suffix = draw(st.sampled_from([".png", ".png", ".png", *sorted(FORMATS)]))
    if roll == 0:
        return draw(st.sampled_from([".png", ".jpg", ".txt", ".npy", ""])), draw(st.binary(max_size=64))
    if roll == 1:
        side = st.integers(1, 40) | st.sampled_from([9000, 20000, 2**31 - 1, 2**32 - 1, 0])
        return ".png", png_header(draw(side), draw(side))
    from PIL import Image

    mode = draw(st.sampled_from(MODES))
    size = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    pixels = np.random.default_rng(draw(st.integers(0, 99))).integers(0, 255, (size[1], size[0], 4), np.uint8)
    image = (
        Image.fromarray(pixels, "RGBA").convert(mode)
        if mode not in ("I;16", "I", "F")
        else Image.new(mode, size, draw(st.integers(0, 70000)))
    )
    buffer = io.BytesIO()
    try:
        image.save(buffer, FORMATS[suffix])
    except (OSError, ValueError, KeyError):  # this format cannot store this mode: save as PNG
        suffix, buffer = ".png", io.BytesIO()
        image.convert("RGB").save(buffer, "PNG")
    raw = buffer.getvalue()
    if roll == 2:
        raw = draw(damaged_bytes(raw, max_edits=2))
    return suffix, raw


CLASS_NAMES = ["cat", "dog", "bird", ".hidden", "名前", "with space", "0", "__pycache__"]


@st.composite
def image_folders(draw) -> dict[str, bytes | None]:
    """Relative path -> file bytes (None: an empty folder)."""
    files: dict[str, bytes | None] = {}
    names = (
        st.sampled_from(CLASS_NAMES[:3])
        if draw(st.booleans())
        else st.sampled_from(CLASS_NAMES) | st.text(min_size=1, max_size=4)
    )
    classes = draw(st.lists(names, min_size=draw(st.integers(0, 2)), max_size=4, unique=True))
    for name in classes:
        name = name.replace("/", "_").replace("\x00", "_")
        if name in (".", ".."):
            continue
        images = draw(st.lists(image_files(), min_size=draw(st.integers(0, 1)), max_size=4))
        if not images:
            files[name] = None
        for index, (suffix, raw) in enumerate(images):
            files[f"{name}/img{index}{suffix}"] = raw
        if draw(st.integers(0, 9)) == 0:
            files[f"{name}/nested"] = None
    if draw(st.integers(0, 9)) == 0:
        files["loose.png"] = draw(image_files())[1]
    return files


@fuzz_settings("image folder")
@given(
    layout=image_folders(),
    image_size=st.none()
    | st.sampled_from([(4, 4), (1, 7), (0, 3), (3,), (-1, 2), (2.0, 3), (True, 2), (3, 3, 3)]),
    direct=st.booleans(),
)
def test_malformed_image_folders_load_or_say_why(layout, image_size, direct):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "pictures"
        root.mkdir()
        for relative, raw in layout.items():
            path = root / relative
            try:
                if raw is None:
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(raw)
            except OSError:  # a name this file system refuses
                continue
        if direct or image_size is not None:
            with case("image folder", Path(folder)):
                result = expect(
                    lambda: load_image_folder(root, image_size=image_size), DatasetError, names=[]
                )
                if isinstance(result, DatasetError):
                    assert root.name in str(result) or "image_size" in str(result), str(result)
                    event("refused")
                else:
                    check_dataset(result)
                    event("loaded")
        else:
            load(Path(folder), root, "image folder", [root.name])


# ----- regressions: what the fuzz tests found --------------------------------------------------


def _idx(code: int, dims, data: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + data


def _mnist_folder(tmp_path: Path, images: bytes, labels: bytes) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(images)
    (folder / "train-labels-idx1-ubyte").write_bytes(labels)
    return folder


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        (
            b"\x1f\x8b\x08\x00" + bytes(6) + b"not deflate data",
            "train-images-idx3-ubyte: a damaged gzip file",
        ),
        (_idx(8, [2] + [1] * 64, b"\x01\x02"), "declares 65 dimensions; at most 32 are supported"),
        (_idx(8, [0, 2**32 - 1, 2**32 - 1, 2**32 - 1], b""), "declares shape (0, 4294967295"),
        (_idx(0x0E, [2, 1, 1], struct.pack(">2d", 1.0, 1e300)), "holds NaN, infinity, or values beyond"),
    ],
)
def test_damaged_idx_images_are_dataset_errors(tmp_path, images, expected):
    folder = _mnist_folder(tmp_path, images, _idx(8, [2], b"\x00\x01"))
    with pytest.raises(DatasetError) as caught:
        load_dataset(folder)
    assert expected in str(caught.value)


def test_a_stray_huge_label_does_not_make_billions_of_classes(tmp_path):
    labels = _idx(0x0C, [2], struct.pack(">2i", 0, 2**31 - 1))
    folder = _mnist_folder(tmp_path, _idx(8, [2, 2, 2], bytes(8)), labels)
    with pytest.raises(DatasetError, match="class labels must be below 100,000, found 2,147,483,647"):
        load_dataset(folder)


def test_samples_without_elements_are_refused(tmp_path):
    folder = _mnist_folder(tmp_path, _idx(8, [2, 0, 3], b""), _idx(8, [2], b"\x00\x01"))
    with pytest.raises(DatasetError, match=r"mnist: each sample is empty \(shape \(0, 3, 1\)\)"):
        load_dataset(folder)


def test_an_npz_header_declaring_terabytes_is_refused_without_allocating(tmp_path):
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", huge_header_member((10**6, 10**6)))
        archive.writestr("y.npy", huge_header_member((3,), "<i8"))
    with pytest.raises(DatasetError, match="huge.npz: array 'x' is too large to load"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("arrays", "task", "expected"),
    [
        ({"x": [[1e300], [0.0], [1.0]], "y": [0, 1, 0]}, None, "'x' has values beyond the float32 range"),
        ({"x": np.ones((3, 1)), "y": [1e300, 0.0, 1.0]}, "regression", "'y' has values beyond the float32"),
        ({"x": np.ones((3, 1)), "y": [0.0, 1.0, np.inf]}, "classification", "'y' contains NaN or infinite"),
        (
            {"x": np.ones((3, 1)), "y": np.array([0, 1, 2**63 + 5], dtype=np.uint64)},
            None,
            "must be below 100,000",
        ),
        (
            {
                "x_train": np.ones((3, 1)),
                "y_train": [0.0, 1.0, 1.0],
                "x_val": np.ones((1, 1)),
                "y_val": ["a"],
            },
            None,
            "'y_train' holds float64 values but 'y_val' holds <U1",
        ),
    ],
)
def test_npz_values_that_would_overflow_or_mix_are_refused(tmp_path, arrays, task, expected):
    path = tmp_path / "data.npz"
    np.savez(path, **{key: np.asarray(value) for key, value in arrays.items()})
    with pytest.raises(DatasetError) as caught:
        load_dataset(path, task=task)
    assert expected in str(caught.value) and "data.npz" in str(caught.value)


def test_npz_archives_of_an_unknown_zip_version_are_dataset_errors(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.ones((3, 1)), y=np.array([0, 1, 0]))
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"PK\x01\x02") + 6] = 99  # "version needed to extract" of the first member: 9.9
    path.write_bytes(bytes(raw))
    with pytest.raises(
        DatasetError, match="data.npz: (not a readable .npz archive|array 'x' cannot be read)"
    ):
        load_dataset(path)


def test_csv_values_beyond_float32_are_refused(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b,label\n1,1e39,x\n2,3,y\n", encoding="utf-8")
    with pytest.raises(
        DatasetError, match=r"table.csv line 2: column 'b' has the value '1e39', beyond the float32"
    ):
        load_dataset(path)
    path.write_text("a,b,target\n1,2,0.5\n2,3,1e39\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="table.csv column 'target': the target holds NaN, infinity"):
        load_dataset(path)
