"""Project files: round trips, diff-friendly layout, migrations, errors and atomic saves."""

from __future__ import annotations

import copy
import difflib
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import studio.project as project_module
from studio.project import (
    LOSSES,
    OPTIMIZERS,
    TARGETS,
    Project,
    ProjectError,
    TrainingSettings,
    dumps_project,
    load_project,
    loads_project,
    project_from_dict,
    project_to_dict,
    save_project,
)
from tests.graph_builders import make_project
from tests.test_analysis import random_graphs

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
LENET = EXAMPLES / "lenet_digits.layers.json"


def changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def small_project() -> Project:
    project = make_project(
        ("input", "Input", {"shape": [4]}),
        ("other", "Input", {"shape": [4]}),
        ("dense", "Dense", {"units": 3}, "input"),
        name="small",
    )
    project.graph.set_outputs([project.graph.find("dense").id])
    return project


def assert_same_project(a: Project, b: Project) -> None:
    assert (a.name, a.description, a.training) == (b.name, b.description, b.training)
    assert [(n.id, n.kind, n.name, n.params) for n in a.graph.nodes] == [
        (n.id, n.kind, n.name, n.params) for n in b.graph.nodes
    ]
    assert a.graph.edges == b.graph.edges
    assert a.graph.declared_outputs == b.graph.declared_outputs
    for node_a, node_b in zip(a.graph.nodes, b.graph.nodes, strict=True):
        assert node_a.position == pytest.approx(
            node_b.position, abs=0.005 + 1e-9
        )  # saved to 2 decimals (0.125 -> 0.12)


# ----- round trips ------------------------------------------------------------------------

# Any text a JSON file can hold, lone surrogates included (JSON carries them as \u escapes).
LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]


def any_text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    characters = st.characters() | st.sampled_from(LONE_SURROGATES)
    # A high and a low surrogate side by side are one character to JSON: read them back as such.
    as_json_reads_it = st.lists(characters, min_size=min_size, max_size=max_size).map(
        lambda chars: json.loads(json.dumps("".join(chars)))
    )
    return as_json_reads_it.filter(lambda text: len(text) >= min_size)


