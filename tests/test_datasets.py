"""Datasets: built-ins, user files, keras.datasets offline failure, fitting to a model, split and order."""

from __future__ import annotations

import gzip
import struct
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.datasets import (
    LOSSES,
    Dataset,
    DatasetError,
    batch_indices,
    batches,
    epoch_order,
    fit_to_model,
    list_builtin,
    list_downloadable,
    load_csv,
    load_dataset,
    load_for_training,
    load_idx,
    load_image_folder,
    load_npz,
    make_spirals,
    read_idx,
    split_indices,
)

BUILTIN_SHAPES = {
    "digits": ((8, 8, 1), 10),
    "iris": ((4,), 3),
    "wine": ((13,), 3),
    "breast_cancer": ((30,), 2),
    "moons": ((2,), 2),
    "circles": ((2,), 2),
    "spirals": ((2,), 3),
    "regression": ((8,), None),
}


# ----- built-ins ----------------------------------------------------------------------


def test_list_builtin_names_every_builtin_with_a_description():
    names = list_builtin()
    assert list(names) == list(BUILTIN_SHAPES)
    assert all(isinstance(text, str) and text and "\n" not in text for text in names.values())
    assert set(list_downloadable()) == {"mnist", "fashion_mnist", "cifar10"}


@pytest.mark.parametrize("name", list(BUILTIN_SHAPES))
def test_builtin_loads_with_shapes_and_dtypes(name):
    shape, classes = BUILTIN_SHAPES[name]
    dataset = load_dataset(name, validation_split=0.25, seed=1)
    assert dataset.name == name
    assert dataset.input_shape == shape
    assert dataset.x_train.dtype == np.float32 and dataset.x_val.dtype == np.float32
    total = dataset.num_train + dataset.num_val
    assert dataset.num_val == round(total * 0.25)
    assert np.isfinite(dataset.x_train).all()
    assert dataset.num_classes == classes
    if classes is None:
        assert dataset.task == "regression"
        assert dataset.y_train.dtype == np.float32 and dataset.target_shape == ()
    else:
        assert dataset.task == ("binary" if classes == 2 else "classification")
        assert dataset.y_train.dtype == np.int64 and dataset.target_shape == ()
        assert set(np.unique(np.concatenate([dataset.y_train, dataset.y_val]))) == set(range(classes))
        assert len(dataset.class_names) == classes
    assert name in dataset.describe() and str(shape) in dataset.describe()


@pytest.mark.parametrize("name", list(BUILTIN_SHAPES))
def test_builtin_is_deterministic_for_a_seed(name):
    first, again, other = (load_dataset(name, seed=seed) for seed in (7, 7, 8))
    for part in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(first, part), getattr(again, part))
    assert not np.array_equal(first.x_train, other.x_train)


def test_digits_are_scaled_to_unit_range():
    dataset = load_dataset("digits")
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    assert dataset.normalization == {"kind": "scale", "factor": 1 / 16}


