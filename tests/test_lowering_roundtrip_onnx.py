"""Round trip through ONNX: project -> generated PyTorch -> ONNX -> ONNX importer -> project.

Each project's PyTorch model is exported the way the studio exports a run
(:func:`codegen.deploy.deploy`, through torch.export) and imported again; the
imported layers must be the original ones, kind by kind and parameter by
parameter, wired alike. The importer adds no layout Permute here.

What cannot come back as it was, and why (``expected_layers`` applies it to the
original before comparing):

- Dropout is the identity at inference: the exporter drops it.
- A fused activation (Conv2D(activation="relu")) is a separate ONNX operator:
  it comes back as its own Activation layer.
- A convolution whose Keras 'same' padding PyTorch cannot express (strides, or
  an even kernel) is written with an explicit ``F.pad``, and torch.export writes
  PyTorch's own uneven ``padding="same"`` as pads too (one per axis): it comes
  back as ZeroPadding2D (one per padded axis in the second case) + the
  convolution with 'valid' padding.
- Cropping2D is a slice: the exporter slices one axis at a time, so it comes
  back as one Cropping2D per cropped axis. A Conv2DTranspose 'same' with an odd
  crop is likewise a slice of the full output: 'valid' + the Cropping2D layers.
- Average is written ``(a + b + ...) / n``: Add layers and a Rescaling.
- Rescaling with both a scale and an offset is ``x * scale + offset``: two
  ONNX operators, two Rescaling layers.
- BatchNormalization stays (the export folds constants but fuses no layers).
- Recurrent and attention layers have no ONNX importer (:data:`NOT_IMPORTED`).

Not in the small projects, as they cannot come back: Maximum and Minimum (written
``torch.where(a >= b, a, b)`` to keep Keras's NaN handling) and the gelu
activation (opset 17 has no Gelu operator: it is written out with Erf).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from codegen import generate
from codegen.deploy import deploy
from codegen.layers.convolution import layer_pads, padding_steps
from codegen.plan import build_plan
from codegen.runtime import load_module
from studio.catalog import CATALOG
from studio.interop import UnsupportedModelError
from studio.interop.onnx_import import import_onnx_file
from studio.project import Project, load_project
from tests.graph_builders import chain, make_project

EXAMPLES = Path(os.path.dirname(__file__)) / ".." / "assets" / "examples"

# Examples the ONNX importer cannot read back, and why.
NOT_IMPORTED = {
    "sequence_classifier": "LSTM: the ONNX importer maps no recurrent layer (the exported LSTM op also "
    "builds its initial state from the batch size)",
    "transformer_encoder": "MultiHeadAttention: the ONNX importer maps no attention",
}


# ----- small projects, one or two families each ------------------------------------------------

SMALL = {
    "convolutions": lambda: chain(
        (9, 9, 3),
        ("Conv2D", {"filters": 8, "kernel_size": (3, 3), "strides": (2, 2), "padding": "same"}),
        ("Conv2D", {"filters": 6, "kernel_size": (3, 3), "padding": "same", "activation": "relu"}),
        ("Conv2D", {"filters": 4, "kernel_size": (2, 3), "padding": "same", "use_bias": False}),
        ("Conv2D", {"filters": 4, "kernel_size": (3, 1), "dilation_rate": (2, 1)}),
        ("DepthwiseConv2D", {"kernel_size": (3, 3), "padding": "same", "depth_multiplier": 2}),
        ("Conv2D", {"filters": 4, "kernel_size": (3, 3), "groups": 4, "strides": (2, 2), "padding": "same"}),
        ("Conv2DTranspose", {"filters": 3, "kernel_size": (3, 3), "strides": (2, 2)}),
        ("Conv2DTranspose", {"filters": 2, "kernel_size": (3, 3), "strides": (2, 2), "padding": "same"}),
    ),
    "conv1d": lambda: chain(
        (16, 4),
        ("Conv1D", {"filters": 8, "kernel_size": 3, "padding": "same", "activation": "tanh"}),
        ("MaxPooling1D", {"pool_size": 2}),
        ("Conv1D", {"filters": 4, "kernel_size": 3, "dilation_rate": 2}),
        ("AveragePooling1D", {"pool_size": 2}),
        ("GlobalMaxPooling1D", {}),
        ("Dense", {"units": 3}),
    ),
    "pooling": lambda: chain(
        (8, 8, 3),
        ("MaxPooling2D", {"pool_size": (2, 2)}),
        ("AveragePooling2D", {"pool_size": (3, 3), "strides": (1, 1), "padding": "same"}),
        ("MaxPooling2D", {"pool_size": (2, 2), "strides": (1, 1)}),
        ("GlobalAveragePooling2D", {}),
        ("Dense", {"units": 2, "activation": "softmax"}),
    ),
    "batch_norm": lambda: chain(
        (8, 8, 3),
        ("Conv2D", {"filters": 4, "kernel_size": (3, 3), "activation": "relu"}),
        ("BatchNormalization", {"momentum": 0.9, "epsilon": 1e-3}),
        ("Flatten", {}),
        ("Dense", {"units": 8, "activation": "relu"}),
        ("BatchNormalization", {}),
        ("Dropout", {"rate": 0.5}),
        ("Dense", {"units": 2}),
    ),
    "merges": lambda: make_project(
        ("x", "Input", {"shape": [6]}),
        ("a", "Dense", {"units": 4}, "x"),
        ("b", "Dense", {"units": 4, "activation": "sigmoid"}, "x"),
        ("add", "Add", {}, "a", "b"),
        ("sub", "Subtract", {}, "add", "b"),
        ("mul", "Multiply", {}, "sub", "a"),
        ("avg", "Average", {}, "mul", "a", "b"),
        ("avg2", "Average", {}, "avg", "b"),
        ("out", "Dense", {"units": 2}, "avg2"),
    ),
    "concatenate": lambda: make_project(
        ("x", "Input", {"shape": [8, 8, 3]}),
        ("a", "Conv2D", {"filters": 4, "kernel_size": (3, 3), "padding": "same"}, "x"),
        ("b", "Conv2D", {"filters": 2, "kernel_size": (1, 1)}, "x"),
        ("cat", "Concatenate", {"axis": -1}, "a", "b"),
        ("pool", "GlobalMaxPooling2D", {}, "cat"),
        ("v", "Dense", {"units": 3}, "pool"),
        ("cat2", "Concatenate", {"axis": -1}, "v", "pool"),
        ("out", "Dense", {"units": 2}, "cat2"),
    ),
    "pooling_same_keepdims": lambda: chain(
        (9, 8, 3),
        ("MaxPooling2D", {"pool_size": (3, 3), "strides": (2, 2), "padding": "same"}),
        ("AveragePooling2D", {"pool_size": (3, 3), "strides": (2, 2), "padding": "same"}),
        ("GlobalAveragePooling2D", {"keepdims": True}),
        ("Conv2D", {"filters": 2, "kernel_size": (1, 1)}),
    ),
    "reshape_permute": lambda: chain(
        (12,),
        ("Dense", {"units": 12}),
        ("Reshape", {"target_shape": (3, 4)}),
        ("Permute", {"dims": (2, 1)}),
        ("Dense", {"units": 5}),
        ("Flatten", {}),
        ("Dense", {"units": 2}),
    ),
    "up_sampling_padding_cropping": lambda: chain(
        (4, 5, 2),
        ("UpSampling2D", {"size": (2, 2)}),
        ("UpSampling2D", {"size": (1, 2), "interpolation": "bilinear"}),
        ("ZeroPadding2D", {"padding": (1, 2, 0, 1)}),
        ("Cropping2D", {"cropping": (2, 1, 1, 3)}),
        ("Conv2D", {"filters": 2, "kernel_size": (1, 1)}),
    ),
    "padding_1d_and_slices": lambda: chain(
        (6, 4),
        ("Conv1D", {"filters": 6, "kernel_size": 3}),
        ("ZeroPadding1D", {"padding": (1, 2)}),
        ("Slice", {"axis": -1, "start": 1, "stop": 4}),
        ("Conv1D", {"filters": 5, "kernel_size": 2}),
        ("Slice", {"axis": -1, "start": 0, "stop": 2}),
    ),
    "rescaling_activations": lambda: chain(
        (8,),
        ("Rescaling", {"scale": 1 / 255}),
        ("Rescaling", {"scale": 1 / 127.5, "offset": -1.0}),
        ("Dense", {"units": 8, "activation": "tanh"}),
        ("Activation", {"activation": "relu6"}),
        ("Activation", {"activation": "leaky_relu", "negative_slope": 0.1}),
        ("Activation", {"activation": "elu", "alpha": 0.5}),
        ("Activation", {"activation": "softplus"}),
        ("Activation", {"activation": "hard_sigmoid"}),
        ("Activation", {"activation": "softmax"}),
    ),
    # The activations with an ONNX operator of their own at the export's opset (mish's, Mish-18,
    # is not; softsign, log_sigmoid, tanh_shrink and the shrinks are written with other operators).
    "more_activations": lambda: chain(
        (8,),
        ("Dense", {"units": 8, "activation": "hard_silu"}),
        ("Activation", {"activation": "selu"}),
        ("Activation", {"activation": "celu"}),
        ("Activation", {"activation": "hard_tanh"}),
        ("Activation", {"activation": "log_softmax"}),
    ),
    "prelu_and_broadcast_merges": lambda: make_project(
        ("x", "Input", {"shape": [6, 6, 3]}),
        ("conv", "Conv2D", {"filters": 4, "kernel_size": (3, 3), "padding": "same"}, "x"),
        ("prelu", "PReLU", {}, "conv"),
        ("pool", "MaxPooling2D", {"pool_size": (6, 6)}, "prelu"),
        ("gate", "Conv2D", {"filters": 4, "kernel_size": (1, 1), "activation": "hard_sigmoid"}, "pool"),
        ("scaled", "Multiply", {}, "prelu", "gate"),
        ("shifted", "Subtract", {}, "scaled", "pool"),
        ("one", "PReLU", {"per_channel": False}, "shifted"),
    ),
}


# ----- the round trip ---------------------------------------------------------------------------


def round_trip(project: Project, tmp_path: Path) -> Project:
    code = generate(project, "pytorch")
    model = load_module(code.source, code.filename[:-3]).build_model()
    path = tmp_path / "model.onnx"
    deploy("onnx", code.plan, model, path)
    return import_onnx_file(path).project


Entry = tuple[str, dict, list[int]]  # kind, params, the positions of its inputs


class Expected:
    """The layers the import should give, in order; ``alias`` maps an original layer id to its entry."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.alias: dict[str, int] = {}

    def add(self, kind: str, params: dict, inputs: list[int]) -> int:
        self.entries.append((kind, CATALOG.get(kind).validate_params(params), inputs))
        return len(self.entries) - 1