training_settings = st.builds(
    TrainingSettings,
    dataset=any_text(1, 12),
    loss=st.sampled_from(LOSSES),
    optimizer=st.sampled_from(OPTIMIZERS),
    learning_rate=st.floats(1e-6, 9.99),
    batch_size=st.integers(1, 4096),
    epochs=st.integers(1, 10_000),
    validation_split=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**32 - 1),
    target=st.sampled_from(TARGETS),
)
coordinates = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
random_projects = st.builds(
    Project,
    graph=random_graphs(names=st.none() | any_text(1, 12), positions=st.tuples(coordinates, coordinates)),
    name=any_text(max_size=20),
    description=any_text(max_size=60),
    training=training_settings,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("projects")


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(project=random_projects)
def test_save_then_load_is_the_identity(project, folder):
    text = dumps_project(project)
    loaded = loads_project(text)
    assert dumps_project(loaded) == text
    assert_same_project(project, loaded)
    path = folder / "random.layers.json"
    save_project(project, path)
    assert path.read_text(encoding="utf-8") == text
    assert dumps_project(load_project(path)) == text


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.layers.json")), ids=lambda path: path.name)
def test_example_files_are_in_canonical_form(path):
    assert dumps_project(load_project(path)) == path.read_text(encoding="utf-8")


def test_unicode_is_written_as_is(tmp_path):
    project = small_project()
    project.name = "Réseau 密集"
    project.graph.rename_node(project.graph.find("dense").id, "sortie 🙂")
    save_project(project, tmp_path / "u.layers.json")
    raw = (tmp_path / "u.layers.json").read_bytes()
    assert "Réseau 密集".encode() in raw and "sortie 🙂".encode() in raw
    assert load_project(tmp_path / "u.layers.json").graph.find("sortie 🙂") is not None


def test_lone_surrogates_read_from_a_file_can_be_saved_again(tmp_path):
    text = (
        '{"format": "layer-studio", "version": 1, "name": "caf\\u00e9 \\ud800", '
        '"training": {"dataset": "\\udfff"}, "nodes": [{"id": "\\udc00", "kind": "Dense", "name": "d"}]}'
    )
    project = loads_project(text)
    assert project.name == "café \ud800"
    save_project(project, tmp_path / "s.layers.json")  # no UnicodeEncodeError
    again = load_project(tmp_path / "s.layers.json")
    assert (again.name, again.training.dataset, again.graph.nodes[0].id) == (
        "café \ud800",
        "\udfff",
        "\udc00",
    )
    assert '"name": "caf\\u00e9 \\ud800"' in (tmp_path / "s.layers.json").read_text(encoding="utf-8")


def test_optional_keys_take_their_defaults():
    project = loads_project(
        '{"format": "layer-studio", "version": 1, "nodes": [{"id": "a", "kind": "Dense", "name": "d"}]}'
    )
    assert (project.name, project.description, project.training) == ("Untitled", "", TrainingSettings())
    node = project.graph.node("a")
    assert node.params == {"units": 64, "activation": "linear", "use_bias": True}
    assert node.position == (0.0, 0.0)
    assert project.graph.edges == [] and project.graph.declared_outputs == []


def test_ids_survive_save_and_load_and_new_ids_do_not_clash():
    project = loads_project(
        json.dumps(
            {
                "format": "layer-studio",
                "version": 1,
                "nodes": [
                    {"id": "n5", "kind": "Input", "name": "x"},
                    {"id": "block", "kind": "Dense", "name": "d"},
                ],
                "edges": [{"from": "n5", "to": "block"}],
            }
        )
    )
    assert [node.id for node in project.graph.nodes] == ["n5", "block"]
    assert project.graph.add_node("Dense").id == "n6"


# ----- a diff-friendly layout -------------------------------------------------------------


def test_dumping_twice_gives_the_same_text_in_a_fixed_key_order():
    project = load_project(LENET)
    text = dumps_project(project)
    assert dumps_project(project) == text
    data = json.loads(text)
    assert list(data) == ["format", "version", "name", "description", "training", "nodes", "edges", "outputs"]
    for node in data["nodes"]:
        assert list(node) == ["id", "kind", "name", "params", "position"]
        assert list(node["params"]) == [param.name for param in project.graph.spec(node["id"]).params]


def test_each_node_and_edge_is_its_own_block():
    project = load_project(LENET)
    lines = dumps_project(project).splitlines()
    ids = [line.strip() for line in lines if line.strip().startswith('"id": ')]
    assert ids == [f'"id": "{node.id}",' for node in project.graph.nodes]
    edge_lines = [line.strip() for line in lines if line.strip().startswith('{"from": ')]
    assert len(edge_lines) == len(project.graph.edges)


def test_key_order_does_not_depend_on_the_file_read():
    data = project_to_dict(small_project())
    shuffled = {key: data[key] for key in reversed(list(data))}
    shuffled["nodes"] = [{key: node[key] for key in reversed(list(node))} for node in data["nodes"]]
    shuffled["nodes"][2]["params"] = {"use_bias": True, "activation": "linear", "units": 3}
    assert dumps_project(project_from_dict(shuffled)) == dumps_project(small_project())


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda g: g.set_param(g.find("conv2d").id, "filters", 20),
            ['-        "filters": 16,', '+        "filters": 20,'],
        ),
        (
            lambda g: g.set_param(g.find("dense").id, "units", 32),
            [
                '-      "params": {"units": 64, "activation": "relu", "use_bias": true},',
                '+      "params": {"units": 32, "activation": "relu", "use_bias": true},',
            ],
        ),
        (
            lambda g: g.move_node(g.find("flatten").id, (1100, 45.5)),
            ['-      "position": [1100.0, 0.0]', '+      "position": [1100.0, 45.5]'],
        ),
        (
            lambda g: g.rename_node(g.find("dropout").id, "drop"),
            ['-      "name": "dropout",', '+      "name": "drop",'],
        ),
    ],
    ids=["conv-param", "dense-param", "move", "rename"],
)
def test_one_edit_changes_one_line(edit, expected):
    project = load_project(LENET)
    before = dumps_project(project)
    edit(project.graph)
    assert changed_lines(before, dumps_project(project)) == expected


