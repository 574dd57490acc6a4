"""Build the hostile corpus: project, dataset and model files that attack the studio (issue 17).

Nothing large is committed: each file is written at test time (sparse files and small
archives stand in for huge ones; a case may lower the size limit with STUDIO_MAX_FILE_MB
so that a bomb of a few MiB shows what one of terabytes would do)::

    python -m tests.hostile.make_corpus /tmp/hostile   # writes the files and lists the cases

Each :class:`Case` names its hostile file, the commands to run on it (``{target}`` is the
file, ``{out}`` a folder outside the corpus for outputs) and the exit codes allowed.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"
IRIS = EXAMPLES / "mlp_iris.layers.json"
LENET = EXAMPLES / "lenet_digits.layers.json"

# Commands on a project; "{out}" is a folder outside the corpus.
CHECK = ["check", "{target}"]
SUMMARY = ["summary", "{target}"]
EXPORT_KERAS = ["export", "{target}", "--framework", "keras", "-o", "{out}/model.py"]
EXPORT_TORCH = ["export", "{target}", "--framework", "pytorch"]
VERIFY = ["verify", "{target}"]
TRAIN = ["train", "{target}", "--framework", "keras", "--epochs", "1", "--out", "{out}/run"]
PROJECT_COMMANDS = [CHECK, SUMMARY, EXPORT_KERAS, EXPORT_TORCH, VERIFY, TRAIN]
TRAIN_ON = [
    "train",
    str(IRIS),
    "--framework",
    "keras",
    "--epochs",
    "1",
    "--dataset",
    "{target}",
    "--out",
    "{out}/run",
]
IMPORT = ["import", "{target}", "--weights", "-o", "{out}/imported.layers.json"]


@dataclass
class Case:
    name: str
    target: str  # the hostile file or folder, relative to the corpus folder
    commands: list[list[str]]
    codes: tuple[int, ...] = (1, 2)  # exit codes allowed; 0 for hostile files that are valid
    limit_mb: int | None = None  # STUDIO_MAX_FILE_MB while the commands run
    mentions: str | None = None  # text the output must contain (default: the target's name)
    make: Callable[[Path], None] = field(default=lambda folder: None, repr=False)


def _document(path: Path = IRIS) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")


def _with_merge_port(port: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        document = _document()
        document["nodes"].append({"id": "cat", "kind": "Concatenate", "name": "cat", "params": {}})
        document["edges"] += [
            {"from": "n4", "to": "cat", "port": 0},
            {"from": "n5", "to": "cat", "port": port},
        ]
        _write_json(path, document)

    return make


def _with_params(index: int, **params) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        document = _document(LENET if "pool_size" in params else IRIS)
        document["nodes"][index]["params"].update(params)
        _write_json(path, document)

    return make


def _chain(
    count: int, back_edge: bool = False, first_id: str = "n1", name: str = "chain"
) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        ids = [first_id] + [f"n{i}" for i in range(2, count + 1)]
        nodes = [{"id": ids[0], "kind": "Input", "name": "input", "params": {"shape": [4]}}]
        nodes += [
            {"id": ids[i], "kind": "Dropout", "name": f"dropout_{i}", "params": {"rate": 0.1}}
            for i in range(1, count)
        ]
        edges = [{"from": ids[i], "to": ids[i + 1], "port": 0} for i in range(count - 1)]
        if back_edge:  # the second layer becomes an Add fed by the input and, last, by the chain's end
            nodes[1] = {"id": ids[1], "kind": "Add", "name": "add", "params": {}}
            edges.append({"from": ids[-1], "to": ids[1], "port": 1})
        _write_json(
            path, {"format": "layer-studio", "version": 1, "name": name, "nodes": nodes, "edges": edges}
        )

    return make


def _named(name: str, layer: str = "dense") -> Callable[[Path], None]:
    def make(path: Path) -> None:
        document = _document()
        document["name"] = name
        document["description"] = name
        document["nodes"][1]["name"] = layer
        _write_json(path, document)

    return make


def _training(**settings) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        document = _document()
        document["training"].update(settings)
        _write_json(path, document)

    return make


def _fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def _link(to: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(to)

    return make


def _sparse(size: int, head: bytes = b"") -> Callable[[Path], None]:
    """A file of ``size`` bytes that takes no disk space (and must never be read whole)."""

    def make(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(head)
            handle.truncate(size)

    return make


def _folder(path: Path) -> None:
    path.mkdir(parents=True)


def _idx_bomb(path: Path) -> None:
    """MNIST-style gzipped images declaring 60,000 images of 28x28 (47 MB), packed into a few KB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, 3]) + np.array([60000, 28, 28], dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + bytes(60000 * 28 * 28), compresslevel=9))
    labels = bytes([0, 0, 0x08, 1]) + np.array([60000], dtype=">u4").tobytes() + bytes(60000)
    (path.parent / "train-labels-idx1-ubyte").write_bytes(labels)


