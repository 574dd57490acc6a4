"""Project files: one human-readable JSON document per model (``*.layers.json``).

Layout (format version 1)::

    {
      "format": "layer-studio",
      "version": 1,
      "name": "LeNet on digits",
      "description": "...",
      "training": {"dataset": "digits", "loss": "cross_entropy", ...},
      "nodes": [
        {
          "id": "n1",
          "kind": "Input",
          "name": "input",
          "params": {"shape": [8, 8, 1], "dtype": "float32"},
          "position": [0.0, 0.0]
        },
        ...
      ],
      "edges": [{"from": "n1", "to": "n2", "port": 0}, ...],
      "outputs": ["n7"],
      "blocks": [{"name": "stem", "members": ["n2", "n3"], "collapsed": true}, ...]
    }

``blocks`` (optional) names groups of layers for the canvas; they never change the model.

Keys are written in a fixed order and every node is its own block, so files
diff well. Loading checks everything and raises :class:`ProjectError` naming
the problem and where it is; saving is atomic.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from studio.catalog import CATALOG, ParamError, Registry, UnknownKindError
from studio.catalog.params import MAX_INT
from studio.files import PROJECT_LIMIT, limit, read_regular_file, write_bytes
from studio.graph import MAX_EDGES, MAX_NODES, Graph, GraphError, first_cycle_edge

FORMAT_NAME = "layer-studio"
FORMAT_VERSION = 1
EXTENSION = ".layers.json"

# Forward migrations: MIGRATIONS[v] turns a version-v document into version v+1.
Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {}

# The frameworks the studio generates code for and trains in: the one list (with their titles),
# used by the code generators, the training engine, interop, the CLI and the GUI.
FRAMEWORK_TITLES = {"keras": "Keras", "pytorch": "PyTorch"}
FRAMEWORKS = tuple(FRAMEWORK_TITLES)
LOSSES = ("cross_entropy", "binary_cross_entropy", "mse", "mae")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
TARGETS = ("labels", "inputs")
# How the PyTorch program initialises its weights: with PyTorch's own initialisers, or as Keras does.
INITS = ("framework", "matched")
# How the learning rate moves over the run (codegen.schedules holds the formulas).
LR_SCHEDULES = ("constant", "step", "cosine", "onecycle", "warmup-cosine")
ANNEALING = ("cosine", "onecycle", "warmup-cosine")  # the schedules that end at lr_min
# The arithmetic of the forward and backward passes: float32, or mixed precision with bfloat16 or float16.
PRECISIONS = ("fp32", "bf16", "fp16")
MAX_SEED = 2**32 - 1  # numpy's limit, so Keras's (keras.utils.set_random_seed)


class ProjectError(Exception):
    """A project file cannot be read. The message says what and where."""


@dataclass
class TrainingSettings:
    """How the project is trained by default (the CLI and the GUI can override)."""

    dataset: str = "digits"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    validation_split: float = 0.2
    seed: int = 0
    # "labels": learn the dataset's targets; "inputs": reconstruct the input (autoencoders).
    target: str = "labels"
    # "framework": each program initialises as its framework does; "matched": PyTorch as Keras.
    init: str = "framework"
    # The learning-rate schedule and its parameters (codegen.schedules; used by the schedules named).
    lr_schedule: str = "constant"
    lr_step_epochs: int = 10  # step: multiply by lr_gamma every this many epochs
    lr_gamma: float = 0.1  # step
    lr_warmup_epochs: float = 1.0  # warmup-cosine: linear warm-up over this many epochs
    lr_min: float = 0.0  # cosine, onecycle, warmup-cosine: the learning rate they anneal to
    precision: str = "fp32"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TrainingSettings:
        if not isinstance(data, dict):
            raise ProjectError(f"{where}: expected an object, found {_json_type(data)}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ProjectError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(known)})")
        settings = cls(**data)
        settings.check(where)
        return settings

    def check(self, where: str = "training") -> None:
        def fail(name: str, expected: str) -> ProjectError:
            return ProjectError(f"{where}.{name}: expected {expected}. Received: {getattr(self, name)!r}")

        if not isinstance(self.dataset, str) or not self.dataset:
            raise fail("dataset", "a dataset name or path")
        if self.loss not in LOSSES:
            raise fail("loss", "one of " + ", ".join(LOSSES))
        if self.optimizer not in OPTIMIZERS:
            raise fail("optimizer", "one of " + ", ".join(OPTIMIZERS))
        if not _is_number(self.learning_rate) or not 0 < self.learning_rate < 10:
            raise fail("learning_rate", "a number in (0, 10)")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise fail(name, "a positive integer")
            if value > MAX_INT:  # beyond it numpy and the frameworks overflow
                raise fail(name, f"a positive integer of at most {MAX_INT}")
        if not _is_number(self.validation_split) or not 0 <= self.validation_split < 1:
            raise fail("validation_split", "a number in [0, 1)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise fail("seed", "a non-negative integer")
        if self.seed > MAX_SEED:
            raise fail("seed", f"an integer of at most {MAX_SEED}")
        if self.target not in TARGETS:
            raise fail("target", "one of " + ", ".join(TARGETS))
        if self.init not in INITS:
            raise fail("init", "one of " + ", ".join(INITS))
        self._check_schedule(fail)
        if self.precision not in PRECISIONS:
            raise fail("precision", "one of " + ", ".join(PRECISIONS))

    def _check_schedule(self, fail: Callable[[str, str], ProjectError]) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise fail("lr_schedule", "one of " + ", ".join(LR_SCHEDULES))
        step_epochs = self.lr_step_epochs
        if (
            not isinstance(step_epochs, int)
            or isinstance(step_epochs, bool)
            or not 1 <= step_epochs <= MAX_INT
        ):
            raise fail("lr_step_epochs", "a positive integer")
        if not _is_number(self.lr_gamma) or not 0 < self.lr_gamma <= 1:
            raise fail("lr_gamma", "a number in (0, 1]")
        if not _is_number(self.lr_warmup_epochs) or not 0 <= self.lr_warmup_epochs <= MAX_INT:
            raise fail("lr_warmup_epochs", "a number of epochs >= 0")
        if not _is_number(self.lr_min) or self.lr_min < 0:
            raise fail("lr_min", "a number >= 0")
        if self.lr_schedule in ANNEALING and self.lr_min >= self.learning_rate:
            raise fail("lr_min", f"less than learning_rate ({self.learning_rate!r}) for {self.lr_schedule}")


@dataclass
class Project:
    graph: Graph = field(default_factory=Graph)
    name: str = "Untitled"
    description: str = ""
    training: TrainingSettings = field(default_factory=TrainingSettings)


# ----- writing ------------------------------------------------------------------------


# Settings added after the first files were written: left out at their defaults, so older files stay as they were.
LATER_SETTINGS = (
    "init",
    "lr_schedule",
    "lr_step_epochs",
    "lr_gamma",
    "lr_warmup_epochs",
    "lr_min",
    "precision",
)


def _training_to_json(training: TrainingSettings) -> dict[str, Any]:
    """The settings, leaving out the later ones at their defaults."""
    data = asdict(training)
    defaults = TrainingSettings()
    for name in LATER_SETTINGS:
        if data[name] == getattr(defaults, name):
            del data[name]
    return data


def project_to_dict(project: Project) -> dict[str, Any]:
    project.training.check()  # never save what loading would refuse
    graph = project.graph
    nodes = []
    for node in graph.nodes:
        spec = graph.registry.get(node.kind)
        nodes.append(
            {
                "id": node.id,
                "kind": node.kind,
                "name": node.name,
                "params": spec.params_to_json(node.params),
                "position": [round(node.position[0], 2), round(node.position[1], 2)],
            }
        )
    edges = [{"from": edge.source, "to": edge.target, "port": edge.port} for edge in graph.edges]
    data = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": project.name,
        "description": project.description,
        "training": _training_to_json(project.training),
        "nodes": nodes,
        "edges": edges,
        "outputs": graph.declared_outputs,
    }
    if graph.blocks:  # left out when there are none, so that older files stay as they were
        data["blocks"] = [
            {"name": block.name, "members": list(block.members), "collapsed": block.collapsed}
            for block in graph.blocks
        ]
    return data


def dumps_project(project: Project) -> str:
    return _dump(project_to_dict(project), 0) + "\n"


def save_project(project: Project, path: str | os.PathLike) -> None:
    """Write the project atomically: a temporary file, then a rename over the old one."""
    write_text_atomic(Path(path), dumps_project(project))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8: a regular file is replaced atomically, a FIFO or a terminal written
    through, anything else refused (see :mod:`studio.files`)."""
    write_bytes(path, text.encode("utf-8"))


