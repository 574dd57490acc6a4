"""Fuzz tests: damaged project files and layer parameters at and beyond their bounds.

The example projects are truncated and byte-flipped, and their JSON is edited: wrong
types, huge, negative and non-finite numbers, unknown kinds, cycles, duplicate ids,
dangling edges, unicode names and invalid identifiers, deep nesting. Loading gives a
project that analyzes, summarizes and saves, or a ProjectError naming the file; a
sample goes through ``studio check``/``summary``/``export`` (exit 0, 1 or 2, never a
traceback). The file read is never changed.

Profiles: STUDIO_FUZZ_PROFILE=ci (the default, bounded) or deep (a long local run);
see tests/fuzzing.py.
"""

from __future__ import annotations

import ast
import json
import math
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from studio.analysis import analyze
from studio.catalog import CATALOG, ParamError
from studio.catalog.base import MAX_ELEMENTS, MAX_LAYER_PARAMS
from studio.catalog.params import BoolParam, ChoiceParam, FloatParam, IntParam, IntTupleParam
from studio.project import ProjectError, dumps_project, load_project, loads_project
from studio.summary import format_summary
from tests.fuzzing import (
    HUGE_INTEGERS,
    ODD_TEXT,
    RawText,
    case,
    damaged_bytes,
    expect,
    fuzz_settings,
    json_values,
    mutated_json,
    raw_json_text,
    run_cli,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {path.name: path.read_bytes() for path in sorted((ROOT / "assets" / "examples").glob("*.json"))}
KINDS = CATALOG.keys()


def check_loaded(project) -> None:
    """A loaded project analyzes and summarizes without raising, and saves to what it reads back as."""
    analysis = analyze(project.graph)
    assert all(problem.message for problem in analysis.problems)
    format_summary(project.graph, title=project.name)
    text = dumps_project(project)
    assert dumps_project(loads_project(text)) == text


def load_file(raw: bytes, target: str):
    """Write ``raw`` as a project file in a new folder and load it: the project, or the checked error."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.layers.json"
        path.write_bytes(raw)
        with case(target, Path(folder)):
            result = expect(lambda: load_project(path), ProjectError, names=[str(path)])
            event("refused" if isinstance(result, ProjectError) else "loaded")
            if not isinstance(result, ProjectError):
                check_loaded(result)
    return result


# ----- project-aware edits ----------------------------------------------------------------


def _nodes(document) -> list:
    nodes = document.get("nodes") if isinstance(document, dict) else None
    return [node for node in nodes if isinstance(node, dict)] if isinstance(nodes, list) else []


def _ids(document) -> list:
    return [node.get("id") for node in _nodes(document)] or ["n1"]


def project_edit(draw, document, raw: RawText):
    """One edit that a project file can suffer: ids, edges, kinds, names, params."""
    if not isinstance(document, dict):
        return document
    nodes, ids = _nodes(document), _ids(document)
    edges = document.setdefault("edges", [])
    if not isinstance(edges, list):
        return document
    edit = draw(
        st.sampled_from(
            [
                "duplicate id",
                "dangling edge",
                "cycle",
                "self loop",
                "kind",
                "name",
                "param",
                "outputs",
                "copy",
            ]
        )
    )
    if edit == "duplicate id" and len(nodes) >= 2:
        first, second = draw(st.lists(st.sampled_from(nodes), min_size=2, max_size=2))
        second["id"] = first.get("id")
    elif edit == "dangling edge":
        ends = st.sampled_from(ids) | st.text(max_size=6) | json_values
        edges.append({"from": draw(ends), "to": draw(ends), "port": draw(st.integers(-2, 5) | json_values)})
    elif edit == "cycle" and len(ids) >= 2:
        # An edge from a later node back to an earlier one closes a loop through the chain.
        later, earlier = sorted(draw(st.lists(st.integers(0, len(ids) - 1), min_size=2, max_size=2)))[::-1]
        edges.append({"from": ids[later], "to": ids[earlier], "port": draw(st.integers(0, 3))})
    elif edit == "self loop":
        node_id = draw(st.sampled_from(ids))
        edges.append({"from": node_id, "to": node_id, "port": draw(st.integers(0, 2))})
    elif edit == "kind" and nodes:
        real = draw(st.sampled_from(KINDS))
        draw(st.sampled_from(nodes))["kind"] = draw(
            st.sampled_from([real, real.lower(), real.upper(), real + "X", real[:-1], " " + real])
            | st.text(max_size=10)
            | json_values
        )
    elif edit == "name" and nodes:
        names = [node.get("name") for node in nodes]
        draw(st.sampled_from(nodes))["name"] = draw(
            st.sampled_from(ODD_TEXT) | st.text(min_size=1, max_size=30) | st.sampled_from(names)
        )
    elif edit == "param" and nodes:
        node = draw(st.sampled_from(nodes))
        kind = node.get("kind")
        params = node.get("params")
        if kind in CATALOG and isinstance(params, dict) and CATALOG.get(kind).params:
            param = draw(st.sampled_from(CATALOG.get(kind).params))
            params[param.name] = draw(param_values(param))
    elif edit == "outputs":
        document["outputs"] = draw(st.lists(st.sampled_from(ids) | json_values, max_size=4))
    elif edit == "copy" and nodes:
        # A whole node again (same id, same name) or under a fresh id.
        node = json.loads(json.dumps(draw(st.sampled_from(nodes))))
        if draw(st.booleans()):
            node["id"] = draw(st.text(min_size=1, max_size=6))
        document["nodes"].append(node)
    return document


# ----- parameter values at and beyond their bounds ------------------------------------------


def _near(value) -> list:
    return [value - 1, value, value + 1]


def param_values(param) -> st.SearchStrategy:
    """Values at, inside and beyond ``param``'s bounds, plus values of the wrong type."""
    wrong = (
        st.sampled_from([None, True, False, "1", [], {}, [1], math.nan, math.inf, -math.inf]) | json_values
    )
    if isinstance(param, IntParam):
        low = -(2**31) if param.minimum is None else param.minimum
        high = 2**31 - 1 if param.maximum is None else param.maximum
        edges = [*_near(low), *_near(high), 0, -1, low + 0.5, float(low), float(high), *HUGE_INTEGERS]
        special = st.sampled_from(edges) | st.integers(low - 3, min(high, low + 64) + 3)
    elif isinstance(param, FloatParam):
        points = [bound for bound in (param.minimum, param.maximum) if bound is not None]
        edges = [0.0, -0.0, 1.0, -1.0, 5e-324, 1e308, -1e308, 10**400, -(10**400), 2**63]
        for bound in points:
            edges += [bound, math.nextafter(bound, -math.inf), math.nextafter(bound, math.inf), int(bound)]
        special = st.sampled_from(edges) | st.floats(allow_nan=True, allow_infinity=True) | st.integers()
    elif isinstance(param, BoolParam):
        special = st.sampled_from([True, False, 0, 1, "true", "false"])
    elif isinstance(param, ChoiceParam):
        choices = list(param.choices)
        variants = [text for choice in choices for text in (choice.upper(), choice + " ", choice[:-1])]
        special = st.sampled_from(choices) | st.sampled_from(variants) | st.sampled_from([[choices[0]], ""])
    elif isinstance(param, IntTupleParam):
        length = param.length
        item = st.sampled_from(
            [*_near(param.minimum), -1, 0, 1, 2, 3, 2**31 - 1, 2**31, 10**100, 10**4000, 1.0, 2.5, True, "2"]
        ) | st.integers(-2, 9)
        sizes = [0, 1, 2, 3, 4, 5] if length is None else [length - 1, length, length, length, length + 1]
        special = (
            st.sampled_from(sizes).flatmap(
                lambda size: st.lists(item, min_size=max(size, 0), max_size=max(size, 0))
            )
            | item
            | st.lists(st.lists(st.integers(1, 3), max_size=2), max_size=3)
        )
    else:  # a parameter type this test does not know yet: still fuzz it
        special = json_values
    # Mostly values of the right type, so that many layers load and reach the analysis.
    return st.integers(0, 9).flatmap(lambda roll: wrong if roll == 0 else special)


@st.composite
def input_shapes(draw) -> list:
    rank = draw(st.integers(1, 4) | st.sampled_from([0, 5, 8, 64, 200]))
    odd = st.sampled_from([0, -1, 1, 2**20, 2**31 - 1, 2**31, 10**30, 10**4000, 2.0, 2.5, None])
    dims = st.integers(0, 19).flatmap(lambda roll: odd if roll == 0 else st.integers(1, 9))
    return draw(st.lists(dims, min_size=rank, max_size=rank))


@st.composite
def one_layer_projects(draw):
    """An Input (of a drawn shape) feeding one layer of a drawn kind with drawn parameters."""
    kind = draw(st.sampled_from(KINDS))
    spec = CATALOG.get(kind)
    params = {}
    for param in spec.params:
        if draw(st.integers(0, 2)) == 0:
            params[param.name] = draw(param_values(param))
    if draw(st.integers(0, 9)) == 0:
        params[draw(st.text(max_size=8))] = draw(json_values)
    dtype = draw(st.sampled_from(["float32", "float32", "int32"]))
    nodes = [
        {
            "id": "in",
            "kind": "Input",
            "name": "input",
            "params": {"shape": draw(input_shapes()), "dtype": dtype},
        },
        {"id": "layer", "kind": kind, "name": "layer", "params": params},
    ]
    ports = max(spec.min_inputs, 1) if not spec.is_source else 0
    edges = [{"from": "in", "to": "layer", "port": port} for port in range(ports)]
    document = {"format": "layer-studio", "version": 1, "nodes": nodes, "edges": edges}
    return kind, params, document


# ----- the tests ------------------------------------------------------------------------------


@fuzz_settings("project file bytes")
@given(name=st.sampled_from(sorted(EXAMPLES)), data=st.data())
def test_damaged_project_files_load_or_say_why(name, data):
    raw = data.draw(damaged_bytes(EXAMPLES[name]))
    load_file(raw, "project file bytes")


@pytest.mark.slow
@fuzz_settings("project documents")
@given(name=st.sampled_from(sorted(EXAMPLES)), data=st.data(), ascii_only=st.booleans())
def test_edited_project_documents_load_or_say_why(name, data, ascii_only):
    raw = RawText()
    document = data.draw(mutated_json(json.loads(EXAMPLES[name]), raw, extra=project_edit))
    load_file(
        raw.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"), "project documents"
    )


@fuzz_settings("project nesting")
@given(name=st.sampled_from(sorted(EXAMPLES)), data=st.data())
def test_deeply_nested_documents_are_refused_or_read(name, data):
    raw = RawText()
    document = json.loads(EXAMPLES[name])
    paths = [("nodes", 1, "params"), ("nodes",), ("edges", 0), ("outputs",), ("training",), ("name",)]
    path = data.draw(st.sampled_from(paths))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = raw.marker(data.draw(raw_json_text()))
    text = raw.dumps(document)
    if data.draw(st.booleans()):
        text = data.draw(raw_json_text())  # the whole file is the nesting
    result = load_file(text.encode("utf-8"), "project nesting")
    assert isinstance(result, ProjectError) or "@@raw" not in dumps_project(result)


@pytest.mark.slow
@fuzz_settings("layer parameters")
@given(drawn=one_layer_projects())
def test_layer_parameters_at_and_beyond_their_bounds(drawn):
    kind, params, document = drawn
    spec = CATALOG.get(kind)
    with case("layer parameters"):
        clean = expect(lambda: spec.validate_params(params), ParamError)
        if isinstance(clean, ParamError):
            names = [*params, *spec.params_to_json(spec.defaults())]
            assert any(name in str(clean) or repr(name) in str(clean) for name in names), str(clean)
        else:
            assert spec.validate_params(clean) == clean
            assert spec.validate_params(json.loads(json.dumps(spec.params_to_json(clean)))) == clean
        project = expect(lambda: loads_project(json.dumps(document)), ProjectError)
        event("refused" if isinstance(project, ProjectError) else "loaded")
        if not isinstance(project, ProjectError):
            assert not isinstance(clean, ParamError)
            check_loaded(project)


@fuzz_settings("project via CLI")
@given(name=st.sampled_from(sorted(EXAMPLES)), data=st.data())
def test_cli_commands_on_damaged_projects_exit_cleanly(name, data):
    raw = RawText()
    if data.draw(st.booleans()):
        text = data.draw(damaged_bytes(EXAMPLES[name]))
    else:
        document = data.draw(mutated_json(json.loads(EXAMPLES[name]), raw, extra=project_edit))
        text = raw.dumps(document).encode("utf-8")
    command = data.draw(st.sampled_from(["check", "summary", "export keras", "export pytorch"]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.layers.json"
        path.write_bytes(text)
        with case("project via CLI", Path(folder)):
            word, _, framework = command.partition(" ")
            argv = [word, str(path)] + (["--framework", framework, "-o", "-"] if framework else [])
            code, stdout, stderr = run_cli(argv)
            event(f"exit {code}")
            if code == 2:
                assert str(path) in stderr
            if word == "export" and code == 0:
                ast.parse(stdout)  # the generated program is valid Python


# ----- regressions: what the fuzz tests found --------------------------------------------------


def _document(changes: dict | None = None) -> dict:
    document = json.loads(EXAMPLES["lenet_digits.layers.json"])
    for (index, key), value in (changes or {}).items():
        document["nodes"][index][key] = value
    return document


def test_an_integer_literal_too_long_for_python_is_a_project_error():
    text = '{"format": "layer-studio", "version": 1, "nodes": [], "name": ' + "9" * 5000 + "}"
    with pytest.raises(ProjectError, match="a number has more than 4300 digits"):
        loads_project(text)


def test_huge_integers_where_floats_belong_are_refused():
    document = _document({(0, "position"): [10**400, 0]})
    with pytest.raises(ProjectError, match=r"nodes\[0\] \('input'\).*a position is a pair of finite numbers"):
        loads_project(json.dumps(document))
    document = json.loads(EXAMPLES["lenet_digits.layers.json"])
    document["training"]["learning_rate"] = 10**400
    with pytest.raises(ProjectError, match=r"training.learning_rate: expected a number in \(0, 10\)"):
        loads_project(json.dumps(document))
    with pytest.raises(ParamError, match="expected a finite number >= 0.0 and < 1.0. Received: rate=1000"):
        CATALOG.get("Dropout").validate_params({"rate": 10**400})


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        ("Dense", {"units": 2**31}, "expected a positive integer of at most 2147483647 in size"),
        ("Embedding", {"input_dim": 10**100}, "at most 2147483647"),
        ("Input", {"shape": [8, 2**31, 1]}, "3 integers >= 1|each at most 2147483647"),
        ("Input", {"shape": [2**31]}, "each at most 2147483647"),
    ],
)
def test_integer_parameters_stop_at_the_inspector_limit(kind, params, expected):
    with pytest.raises(ParamError, match=expected):
        CATALOG.get(kind).validate_params(params)
    assert CATALOG.get("Dense").validate_params({"units": 2**31 - 1})["units"] == 2**31 - 1


def test_shapes_too_large_for_any_framework_are_analysis_errors_not_crashes():
    # An image as large as allowed, then convolved, upsampled and flattened: never an OverflowError.
    document = _document({(0, "params"): {"shape": [2**31 - 1, 2**31 - 1, 1], "dtype": "float32"}})
    project = loads_project(json.dumps(document))
    analysis = analyze(project.graph)
    assert any(f"samples of more than {MAX_ELEMENTS:,} elements" in p.message for p in analysis.errors)
    format_summary(project.graph)
    graph = loads_project(json.dumps(_document())).graph
    up = graph.add_node("UpSampling2D", params={"size": [2**31 - 1, 2**31 - 1]})
    graph.connect(graph.nodes[0].id, up.id)
    problems = analyze(graph).problems_for(up.id)
    assert [p.message for p in problems] == [
        "UpSampling2D 'up_sampling2d' would produce an axis of length 17,179,869,176; "
        "the longest supported is 2,147,483,647"
    ]


def test_the_same_window_length_is_exact_for_any_size():
    from studio.catalog.base import conv_output_length

    assert conv_output_length(10**30 + 1, 3, 2, "same") == 5 * 10**29 + 1
    assert conv_output_length(7, 3, 2, "same") == 4


def test_a_registry_lookup_of_an_unhashable_kind_is_false():
    assert [] not in CATALOG and {} not in CATALOG and "Dense" in CATALOG


def test_a_seed_that_numpy_cannot_take_is_refused():
    document = json.loads(EXAMPLES["lenet_digits.layers.json"])
    document["training"]["seed"] = 2**32  # keras.utils.set_random_seed would fail in the training run
    with pytest.raises(ProjectError, match=r"training.seed: expected an integer of at most 4294967295"):
        loads_project(json.dumps(document))
    document["training"]["seed"] = 2**32 - 1
    assert loads_project(json.dumps(document)).training.seed == 2**32 - 1


# ----- sizes read from the file (issue 17, class 1) ----------------------------------------

SIZES = st.sampled_from([1, 2, 3, 1000, 2**16, 2**20, 2**28, 2**28 + 1, 2**31 - 1]) | st.integers(
    1, 2**31 - 1
)
SIZING = {
    "n1": ("shape", 3),
    "n2": ("filters", None),
    "n3": ("pool_size", 2),
    "n4": ("kernel_size", 2),
    "n7": ("units", None),
}


@st.composite
def sized_documents(draw) -> dict:
    """The LeNet example with one size (or shape item) pushed anywhere up to MAX_INT, and maybe a merge."""
    document = _document()
    node_id = draw(st.sampled_from(sorted(SIZING)))
    name, length = SIZING[node_id]
    node = next(node for node in document["nodes"] if node["id"] == node_id)
    if length is None:
        node["params"][name] = draw(SIZES)
    else:
        node["params"][name] = draw(st.lists(SIZES, min_size=length, max_size=length))
        if node_id == "n1":
            node["params"][name][-1] = 1
    if draw(st.booleans()):
        node["params"]["padding"] = draw(st.sampled_from(["same", "valid"]))
    if draw(st.booleans()):
        port = draw(st.sampled_from([1, 2, 1023, 1024, 10**8, 10**15]) | st.integers(1, 2**40))
        document["nodes"].append({"id": "cat", "kind": "Concatenate", "name": "cat", "params": {}})
        document["edges"] += [
            {"from": "n7", "to": "cat", "port": 0},
            {"from": "n9", "to": "cat", "port": port},
        ]
    return document


@fuzz_settings("project sizes")
@given(sized_documents())
def test_a_project_that_checks_valid_can_be_generated_and_held_in_memory(document):
    from codegen import generate

    with case("project sizes"):
        project = expect(lambda: loads_project(json.dumps(document)), ProjectError)
        if isinstance(project, ProjectError):
            event("refused on load")
            return
        analysis = analyze(project.graph)
        event("valid" if analysis.is_valid else "refused by check")
        format_summary(project.graph)
        if not analysis.is_valid:
            return
        for node_id in analysis.order:
            assert math.prod(analysis.shapes[node_id]) <= MAX_ELEMENTS
            assert analysis.params[node_id].total <= MAX_LAYER_PARAMS
        for framework in ("keras", "pytorch"):
            assert generate(project, framework).source


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({(1, "params"): {"filters": 2**31 - 1}}, "samples of more than 268,435,456 elements"),
        ({(6, "params"): {"units": 2**31 - 1}}, "samples of more than 268,435,456 elements"),
        ({(6, "params"): {"units": 2**24}}, "weights; one layer may have at most 268,435,456"),
        ({(0, "params"): {"shape": [8] * 70}}, "expected at most 8 integers"),
        (
            {(2, "params"): {"pool_size": [2**20, 2**20], "padding": "same"}},
            "pool_size (1048576, 1048576) with padding 'same' would produce samples of more than",
        ),
    ],
)
def test_sizes_that_later_commands_cannot_hold_are_refused_by_check(change, expected, tmp_path):
    path = tmp_path / "model.layers.json"
    path.write_text(json.dumps(_document(change)))
    code, stdout, stderr = run_cli(["check", str(path)])
    assert code in (1, 2)
    assert expected in stdout + stderr


