"""`studio export --format`: every deployment format, written, reloaded in its own runtime, compared.

Each test loads the written file itself, in the format's runtime (onnxruntime, the LiteRT
interpreter, torch.export.load, tf.saved_model, Keras, torch.load), and compares it with the Keras
model built from the same weights: the export's own check is not taken on trust.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from studio import cli
from studio.project import load_project, save_project
from tests.graph_builders import chain, make_project

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

EXAMPLES = Path(__file__).parent.parent / "assets" / "examples"
EXAMPLE_NAMES = sorted(path.name.removesuffix(".layers.json") for path in EXAMPLES.glob("*.layers.json"))
SUFFIX = {"keras": ".keras", "pytorch": ".pt", "onnx": ".onnx", "pt2": ".pt2", "litert": ".tflite"}


def _keras_model(project, weights):
    from studio.interop import build_keras_model

    return build_keras_model(project, weights)


def _run_file(fmt: str, path: Path, project, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The written file's outputs (Keras layout) for ``arrays`` (Keras layout), in its own runtime."""
    from codegen import generate
    from codegen.runtime import load_module, to_keras_layout, to_torch_layout

    plan = generate(project, "pytorch").plan
    tensors = [to_torch_layout(array, layer.layout) for array, layer in zip(arrays, plan.inputs, strict=True)]
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [item.name for item in session.get_inputs()]
        outputs = session.run(None, dict(zip(names, tensors, strict=True)))
    elif fmt == "pt2":
        module = torch.export.load(str(path)).module()
        result = module(*(torch.from_numpy(tensor) for tensor in tensors))
        outputs = [item.detach().numpy() for item in (result if isinstance(result, tuple) else [result])]
    elif fmt == "pytorch":
        code = generate(project, "pytorch")
        model = load_module(code.source, "deploy_check").build_model().eval()
        model.load_state_dict(torch.load(str(path), weights_only=True))
        with torch.no_grad():
            result = model(*(torch.from_numpy(tensor) for tensor in tensors))
        outputs = [item.numpy() for item in (result if isinstance(result, tuple) else [result])]
    else:
        return _run_keras_side(fmt, path, arrays)
    return [
        to_keras_layout(output, layer.layout) for output, layer in zip(outputs, plan.outputs, strict=True)
    ]


def _run_keras_side(fmt: str, path: Path, arrays: list[np.ndarray]) -> list[np.ndarray]:
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path)).get_signature_runner()
        (name,) = runner.get_input_details()  # the examples have one input
        assert list(runner.get_input_details()[name]["shape"]) == [1, *arrays[0].shape[1:]]
        samples = [runner(**{name: arrays[0][i : i + 1]}) for i in range(len(arrays[0]))]  # batch 1
        return [np.concatenate([sample[key] for sample in samples]) for key in sorted(samples[0])]
    if fmt == "savedmodel":
        import tensorflow as tf

        serving = tf.saved_model.load(str(path)).signatures["serving_default"]
        (name,) = serving.structured_input_signature[1]
        outputs = serving(**{name: tf.constant(arrays[0])})
        return [outputs[key].numpy() for key in sorted(outputs)]
    model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    result = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    return [np.asarray(item) for item in (result if isinstance(result, list) else [result])]


def _check(fmt: str, path: Path, project, weights, tolerance: float = 1e-4) -> None:
    from codegen.plan import build_plan
    from codegen.verify import random_inputs

    arrays = random_inputs(build_plan(project), 3, np.random.default_rng(7))  # batch 3: not the export's
    model = _keras_model(project, weights)
    want = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    want = [np.asarray(item) for item in (want if isinstance(want, list) else [want])]
    got = _run_file(fmt, path, project, arrays)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * max(1.0, np.abs(b).max()))