def test_adding_a_layer_only_adds_lines():
    project = load_project(LENET)
    before = dumps_project(project)
    graph = project.graph
    extra = graph.add_node("Activation", params={"activation": "softmax"}, position=(1980, 0))
    graph.connect(graph.find("dense_1").id, extra.id)
    diff = changed_lines(before, dumps_project(project))
    removed = [line[1:] for line in diff if line.startswith("-")]
    added = [line[1:] for line in diff if line.startswith("+")]
    # At most the last node and the last edge gain a trailing comma; nothing else is touched.
    assert 1 <= len(removed) <= 2
    assert all(line + "," in added for line in removed)
    assert '      "id": "n10",' in added
    assert '    {"from": "n9", "to": "n10", "port": 0}' in added
    assert len(added) == len(removed) + 8  # the new node (7 lines, sharing a closing brace) and edge


# ----- versions and migrations ------------------------------------------------------------


def test_an_old_version_is_migrated_forward(monkeypatch):
    def v1_to_v2(data: dict) -> dict:
        data["name"] = data.pop("title")  # pretend version 2 renamed "title" to "name"
        return data

    monkeypatch.setattr(project_module, "FORMAT_VERSION", 2)
    monkeypatch.setitem(project_module.MIGRATIONS, 1, v1_to_v2)
    old = {
        "format": "layer-studio",
        "version": 1,
        "title": "Old model",
        "nodes": [{"id": "n1", "kind": "Input", "name": "x"}],
    }
    original = copy.deepcopy(old)
    project = project_from_dict(old)
    assert project.name == "Old model"
    assert old == original  # the caller's document is left alone
    assert json.loads(dumps_project(project))["version"] == 2  # saved in the new format


def test_a_version_without_migration_is_refused(monkeypatch):
    monkeypatch.setattr(project_module, "FORMAT_VERSION", 3)
    monkeypatch.setitem(project_module.MIGRATIONS, 1, lambda data: data)
    text = dumps_project(small_project()).replace('"version": 3', '"version": 1')
    with pytest.raises(ProjectError, match="format version 2 is no longer supported"):
        loads_project(text)


# ----- malformed files --------------------------------------------------------------------


def base_document() -> dict:
    return project_to_dict(small_project())


def set_in(path: tuple, value):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def delete(path: tuple):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def append_edge(source: str, target: str, port: int):
    return lambda data: data["edges"].append({"from": source, "to": target, "port": port})