@pytest.mark.parametrize("port", [1024, 10**8, 10**15, 2**63])
def test_a_huge_port_number_is_refused_on_load_without_allocating(port, tmp_path):
    document = _document()
    document["nodes"].append({"id": "cat", "kind": "Concatenate", "name": "cat", "params": {}})
    document["edges"] += [{"from": "n7", "to": "cat", "port": 0}, {"from": "n9", "to": "cat", "port": port}]
    path = tmp_path / "model.layers.json"
    path.write_text(json.dumps(document))
    with case("project sizes", tmp_path):
        for command in ("check", "summary", "export"):
            argv = [command, str(path)] + (["--framework", "keras"] if command == "export" else [])
            code, _, stderr = run_cli(argv)
            assert code == 2
            assert f"{path}: edges[9]: Concatenate 'cat' takes at most 1024 inputs" in stderr


# ----- odd text in names (issue 17, class 7) -----------------------------------------------------

UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
HOSTILE_PIECES = [
    "%",
    "%(prog)s",
    "%s",
    "%%",
    "\x1b[2J",
    "\x1b]0;title\x07",
    "\x9b31m",
    "\ud800",
    "\u202e",
    "{}",
]
odd_names = st.lists(st.sampled_from(HOSTILE_PIECES) | st.text(max_size=4), min_size=1, max_size=6).map(
    "".join
)