def _export(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["export", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _trained(project, seed: int = 3) -> dict[str, list[np.ndarray]]:
    """Weights unlike any initialisation: every weight random, batch-norm variances positive."""
    from studio.interop import seeded_weights

    rng = np.random.default_rng(seed)
    kinds = {node.name: node.kind for node in project.graph.nodes}
    weights = {}
    for name, arrays in seeded_weights(project, seed).items():
        weights[name] = [rng.normal(0, 0.3, array.shape).astype(np.float32) for array in arrays]
        if kinds[name] == "BatchNormalization":  # gamma, beta, moving mean, moving variance
            weights[name][-1] = np.abs(weights[name][-1]) + 0.5
    return weights


# ----- one fast check per format --------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    # ONNX's first export takes about 5 s (the fast tier exports one in tests/test_training.py).
    ["keras", "pytorch", pytest.param("onnx", marks=pytest.mark.slow), "pt2", "litert", "savedmodel"],
)
def test_each_format_runs_in_its_runtime(fmt, tmp_path, capsys):
    from studio.interop import save_weights, weights_path_for

    project = chain((6,), ("Dense", {"units": 5, "activation": "tanh"}), ("Dense", {"units": 3}))
    path = tmp_path / "net.layers.json"
    save_project(project, path)
    weights = _trained(project)
    save_weights(weights, weights_path_for(path))  # beside the project: the default source
    out = tmp_path / f"model{SUFFIX.get(fmt, '')}"
    code, stdout, stderr = _export(capsys, str(path), "--format", fmt, "-o", str(out))
    assert code == cli.OK, stderr
    assert stderr.startswith(f"weights: the weights in {weights_path_for(path)}")
    assert "differs from the" in stdout and "(tolerance 0.0001)" in stdout
    assert out.is_dir() if fmt == "savedmodel" else out.is_file()
    _check(fmt, out, project, weights)
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]  # no staging file left


def test_formats_of_the_cli_are_the_deploy_formats():
    from codegen.deploy import FORMATS

    assert tuple(FORMATS) == cli.MODEL_FORMATS


# ----- weights from a run, in either framework ---------------------------------------------


MIXED = chain(
    (7, 7, 3),
    ("Conv2D", {"filters": 4, "kernel_size": [3, 3], "padding": "same"}),
    ("BatchNormalization", {}),
    ("DepthwiseConv2D", {"kernel_size": [3, 3], "depth_multiplier": 2}),
    ("Reshape", {"target_shape": [25, 8]}),
    ("GRU", {"units": 4, "return_sequences": True}),
    ("LSTM", {"units": 3, "bidirectional": True, "return_sequences": True}),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 3}),
    ("Flatten", {}),
    ("Dense", {"units": 2}),
)