MALFORMED = {
    "wrong format": (set_in(("format",), "keras"), ['"format" should be "layer-studio" but is \'keras\'']),
    "missing format": (delete(("format",)), ['"format" should be "layer-studio" but is missing']),
    "missing version": (delete(("version",)), ['"version" must be a positive integer. Received: None']),
    "text version": (set_in(("version",), "1"), ["\"version\" must be a positive integer. Received: '1'"]),
    "too new": (
        set_in(("version",), 7),
        ["format version 7 was written by a newer Layer Studio", "reads format versions up to 1"],
    ),
    "unknown top-level key": (set_in(("extra",), 1), ['project: unknown key "extra"']),
    "nodes missing": (delete(("nodes",)), ['project: missing the required key "nodes"']),
    "nodes not a list": (set_in(("nodes",), {}), ['"nodes" must be a list, found an object']),
    "node not an object": (set_in(("nodes", 1), 3), ["nodes[1]: expected an object, found the number 3"]),
    "node without id": (delete(("nodes", 2, "id")), ['nodes[2]: missing the required key "id"']),
    "node without kind": (delete(("nodes", 2, "kind")), ['nodes[2]: missing the required key "kind"']),
    "node without name": (delete(("nodes", 2, "name")), ['nodes[2]: missing the required key "name"']),
    "unknown node key": (set_in(("nodes", 2, "colour"), "red"), ['nodes[2]: unknown key "colour"']),
    "name not a string": (
        set_in(("nodes", 2, "name"), 5),
        ["nodes[2].name: expected a string, found the number 5"],
    ),
    "unknown kind": (
        set_in(("nodes", 2, "kind"), "Dense2D"),
        ["nodes[2] ('dense').kind: unknown layer kind 'Dense2D'.", "Did you mean Dense"],
    ),
    "bad param value": (
        set_in(("nodes", 2, "params", "units"), -3),
        ["nodes[2] ('dense'): Dense 'dense': expected a positive integer. Received: units=-3"],
    ),
    "unknown param": (
        set_in(("nodes", 2, "params", "filters"), 3),
        ["nodes[2] ('dense'): Dense 'dense': Dense has no parameter 'filters'"],
    ),
    "params not an object": (
        set_in(("nodes", 2, "params"), [64]),
        ["nodes[2] ('dense').params: expected an object, found a list"],
    ),
    "position of one number": (
        set_in(("nodes", 2, "position"), [1]),
        ["nodes[2] ('dense').position: expected [x, y] numbers. Received: [1]"],
    ),
    "position of text": (
        set_in(("nodes", 2, "position"), ["1", 2]),
        ["nodes[2] ('dense').position: expected [x, y] numbers. Received: ['1', 2]"],
    ),
    "position of booleans": (
        set_in(("nodes", 2, "position"), [True, 2]),
        ["nodes[2] ('dense').position: expected [x, y] numbers."],
    ),
    "duplicate id": (
        set_in(("nodes", 2, "id"), "n1"),
        ["nodes[2] ('dense'): a node with id 'n1' already exists"],
    ),
    "duplicate name": (
        set_in(("nodes", 2, "name"), "input"),
        ["nodes[2] ('input'): the name 'input' is already used by Input 'input'"],
    ),
    "edges not a list": (set_in(("edges",), "n1->n3"), ['"edges" must be a list, found a string']),
    "dangling edge": (append_edge("n3", "n9", 0), ["edges[1].to: there is no node with id 'n9'"]),
    "edge from nowhere": (set_in(("edges", 0, "from"), 1), ["edges[0].from: there is no node with id 1"]),
    "negative port": (
        set_in(("edges", 0, "port"), -1),
        ["edges[0].port: expected an integer >= 0. Received: -1"],
    ),
    "occupied port": (
        append_edge("n2", "n3", 0),
        ["edges[1]: input 1 of Dense 'dense' is already connected to Input 'input'"],
    ),
    "port beyond max inputs": (
        append_edge("n2", "n3", 1),
        ["edges[1]: Dense 'dense' takes 1 input; input 2 does not exist"],
    ),
    "edge into an input": (
        append_edge("n3", "n2", 0),
        ["edges[1]: Input 'other' is a model input and takes no inputs"],
    ),
    "outputs naming an unknown node": (
        set_in(("outputs",), ["n9"]),
        ["outputs: there is no node with id 'n9'"],
    ),
    "outputs not ids": (set_in(("outputs",), [3]), ['"outputs" must be a list of node ids. Received: [3]']),
    "training not an object": (set_in(("training",), []), ["training: expected an object, found a list"]),
    "unknown training setting": (
        set_in(("training", "momentum"), 0.9),
        ["training: unknown setting 'momentum'"],
    ),
    "bad learning rate": (
        set_in(("training", "learning_rate"), -1),
        ["training.learning_rate: expected a number in (0, 10). Received: -1"],
    ),
    "bad loss": (set_in(("training", "loss"), "hinge"), ["training.loss: expected one of cross_entropy"]),
    "boolean batch size": (
        set_in(("training", "batch_size"), True),
        ["training.batch_size: expected a positive integer. Received: True"],
    ),
    "bad validation split": (
        set_in(("training", "validation_split"), 1.0),
        ["training.validation_split: expected a number in [0, 1). Received: 1.0"],
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_documents_say_what_and_where(case):
    mutate, expected = MALFORMED[case]
    data = base_document()
    mutate(data)
    with pytest.raises(ProjectError) as error:
        loads_project(json.dumps(data))
    for part in expected:
        assert part in str(error.value)


def test_an_edge_creating_a_cycle_is_refused():
    data = {
        "format": "layer-studio",
        "version": 1,
        "nodes": [
            {"id": "x", "kind": "Input", "name": "x"},
            {"id": "add", "kind": "Add", "name": "add"},
            {"id": "d", "kind": "Dense", "name": "d"},
        ],
        "edges": [
            {"from": "x", "to": "add", "port": 0},
            {"from": "add", "to": "d", "port": 0},
            {"from": "d", "to": "add", "port": 1},
        ],
    }
    with pytest.raises(
        ProjectError, match=r"edges\[2\]: connecting Dense 'd' to Add 'add' would create a cycle"
    ):
        project_from_dict(data)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b'{"format": "layer-studio",\n  "version": 1,,\n}',
            "not valid JSON: Expecting property name enclosed in double quotes at line 2, column 16",
        ),
        (b"", "not valid JSON: Expecting value at line 1, column 1"),
        (b'{"name": "caf\xe9"}', "not UTF-8 text (byte 13 is invalid)"),
        (b"[]", "not a Layer Studio project: the top level is a list, not an object"),
        (b"null", "the top level is null, not an object"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a": ' * 100_000, "not a valid project"),
        (
            b'{"format": "layer-studio", "version": 1, "nodes": [{"id": "a", "kind": "Input", '
            b'"name": "x", "position": [NaN, 0]}]}',
            "nodes[0] ('x').position: expected [x, y] numbers. Received: [nan, 0]",
        ),
    ],
)
def test_unreadable_text_gives_a_project_error(raw, expected):
    with pytest.raises(ProjectError) as error:
        loads_project(raw)
    assert expected in str(error.value)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.layers.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ProjectError, match=rf"^{path}: not a Layer Studio project"):
        load_project(path)
    with pytest.raises(ProjectError, match="missing.layers.json: no such file"):
        load_project(tmp_path / "missing.layers.json")
    with pytest.raises(ProjectError, match="is a folder, not a project file"):
        load_project(tmp_path)


