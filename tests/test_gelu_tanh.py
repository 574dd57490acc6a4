"""GELU's forms: the tanh approximation (GPT-2, BERT, ALBERT, ELECTRA), one catalog activation in
every spelling, and exact GELU as ONNX writes it out before opset 20.

torch's ``gelu(approximate="tanh")``, ONNX's ``Gelu(approximate="tanh")`` and keras-hub's
``gelu_approximate`` (Keras's ``gelu(approximate=True)``) are one formula; the Keras program
defines ``gelu_tanh``, registered so that a saved model loads in safe mode.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from codegen import generate  # noqa: E402
from codegen.runtime import load_module  # noqa: E402
from studio.interop import import_model, save_imported  # noqa: E402
from studio.interop.check import TOLERANCE, reproduction_errors  # noqa: E402
from studio.interop.torch_import import import_torch_model  # noqa: E402
from tests.graph_builders import chain  # noqa: E402
from tests.test_interop_torch import check_reproduces  # noqa: E402


def activations(imported) -> list[str]:
    return [
        node.params["activation"]
        for node in imported.project.graph.nodes
        if node.kind in ("Activation", "Dense") and node.params.get("activation", "linear") != "linear"
    ]


def test_the_keras_program_defines_gelu_tanh_and_saves_it_loadable_in_safe_mode(tmp_path):
    project = chain(
        [6], ("Dense", {"units": 5, "activation": "gelu_tanh"}), ("Activation", {"activation": "gelu_tanh"})
    )
    source = generate(project, "keras").source
    assert source.count("def gelu_tanh(x):") == 1
    assert "activation=gelu_tanh," in source and "layers.Activation(gelu_tanh," in source
    model = load_module(source, "gelu_tanh_keras").build_model()
    x = np.linspace(-4, 4, 12, dtype="float32").reshape(2, 6)
    path = tmp_path / "gelu.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(model(x)))
    # The formula is torch's: the activation alone, on a wide range.
    wide = np.linspace(-8, 8, 401, dtype="float32")
    keras_gelu = np.asarray(keras.activations.gelu(wide, approximate=True))
    torch_gelu = nn.functional.gelu(torch.from_numpy(wide), approximate="tanh").numpy()
    np.testing.assert_allclose(keras_gelu, torch_gelu, atol=1e-6)
    assert np.abs(torch_gelu - nn.functional.gelu(torch.from_numpy(wide)).numpy()).max() > 1e-4


class Mlp(nn.Module):
    """A transformer's feed-forward block, as GPT-2 writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(8, 32)
        self.act = nn.GELU(approximate="tanh")
        self.down = nn.Linear(32, 8)

    def forward(self, x):
        return self.down(nn.functional.gelu(self.act(self.up(x)), approximate="tanh"))


def test_torch_gelu_tanh_module_and_function_cross_to_keras(tmp_path):
    model = Mlp().eval()
    imported = import_torch_model(model, [(5, 8)])
    assert activations(imported) == ["gelu_tanh", "gelu_tanh"]
    inputs = [np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


def test_onnx_gelu_of_both_forms_is_imported_by_its_approximate_attribute(tmp_path):
    rng = np.random.default_rng(1)
    weight = rng.normal(size=(6, 6)).astype("float32")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="dense"),
        helper.make_node("Gelu", ["h"], ["t"], name="tanh_form", approximate="tanh"),
        helper.make_node("Gelu", ["t"], ["y"], name="exact_form"),
    ]
    graph = helper.make_graph(
        nodes,
        "gelus",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    path = tmp_path / "gelus.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10), str(path))
    imported = import_model(path)
    names = {node.name: node.params.get("activation") for node in imported.project.graph.nodes}
    assert names["tanh_form"] == "gelu_tanh" and names["exact_form"] == "gelu"
    x = rng.normal(size=(3, 6)).astype("float32") * 3
    expected = onnxruntime.InferenceSession(str(path)).run(None, {"x": x})
    _, weights_path = save_imported(imported, tmp_path / "gelus.layers.json")
    errors = reproduction_errors(imported, weights_path, [x], expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors


def test_keras_hubs_gelu_approximate_crosses_to_pytorch(tmp_path):
    from keras_hub.src.utils.keras_utils import gelu_approximate

    inputs = keras.Input((5, 8))
    hidden = keras.layers.Dense(16, activation=gelu_approximate, name="intermediate")(inputs)
    outputs = keras.layers.Activation(gelu_approximate, name="act")(keras.layers.Dense(8)(hidden))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "hub_gelu.keras"
    model.save(path)
    imported = import_model(path)
    assert activations(imported) == ["gelu_tanh", "gelu_tanh"]
    x = np.random.default_rng(2).normal(size=(2, 5, 8)).astype("float32")
    _, weights_path = save_imported(imported, tmp_path / "hub_gelu.layers.json")
    errors = reproduction_errors(imported, weights_path, [x], [np.asarray(model(x))], tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors


def test_onnx_erf_gelu_written_out_is_one_gelu_activation(tmp_path):
    """opset 17 has no Gelu: torch writes x * (1 + erf(x / sqrt 2)) * 0.5 (ConvNeXt, ViT, Swin)."""
    from tests.test_interop_onnx import export_torch

    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 3)).eval()
    x = np.random.default_rng(4).normal(size=(2, 6)).astype("float32") * 3
    path = tmp_path / "erf_gelu.onnx"
    export_torch(model, x, path, opset_version=17)
    assert "Erf" in {node.op_type for node in onnx.load(str(path)).graph.node}
    imported = import_model(path)
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert kinds.count("Activation") == 1 and "Rescaling" not in kinds and "Multiply" not in kinds
    assert activations(imported) == ["gelu"]
    check_reproduces(imported, model, [x], tmp_path)
