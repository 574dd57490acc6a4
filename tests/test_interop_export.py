"""Exporting projects with weights: framework weight files, .keras, TorchScript and ONNX, each
round-tripped; the weights file format; the automatic layout of imported graphs.
"""

from __future__ import annotations

import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from codegen import generate  # noqa: E402
from codegen.plan import build_plan  # noqa: E402
from codegen.runtime import load_module, to_keras_layout, to_torch_layout  # noqa: E402
from codegen.verify import random_inputs  # noqa: E402
from studio.interop import (  # noqa: E402
    InteropError,
    WeightsError,
    export_model,
    export_weights,
    load_weights,
    save_weights,
    weights_path_for,
)
from studio.interop.check import TOLERANCE, difference, run_exported  # noqa: E402
from studio.interop.commands import export_weights_command  # noqa: E402
from studio.interop.weights_file import FORMAT_KEY, FORMAT_TAG  # noqa: E402
from studio.layout import layered_layout  # noqa: E402
from studio.project import load_project, save_project  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "assets", "examples")


def example_with_weights(name: str, tmp_path):
    """An example project, its generated Keras model (random weights) and those weights saved."""
    keras.utils.set_random_seed(0)
    project = load_project(os.path.join(EXAMPLES, f"{name}.layers.json"))
    code = generate(project, "keras")
    model = load_module(code.source, name).build_model()
    rng = np.random.default_rng(0)
    for layer in model.layers:  # moving statistics away from 0 and 1, so BN is exercised
        if isinstance(layer, keras.layers.BatchNormalization):
            weights = layer.get_weights()
            weights[-2] = rng.normal(0, 0.1, weights[-2].shape)
            weights[-1] = rng.uniform(0.5, 1.5, weights[-1].shape)
            layer.set_weights(weights)
    weights = {
        layer.node.name: model.get_layer(layer.ident).get_weights()
        for layer in code.plan.layers
        if not layer.spec.is_source
    }
    project_path = tmp_path / f"{name}.layers.json"
    save_project(project, project_path)
    weights_path = save_weights(weights, weights_path_for(project_path))
    plan = build_plan(project)
    inputs = random_inputs(plan, 3, np.random.default_rng(1))
    expected = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return project, weights_path, inputs, np.asarray(expected)


@pytest.mark.parametrize("name", ["resnet_digits", "sequence_classifier", "transformer_encoder"])
def test_weight_files_for_both_frameworks(name, tmp_path):
    project, weights_path, inputs, expected = example_with_weights(name, tmp_path)
    pt = export_weights(project, "pytorch", weights_path, tmp_path / "model.pt")
    h5 = export_weights(project, "keras", weights_path, tmp_path / "model.weights.h5")
    (output,) = run_exported(project, "pytorch", pt, inputs).values()
    assert difference(output, expected) <= TOLERANCE
    (output,) = run_exported(project, "keras", h5, inputs).values()
    assert difference(output, expected) <= TOLERANCE
    state = torch.load(pt, weights_only=True)  # plain tensors, no pickled objects
    assert all(isinstance(value, torch.Tensor) for value in state.values())


def test_keras_model_file(tmp_path):
    project, weights_path, inputs, expected = example_with_weights("resnet_digits", tmp_path)
    report = export_model(project, "keras", weights_path, tmp_path / "model.keras")
    assert report.difference <= TOLERANCE
    model = keras.saving.load_model(report.path, safe_mode=True, compile=False)
    assert difference(np.asarray(model(inputs[0], training=False)), expected) <= TOLERANCE
    with pytest.raises(InteropError, match=r"\.keras"):
        export_model(project, "keras", weights_path, tmp_path / "model.h5")


@pytest.mark.slow  # tests/test_deploy.py checks each format in the fast tier
@pytest.mark.parametrize("name", ["resnet_digits", "transformer_encoder"])
def test_exported_program_file(name, tmp_path):
    project, weights_path, inputs, expected = example_with_weights(name, tmp_path)
    path = export_model(project, "pt2", weights_path, tmp_path / "model.pt2").path
    program = torch.export.load(str(path))
    plan = build_plan(project)
    tensor = torch.from_numpy(to_torch_layout(inputs[0], plan.inputs[0].layout))  # batch 3: dynamic
    output = program.module()(tensor).detach().numpy()
    assert difference(to_keras_layout(output, plan.outputs[0].layout), expected) <= TOLERANCE


@pytest.mark.slow  # the fast tier exports ONNX in tests/test_training.py (a run's model.onnx)
@pytest.mark.parametrize(
    "name", ["resnet_digits", "sequence_classifier", "transformer_encoder", "conv_autoencoder"]
)
def test_onnx_file_checked_under_onnxruntime(name, tmp_path):
    project, weights_path, inputs, expected = example_with_weights(name, tmp_path)
    path = tmp_path / "model.onnx"
    assert export_model(project, "onnx", weights_path, path).difference <= TOLERANCE
    plan = build_plan(project)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: to_torch_layout(inputs[0], plan.inputs[0].layout)}
    (output,) = session.run(None, feed)
    assert difference(to_keras_layout(output, plan.outputs[0].layout), expected) <= TOLERANCE