def _npz_bomb(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=np.zeros((20000, 100), np.float32), y=np.zeros(20000, np.int64))


def _image_folder_with_one_huge_png(path: Path) -> None:
    from PIL import Image

    for label in ("cat", "dog"):
        (path / label).mkdir(parents=True)
        for index in range(3):
            Image.new("L", (8, 8), color=index * 40).save(path / label / f"{index}.png")
    Image.new("L", (3000, 3000)).save(path / "dog" / "huge.png")  # 9 Mpixel: a few KB as PNG


def _csv_with_many_columns(path: Path) -> None:
    """200,000 columns whose last name repeats the first: the duplicate check must be linear."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"c{i}" for i in range(200_000)] + ["c0"]
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n", encoding="utf-8")


def _keras_bomb(path: Path) -> None:
    """A .keras archive whose config.json unpacks to 64 MiB of spaces (64 KB packed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("config.json", b" " * (64 * 2**20))
        archive.writestr("model.weights.h5", b"")


def _keras_weights_bomb(path: Path) -> None:
    """A .keras archive whose weights member unpacks to 4 MiB (over a 1 MiB limit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", bytes(4 * 2**20))


def _onnx_chain(count: int) -> Callable[[Path], None]:
    """A chain of ``count`` nameless Relu nodes (import must stay linear)."""

    def make(path: Path) -> None:
        import onnx
        from onnx import TensorProto, helper

        nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"]) for i in range(count)]
        graph = helper.make_graph(
            nodes,
            "chain",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
            [helper.make_tensor_value_info(f"t{count - 1}", TensorProto.FLOAT, [1, 16])],
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)

    return make


def _weights_bomb(path: Path) -> None:
    """An IRIS project beside a weights file whose entry declares 10^12 float64 values."""
    from tests.fuzzing import huge_header_member

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__format__.npy", _npy(np.array("layer-studio-weights 1")))
        archive.writestr("dense/0.npy", huge_header_member((10**6, 10**6)))


def _pickled_checkpoint(folder: Path) -> None:
    """A torch checkpoint holding a Python object: loading it would need unpickling."""
    import fractions

    import torch

    folder.mkdir(parents=True)
    torch.save({"model": fractions.Fraction(1, 3)}, folder / "checkpoint.pt")


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


P = "projects/"
D = "datasets/"
M = "models/"

CASES: list[Case] = [
    # ----- class 1: sizes read from the file
    Case("merge port 10^8", P + "port-1e8.layers.json", PROJECT_COMMANDS, (2,), make=_with_merge_port(10**8)),
    Case(
        "merge port 10^15", P + "port-1e15.layers.json", PROJECT_COMMANDS, (2,), make=_with_merge_port(10**15)
    ),
    Case(
        "units 2^31-1",
        P + "units.layers.json",
        [CHECK, EXPORT_KERAS, VERIFY],
        (1,),
        make=_with_params(1, units=2**31 - 1),
    ),
    Case(
        "70-axis input",
        P + "rank70.layers.json",
        PROJECT_COMMANDS,
        (2,),
        make=_with_params(0, shape=[1] * 70),
    ),
    Case(
        "same-padded pool of 2^20",
        P + "pool.layers.json",
        [CHECK, EXPORT_TORCH, VERIFY],
        (1,),
        make=_with_params(2, pool_size=[2**20, 2**20], padding="same"),
    ),
    Case(
        "batch size 10^20", P + "batch.layers.json", PROJECT_COMMANDS, (2,), make=_training(batch_size=10**20)
    ),
    # ----- class 3: special files as projects
    Case("project FIFO", P + "fifo.layers.json", PROJECT_COMMANDS, (2,), make=_fifo),
    Case(
        "project link to /dev/zero", P + "zero.layers.json", PROJECT_COMMANDS, (2,), make=_link("/dev/zero")
    ),
    Case("project folder", P + "folder.layers.json", PROJECT_COMMANDS, (2,), make=_folder),
    Case("project of 65 MiB", P + "huge.layers.json", PROJECT_COMMANDS, (2,), make=_sparse(65 * 2**20, b"{")),
    # ----- classes 5 and 6: long graphs
    Case(
        "cycle closed by the last edge",
        P + "cycle.layers.json",
        PROJECT_COMMANDS,
        (2,),
        make=_chain(5000, back_edge=True),
    ),
    Case("16,000 layers", P + "long.layers.json", [CHECK, SUMMARY], (0,), make=_chain(16_000)),
    Case(
        "3,000 Dropouts",
        P + "deep.layers.json",
        [CHECK, SUMMARY, EXPORT_KERAS, EXPORT_TORCH],
        (0,),
        make=_chain(3000),
    ),
    # ----- class 7: odd text
    Case(
        "5,000-digit node id",
        P + "id.layers.json",
        [CHECK, SUMMARY, EXPORT_TORCH],
        (0,),
        make=_chain(3, first_id="n" + "9" * 5000),
    ),
    Case(
        "escapes, surrogates and % in names",
        P + "text.layers.json",
        [CHECK, SUMMARY, EXPORT_KERAS, EXPORT_TORCH],
        (0,),
        mentions="",
        make=_named("%(prog)s 100% \x1b]0;owned\x07\x1b[2J\x9b31m\ud800\u202e", "dense\u009b2J\u202e"),
    ),
    # ----- classes 2 and 3: datasets
    Case("CSV FIFO", D + "fifo.csv", [TRAIN_ON], (2,), make=_fifo),
    Case("CSV link to /dev/zero", D + "zero.csv", [TRAIN_ON], (2,), make=_link("/dev/zero")),
    Case("CSV of 2 GiB", D + "big.csv", [TRAIN_ON], (2,), make=_sparse(2 * 2**30, b"a,b\n")),
    Case(
        "CSV with 200,000 columns, one twice",
        D + "wide.csv",
        [TRAIN_ON],
        (2,),
        mentions="appears twice",
        make=_csv_with_many_columns,
    ),
    Case(
        "gzipped IDX bomb", D + "idx/train-images-idx3-ubyte.gz", [TRAIN_ON], (2,), limit_mb=8, make=_idx_bomb
    ),
    Case("NPZ bomb", D + "bomb.npz", [TRAIN_ON], (2,), limit_mb=1, make=_npz_bomb),
    Case(
        "one huge PNG",
        D + "images",
        [TRAIN_ON],
        (2,),
        limit_mb=16,
        mentions="huge.png",
        make=_image_folder_with_one_huge_png,
    ),
    # ----- classes 2 and 3: model files
    Case(".keras with a 64 MiB config.json", M + "bomb.keras", [IMPORT], (2,), make=_keras_bomb),
    Case("ONNX FIFO", M + "fifo.onnx", [IMPORT], (2,), make=_fifo),
    Case(
        ".keras with a huge weights.h5",
        M + "weights-bomb.keras",
        [IMPORT],
        (2,),
        limit_mb=1,
        make=_keras_weights_bomb,
    ),
    Case("5,000-node ONNX chain", M + "chain.onnx", [IMPORT], (0,), make=_onnx_chain(5000)),
    Case(
        "PyTorch model file FIFO",
        M + "fifo.py",
        [["import", "{target}:Net", "--allow-code", "-o", "{out}/imported.layers.json"]],
        (2,),
        make=_fifo,
    ),
    Case(
        "resume from a FIFO checkpoint",
        "runs/fifo",
        [["train", str(IRIS), "--framework", "pytorch", "--resume", "{target}", "--out", "{out}/run"]],
        (2,),
        mentions="checkpoint.pt",
        make=lambda path: _fifo(path / "checkpoint.pt"),
    ),
    Case(
        "resume from a pickled checkpoint",
        "runs/pickled",
        [
            [
                "train",
                str(IRIS),
                "--framework",
                "pytorch",
                "--epochs",
                "1",
                "--resume",
                "{target}",
                "--out",
                "{out}/run",
            ]
        ],
        (2,),
        mentions="checkpoint.pt: it holds pickled Python objects",
        make=_pickled_checkpoint,
    ),
    Case("H5 link to /dev/zero", M + "zero.h5", [IMPORT], (2,), make=_link("/dev/zero")),
    Case("ONNX of 2 GiB", M + "big.onnx", [IMPORT], (2,), make=_sparse(2 * 2**30)),
    Case(
        "weights declaring 8 TB",
        M + "bomb.weights.npz",
        [
            [
                "export",
                str(IRIS),
                "--framework",
                "pytorch",
                "-o",
                "{out}/m.py",
                "--weights",
                "{target}",
                "--weights-out",
                "{out}/w.pt",
            ]
        ],
        (2,),
        make=_weights_bomb,
    ),
]


def build(folder: Path) -> list[Case]:
    """Write every case's hostile file under ``folder``; returns the cases."""
    for case in CASES:
        case.make(folder / case.target)
    return CASES


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    for case in build(target):
        print(f"{case.name}: {target / case.target}")
