"""Smoke test of every example project: it loads, is valid, round-trips, generates and verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegen import FRAMEWORKS, generate
from studio import cli
from studio.analysis import analyze
from studio.project import Project, load_project, save_project

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "assets" / "examples").glob("*.layers.json"))


def example_params():
    return pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])


def kinds(project: Project) -> set[str]:
    return {node.kind for node in project.graph.nodes}


def is_mlp(project: Project) -> bool:
    return "Dense" in kinds(project) and kinds(project) <= {"Input", "Dense", "Dropout", "Activation"}


def is_lenet_on_digits(project: Project) -> bool:
    (source,) = project.graph.input_nodes
    return (
        {"Conv2D", "MaxPooling2D", "Flatten", "Dense"} <= kinds(project)
        and project.training.dataset == "digits"
        and project.graph.node(source).params["shape"] == (8, 8, 1)
    )


def is_residual(project: Project) -> bool:
    return {"Conv2D", "Add"} <= kinds(project)


def is_sequence_classifier(project: Project) -> bool:
    return {"Conv1D", "LSTM"} <= kinds(project)


def is_transformer_block(project: Project) -> bool:
    return {"MultiHeadAttention", "LayerNormalization", "Add"} <= kinds(project)


def is_conv_autoencoder(project: Project) -> bool:
    if "Conv2D" not in kinds(project) or not kinds(project) & {"Conv2DTranspose", "UpSampling2D"}:
        return False
    analysis = analyze(project.graph)
    (source,) = project.graph.input_nodes
    (output,) = analysis.outputs
    return project.training.target == "inputs" and analysis.shapes[output] == analysis.shapes[source]


def test_the_examples_cover_the_promised_architectures():
    assert len(EXAMPLES) >= 6
    projects = {path.name: load_project(path) for path in EXAMPLES}
    for kind in (
        is_mlp,
        is_lenet_on_digits,
        is_residual,
        is_sequence_classifier,
        is_transformer_block,
        is_conv_autoencoder,
    ):
        assert any(kind(project) for project in projects.values()), f"no example satisfies {kind.__name__}"


def test_examples_have_distinct_names_and_descriptions():
    projects = [load_project(path) for path in EXAMPLES]
    names = [project.name for project in projects]
    descriptions = [project.description for project in projects]
    assert all(names) and all(descriptions)
    assert len(set(names)) == len(names)
    assert len(set(descriptions)) == len(descriptions)


@example_params()
def test_example_is_valid_without_any_problem(path, capsys):
    assert analyze(load_project(path).graph).problems == []
    assert cli.main(["check", str(path)]) == cli.OK
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{path}: valid, ") and "warning" not in out[0]


@example_params()
def test_example_round_trips_through_save_and_load(path, tmp_path):
    copy = tmp_path / path.name
    save_project(load_project(path), copy)
    assert copy.read_bytes() == path.read_bytes()
    again = tmp_path / "again.layers.json"
    save_project(load_project(copy), again)
    assert again.read_bytes() == path.read_bytes()


@example_params()
def test_example_generates_both_programs(path):
    project = load_project(path)
    for framework in FRAMEWORKS:
        code = generate(project, framework)
        compile(code.source, code.filename, "exec")
        assert "def build_model():" in code.source
        assert code.filename.endswith(f"_{framework}.py")


@example_params()
def test_example_is_equivalent_in_both_frameworks(path):
    from codegen.verify import verify_project

    report = verify_project(load_project(path))
    assert report.ok, report.format()
