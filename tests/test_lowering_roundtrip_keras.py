"""Every kind's Keras emission and Keras import mapping are inverses.

For each catalog kind (and a few non-default parameter choices per family):
project -> generated Keras program -> model built from that source -> ``.keras``
file -> the studio's Keras importer -> the same layers, kinds and params.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from codegen import generate  # noqa: E402
from codegen.runtime import load_module  # noqa: E402
from studio.catalog import CATALOG  # noqa: E402
from studio.interop import import_model, keras_import  # noqa: E402
from studio.project import Project  # noqa: E402
from tests.graph_builders import make_project  # noqa: E402

# A small input each kind accepts, by kind.
VECTOR, SEQUENCE, IMAGE = [6], [5, 6], [8, 8, 3]
INPUT_SHAPES = {
    "Dense": VECTOR,
    "Activation": VECTOR,
    "Dropout": VECTOR,
    "Rescaling": VECTOR,
    "Conv1D": SEQUENCE,
    "MaxPooling1D": SEQUENCE,
    "AveragePooling1D": SEQUENCE,
    "GlobalAveragePooling1D": SEQUENCE,
    "GlobalMaxPooling1D": SEQUENCE,
    "AdaptiveAveragePooling1D": SEQUENCE,
    "AdaptiveMaxPooling1D": SEQUENCE,
    "LayerNormalization": SEQUENCE,
    "RMSNormalization": SEQUENCE,
    "SimpleRNN": SEQUENCE,
    "LSTM": SEQUENCE,
    "GRU": SEQUENCE,
    "MultiHeadAttention": [4, 64],  # num_heads * key_dim features
    "PositionEmbedding": SEQUENCE,
    "Reshape": SEQUENCE,
    "Permute": SEQUENCE,
    "ZeroPadding1D": SEQUENCE,
    "ClassToken": SEQUENCE,
    "Embedding": [5],
    "GroupNormalization": [4, 4, 32],  # the default 32 groups
}
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")


def single(kind: str, params: dict | None = None, shape: list[int] | None = None) -> Project:
    """Input -> kind (two inputs for a merge)."""
    shape = shape or INPUT_SHAPES.get(kind, IMAGE)
    dtype = "int32" if kind == "Embedding" else "float32"
    rows = [("x", "Input", {"shape": shape, "dtype": dtype})]
    if kind in MERGES:
        rows += [("y", "Input", {"shape": shape}), ("layer", kind, params or {}, "x", "y")]
    elif kind == "MatMul":  # (2, 5, 3) @ (2, 3, 4)
        rows = [("x", "Input", {"shape": [2, 5, 3]}), ("y", "Input", {"shape": [2, 3, 4]})]
        rows.append(("layer", kind, params or {}, "x", "y"))
    else:
        rows.append(("layer", kind, params or {}, "x"))
    return make_project(*rows)


def attention(params: dict, *shapes: list[int]) -> Project:
    """MultiHeadAttention called on (query, value[, key])."""
    names = ["query", "value", "key"][: len(shapes)]
    rows = [(name, "Input", {"shape": shape}) for name, shape in zip(names, shapes, strict=True)]
    return make_project(*rows, ("attention", "MultiHeadAttention", params, *names))


# Every kind with its default params (Input is in every case).
CASES: dict[str, Project] = {kind: single(kind) for kind in CATALOG.keys() if kind != "Input"}

# Non-default parameters, family by family.
EXTRA = {
    # core
    "dense-relu-no-bias": single("Dense", {"units": 3, "activation": "relu", "use_bias": False}),
    "activation-leaky-0.3": single("Activation", {"activation": "leaky_relu", "negative_slope": 0.3}),
    "activation-elu-0.5": single("Activation", {"activation": "elu", "alpha": 0.5}),
    "activation-silu": single("Activation", {"activation": "silu"}),
    "dropout-0.25": single("Dropout", {"rate": 0.25}),
    "dropout-channel-sequence": single("Dropout", {"rate": 0.2, "mask": "channel"}, shape=SEQUENCE),
    "dropout-channel-image": single("Dropout", {"rate": 0.2, "mask": "channel"}, shape=IMAGE),
    "dropout-channel-volume": single("Dropout", {"rate": 0.2, "mask": "channel"}, shape=[3, 4, 5, 2]),
    "dropout-sample": single("Dropout", {"rate": 0.1, "mask": "sample"}, shape=IMAGE),
    "dropout-batch": single("Dropout", {"rate": 0.1, "mask": "batch"}, shape=SEQUENCE),
    "prelu-one-slope": single("PReLU", {"per_channel": False}),
    "prelu-vector": single("PReLU", shape=VECTOR),
    **{
        f"activation-{name}": single("Activation", {"activation": name})
        for name in ("hard_silu", "selu", "celu", "mish", "log_sigmoid", "hard_tanh", "log_softmax")
    },
    "multiply-broadcast": make_project(
        ("x", "Input", {"shape": [1, 1, 3]}),
        ("y", "Input", {"shape": IMAGE}),
        ("z", "Input", {"shape": [3]}),
        ("layer", "Multiply", {}, "y", "x", "z"),
    ),
    # convolution
    "conv1d-causal-dilated": single(
        "Conv1D", {"filters": 4, "kernel_size": 2, "padding": "causal", "dilation_rate": 2}
    ),
    "conv1d-strides-same-tanh": single(
        "Conv1D", {"filters": 3, "strides": 2, "padding": "same", "activation": "tanh"}
    ),
    "conv2d-strides-same-no-bias": single(
        "Conv2D",
        {"filters": 4, "kernel_size": [3, 2], "strides": 2, "padding": "same", "use_bias": False},
    ),
    "conv2d-dilated-relu": single("Conv2D", {"filters": 2, "dilation_rate": 2, "activation": "relu"}),
    "conv2d-grouped": single("Conv2D", {"filters": 6, "groups": 3, "strides": 2, "padding": "same"}),
    "conv1d-grouped": single("Conv1D", {"filters": 4, "groups": 2}),
    "conv2d-transpose-strides-same": single(
        "Conv2DTranspose", {"filters": 3, "strides": 2, "padding": "same", "use_bias": False}
    ),
    "depthwise-multiplier-strides": single(
        "DepthwiseConv2D", {"depth_multiplier": 2, "strides": 2, "padding": "same", "activation": "relu"}
    ),
    "separable-dilated-no-bias": single(
        "SeparableConv2D",
        {"filters": 5, "depth_multiplier": 2, "dilation_rate": 2, "padding": "same", "use_bias": False},
    ),
    # pooling
    "max-pool-2d-overlapping-same": single("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    "average-pool-1d-strides-1": single("AveragePooling1D", {"pool_size": 3, "strides": 1}),
    "global-average-pool-2d-keepdims": single("GlobalAveragePooling2D", {"keepdims": True}),
    "global-max-pool-1d-keepdims": single("GlobalMaxPooling1D", {"keepdims": True}),
    "adaptive-average-pool-2d-larger": single("AdaptiveAveragePooling2D", {"output_size": (9, 11)}),
    # normalization
    "batch-norm-no-affine": single(
        "BatchNormalization", {"momentum": 0.9, "epsilon": 1e-5, "center": False, "scale": False}
    ),
    "layer-norm-no-center": single("LayerNormalization", {"epsilon": 1e-6, "center": False}),
    "layer-norm-no-affine": single("LayerNormalization", {"center": False, "scale": False}),
    "batch-norm-center-only": single("BatchNormalization", {"scale": False}),
    "batch-norm-scale-only": single("BatchNormalization", {"center": False}, shape=VECTOR),
    "layer-norm-center-only": single("LayerNormalization", {"scale": False}),
    "group-norm-sequence": single(
        "GroupNormalization", {"groups": 3, "epsilon": 1e-5, "center": False}, shape=SEQUENCE
    ),
    "affine-position-embedding": single(
        "Affine", {"shape": [5, 6], "scale": False, "offset": True}, shape=SEQUENCE
    ),
    "affine-constant-scale-offset": single(
        "Affine", {"shape": [3], "offset": True, "trainable": False}, shape=IMAGE
    ),
    # recurrent
    "embedding-small": single("Embedding", {"input_dim": 50, "output_dim": 8}),
    "simple-rnn-relu-sequences": single(
        "SimpleRNN", {"units": 4, "activation": "relu", "return_sequences": True}
    ),
    "lstm-bidirectional-sequences": single(
        "LSTM", {"units": 4, "bidirectional": True, "return_sequences": True}
    ),
    "gru-bidirectional": single("GRU", {"units": 3, "bidirectional": True}),
    # attention
    "attention-cross-no-bias": attention(
        {"num_heads": 2, "key_dim": 3, "use_bias": False, "dropout": 0.1}, [4, 6], [5, 7]
    ),
    "attention-query-value-key": attention({"num_heads": 1, "key_dim": 6}, [4, 6], [5, 7], [5, 3]),
    "position-embedding-exact-length": single("PositionEmbedding", {"sequence_length": 5}),
    "attention-causal": attention({"num_heads": 2, "key_dim": 3, "use_causal_mask": True}, [4, 6]),
    "attention-padding-mask-causal-cross": make_project(
        ("query", "Input", {"shape": [4, 6]}),
        ("value", "Input", {"shape": [5, 7]}),
        ("mask", "Input", {"shape": [5], "dtype": "int32"}),
        (
            "attention",
            "MultiHeadAttention",
            {"num_heads": 2, "key_dim": 3, "padding_mask": True, "use_causal_mask": True},
            "query",
            "value",
            "mask",
        ),
    ),
    # merging
    "concatenate-steps-axis": make_project(
        ("x", "Input", {"shape": [4, 3]}),
        ("y", "Input", {"shape": [5, 3]}),
        ("layer", "Concatenate", {"axis": 1}, "x", "y"),
    ),
    "add-three": make_project(
        ("x", "Input", {"shape": [6]}),
        ("y", "Input", {"shape": [6]}),
        ("z", "Input", {"shape": [6]}),
        ("layer", "Add", {}, "x", "y", "z"),
    ),
    # reshaping
    "reshape-2d": single("Reshape", {"target_shape": [3, -1]}),
    "permute-3d": single("Permute", {"dims": [3, 1, 2]}, shape=[2, 3, 4]),
    "up-sampling-bilinear": single("UpSampling2D", {"size": [2, 3], "interpolation": "bilinear"}),
    "zero-padding-sides": single("ZeroPadding2D", {"padding": [1, 2, 3, 4]}),
    "cropping-sides": single("Cropping2D", {"cropping": [1, 0, 2, 1]}),
    "rescaling-offset": single("Rescaling", {"scale": 0.5, "offset": -1.0}),
    "zero-padding-1d-sides": single("ZeroPadding1D", {"padding": [0, 3]}),
    "slice-channels": single("Slice", {"axis": -1, "start": 1, "stop": 3}),
    "slice-height": single("Slice", {"axis": 1, "start": 2, "stop": 7}),
}
assert not set(EXTRA) & set(CASES)
CASES |= EXTRA


def test_every_kind_has_a_case():
    kinds = {node.kind for project in CASES.values() for node in project.graph.nodes}
    assert kinds == set(CATALOG.keys())


def layers(project: Project) -> dict[str, tuple[str, dict, list[str]]]:
    """name -> (kind, params in the catalog's normalised form, input names) of every layer."""
    graph = project.graph
    result = {}
    for node in graph.nodes:
        params = CATALOG.get(node.kind).validate_params(node.params)
        if params.get("strides", 0) is None:  # a pooling's strides None means "the pool size"
            params["strides"] = params["pool_size"]
        inputs = [graph.node(source).name for source in graph.inputs_of(node.id) if source is not None]
        result[node.name] = (node.kind, params, inputs)
    return result


@pytest.fixture
def no_hdf5_check(monkeypatch):
    """Our own files: skip the HDF5 safety check, a child process per file (see test_fuzz_model_files)."""
    monkeypatch.setattr(keras_import, "hdf5_problem", lambda path: None)


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_program_imports_back_as_the_same_project(case, tmp_path, no_hdf5_check):
    project = CASES[case]
    code = generate(project, "keras")
    model = load_module(code.source, code.filename[:-3]).build_model()
    path = tmp_path / "model.keras"
    model.save(path)
    imported = import_model(path, with_weights=False)
    assert _operations_renamed(layers(imported.project)) == _operations_renamed(layers(project))


def _operations_renamed(found: dict) -> dict:
    """A Slice is a Keras operation (``x[:, 0:4]``), not a layer: Keras names it (``get_item_3``)."""
    return {
        ("operation" if kind == "Slice" else name): (kind, params, inputs)
        for name, (kind, params, inputs) in found.items()
    }