# ----- atomic saves -----------------------------------------------------------------------


def test_save_writes_the_dump_and_leaves_no_temporary_file(tmp_path):
    project = small_project()
    path = tmp_path / "model.layers.json"
    save_project(project, path)
    assert path.read_text(encoding="utf-8") == dumps_project(project)
    assert os.listdir(tmp_path) == ["model.layers.json"]


def test_save_keeps_the_permissions_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "model.layers.json"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o640)
    save_project(small_project(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_new_file_gets_the_usual_permissions_not_private_ones(tmp_path):
    previous = os.umask(0o027)
    try:
        save_project(small_project(), tmp_path / "model.layers.json")
        assert os.umask(0o027) == 0o027  # the umask was put back
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model.layers.json").stat().st_mode) == 0o640


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_save_leaves_the_old_file_untouched(tmp_path, monkeypatch, failing):
    path = tmp_path / "model.layers.json"
    save_project(load_project(LENET), path)
    old = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(project_module.os, failing, fail)
    with pytest.raises(OSError, match="No space left"):
        save_project(small_project(), path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.layers.json"]


def test_a_utf8_byte_order_mark_is_accepted():
    from studio.project import dumps_project, loads_project
    from tests.graph_builders import chain

    text = dumps_project(chain([4], ("Dense", {"units": 2})))
    assert dumps_project(loads_project(b"\xef\xbb\xbf" + text.encode("utf-8"))) == text


def test_saving_refuses_training_settings_that_loading_would_refuse(tmp_path):
    from studio.project import ProjectError, save_project
    from tests.graph_builders import chain

    project = chain([4], ("Dense", {"units": 2}))
    project.training.batch_size = 0
    with pytest.raises(ProjectError, match="batch_size"):
        save_project(project, tmp_path / "p.layers.json")
    assert not (tmp_path / "p.layers.json").exists()