def _dump(value: Any, indent: int) -> str:
    """JSON with short scalar lists and small flat objects on one line."""
    pad = " " * (indent + 2)
    if isinstance(value, dict) and value and not _is_flat(value):
        items = [f"{pad}{json.dumps(key)}: {_dump(item, indent + 2)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and value and not _is_flat(value):
        items = [pad + _dump(item, indent + 2) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (JSON can carry one as a \u escape) has no UTF-8 form: keep it escaped.
        text = json.dumps(value)
    return text


def _is_flat(value: dict | list) -> bool:
    items = value.values() if isinstance(value, dict) else value
    if any(isinstance(item, dict) for item in items):
        return False
    if isinstance(value, list) and any(isinstance(item, list) for item in items):
        return False
    return len(json.dumps(value)) <= 90


# ----- reading ------------------------------------------------------------------------


def load_project(path: str | os.PathLike, registry: Registry = CATALOG) -> Project:
    path = Path(path)
    try:
        raw = read_regular_file(path, limit(PROJECT_LIMIT))
    except FileNotFoundError:
        raise ProjectError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ProjectError(f"{path}: is a folder, not a project file") from None
    except OSError as error:
        raise ProjectError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        return loads_project(raw, registry)
    except ProjectError as error:
        raise ProjectError(f"{path}: {error}") from None


def loads_project(text: str | bytes, registry: Registry = CATALOG) -> Project:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")  # some editors start UTF-8 files with a BOM
        except UnicodeDecodeError as error:
            raise ProjectError(f"not UTF-8 text (byte {error.start} is invalid)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProjectError(
            f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except RecursionError:
        raise ProjectError("not a valid project: the JSON is nested too deeply") from None
    except ValueError:  # Python refuses to convert integers of more than sys.get_int_max_str_digits()
        raise ProjectError(
            f"not a valid project: a number has more than {sys.get_int_max_str_digits()} digits"
        ) from None
    return project_from_dict(data, registry)


def project_from_dict(data: Any, registry: Registry = CATALOG) -> Project:
    data = migrate(data)
    _expect_keys(
        data,
        "project",
        required=("nodes",),
        optional=("format", "version", "name", "description", "training", "edges", "outputs", "blocks"),
    )
    project = Project(graph=Graph(registry))
    project.name = _expect_str(data.get("name", "Untitled"), "name")
    project.description = _expect_str(data.get("description", ""), "description")
    if "training" in data:
        project.training = TrainingSettings.from_dict(data["training"], "training")
    _load_nodes(project.graph, data["nodes"])
    _load_edges(project.graph, data.get("edges", []))
    _load_outputs(project.graph, data.get("outputs", []))
    _load_blocks(project.graph, data.get("blocks", []))
    return project


def migrate(data: Any) -> dict[str, Any]:
    """Check the header and bring an older document up to FORMAT_VERSION."""
    if not isinstance(data, dict):
        raise ProjectError(f"not a Layer Studio project: the top level is {_json_type(data)}, not an object")
    if data.get("format") != FORMAT_NAME:
        found = "missing" if "format" not in data else repr(data.get("format"))
        raise ProjectError(f'not a Layer Studio project: "format" should be "{FORMAT_NAME}" but is {found}')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProjectError(f'"version" must be a positive integer. Received: {version!r}')
    if version > FORMAT_VERSION:
        raise ProjectError(
            f"format version {version} was written by a newer Layer Studio; "
            f"this version reads format versions up to {FORMAT_VERSION}"
        )
    while version < FORMAT_VERSION:
        if version not in MIGRATIONS:
            raise ProjectError(f"format version {version} is no longer supported")
        data = MIGRATIONS[version](dict(data))
        version += 1
        data["version"] = version
    return data


def _load_nodes(graph: Graph, nodes: Any) -> None:
    if not isinstance(nodes, list):
        raise ProjectError(f'"nodes" must be a list, found {_json_type(nodes)}')
    if len(nodes) > MAX_NODES:
        raise ProjectError(f'"nodes" lists {len(nodes):,} layers; a project may have at most {MAX_NODES:,}')
    for index, item in enumerate(nodes):
        where = f"nodes[{index}]"
        _expect_keys(item, where, required=("id", "kind", "name"), optional=("params", "position"))
        name = _expect_str(item["name"], f"{where}.name")
        where = f"{where} ({name!r})"
        node_id = _expect_str(item["id"], f"{where}.id")
        kind = _expect_str(item["kind"], f"{where}.kind")
        params = item.get("params", {})
        if not isinstance(params, dict):
            raise ProjectError(f"{where}.params: expected an object, found {_json_type(params)}")
        position = item.get("position", [0, 0])
        if not (isinstance(position, list) and len(position) == 2 and all(_is_number(v) for v in position)):
            raise ProjectError(f"{where}.position: expected [x, y] numbers. Received: {position!r}")
        try:
            graph.add_node(kind, name=name, params=params, position=tuple(position), node_id=node_id)
        except UnknownKindError as error:
            raise ProjectError(f"{where}.kind: {error}") from None
        except (ParamError, GraphError) as error:
            raise ProjectError(f"{where}: {error}") from None


def _load_edges(graph: Graph, edges: Any) -> None:
    if not isinstance(edges, list):
        raise ProjectError(f'"edges" must be a list, found {_json_type(edges)}')
    if len(edges) > MAX_EDGES:
        raise ProjectError(
            f'"edges" lists {len(edges):,} connections; a project may have at most {MAX_EDGES:,}'
        )
    for index, item in enumerate(edges):
        where = f"edges[{index}]"
        _expect_keys(item, where, required=("from", "to"), optional=("port",))
        for end in ("from", "to"):
            if not isinstance(item[end], str) or item[end] not in graph:
                raise ProjectError(f"{where}.{end}: there is no node with id {item[end]!r}")
        port = item.get("port", 0)
        if not isinstance(port, int) or isinstance(port, bool) or port < 0:
            raise ProjectError(f"{where}.port: expected an integer >= 0. Received: {port!r}")
        try:
            graph.connect(item["from"], item["to"], port, check_cycle=False)
        except GraphError as error:
            raise ProjectError(f"{where}: {error}") from None
    # One cycle check for the whole list keeps loading linear; name the first edge that closes one.
    index = first_cycle_edge([(item["from"], item["to"]) for item in edges])
    if index is not None:
        source, target = edges[index]["from"], edges[index]["to"]
        raise ProjectError(
            f"edges[{index}]: connecting {graph.label(source)} to {graph.label(target)} would create a cycle"
        )


def _load_outputs(graph: Graph, outputs: Any) -> None:
    if not isinstance(outputs, list) or not all(isinstance(item, str) for item in outputs):
        raise ProjectError(f'"outputs" must be a list of node ids. Received: {outputs!r}')
    try:
        graph.set_outputs(outputs)
    except GraphError as error:
        raise ProjectError(f"outputs: {error}") from None


def _load_blocks(graph: Graph, blocks: Any) -> None:
    if not isinstance(blocks, list):
        raise ProjectError(f'"blocks" must be a list, found {_json_type(blocks)}')
    if len(blocks) > MAX_NODES:  # members are disjoint and non-empty, so never more blocks than layers
        raise ProjectError(f'"blocks" lists {len(blocks):,} blocks; a project may have at most {MAX_NODES:,}')
    for index, item in enumerate(blocks):
        where = f"blocks[{index}]"
        _expect_keys(item, where, required=("name", "members"), optional=("collapsed",))
        name = _expect_str(item["name"], f"{where}.name")
        where = f"{where} ({name!r})"
        members, collapsed = item["members"], item.get("collapsed", False)
        if not isinstance(members, list) or not all(isinstance(member, str) for member in members):
            raise ProjectError(f"{where}.members: expected a list of node ids, found {_json_type(members)}")
        unknown = next((member for member in members if member not in graph), None)
        if unknown is not None:
            raise ProjectError(f"{where}.members: there is no node with id {unknown!r}")
        if not isinstance(collapsed, bool):
            raise ProjectError(f"{where}.collapsed: expected true or false. Received: {collapsed!r}")
        try:
            graph.add_block(name, members, collapsed)
        except GraphError as error:
            raise ProjectError(f"{where}: {error}") from None


def _expect_keys(value: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise ProjectError(f"{where}: expected an object, found {_json_type(value)}")
    for key in required:
        if key not in value:
            raise ProjectError(f'{where}: missing the required key "{key}"')
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise ProjectError(f'{where}: unknown key "{unknown[0]}"')


def _expect_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ProjectError(f"{where}: expected a string, found {_json_type(value)}")
    return value


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # isfinite overflows on a huge int


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value!r}"
    return names.get(type(value), type(value).__name__)