@fuzz_settings("odd text")
@given(project_name=odd_names, layer_name=odd_names)
def test_odd_names_print_safely_and_the_exported_help_formats(project_name, layer_name):
    import argparse

    document = _document()
    document["name"] = project_name
    document["description"] = project_name
    document["nodes"][6]["name"] = layer_name
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.layers.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        with case("odd text", Path(folder)):
            outputs = _odd_text_outputs(path)
        assert not any(UNPRINTABLE.search(text) for text in outputs[:2])
        if outputs[2].startswith('"""'):  # exported: its argparse help must format
            tree = ast.parse(outputs[2])
            parsers = [
                node
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "ArgumentParser"
            ]
            description = ast.literal_eval(parsers[0].keywords[0].value)
            assert not UNPRINTABLE.search(description)
            argparse.ArgumentParser(prog="model.py", description=description).format_help()


def _odd_text_outputs(path: Path) -> list[str]:
    outputs = []
    for command in (["check"], ["summary"], ["export", "--framework", "pytorch"]):
        code, stdout, stderr = run_cli([command[0], str(path), *command[1:]])
        outputs.append(stdout + stderr)
        event(f"{command[0]} exit {code}")
    return outputs


def test_attention_weights_beyond_the_element_limit_are_an_analysis_error():
    from tests.graph_builders import chain

    project = chain([20_000, 64], ("MultiHeadAttention", {"num_heads": 4, "key_dim": 16}))
    [error] = analyze(project.graph).errors
    assert "attention weights of 4 heads x 20,000 x 20,000 steps would produce samples of more than" in (
        error.message
    )
    assert analyze(chain([200, 64], ("MultiHeadAttention", {"num_heads": 4, "key_dim": 16})).graph).is_valid


