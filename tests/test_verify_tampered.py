"""The proof cannot be fooled: a program changed in any layer family fails verify, at any output scale.

Each case exports the project's programs, changes one thing in one of them (an activation, a
padding, an epsilon, a momentum, a bias) and verifies the changed program against the project and
the other framework, as `studio verify --keras/--pytorch FILE` does. Behind Rescaling(1e-5) every
output is tiny, behind Rescaling(1e5) huge: an absolute tolerance would pass the first and a
plain relative one could fail float32 rounding in the second.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")

from codegen import generate  # noqa: E402
from codegen.verify import ProgramMismatch, verify_project  # noqa: E402
from studio.cli import main  # noqa: E402
from studio.project import save_project  # noqa: E402
from tests.graph_builders import chain  # noqa: E402


def project(scale: float):
    return chain(
        (8, 8, 3),
        (
            "Conv2D",
            {"filters": 4, "kernel_size": (3, 3), "strides": (2, 2), "padding": "same", "activation": "relu"},
        ),
        ("BatchNormalization", {}),
        ("Flatten", {}),
        ("Dense", {"units": 5, "activation": "relu"}),
        ("Dense", {"units": 3}),
        ("Rescaling", {"scale": scale}),
        name="tamper target",
    )


# (framework, what, original text, changed text, the layer verify must name or None when the
# training step catches it, True when the weights no longer map)
TAMPERS = {
    "torch-gelu-for-relu": ("pytorch", "F.relu(self.dense_3", "F.gelu(self.dense_3", "Dense 'dense_3'"),
    "torch-padding": (
        "pytorch",
        "F.pad(input_, (0, 1, 0, 1))",
        "F.pad(input_, (1, 0, 1, 0))",
        "Conv2D 'conv2d_0'",
    ),
    "torch-epsilon": ("pytorch", "eps=0.001", "eps=0.01", "BatchNormalization 'batchnormalization_1'"),
    "torch-momentum": ("pytorch", "momentum=0.01", "momentum=0.1", None),
    "keras-gelu-for-relu": (
        "keras",
        'layers.Dense(5, activation="relu"',
        'layers.Dense(5, activation="gelu"',
        "Dense 'dense_3'",
    ),
    "keras-epsilon": ("keras", "epsilon=0.001", "epsilon=0.01", "BatchNormalization 'batchnormalization_1'"),
}


def tampered(scale: float, framework: str, old: str, new: str) -> str:
    source = generate(project(scale), framework).source
    assert old in source, f"the generated {framework} program changed: update the tamper case"
    return source.replace(old, new, 1)


def check_fails(scale: float, case: str) -> None:
    framework, old, new, layer = TAMPERS[case]
    report = verify_project(project(scale), sources={framework: tampered(scale, framework, old, new)})
    assert not report.ok, report.format()
    if layer is None:  # only training changes: the step's running statistics differ
        assert report.outputs.ok and not report.step_ok, report.format()
    else:
        assert not report.outputs.ok
        assert report.first_divergence.startswith(layer), report.first_divergence


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_a_tampered_program_fails_behind_tiny_outputs(case):
    check_fails(1e-5, case)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1.0, 1e5])
@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_a_tampered_program_fails_at_any_scale(case, scale):
    check_fails(scale, case)


@pytest.mark.parametrize("scale", [1e-5, 1.0, 1e5])
def test_the_untouched_programs_verify_at_any_scale(scale):
    assert verify_project(project(scale)).ok


@pytest.mark.parametrize(
    ("framework", "old", "new"),
    [
        ("pytorch", "nn.Linear(5, 3)", "nn.Linear(5, 3, bias=False)"),
        ("keras", 'layers.Dense(3, name="dense_4")', 'layers.Dense(3, use_bias=False, name="dense_4")'),
    ],
)
def test_a_program_whose_weights_do_not_fit_is_named(framework, old, new):
    with pytest.raises(ProgramMismatch, match="dense_4"):
        verify_project(project(1.0), sources={framework: tampered(1.0, framework, old, new)})


def test_the_cli_checks_given_programs(tmp_path, capsys):
    path = tmp_path / "target.layers.json"
    save_project(project(1e-5), path)
    programs = {}
    for framework in ("keras", "pytorch"):
        programs[framework] = tmp_path / f"model_{framework}.py"
        programs[framework].write_text(generate(project(1e-5), framework).source, encoding="utf-8")
    given = ["--keras", str(programs["keras"]), "--pytorch", str(programs["pytorch"]), "--skip-main"]
    assert main(["verify", str(path), *given]) == 0

    framework, old, new, layer = TAMPERS["torch-gelu-for-relu"]
    programs["pytorch"].write_text(tampered(1e-5, framework, old, new), encoding="utf-8")
    capsys.readouterr()
    assert main(["verify", str(path), *given, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_divergence"].startswith(layer)

    programs["keras"].write_text("def build_model():\n    raise RuntimeError('broken on purpose')\n")
    assert main(["verify", str(path), *given]) == 1
    assert "the Keras program fails to build: RuntimeError: broken on purpose" in capsys.readouterr().err

    assert main(["verify", str(path), "--keras", str(tmp_path / "missing.py")]) == 2
    assert "--keras" in capsys.readouterr().err


def test_a_batch_size_below_one_is_refused(tmp_path, capsys):
    path = tmp_path / "target.layers.json"
    save_project(project(1.0), path)
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", str(path), "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "--batch-size: expected a positive integer" in capsys.readouterr().err
