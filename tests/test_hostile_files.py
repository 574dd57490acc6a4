"""Special files, size limits and all-or-nothing writes (issue 17, classes 2, 3 and 9).

Inputs are read only when they are regular files under a size limit; outputs replace only
regular files (atomically), write through to FIFOs and terminals, and refuse anything else.
"""

from __future__ import annotations

import gzip
import os
import stat
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from studio.datasets import DatasetError, load_dataset
from studio.files import (
    LIMIT_ENV,
    FileTooLargeError,
    NotRegularFileError,
    StagedOutput,
    commit_all,
    read_regular_file,
    write_bytes,
)
from studio.interop import ModelFileError, import_model, load_weights, save_imported
from studio.interop.builder import ImportedModel
from studio.interop.errors import WeightsError
from studio.project import ProjectError, load_project, save_project
from tests.graph_builders import chain

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "assets" / "examples" / "lenet_digits.layers.json"


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe.layers.json"
    os.mkfifo(path)
    return path


# ----- inputs ---------------------------------------------------------------------------------


def test_a_fifo_a_device_or_a_folder_is_refused_as_a_project_without_opening_it(tmp_path, fifo):
    zero = tmp_path / "zero.layers.json"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.layers.json"
    folder.mkdir()
    for path, kind in ((fifo, "a FIFO"), (zero, "a character device"), (folder, "is a folder")):
        with pytest.raises(ProjectError, match=kind) as caught:
            load_project(path)
        assert str(path) in str(caught.value)


def test_a_project_larger_than_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.layers.json"
    with open(path, "wb") as handle:
        handle.truncate(65 * 2**20)  # sparse: costs no disk, and must not be read
    with pytest.raises(ProjectError, match=r"the file is 68,157,440 bytes; the limit is 67,108,864 bytes"):
        load_project(path)
    monkeypatch.setenv(LIMIT_ENV, "100")
    with pytest.raises(ProjectError, match="not valid JSON|not UTF-8"):  # read, since the limit was raised
        load_project(path)


def test_reading_stops_at_the_limit_even_if_the_file_grew(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, 100) == b"x" * 100
    with pytest.raises(FileTooLargeError, match="the limit is 99 bytes"):
        read_regular_file(path, 99)


@pytest.mark.parametrize("name", ["data.csv", "train-images-idx3-ubyte", "data.npz"])
def test_datasets_that_are_fifos_or_devices_are_refused(tmp_path, name):
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"")
    path = tmp_path / name
    os.mkfifo(path)
    with pytest.raises(DatasetError, match=rf"{name}: .*FIFO"):
        load_dataset(path)
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(DatasetError, match=rf"{name}: .*character device"):
        load_dataset(path)


def _small_limit(monkeypatch) -> int:
    monkeypatch.setenv(LIMIT_ENV, "1")
    return 2**20


def test_a_gzipped_idx_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    _small_limit(monkeypatch)
    header = bytes([0, 0, 0x08, 3]) + np.array([2000, 28, 28], dtype=">u4").tobytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(2000 * 28 * 28)))
    labels = bytes([0, 0, 0x08, 1]) + np.array([2000], dtype=">u4").tobytes() + bytes(2000)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels)
    with pytest.raises(
        DatasetError, match=r"train-images-idx3-ubyte.gz: the IDX data is 1,568,016 bytes; the limit"
    ):
        load_dataset(tmp_path)


def test_a_gzip_stream_that_unpacks_beyond_its_header_is_cut_at_the_limit(tmp_path, monkeypatch):
    _small_limit(monkeypatch)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00" * (3 * 2**20)))  # no IDX header: only the limit stops it
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DatasetError, match="unpacks to more than 1,048,576 bytes; the limit"):
        load_dataset(path)


def test_an_npz_whose_arrays_together_exceed_the_limit_is_refused(tmp_path, monkeypatch):
    _small_limit(monkeypatch)
    path = tmp_path / "data.npz"
    np.savez_compressed(path, x=np.zeros((3000, 100)), y=np.zeros(3000))  # 2.4 MB of zeros, packed small
    assert path.stat().st_size < 2**20
    with pytest.raises(DatasetError, match=r"data.npz: .*the limit is 1,048,576 bytes"):
        load_dataset(path)


def test_one_huge_image_among_small_ones_is_refused_from_its_header(tmp_path, monkeypatch):
    from PIL import Image

    _small_limit(monkeypatch)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / label / "small.png")
    Image.new("L", (1000, 1000)).save(tmp_path / "b" / "huge.png")
    with pytest.raises(
        DatasetError, match=r"b/huge.png: an image of 1,000x1,000 pixels needs 8,000,000 bytes"
    ):
        load_dataset(tmp_path)