def test_tabular_builtins_are_standardized_with_training_statistics():
    dataset = load_dataset("wine", seed=2)
    np.testing.assert_allclose(dataset.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(dataset.x_train.std(axis=0), 1.0, atol=1e-4)
    assert abs(dataset.x_val.mean()) > 1e-6  # validation uses the training statistics, not its own
    assert dataset.normalization["kind"] == "standardize" and len(dataset.normalization["mean"]) == 13
    assert dataset.feature_names[0] == "alcohol"


def test_make_spirals_has_arms_and_noise():
    x, y = make_spirals(600, arms=4, noise=0.0, seed=3)
    assert x.shape == (600, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [150] * 4
    assert np.abs(x).max() <= 1.0 + 1e-6
    noisy, _ = make_spirals(600, arms=4, noise=0.1, seed=3)
    assert not np.allclose(x, noisy)


def test_unknown_name_lists_the_choices():
    with pytest.raises(
        DatasetError, match=r"unknown dataset 'digitz': not a built-in dataset \(digits, iris"
    ):
        load_dataset("digitz")


def test_target_only_applies_to_csv():
    with pytest.raises(DatasetError, match="picks a CSV column, but 'iris' is a built-in dataset"):
        load_dataset("iris", target="species")


def test_load_for_training_reads_the_settings():
    from studio.project import LOSSES as PROJECT_LOSSES
    from studio.project import TrainingSettings

    dataset = load_for_training(TrainingSettings(dataset="iris", validation_split=0.5, seed=4))
    assert (dataset.num_train, dataset.num_val) == (75, 75)
    assert LOSSES == PROJECT_LOSSES


# ----- CSV ----------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


CSV_ROWS = "".join(f"{i},{i * 0.5},{'cat' if i % 3 else 'ant'},{i * 2.5 + 1}\n" for i in range(20))


def test_csv_numeric_target_in_last_column_is_regression(tmp_path):
    path = write(
        tmp_path / "data.csv", "a,b,label,value\n" + CSV_ROWS.replace("cat", "1").replace("ant", "2")
    )
    dataset = load_csv(path, validation_split=0.25, seed=0)
    assert dataset.task == "regression" and dataset.num_classes is None
    assert dataset.input_shape == (3,) and dataset.feature_names == ["a", "b", "label"]
    assert dataset.y_train.dtype == np.float32 and (dataset.num_train, dataset.num_val) == (15, 5)
    values = np.sort(np.concatenate([dataset.y_train, dataset.y_val]))
    np.testing.assert_allclose(values, np.arange(20) * 2.5 + 1)


def test_csv_string_target_becomes_sorted_class_indices(tmp_path):
    path = write(tmp_path / "data.csv", "a,b,animal,value\n" + CSV_ROWS)
    dataset = load_csv(path, target="animal", validation_split=0)
    assert dataset.class_names == ["ant", "cat"] and dataset.task == "binary"
    assert dataset.input_shape == (3,) and dataset.feature_names == ["a", "b", "value"]
    assert dataset.num_val == 0 and dataset.x_val.shape == (0, 3)
    # Row i has a == i before standardisation: check each label against its row.
    mean, std = (np.array(dataset.normalization[key]) for key in ("mean", "std"))
    a = np.rint(dataset.x_train[:, 0] * std[0] + mean[0]).astype(int)
    np.testing.assert_array_equal(dataset.y_train, np.where(a % 3 == 0, 0, 1))


def test_csv_whole_number_target_is_classes_sorted_numerically(tmp_path):
    rows = "".join(f"{i},{[1, 2, 10][i % 3]}\n" for i in range(12))
    dataset = load_dataset(str(write(tmp_path / "t.csv", "x,grade\n" + rows)), validation_split=0)
    assert dataset.class_names == ["1", "2", "10"] and dataset.num_classes == 3
    forced = load_csv(tmp_path / "t.csv", task="regression", validation_split=0)
    assert forced.task == "regression"


def test_csv_semicolons_and_blank_lines(tmp_path):
    path = write(tmp_path / "semi.csv", "a;b;y\n\n1;2;x\n3;4;z\n\n5;6;x\n")
    dataset = load_csv(path, validation_split=0)
    assert dataset.num_train == 3 and dataset.class_names == ["x", "z"]


def test_csv_bad_value_names_line_and_column(tmp_path):
    path = write(tmp_path / "data.csv", "sepal,petal,species\n1,2,a\n\n3,abc,b\n")
    with pytest.raises(
        DatasetError, match=r"^data.csv line 4: column 'petal' has the non-numeric value 'abc'$"
    ):
        load_csv(path)


def test_csv_missing_value_names_line_and_column(tmp_path):
    path = write(tmp_path / "data.csv", "sepal,petal,species\n1,2,a\n3,,b\n")
    with pytest.raises(DatasetError, match=r"data.csv line 3: column 'petal' is empty"):
        load_csv(path)


def test_csv_wrong_number_of_values(tmp_path):
    path = write(tmp_path / "data.csv", "a,b,y\n1,2,a\n3,b\n")
    with pytest.raises(DatasetError, match="data.csv line 3: expected 3 values, found 2"):
        load_csv(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "data.csv: the file is empty"),
        ("\n\n", "data.csv: the file is empty"),
        ("a,b,y\n", "data.csv: there are no data rows after the header"),
        ("1,2,3\n4,5,6\n", "data.csv line 1: expected a header row naming the columns"),
        ("a,a,y\n1,2,3\n", "the column name 'a' appears twice"),
        ("y\n1\n2\n", "expected a header with at least 2 columns"),
        ("a,y\n1,x\n2,x\n", "classification needs at least 2 classes, found only 'x'"),
        ("a,y\nnan,x\n2,z\n", "column 'a' has the non-finite value 'nan'"),
    ],
)
def test_csv_structure_errors(tmp_path, text, message):
    with pytest.raises(DatasetError, match=message):
        load_csv(write(tmp_path / "data.csv", text))