def expected_layers(project: Project) -> list[Entry]:
    """The original layers with the module docstring's rules applied."""
    plan = build_plan(project)
    out = Expected()
    for layer in plan.layers:
        kind, params = layer.kind, layer_params(layer)
        inputs = [out.alias[source] for source in layer.inputs]
        if kind == "Dropout":
            out.alias[layer.id] = inputs[0]
            continue
        activation = "linear"
        if kind != "Activation" and "activation" in params:
            activation, params["activation"] = params["activation"], "linear"
        crops = (0, 0, 0, 0)
        if kind in ("Conv2D", "DepthwiseConv2D"):
            pads = layer_pads(layer, params["kernel_size"], params["strides"], params["dilation_rate"])
            (top, bottom), (left, right) = pads
            if padding_steps(layer, "x", pads)[0]:  # an explicit F.pad
                inputs = [out.add("ZeroPadding2D", {"padding": (top, bottom, left, right)}, inputs)]
                params["padding"] = "valid"
            elif (top, left) != (bottom, right):  # padding="same", uneven: torch.export pads each axis
                for padding in ((top, bottom, 0, 0), (0, 0, left, right)):
                    if any(padding):
                        inputs = [out.add("ZeroPadding2D", {"padding": padding}, inputs)]
                params["padding"] = "valid"
        elif kind == "Conv2DTranspose" and params["padding"] == "same":
            full = [max(k - s, 0) for k, s in zip(params["kernel_size"], params["strides"], strict=True)]
            if any(crop % 2 for crop in full):
                params["padding"] = "valid"
                crops = (full[0] // 2, full[0] - full[0] // 2, full[1] // 2, full[1] - full[1] // 2)
        elif kind == "Cropping2D":
            kind, crops = None, tuple(params["cropping"])
        elif kind == "Rescaling" and params["scale"] != 1 and params["offset"]:
            inputs = [out.add("Rescaling", {"scale": params["scale"], "offset": 0.0}, inputs)]
            params["scale"] = 1.0
        elif kind == "Average":
            kind, total = None, inputs[0]
            for other in inputs[1:]:
                total = out.add("Add", {}, [total, other])
            inputs = [out.add("Rescaling", {"scale": 1 / len(inputs), "offset": 0.0}, [total])]
        index = inputs[0] if kind is None else out.add(kind, params, inputs)
        if crops[:2] != (0, 0):
            index = out.add("Cropping2D", {"cropping": (*crops[:2], 0, 0)}, [index])
        if crops[2:] != (0, 0):
            index = out.add("Cropping2D", {"cropping": (0, 0, *crops[2:])}, [index])
        if activation != "linear":
            index = out.add("Activation", {"activation": activation}, [index])
        out.alias[layer.id] = index
    return out.entries


def layer_params(layer) -> dict:
    """A plan layer's params; a Concatenate's axis counted from the front (-1 is 1 for vectors)."""
    params = dict(layer.params)
    if layer.kind == "Concatenate":
        params["axis"] %= len(layer.shape) + 1
    return params


def imported_layers(project: Project) -> list[Entry]:
    plan = build_plan(project)
    position = {layer.id: index for index, layer in enumerate(plan.layers)}
    return [
        (layer.kind, layer_params(layer), [position[source] for source in layer.inputs])
        for layer in plan.layers
    ]


def comparable(kind: str, params: dict) -> dict:
    """Params with the catalog's implied values made explicit (pooling strides None = pool_size)."""
    params = {key: tuple(value) if isinstance(value, list) else value for key, value in params.items()}
    if "pool_size" in params and params.get("strides") is None:
        params["strides"] = params["pool_size"]
    if kind == "Activation":  # only the parameters of the chosen function matter
        name = params["activation"]
        params = {
            key: value for key, value in params.items() if key == "activation" or key in _USES.get(name, ())
        }
    return params


_USES = {"leaky_relu": ("negative_slope",), "elu": ("alpha",)}


def same_value(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)  # float32 constants in the ONNX file
    return a == b


def assert_same_layers(original: Project, imported: Project) -> None:
    want, got = expected_layers(original), imported_layers(imported)
    assert [entry[0] for entry in got] == [entry[0] for entry in want]
    for index, ((kind, want_params, want_inputs), (_, got_params, got_inputs)) in enumerate(
        zip(want, got, strict=True)
    ):
        want_params, got_params = comparable(kind, want_params), comparable(kind, got_params)
        assert want_params.keys() == got_params.keys(), (index, kind)
        for key, value in want_params.items():
            assert same_value(value, got_params[key]), (index, kind, key, value, got_params[key])
        assert got_inputs == want_inputs, (index, kind)


def example_names() -> list[str]:
    return sorted(path.name.removesuffix(".layers.json") for path in EXAMPLES.glob("*.layers.json"))


# The fast tier keeps one example and two small projects: each ONNX export takes about a second.
FAST_ONNX = {"lenet_digits", "convolutions", "merges"}


def _onnx_cases(names):
    return [pytest.param(name, marks=() if name in FAST_ONNX else pytest.mark.slow) for name in names]


@pytest.mark.parametrize("name", _onnx_cases(example_names()))
def test_examples_come_back_from_onnx(name, tmp_path):
    project = load_project(EXAMPLES / f"{name}.layers.json")
    if name in NOT_IMPORTED:
        with pytest.raises((UnsupportedModelError, torch.onnx.errors.UnsupportedOperatorError)):
            round_trip(project, tmp_path)
        return
    assert_same_layers(project, round_trip(project, tmp_path))


@pytest.mark.parametrize("name", _onnx_cases(sorted(SMALL)))
def test_small_projects_come_back_from_onnx(name, tmp_path):
    project = SMALL[name]()
    assert_same_layers(project, round_trip(project, tmp_path))