def test_weights_that_declare_more_than_the_limit_are_refused(tmp_path, monkeypatch):
    _small_limit(monkeypatch)
    path = tmp_path / "model.weights.npz"
    np.savez_compressed(path, __format__=np.array("layer-studio-weights 1"), **{"d/0": np.zeros((600, 600))})
    with pytest.raises(WeightsError, match=r"an entry is too large to load .*'d/0.*the limit"):
        load_weights(path)
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(WeightsError, match="cannot be read .*character device"):
        load_weights(path)


def test_a_keras_archive_with_a_huge_member_is_refused_without_inflating_it(tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", b" " * (2 * 2**20))
    monkeypatch.setenv(LIMIT_ENV, "1")
    with pytest.raises(
        ModelFileError, match=r"model.keras: cannot be read \(member 'config.json' unpacks to"
    ):
        import_model(path)
    for name in ("model.onnx", "model.h5"):
        special = tmp_path / name
        os.mkfifo(special)
        with pytest.raises(ModelFileError, match=rf"{name}: cannot be read \(is a FIFO"):
            import_model(special)


# ----- outputs --------------------------------------------------------------------------------


def test_a_save_through_a_link_replaces_the_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.layers.json"
    save_project(load_project(LENET), target)
    os.chmod(target, 0o640)
    link = tmp_path / "link.layers.json"
    link.symlink_to(target.name)
    save_project(chain([4], ("Dense", {"units": 2})), link)
    assert link.is_symlink() and len(load_project(target).graph) == 2
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_output_to_a_fifo_is_written_through_and_the_fifo_stays(fifo):
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_bytes(fifo, b"hello")
    reader.join(10)
    assert received == [b"hello"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_output_to_a_full_device_reports_the_error_and_leaves_the_device(capsys):
    from studio.cli import main

    assert main(["export", str(LENET), "--framework", "keras", "-o", "/dev/full"]) == 2
    assert capsys.readouterr().err.strip() == "error: cannot write /dev/full: No space left on device"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_output_to_stdout_prints(capfd):
    from studio.cli import main

    assert main(["export", str(LENET), "--framework", "pytorch", "-o", "/dev/stdout"]) == 0
    assert "nn.Module" in capfd.readouterr().out


def test_output_to_a_folder_or_socket_is_refused(tmp_path):
    import socket

    with pytest.raises(IsADirectoryError):
        write_bytes(tmp_path, b"x")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        with pytest.raises(NotRegularFileError, match="is a socket"):
            write_bytes(tmp_path / "sock", b"x")
    finally:
        server.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sock"]


# ----- all or nothing -------------------------------------------------------------------------


def _imported() -> ImportedModel:
    project = chain([4], ("Dense", {"units": 2}))
    weights = {"dense": [np.ones((4, 2), np.float32), np.zeros(2, np.float32)]}
    return ImportedModel(project, weights, "keras", 10, "keras")


def test_a_failed_import_force_keeps_the_old_project_and_weights(tmp_path, monkeypatch):
    project_path = tmp_path / "model.layers.json"
    save_imported(_imported(), project_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert sorted(before) == ["model.layers.json", "model.weights.npz"]
    replace = os.replace

    def fail_on_the_project(source, target):
        if str(target).endswith(".layers.json"):
            raise OSError(28, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(os, "replace", fail_on_the_project)
    other = _imported()
    other.weights["dense"][0] *= 3
    with pytest.raises(OSError, match="No space left"):
        save_imported(other, project_path)
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_commit_all_puts_back_what_it_replaced_when_a_later_output_fails(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b"
    first.write_text("old")
    staged = [StagedOutput(first), StagedOutput(second)]
    staged[0].temp.write_text("new")
    second.mkdir()  # the second output cannot replace a folder
    with pytest.raises(OSError):
        commit_all(staged)
    assert first.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b"]


def test_an_output_written_through_leaves_no_temporary_file(tmp_path):
    before = set(os.listdir(os.environ.get("TMPDIR", "/tmp")))
    write_bytes("/dev/null", b"x" * 10)
    assert set(os.listdir(os.environ.get("TMPDIR", "/tmp"))) - before == set()


# ----- paths in the home folder of no user (class 10) ------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "~nosuchuser_x/model.layers.json"],
        ["export", str(LENET), "--framework", "keras", "-o", "~nosuchuser_x/model.py"],
        ["train", str(LENET), "--framework", "keras", "--out", "~nosuchuser_x/run"],
        ["train", str(LENET), "--framework", "keras", "--dataset", "~nosuchuser_x/data.csv"],
        ["import", "~nosuchuser_x/model.onnx"],
    ],
)
def test_a_home_folder_of_no_user_is_one_clear_error(argv, capsys):
    from studio.cli import main

    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines() == [
        next(
            f"error: {arg}: there is no user 'nosuchuser_x', so ~nosuchuser_x names no home folder"
            for arg in argv
            if arg.startswith("~")
        )
    ]