def test_weights_file_format(tmp_path):
    weights = {"conv/1": [np.ones((3, 3, 1, 2)), np.zeros(2)], "dense": [np.arange(6.0).reshape(2, 3)]}
    path = save_weights(weights, tmp_path / "net.weights.npz")
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == [FORMAT_KEY, "conv/1/0", "conv/1/1", "dense/0"]
        assert str(archive[FORMAT_KEY]) == FORMAT_TAG
        assert archive["dense/0"].dtype == np.float32
    loaded = load_weights(path)
    assert list(loaded) == ["conv/1", "dense"]  # a "/" in a layer name is kept: the index follows the last
    np.testing.assert_array_equal(loaded["dense"][0], weights["dense"][0])
    assert weights_path_for("models/net.layers.json") == weights_path_for("models/net.json")
    assert str(weights_path_for("models/net.layers.json")).endswith(os.path.join("models", "net.weights.npz"))


def test_bad_weights_files_are_refused(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{FORMAT_KEY: np.array(FORMAT_TAG), "a/0": np.array([object()], dtype=object)})
    with pytest.raises(WeightsError):
        load_weights(pickled)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(WeightsError, match="not a Layer Studio weights file"):
        load_weights(foreign)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(save_weights({"a": [np.zeros(4)]}, tmp_path / "ok.npz").read_bytes()[:50])
    with pytest.raises(WeightsError):
        load_weights(truncated)
    gap = tmp_path / "gap.npz"
    np.savez(gap, **{FORMAT_KEY: np.array(FORMAT_TAG), "a/0": np.zeros(1), "a/2": np.zeros(1)})
    with pytest.raises(WeightsError, match="numbered"):
        load_weights(gap)
    with pytest.raises(WeightsError, match="no such"):
        load_weights(tmp_path / "missing.npz")
    assert zipfile.is_zipfile(tmp_path / "ok.npz")


def test_weights_that_do_not_fit_name_the_layer(tmp_path):
    project, weights_path, _, _ = example_with_weights("mlp_iris", tmp_path)
    weights = load_weights(weights_path)
    dense = next(node.name for node in project.graph.nodes if node.kind == "Dense")
    missing = {name: arrays for name, arrays in weights.items() if name != dense}
    with pytest.raises(WeightsError, match=f"no weights for '{dense}'"):
        export_weights(project, "pytorch", missing, tmp_path / "x.pt")
    wrong = {**weights, dense: [weights[dense][0][:1], weights[dense][1]]}
    with pytest.raises(WeightsError, match=f"'{dense}' has"):
        export_weights(project, "keras", wrong, tmp_path / "x.weights.h5")
    with pytest.raises(InteropError, match=r"\.weights\.h5"):
        export_weights(project, "keras", weights, tmp_path / "x.h5")
    assert not list(tmp_path.glob("x*"))


def test_export_weights_command(tmp_path, capsys):
    project, weights_path, _, _ = example_with_weights("lenet_digits", tmp_path)
    project_path = tmp_path / "lenet_digits.layers.json"
    assert export_weights_command(str(project_path), "pytorch", str(tmp_path / "lenet.pt")) == 0
    assert (tmp_path / "lenet.pt").exists()
    weights_path.unlink()
    assert export_weights_command(str(project_path), "keras", str(tmp_path / "l.weights.h5")) == 2
    assert "no such weights file" in capsys.readouterr().err
    assert export_weights_command(str(tmp_path / "missing.layers.json"), "keras", "x.weights.h5") == 2


def test_layered_layout():
    # a -> b -> d, a -> c -> d, a -> d (a shortcut): columns by longest path, rows by barycentre
    order = ["a", "b", "c", "d", "e"]
    inputs = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c", "a"], "e": ["d"]}
    positions = layered_layout(order, [(source, node) for node in order for source in inputs[node]])
    columns = sorted({x for x, _ in positions.values()})
    assert [columns.index(positions[node][0]) for node in order] == [0, 1, 1, 2, 3]
    assert positions["b"][1] != positions["c"][1]  # the two branches sit side by side


def test_an_imported_long_chain_wraps_into_rows_a_typical_window_shows_whole():
    """The CLI's import lays the model out as the canvas would fit it (studio.layout.fitted_layout):
    a 40-layer chain is several rows, not one line 10,000 px long."""
    from studio.interop.keras_import import import_keras_config
    from studio.layout import COMFORTABLE_ZOOM, DEFAULT_NODE_SIZE, FIT_MARGIN, TYPICAL_VIEWPORT

    layers = [{"class_name": "InputLayer", "config": {"batch_shape": [None, 8], "name": "x"}}]
    layers += [{"class_name": "Dense", "config": {"units": 8, "name": f"d{i}"}} for i in range(40)]
    document = {"class_name": "Sequential", "config": {"name": "long", "layers": layers}}
    graph = import_keras_config(document, None).project.graph
    xs = [node.position[0] for node in graph.nodes]
    ys = [node.position[1] for node in graph.nodes]
    width = max(xs) - min(xs) + DEFAULT_NODE_SIZE[0]
    height = max(ys) - min(ys) + DEFAULT_NODE_SIZE[1]
    assert len(set(ys)) > 1 and len(set(xs)) > 1  # rows of layers (or columns)
    zoom = min(
        (TYPICAL_VIEWPORT[0] - 2 * FIT_MARGIN) / width, (TYPICAL_VIEWPORT[1] - 2 * FIT_MARGIN) / height
    )
    assert zoom >= COMFORTABLE_ZOOM * 0.5