def test_csv_missing_target_column(tmp_path):
    path = write(tmp_path / "data.csv", "a,b,y\n1,2,3\n")
    with pytest.raises(DatasetError, match=r"data.csv: no column named 'species' .*\(columns: a, b, y\)"):
        load_csv(path, target="species")


def test_csv_path_relative_to_base_dir(tmp_path):
    write(tmp_path / "data.csv", "a,y\n1,x\n2,z\n3,x\n")
    dataset = load_dataset("data.csv", base_dir=tmp_path, validation_split=0)
    assert dataset.name == "data.csv" and dataset.num_train == 3


# ----- NPZ ----------------------------------------------------------------------------


def test_npz_x_y_uint8_images(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 5, 5), dtype=np.uint8)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x[..., None], y=y)
    dataset = load_dataset(str(tmp_path / "d.npz"), validation_split=0.2, seed=0)
    assert dataset.input_shape == (5, 5, 1) and (dataset.num_train, dataset.num_val) == (24, 6)
    assert dataset.x_train.dtype == np.float32 and dataset.x_train.max() <= 1.0
    assert dataset.num_classes == 3 and dataset.y_train.dtype == np.int64


def test_npz_float_targets_are_regression_and_tables_standardized(tmp_path):
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    np.savez(tmp_path / "r.npz", x=x, y=x.sum(axis=1))
    dataset = load_npz(tmp_path / "r.npz", validation_split=0)
    assert dataset.task == "regression" and dataset.y_train.dtype == np.float32
    np.testing.assert_allclose(dataset.x_train.mean(axis=0), 0, atol=1e-6)


def test_npz_pre_split_is_kept(tmp_path):
    np.savez(
        tmp_path / "s.npz",
        x_train=np.zeros((8, 3), np.float32),
        y_train=np.array(["b", "a"] * 4),
        x_test=np.ones((2, 3), np.float32),
        y_test=np.array(["a", "c"]),
    )
    dataset = load_npz(tmp_path / "s.npz", validation_split=0.5, normalize=False)
    assert (dataset.num_train, dataset.num_val) == (8, 2)
    assert dataset.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(dataset.y_val, [0, 2])
    np.testing.assert_array_equal(dataset.x_val, 1.0)


def test_npz_one_hot_and_int_tokens(tmp_path):
    y = np.eye(4)[np.arange(12) % 4]
    tokens = np.arange(12 * 5).reshape(12, 5)
    np.savez(tmp_path / "t.npz", x=tokens, y=y)
    dataset = load_npz(tmp_path / "t.npz", validation_split=0)
    assert dataset.x_train.dtype == np.int32 and dataset.num_classes == 4 and dataset.target_shape == ()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"a": np.zeros(3)}, r"expected arrays 'x' and 'y' .*; found 'a'"),
        ({"x": np.zeros((3, 2))}, "expected arrays 'x' and 'y'"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(4)}, "'x' has 3 samples but 'y' has 4"),
        ({"x": np.array([[np.nan]] * 2), "y": np.zeros(2)}, "'x' contains NaN"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 1, 2, -1])}, "class labels must be >= 0"),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        load_npz(tmp_path / "bad.npz")


def test_npz_object_arrays_are_rejected_without_unpickling(tmp_path, monkeypatch):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    import pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("the loader tried to unpickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    with pytest.raises(
        DatasetError, match="obj.npz: array 'x' holds Python objects, which would need unpickling"
    ):
        load_dataset(str(tmp_path / "obj.npz"))