def test_more_layers_or_connections_than_a_project_may_hold_are_refused_before_building():
    from studio.graph import MAX_EDGES, MAX_NODES

    document = _document()
    document["nodes"] = document["nodes"] * (MAX_NODES // len(document["nodes"]) + 1)
    with pytest.raises(
        ProjectError, match=rf'"nodes" lists [0-9,]+ layers; a project may have at most {MAX_NODES:,}'
    ):
        loads_project(json.dumps(document))
    document = _document()
    document["edges"] = document["edges"] * (MAX_EDGES // len(document["edges"]) + 1)
    with pytest.raises(ProjectError, match=rf"connections; a project may have at most {MAX_EDGES:,}"):
        loads_project(json.dumps(document))


def test_a_model_whose_layers_together_exceed_the_weight_limit_is_an_analysis_error():
    from studio.catalog.base import MAX_MODEL_PARAMS
    from tests.graph_builders import chain

    layer = ("Dense", {"units": 8192, "use_bias": False})  # 8192 * 8192 = 2^26 weights each
    project = chain([8192], *[layer] * 9)
    errors = [problem.message for problem in analyze(project.graph).errors]
    assert errors == [
        f"the model would have {9 * 2**26:,} weights; a model may have at most {MAX_MODEL_PARAMS:,} "
        "(2 GiB of float32), so that verify, training and export can hold it"
    ]
    assert analyze(chain([8192], *[layer] * 8).graph).is_valid