@pytest.mark.parametrize(
    "project",
    [
        *(
            pytest.param(load_project(EXAMPLES / f"{n}.layers.json"), marks=pytest.mark.slow)
            for n in EXAMPLE_NAMES
        ),
        MIXED,
    ],
)
def test_torch_weights_convert_back_to_keras_layout(project):
    from codegen.plan import build_plan
    from codegen.weights import keras_to_torch_state, torch_to_keras_weights

    plan = build_plan(project)
    weights = _trained(project)
    by_ident = {layer.ident: weights[layer.node.name] for layer in plan.layers if layer.node.name in weights}
    state = keras_to_torch_state(plan, by_ident)
    shapes = {ident: [array.shape for array in arrays] for ident, arrays in by_ident.items()}
    back = torch_to_keras_weights(plan, state, shapes)
    assert back.keys() == by_ident.keys()
    for ident, arrays in by_ident.items():
        for a, b in zip(back[ident], arrays, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_pytorch_run_exports_to_keras_formats(tmp_path, capsys):
    from studio.interop import build_torch_model

    project = make_project(
        ("x", "Input", {"shape": [6, 3]}),
        ("lstm", "LSTM", {"units": 4, "return_sequences": True}),
        ("gru", "GRU", {"units": 2}),
        ("dense", "Dense", {"units": 2}),
    )
    path = tmp_path / "seq.layers.json"
    save_project(project, path)
    weights = _trained(project)
    run = tmp_path / "runs" / "seq-pytorch-1"
    run.mkdir(parents=True)
    state = build_torch_model(project, weights).state_dict()
    torch.save({"model": state, "meta": "{}"}, run / "checkpoint.pt")  # a run stopped before its end
    out = tmp_path / "seq.keras"
    code, stdout, stderr = _export(capsys, str(path), "--format", "keras", "-o", str(out), "--run", str(run))
    assert code == cli.OK, stderr
    assert "the last pytorch checkpoint of the run (it did not finish)" in stderr
    _check("keras", out, project, weights)


def test_a_keras_run_exports_its_final_weights(tmp_path, capsys):
    project = load_project(EXAMPLES / "lenet_digits.layers.json")
    path = tmp_path / "lenet.layers.json"
    save_project(project, path)
    weights = _trained(project)
    run = tmp_path / "run"
    run.mkdir()
    _keras_model(project, weights).save(run / "final.keras")
    out = tmp_path / "lenet.pt2"
    code, stdout, stderr = _export(capsys, str(path), "--format", "pt2", "-o", str(out), "--run", str(run))
    assert code == cli.OK, stderr
    assert "the final keras weights of the run" in stderr
    _check("pt2", out, project, weights)


# ----- bad input: one line, the right exit code, nothing written ----------------------------


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("weights:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    project = str(EXAMPLES / "mlp_iris.layers.json")
    out = str(tmp_path / "m.onnx")
    cases = [
        (["--format", "tflite", "-o", out], "unknown format 'tflite'; expected one of keras, pytorch"),
        (["--format", "onnx", "-o", out, "--run", str(tmp_path / "nothing")], "no such folder"),
        (["--format", "onnx", "-o", out, "--run", str(tmp_path)], "holds no trained weights"),
        (["--format", "onnx"], "--format needs -o FILE"),
        (["--framework", "keras", "--run", str(tmp_path)], "--run goes with --format"),
        (["--framework", "keras", "--format", "onnx", "-o", out], "not both"),
        (["--format", "onnx", "-o", str(tmp_path / "missing" / "m.onnx")], "cannot write"),
        (["--format", "keras", "-o", str(tmp_path / "m.h5")], "must end in .keras"),
    ]
    for argv, expected in cases:
        code, stdout, stderr = _export(capsys, project, *argv)
        assert expected in _one_error_line(stderr), argv
        assert code == cli.UNREADABLE, argv
    assert os.listdir(tmp_path) == []


def test_a_file_that_differs_beyond_the_tolerance_is_not_written(tmp_path, capsys, monkeypatch):
    from codegen import deploy

    strict = dataclasses.replace(deploy.FORMATS["pt2"], tolerance=-1.0)  # any difference is too much
    monkeypatch.setitem(deploy.FORMATS, "pt2", strict)
    out = tmp_path / "m.pt2"
    out.write_bytes(b"the old file")
    code, _, stderr = _export(
        capsys, str(EXAMPLES / "mlp_iris.layers.json"), "--format", "pt2", "-o", str(out)
    )
    assert code == cli.PROBLEMS
    assert "above the tolerance -1; nothing was written" in _one_error_line(stderr)
    assert out.read_bytes() == b"the old file"


def test_the_program_export_still_works(capsys):
    code, stdout, _ = _export(capsys, str(EXAMPLES / "mlp_iris.layers.json"), "--framework", "pytorch")
    assert code == cli.OK and "def build_model" in stdout


# ----- every example, every portable format (slow) -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert", "pt2"])
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_exports(name, fmt, tmp_path, capsys):
    from studio.interop import save_weights, weights_path_for

    project = load_project(EXAMPLES / f"{name}.layers.json")
    path = tmp_path / f"{name}.layers.json"
    save_project(project, path)
    weights = _trained(project)
    save_weights(weights, weights_path_for(path))
    out = tmp_path / f"{name}{SUFFIX[fmt]}"
    code, stdout, stderr = _export(capsys, str(path), "--format", fmt, "-o", str(out))
    assert code == cli.OK, stderr
    _check(fmt, out, project, weights)