def test_npy_and_garbage_files_are_rejected(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(DatasetError, match="x.npy: a single .npy array has no labels"):
        load_dataset(str(tmp_path / "x.npy"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="junk.npz: not a readable .npz archive"):
        load_dataset(str(tmp_path / "junk.npz"))
    (tmp_path / "model.h5").write_bytes(b"")
    with pytest.raises(DatasetError, match="model.h5: unsupported file type '.h5'"):
        load_dataset(str(tmp_path / "model.h5"))


# ----- image folders ------------------------------------------------------------------


def png(path: Path, size=(6, 4), color=128, mode="L") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_image_folder_two_grey_classes(tmp_path):
    root = tmp_path / "images"
    for i in range(3):
        png(root / "cat" / f"{i}.png", color=255)
        png(root / "dog" / f"{i}.png", size=(12, 8), color=0)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0")
    dataset = load_dataset(str(root), validation_split=0)
    assert dataset.class_names == ["cat", "dog"] and dataset.task == "binary"
    assert dataset.input_shape == (4, 6, 1)  # the first image's (height, width), one grey channel
    assert dataset.x_train.dtype == np.float32
    for x, y in zip(dataset.x_train, dataset.y_train, strict=True):
        assert np.allclose(x, 1.0 if y == 0 else 0.0)


def test_image_folder_any_colour_makes_all_rgb_and_size_can_be_given(tmp_path):
    png(tmp_path / "a" / "0.png", color=255)
    png(tmp_path / "b" / "0.png", color=(255, 0, 0), mode="RGB")
    png(tmp_path / "b" / "1.jpg", color=(0, 0, 255), mode="RGB")
    dataset = load_image_folder(tmp_path, image_size=(3, 5), validation_split=0)
    assert dataset.input_shape == (3, 5, 3)
    grey = dataset.x_train[dataset.y_train == 0][0]
    np.testing.assert_allclose(grey, 1.0)
    colours = dataset.x_train[dataset.y_train == 1].mean(axis=(1, 2))  # one red PNG, one blue JPEG
    np.testing.assert_allclose(sorted(colours.tolist()), [[0, 0, 1], [1, 0, 0]], atol=0.02)


def test_image_folder_size_must_be_height_width(tmp_path):
    png(tmp_path / "a" / "0.png")
    png(tmp_path / "b" / "0.png")
    with pytest.raises(DatasetError, match=r"image_size must be two positive integers \(height, width\)"):
        load_image_folder(tmp_path, image_size=(28,))


def test_image_folder_empty_class(tmp_path):
    png(tmp_path / "images" / "dog" / "0.png")
    (tmp_path / "images" / "cat").mkdir()
    (tmp_path / "images" / "cat" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="^images/: class folder 'cat' has no readable images"):
        load_dataset(str(tmp_path / "images"))


def test_image_folder_unreadable_image_is_named(tmp_path):
    png(tmp_path / "images" / "dog" / "0.png")
    png(tmp_path / "images" / "cat" / "0.png")
    (tmp_path / "images" / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="^images/cat/broken.png: not a readable image"):
        load_dataset(str(tmp_path / "images"))


def test_image_folder_layout_errors(tmp_path):
    png(tmp_path / "flat" / "0.png")
    with pytest.raises(DatasetError, match="flat/: neither an image folder"):
        load_dataset(str(tmp_path / "flat"))
    with pytest.raises(
        DatasetError, match="flat/: expected one sub-folder of images per class, found images"
    ):
        load_image_folder(tmp_path / "flat")
    png(tmp_path / "one" / "only" / "0.png")
    with pytest.raises(DatasetError, match="at least 2 class folders, found only 'only'"):
        load_dataset(str(tmp_path / "one"))


# ----- IDX ----------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(
    folder: Path, n: int = 10, gz: bool = False, test: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, (n, 4, 3), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    suffix = ".gz" if gz else ""
    prefixes = ["train", "t10k"] if test else ["train"]
    for prefix in prefixes:
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(array)
            (folder / f"{prefix}-{kind}-ubyte{suffix}").write_bytes(gzip.compress(data) if gz else data)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_plain_and_gz(tmp_path, gz):
    images, labels = write_mnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    array = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    np.testing.assert_array_equal(array, images)
    dataset = load_idx(
        tmp_path / f"train-images-idx3-ubyte{suffix}",
        tmp_path / f"train-labels-idx1-ubyte{suffix}",
        validation_split=0,
    )
    assert dataset.input_shape == (4, 3, 1) and dataset.num_classes == 10 and dataset.num_train == 10
    order = np.argsort(dataset.y_train)  # labels 0..9 each once
    np.testing.assert_allclose(dataset.x_train[order][..., 0], images / 255.0, rtol=1e-6)


def test_idx_wider_types_are_big_endian(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 1e6]], dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(idx_bytes(values, code=0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), values)
    ints = np.array([70000, -3], dtype=np.int32)
    (tmp_path / "i.idx").write_bytes(idx_bytes(ints, code=0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "i.idx"), ints)


def test_idx_folder_detection_with_test_split(tmp_path):
    write_mnist(tmp_path / "mnist", gz=True, test=True)
    dataset = load_dataset(str(tmp_path / "mnist"), validation_split=0.5)
    assert (dataset.num_train, dataset.num_val) == (10, 10)  # the t10k files are the validation split
    single = load_dataset(str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz"), validation_split=0.5)
    assert (single.num_train, single.num_val) == (5, 5)


def test_idx_bad_magic(tmp_path):
    (tmp_path / "train.idx").write_bytes(b"\x12\x34\x08\x01" + b"\0" * 8)
    with pytest.raises(DatasetError, match=r"^train.idx: not an IDX file \(magic number 0x12340801\)$"):
        read_idx(tmp_path / "train.idx")
    (tmp_path / "short.idx").write_bytes(b"\0\0")
    with pytest.raises(DatasetError, match="short.idx: not an IDX file"):
        read_idx(tmp_path / "short.idx")


def test_idx_size_mismatch(tmp_path):
    data = idx_bytes(np.zeros((3, 2, 2), np.uint8))
    (tmp_path / "cut.idx").write_bytes(data[:-1])
    with pytest.raises(
        DatasetError, match=r"cut.idx: the header declares shape \(3, 2, 2\) of uint8 \(12 bytes"
    ):
        read_idx(tmp_path / "cut.idx")
    (tmp_path / "head.idx").write_bytes(data[:9])
    with pytest.raises(DatasetError, match="head.idx: the IDX header is cut short"):
        read_idx(tmp_path / "head.idx")


def test_idx_label_count_mismatch(tmp_path):
    (tmp_path / "img").write_bytes(idx_bytes(np.zeros((5, 2, 2), np.uint8)))
    (tmp_path / "lab").write_bytes(idx_bytes(np.arange(4, dtype=np.uint8)))
    with pytest.raises(DatasetError, match="lab has 4 labels but img has 5 images"):
        load_idx(tmp_path / "img", tmp_path / "lab")


def test_idx_folder_missing_labels(tmp_path):
    write_mnist(tmp_path / "m")
    (tmp_path / "m" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="has train-images-idx3-ubyte but no train-labels-idx1-ubyte"):
        load_dataset(str(tmp_path / "m"))


# ----- keras.datasets -----------------------------------------------------------------


def test_keras_download_failure_is_a_clear_error(monkeypatch):
    keras_mnist = pytest.importorskip("keras.datasets.mnist")

    def offline(*args, **kwargs):
        reason = urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        raise Exception(f"URL fetch failure on https://storage.googleapis.com/mnist.npz: None -- {reason}")

    monkeypatch.setattr(keras_mnist, "load_data", offline)
    with pytest.raises(DatasetError) as caught:
        load_dataset("mnist")
    message = str(caught.value)
    assert message.startswith("could not download mnist: no network access (URL fetch failure")
    assert message.endswith("download it elsewhere and load the IDX or .npz files instead")


def test_keras_dataset_uses_its_split_and_scales(monkeypatch):
    import types

    fake = types.SimpleNamespace(
        datasets=types.SimpleNamespace(
            cifar10=types.SimpleNamespace(
                load_data=lambda: (
                    (np.full((6, 2, 2, 3), 255, np.uint8), (np.arange(6) % 10).reshape(6, 1)),
                    (np.zeros((2, 2, 2, 3), np.uint8), np.array([[1], [2]])),
                )
            )
        )
    )
    monkeypatch.setitem(sys.modules, "keras", fake)
    dataset = load_dataset("cifar10")
    assert (dataset.num_train, dataset.num_val) == (6, 2) and dataset.input_shape == (2, 2, 3)
    assert dataset.x_train.max() == 1.0 and dataset.y_val.tolist() == [1, 2]
    assert dataset.class_names[0] == "airplane"


def test_keras_other_failures_still_name_the_dataset(monkeypatch):
    import types

    def broken():
        raise ValueError("bad cache")

    fake = types.SimpleNamespace(
        datasets=types.SimpleNamespace(fashion_mnist=types.SimpleNamespace(load_data=broken))
    )
    monkeypatch.setitem(sys.modules, "keras", fake)
    with pytest.raises(DatasetError, match=r"could not download fashion_mnist \(ValueError: bad cache\)"):
        load_dataset("fashion_mnist")


# ----- fit_to_model -------------------------------------------------------------------


def test_fit_accepts_matching_shapes_unchanged():
    dataset = load_dataset("iris")
    fitted = fit_to_model(dataset, (4,), (3,), "cross_entropy")
    assert fitted.x_train is dataset.x_train and fitted.y_train is dataset.y_train


def test_fit_flattens_and_unflattens_digits():
    digits = load_dataset("digits")
    flat = fit_to_model(digits, (64,), (10,), "cross_entropy")
    assert flat.input_shape == (64,) and flat.x_val.shape == (digits.num_val, 64)
    np.testing.assert_array_equal(flat.x_train[0], digits.x_train[0].ravel())
    back = fit_to_model(flat, [8, 8, 1], [10], "cross_entropy")
    np.testing.assert_array_equal(back.x_train, digits.x_train)
    squeezed = fit_to_model(digits, (8, 8), (10,), "cross_entropy")
    assert squeezed.input_shape == (8, 8)


def test_fit_rejects_wrong_input_shape():
    with pytest.raises(DatasetError) as caught:
        fit_to_model(load_dataset("iris"), (8, 8, 1), (3,), "cross_entropy")
    assert str(caught.value) == (
        "dataset 'iris' has samples of shape (4,) but the model's input 'input' expects (None, 8, 8, 1) "
        "(4 values per sample, the model takes 64)"
    )


def test_fit_refuses_reshapes_that_mix_axes():
    rgb = Dataset(
        "rgb",
        np.zeros((4, 2, 3, 3), np.float32),
        np.array([0, 1, 0, 1]),
        np.zeros((0, 2, 3, 3), np.float32),
        np.zeros(0, np.int64),
        "binary",
        2,
    )
    with pytest.raises(
        DatasetError, match=r"expects \(None, 3, 2, 3\); both hold 18 values, but reshaping would mix"
    ):
        fit_to_model(rgb, (3, 2, 3), (2,), "cross_entropy", input_name="image")


def test_fit_checks_class_count_for_cross_entropy():
    with pytest.raises(
        DatasetError, match=r"^the model outputs 3 values per sample but 'digits' has 10 classes$"
    ):
        fit_to_model(load_dataset("digits"), (8, 8, 1), (3,), "cross_entropy")
    with pytest.raises(DatasetError, match="use binary_cross_entropy for a single output"):
        fit_to_model(load_dataset("moons"), (2,), (1,), "cross_entropy")


def test_fit_binary_cross_entropy():
    moons = load_dataset("moons")
    fitted = fit_to_model(moons, (2,), (1,), "binary_cross_entropy")
    assert fitted.y_train.dtype == np.float32 and fitted.y_train.shape == (moons.num_train, 1)
    np.testing.assert_array_equal(fitted.y_train[:, 0], moons.y_train)
    assert fitted.task == "binary" and fitted.num_classes == 2
    with pytest.raises(DatasetError, match="binary_cross_entropy on 'moons' needs 1"):
        fit_to_model(moons, (2,), (2,), "binary_cross_entropy")
    with pytest.raises(DatasetError, match="binary_cross_entropy needs 2 classes but 'iris' has 3"):
        fit_to_model(load_dataset("iris"), (4,), (1,), "binary_cross_entropy")


def test_fit_regression_losses():
    regression = load_dataset("regression")
    for loss in ("mse", "mae"):
        fitted = fit_to_model(regression, (8,), (1,), loss)
        assert fitted.y_train.shape == (regression.num_train, 1) and fitted.target_shape == (1,)
    with pytest.raises(
        DatasetError, match="the model outputs 3 values per sample but 'regression' has 1 target value"
    ):
        fit_to_model(regression, (8,), (3,), "mse")
    with pytest.raises(
        DatasetError, match="cross_entropy needs class labels but 'regression' has real-valued"
    ):
        fit_to_model(regression, (8,), (1,), "cross_entropy")


def test_fit_mse_on_classes_uses_one_hot():
    iris = load_dataset("iris")
    fitted = fit_to_model(iris, (4,), (3,), "mse")
    np.testing.assert_array_equal(fitted.y_train.argmax(axis=1), iris.y_train)
    assert fitted.y_train.sum() == iris.num_train
    with pytest.raises(DatasetError, match="the model outputs 2 values per sample but 'iris' has 3 classes"):
        fit_to_model(iris, (4,), (2,), "mae")


def test_fit_unknown_loss_and_int_inputs():
    iris = load_dataset("iris")
    with pytest.raises(DatasetError, match="unknown loss 'hinge'"):
        fit_to_model(iris, (4,), (3,), "hinge")
    with pytest.raises(DatasetError, match="takes int32 token ids but dataset 'iris' has fractional"):
        fit_to_model(iris, (4,), (3,), "cross_entropy", input_dtype="int32")
    tokens = Dataset(
        "tokens",
        np.arange(12, dtype=np.float32).reshape(4, 3),
        np.array([0, 1, 0, 1]),
        np.zeros((0, 3), np.float32),
        np.zeros(0, np.int64),
        "binary",
        2,
    )
    assert fit_to_model(tokens, (3,), (2,), "cross_entropy", input_dtype="int32").x_train.dtype == np.int32


def test_dataset_checks_its_arrays():
    with pytest.raises(DatasetError, match="x_train has 2 samples but y_train has 3"):
        Dataset(
            "d",
            np.zeros((2, 1), np.float32),
            np.zeros(3, np.int64),
            np.zeros((0, 1), np.float32),
            np.zeros(0, np.int64),
            "binary",
            2,
        )
    with pytest.raises(DatasetError, match="y_train of a regression task must be float32"):
        Dataset(
            "d",
            np.zeros((2, 1), np.float32),
            np.zeros(2, np.int64),
            np.zeros((0, 1), np.float32),
            np.zeros(0, np.int64),
            "regression",
        )


# ----- split and batch order ----------------------------------------------------------


def test_split_sizes_and_seeded_shuffle():
    train, val = split_indices(100, 0.2, seed=5)
    assert (len(train), len(val)) == (80, 20)
    again = split_indices(100, 0.2, seed=5)
    np.testing.assert_array_equal(train, again[0])
    assert not np.array_equal(train, split_indices(100, 0.2, seed=6)[0])
    assert not np.array_equal(np.sort(val), np.arange(20))  # shuffled, not the last rows
    assert [len(part) for part in split_indices(3, 0.01, 0)] == [2, 1]  # a positive split keeps one sample
    assert [len(part) for part in split_indices(2, 0.9, 0)] == [1, 1]  # and always leaves one to train on
    assert [len(part) for part in split_indices(10, 0.0, 0)] == [10, 0]
    with pytest.raises(DatasetError, match=r"validation_split must be a number in \[0, 1\)"):
        split_indices(10, 1.0, 0)
    with pytest.raises(DatasetError, match="seed must be a non-negative integer"):
        split_indices(10, 0.2, -1)
    with pytest.raises(DatasetError, match="validation_split must be"):
        load_dataset("mnist", validation_split=-0.1)  # checked before any download


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 500), seed=st.integers(0, 2**32 - 1), split=st.floats(0, 0.99))
def test_split_partitions_the_data(n, seed, split):
    train, val = split_indices(n, split, seed)
    combined = np.concatenate([train, val])
    assert np.array_equal(np.sort(combined), np.arange(n))  # nothing lost, nothing duplicated
    if n >= 1:
        assert len(train) >= 1
    if n >= 2 and split > 0:
        assert len(val) >= 1


def test_epoch_order_is_shared_and_changes_per_epoch():
    first = epoch_order(50, seed=3, epoch=0)
    np.testing.assert_array_equal(first, epoch_order(50, seed=3, epoch=0))
    assert not np.array_equal(first, epoch_order(50, seed=3, epoch=1))
    assert not np.array_equal(first, split_indices(50, 0.0, 3)[0])  # not the split's permutation
    assert sorted(first.tolist()) == list(range(50))


def test_batches_follow_the_epoch_order():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)
    got = list(batches(x, y, 4, seed=1, epoch=2))
    assert [len(yb) for _, yb in got] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in got]), epoch_order(10, 1, 2))
    for xb, yb in got:
        np.testing.assert_array_equal(xb[:, 0], yb)
    assert [len(b) for b in batch_indices(10, 4, 1, 2, drop_last=True)] == [4, 4]
    assert np.concatenate(list(batch_indices(5, 2, 0, 0, shuffle=False))).tolist() == [0, 1, 2, 3, 4]


def test_module_does_not_import_frameworks():
    import subprocess

    code = (
        "import sys, studio.datasets as d; d.load_dataset('iris'); "
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert result.stdout.strip() == "[]"
