"""Every catalog kind goes to PyTorch code and comes back through the torch.fx importer unchanged.

For each kind a small project is generated as a PyTorch program, the program's
model is built and imported with the studio's importer, and the imported
project must have the same layers (kinds and parameters, in graph order). The
kinds and parameters that PyTorch spells with other layers are listed with what
comes back instead.
"""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import codegen
from codegen.layers import LOWERINGS
from codegen.layers.activations import ACTIVATIONS
from codegen.layers.base import CF
from codegen.runtime import load_module
from studio.catalog import CATALOG
from studio.interop import UnsupportedModelError
from studio.interop.torch_import import import_torch_model, resolve_path
from tests.graph_builders import chain, make_project
from tests.torchvision_shim import import_torchvision

IMAGE = (6, 6, 3)  # (height, width, channels)
SEQUENCE = (5, 4)  # (steps, features)
VECTOR = (8,)


def merge(shape, kind: str, params: dict | None = None):
    """Two inputs of ``shape`` merged by ``kind``."""
    return make_project(
        ("a", "Input", {"shape": list(shape)}),
        ("b", "Input", {"shape": list(shape)}),
        ("merge", kind, params or {}, "a", "b"),
    )


# One or more small projects per kind: (case id, project).
CASES = {
    "Input": [
        ("vector", chain(VECTOR, ("Dense", {"units": 3}))),
        ("image", chain(IMAGE, ("GlobalAveragePooling2D", {}))),
    ],
    "Dense": [
        ("bias", chain(VECTOR, ("Dense", {"units": 3}))),
        ("no_bias", chain(VECTOR, ("Dense", {"units": 5, "use_bias": False}))),
    ],
    "Activation": [
        (name, chain(VECTOR, ("Activation", {"activation": name})))
        for name in ACTIVATIONS
        if name != "linear"
    ]
    + [
        (
            "leaky_relu_slope",
            chain(VECTOR, ("Activation", {"activation": "leaky_relu", "negative_slope": 0.1})),
        ),
        ("elu_alpha", chain(VECTOR, ("Activation", {"activation": "elu", "alpha": 0.5}))),
        ("softmax_image", chain(IMAGE, ("Activation", {"activation": "softmax"}))),
    ],
    "Dropout": [
        ("rate", chain(VECTOR, ("Dropout", {"rate": 0.25}))),
        ("channel_image", chain(IMAGE, ("Dropout", {"rate": 0.2, "mask": "channel"}))),
        ("channel_sequence", chain(SEQUENCE, ("Dropout", {"rate": 0.2, "mask": "channel"}))),
        ("sample_image", chain(IMAGE, ("Dropout", {"rate": 0.1, "mask": "sample"}))),
        ("batch_sequence", chain(SEQUENCE, ("Dropout", {"rate": 0.3, "mask": "batch"}))),
    ],
    "PReLU": [
        ("per_channel_image", chain(IMAGE, ("PReLU", {}))),
        ("per_channel_vector", chain(VECTOR, ("PReLU", {}))),
        (
            "one_slope_sequence",
            chain(SEQUENCE, ("Conv1D", {"filters": 2}), ("PReLU", {"per_channel": False})),
        ),
    ],
    "Conv1D": [
        ("valid", chain(SEQUENCE, ("Conv1D", {"filters": 3, "kernel_size": 3}))),
        ("same", chain(SEQUENCE, ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "same"}))),
        # PyTorch pads the odd extra step explicitly (F.pad): the importer folds it back.
        ("same_strided", chain(SEQUENCE, ("Conv1D", {"filters": 2, "strides": 2, "padding": "same"}))),
        ("grouped", chain(SEQUENCE, ("Conv1D", {"filters": 6, "groups": 2}))),
    ],
    "Conv2D": [
        ("valid", chain(IMAGE, ("Conv2D", {"filters": 4, "kernel_size": (3, 3)}))),
        ("same", chain(IMAGE, ("Conv2D", {"filters": 4, "padding": "same", "use_bias": False}))),
        ("strided", chain(IMAGE, ("Conv2D", {"filters": 2, "strides": (2, 2)}))),
        ("same_strided", chain(IMAGE, ("Conv2D", {"filters": 2, "strides": (2, 2), "padding": "same"}))),
        ("same_even", chain(IMAGE, ("Conv2D", {"filters": 2, "kernel_size": (2, 2), "padding": "same"}))),
        ("grouped", chain((6, 6, 4), ("Conv2D", {"filters": 6, "groups": 2, "use_bias": False}))),
    ],
    "Conv2DTranspose": [
        ("valid", chain(IMAGE, ("Conv2DTranspose", {"filters": 2}))),
        ("strided", chain(IMAGE, ("Conv2DTranspose", {"filters": 2, "strides": (2, 2)}))),
    ],
    "DepthwiseConv2D": [
        ("valid", chain(IMAGE, ("DepthwiseConv2D", {}))),
        ("multiplier", chain(IMAGE, ("DepthwiseConv2D", {"depth_multiplier": 2, "padding": "same"}))),
    ],
    "GlobalAveragePooling2D": [
        ("pool", chain(IMAGE, ("GlobalAveragePooling2D", {}))),
        (
            "keepdims",
            chain(
                IMAGE,
                ("GlobalAveragePooling2D", {"keepdims": True}),
                ("Conv2D", {"filters": 2, "kernel_size": 1}),
            ),
        ),
    ],
    "GlobalMaxPooling2D": [("pool", chain(IMAGE, ("GlobalMaxPooling2D", {})))],
    "GlobalAveragePooling1D": [
        ("pool", chain(SEQUENCE, ("GlobalAveragePooling1D", {}))),
        ("keepdims", chain(SEQUENCE, ("GlobalAveragePooling1D", {"keepdims": True}))),
    ],
    "GlobalMaxPooling1D": [("pool", chain(SEQUENCE, ("GlobalMaxPooling1D", {})))],
    "AdaptiveAveragePooling2D": [
        ("smaller", chain(IMAGE, ("AdaptiveAveragePooling2D", {"output_size": (4, 5)}))),
        ("larger", chain(IMAGE, ("AdaptiveAveragePooling2D", {"output_size": (7, 9)}))),
    ],
    "AdaptiveMaxPooling2D": [("pool", chain(IMAGE, ("AdaptiveMaxPooling2D", {"output_size": (4, 3)})))],
    "AdaptiveAveragePooling1D": [("pool", chain(SEQUENCE, ("AdaptiveAveragePooling1D", {"output_size": 3})))],
    "AdaptiveMaxPooling1D": [("pool", chain(SEQUENCE, ("AdaptiveMaxPooling1D", {"output_size": 2})))],
    "BatchNormalization": [
        ("image", chain(IMAGE, ("BatchNormalization", {}))),
        ("vector", chain(VECTOR, ("BatchNormalization", {"momentum": 0.9, "epsilon": 1e-5}))),
        ("center_only", chain(IMAGE, ("BatchNormalization", {"scale": False}))),
        ("scale_only", chain(VECTOR, ("BatchNormalization", {"center": False}))),
    ],
    "LayerNormalization": [
        ("sequence", chain(SEQUENCE, ("LayerNormalization", {}))),
        ("no_center", chain(VECTOR, ("LayerNormalization", {"center": False}))),
        ("center_only", chain(SEQUENCE, ("LayerNormalization", {"scale": False}))),
    ],
    "GroupNormalization": [
        ("image", chain(IMAGE, ("GroupNormalization", {"groups": 3}))),
        ("sequence", chain(SEQUENCE, ("GroupNormalization", {"groups": 2, "scale": False}))),
        ("vector", chain(VECTOR, ("GroupNormalization", {"groups": 4, "center": False, "scale": False}))),
    ],
    "RMSNormalization": [
        ("sequence", chain(SEQUENCE, ("RMSNormalization", {}))),
        ("image", chain(IMAGE, ("RMSNormalization", {"epsilon": 1e-5}))),
    ],
    "Affine": [
        ("layer_scale", chain(IMAGE, ("Affine", {"shape": [3]}))),
        ("embedding", chain(SEQUENCE, ("Affine", {"shape": [5, 4], "scale": False, "offset": True}))),
        (
            "constant",
            chain(VECTOR, ("Affine", {"shape": [8], "scale": False, "offset": True, "trainable": False})),
        ),
    ],
    "Embedding": [
        (
            "tokens",
            make_project(
                ("ids", "Input", {"shape": [5], "dtype": "int32"}),
                ("embed", "Embedding", {"input_dim": 20, "output_dim": 4}),
            ),
        ),
    ],
    "MultiHeadAttention": [
        ("self", chain(SEQUENCE, ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2}))),
        # The program's causal mask, torch.ones(...).triu(1) * -1e30, is a constant read back.
        (
            "causal",
            chain(SEQUENCE, ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "use_causal_mask": True})),
        ),
    ],
    "Flatten": [("image", chain(IMAGE, ("Flatten", {})))],
    "Reshape": [("vector", chain((12,), ("Reshape", {"target_shape": (3, 4)})))],
    # A permutation the model ends with comes back as the output's layout, not as a layer.
    "Permute": [
        ("sequence", chain(SEQUENCE, ("Permute", {"dims": (2, 1)}), ("Dense", {"units": 2}))),
        ("image", chain(IMAGE, ("Permute", {"dims": (2, 1, 3)}), ("Dense", {"units": 2}))),
    ],
    "UpSampling2D": [
        ("nearest", chain(IMAGE, ("UpSampling2D", {}))),
        ("bilinear", chain(IMAGE, ("UpSampling2D", {"size": (2, 3), "interpolation": "bilinear"}))),
    ],
    "ZeroPadding2D": [("pad", chain(IMAGE, ("ZeroPadding2D", {"padding": (1, 0, 2, 1)})))],
    "Cropping2D": [("crop", chain(IMAGE, ("Cropping2D", {"cropping": (1, 0, 2, 1)})))],
    "ZeroPadding1D": [("pad", chain(SEQUENCE, ("ZeroPadding1D", {"padding": (2, 1)})))],
    "ClassToken": [("sequence", chain(SEQUENCE, ("ClassToken", {})))],
    "MatMul": [
        (
            "stacks",
            make_project(
                ("a", "Input", {"shape": [2, 5, 3]}),
                ("b", "Input", {"shape": [2, 3, 4]}),
                ("product", "MatMul", {}, "a", "b"),
            ),
        ),
        (
            "broadcast",
            make_project(
                ("a", "Input", {"shape": [2, 5, 3]}),
                ("b", "Input", {"shape": [1, 3, 4]}),
                ("product", "MatMul", {}, "a", "b"),
            ),
        ),
    ],
    "Slice": [
        ("channels", chain(IMAGE, ("Slice", {"axis": -1, "start": 1, "stop": 3}))),
        ("steps", chain(SEQUENCE, ("Slice", {"axis": 1, "start": 2, "stop": 5}))),
    ],
    "Rescaling": [
        ("scale", chain(IMAGE, ("Rescaling", {"scale": 0.5, "offset": 0.0}))),
        ("fraction", chain(IMAGE, ("Rescaling", {"scale": 1 / 255, "offset": 0.0}))),
    ],
}

# The importer always writes the strides (Keras's None means the pool size).
for _kind, _shape, _rank in (
    ("MaxPooling2D", IMAGE, 2),
    ("AveragePooling2D", IMAGE, 2),
    ("MaxPooling1D", SEQUENCE, 1),
    ("AveragePooling1D", SEQUENCE, 1),
):
    CASES[_kind] = [
        ("valid", chain(_shape, (_kind, {"pool_size": (2,) * _rank, "strides": (2,) * _rank}))),
        (
            "same",
            chain(_shape, (_kind, {"pool_size": (3,) * _rank, "strides": (1,) * _rank, "padding": "same"})),
        ),
        # The odd padding unit at the end: -inf padding (max), ceil_mode (average).
        (
            "same_strided",
            chain(_shape, (_kind, {"pool_size": (3,) * _rank, "strides": (2,) * _rank, "padding": "same"})),
        ),
    ]

for _kind in ("SimpleRNN", "LSTM", "GRU"):
    CASES[_kind] = [
        ("final", chain(SEQUENCE, (_kind, {"units": 3}))),
        ("sequences", chain(SEQUENCE, (_kind, {"units": 3, "return_sequences": True}))),
        ("bidirectional", chain(SEQUENCE, (_kind, {"units": 2, "bidirectional": True}))),
    ]

for _kind in ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Concatenate"):
    # The importer names the last axis of a sequence by its index, the channels of an image -1.
    CASES[_kind] = [
        ("sequences", merge(SEQUENCE, _kind, {"axis": 2} if _kind == "Concatenate" else {})),
        ("images", merge(IMAGE, _kind)),
    ]
for _kind in ("Add", "Subtract", "Multiply", "Maximum", "Minimum"):
    # Broadcasting: squeeze-and-excitation's (1, 1, C) scale against an image, both ways round.
    CASES[_kind].append(
        (
            "broadcast",
            make_project(
                ("a", "Input", {"shape": [1, 1, IMAGE[-1]]}),
                ("b", "Input", {"shape": list(IMAGE)}),
                ("merge", _kind, {}, "b", "a"),
            ),
        )
    )

# Kinds that cannot come back as themselves, why, and the layers they come back as.
NOT_ROUND_TRIPS = {
    "SeparableConv2D": (
        "PyTorch has no separable convolution: it is written as a depthwise and a pointwise Conv2d",
        chain(IMAGE, ("SeparableConv2D", {"filters": 2})),
        ["Input", "DepthwiseConv2D", "Conv2D"],
    ),
    "Normalization": (
        "PyTorch writes (x - mean) / sqrt(variance).clamp_min(1e-7) with buffers: a constant offset, "
        "then a division by a constant",
        chain(IMAGE, ("Normalization", {})),
        ["Input", "Affine", "Affine"],
    ),
    "Average": (
        "PyTorch writes (a + b) / 2",
        merge(SEQUENCE, "Average"),
        ["Input", "Input", "Add", "Rescaling"],
    ),
}

# Parameters that come back as an equivalent but different set of layers, because the
# PyTorch program spells them out: (reason, project, kinds imported).
EQUIVALENT_FORMS = {
    "fused_activation": (
        "PyTorch applies a fused activation as a function of its own",
        chain(VECTOR, ("Dense", {"units": 3, "activation": "relu"})),
        ["Input", "Dense", "Activation"],
    ),
    "strided_same_transposed_convolution": (
        "PyTorch crops the 'valid' output explicitly",
        chain(IMAGE, ("Conv2DTranspose", {"filters": 2, "strides": (2, 2), "padding": "same"})),
        ["Input", "Conv2DTranspose", "Cropping2D"],
    ),
    "slice_of_the_width": (
        "PyTorch slices the width of a channels-first image, which the importer reads as a crop",
        chain(IMAGE, ("Conv2D", {"filters": 2}), ("Slice", {"axis": 2, "start": 1, "stop": 3})),
        ["Input", "Conv2D", "Cropping2D"],
    ),
    "rescaling_with_offset": (
        "PyTorch writes x * scale + offset",
        chain(IMAGE, ("Rescaling", {"scale": 0.5, "offset": 1.0})),
        ["Input", "Rescaling", "Rescaling"],
    ),
    "adaptive_pooling_to_one": (
        "PyTorch's AdaptiveAvgPool2d(1) is a global pooling that keeps its unit axes",
        chain(IMAGE, ("AdaptiveAveragePooling2D", {"output_size": 1})),
        ["Input", "GlobalAveragePooling2D"],
    ),
    "affine_scale_and_offset": (
        "PyTorch writes x * scale + offset",
        chain(IMAGE, ("Affine", {"shape": [3], "offset": True})),
        ["Input", "Affine", "Affine"],
    ),
}
# Not imported at all (yet): AveragePooling with padding='same', strides 1 and an even window,
# where neither PyTorch's symmetric padding nor ceil_mode can express Keras's padding, which
# PyTorch divides by the pooled mask of ones (torch.ones_like).


def layers(project) -> list[tuple[str, dict]]:
    """The project's layers in graph order: (kind, params)."""
    graph = project.graph
    twin = nx.MultiDiGraph()
    twin.add_nodes_from(node.id for node in graph.nodes)
    twin.add_edges_from((edge.source, edge.target, edge.port) for edge in graph.edges)
    order = nx.lexicographical_topological_sort(twin, key=lambda node_id: graph.node(node_id).name)
    return [(graph.node(node_id).kind, dict(graph.node(node_id).params)) for node_id in order]


def round_trip(project):
    generated = codegen.generate(project, "pytorch")
    model = load_module(generated.source, "roundtrip").build_model()
    shapes = [
        (layer.shape[-1], *layer.shape[:-1]) if layer.layout.kind == CF else layer.shape
        for layer in generated.plan.inputs
    ]
    return import_torch_model(model, shapes)


def test_every_function_the_families_name_exists():
    import_torchvision()  # other libraries' functions are looked up once the model's code imported them
    missing = [path for path in LOWERINGS.torch_functions if resolve_path(path) is None]
    # Activations are looked up in torch as well, which has only some (torch.relu, not torch.relu6).
    for path in missing:
        namespace, name = path.rsplit(".", 1)
        assert namespace == "torch" and resolve_path(f"torch.nn.functional.{name}") is not None, path


# Kinds whose PyTorch program the importer refuses, and why.
NOT_IMPORTED = {
    "PositionEmbedding": (
        "PyTorch looks positions up with torch.arange in an nn.Embedding and broadcasts them with "
        "expand_as: a learned table added to a tensor, which the importer does not read back as this kind",
        chain(SEQUENCE, ("PositionEmbedding", {"sequence_length": 6})),
    ),
}


# Parameter choices whose PyTorch program the importer refuses (MASK slice): the additive mask the
# program computes from the mask input (``mask.eq(0).to(dtype) * -1e30``) is not read back as a mask.
NOT_IMPORTED_OPTIONS = {
    "attention_padding_mask": make_project(
        ("x", "Input", {"shape": list(SEQUENCE)}),
        ("mask", "Input", {"shape": [SEQUENCE[0]], "dtype": "int32"}),
        ("mha", "MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "padding_mask": True}, "x", "mask"),
    ),
}


@pytest.mark.parametrize("option", NOT_IMPORTED_OPTIONS)
def test_masked_attention_is_refused_by_name(option):
    with pytest.raises(UnsupportedModelError) as caught:
        round_trip(NOT_IMPORTED_OPTIONS[option])
    assert any(problem.source_kind == "Tensor.to" for problem in caught.value.problems)  # the additive mask


def test_every_kind_has_a_case_or_a_reason():
    for spec in CATALOG:
        reasons = (spec.key in NOT_ROUND_TRIPS) + (spec.key in NOT_IMPORTED)
        assert bool(CASES.get(spec.key)) != bool(reasons), spec.key


@pytest.mark.parametrize("kind", NOT_IMPORTED)
def test_what_is_refused_by_name(kind):
    _reason, project = NOT_IMPORTED[kind]
    with pytest.raises(UnsupportedModelError) as caught:
        round_trip(project)
    assert caught.value.problems


@pytest.mark.parametrize(
    ("kind", "project"),
    [
        pytest.param(kind, project, id=f"{kind}-{case}")
        for kind, cases in CASES.items()
        for case, project in cases
    ],
)
def test_round_trip(kind, project):
    imported = round_trip(project)
    assert layers(imported.project) == layers(project)


@pytest.mark.parametrize("key", [*NOT_ROUND_TRIPS, *EQUIVALENT_FORMS])
def test_what_comes_back_instead(key):
    _reason, project, kinds = {**NOT_ROUND_TRIPS, **EQUIVALENT_FORMS}[key]
    imported = round_trip(project)
    assert [kind for kind, _ in layers(imported.project)] == kinds


# PyTorch spellings of activations: (module or function, the catalog activation or None: refused).
SPELLINGS = {
    "ReLU6": (nn.ReLU6(), "relu6"),
    "Hardtanh(0, 6)": (nn.Hardtanh(0, 6), "relu6"),
    "Hardtanh": (nn.Hardtanh(), "hard_tanh"),
    "Hardtanh(-2, 2)": (nn.Hardtanh(-2.0, 2.0), None),
    "F.hardtanh(0, 6)": (lambda x: F.hardtanh(x, 0.0, 6.0), "relu6"),
    "F.hardtanh": (F.hardtanh, "hard_tanh"),
    "F.hardswish": (F.hardswish, "hard_silu"),
    "x.relu_()": (lambda x: (x * 2).relu_(), "relu"),
    "x.log_softmax(-1)": (lambda x: x.log_softmax(-1), "log_softmax"),
    "LogSoftmax(dim=0)": (nn.LogSoftmax(dim=0), None),
    "F.softplus(threshold=10)": (lambda x: F.softplus(x, threshold=10), None),
    "Softplus(threshold=30)": (nn.Softplus(threshold=30), "softplus"),
    "CELU(alpha=2)": (nn.CELU(alpha=2.0), "celu"),
    "F.celu": (F.celu, "celu"),
    "Hardshrink(0.3)": (nn.Hardshrink(0.3), "hard_shrink"),
    "Hardshrink(0)": (nn.Hardshrink(0.0), None),
    "Softshrink": (nn.Softshrink(), "soft_shrink"),
    "torch.selu": (torch.selu, "selu"),
    "F.mish": (F.mish, "mish"),
    "torch.clamp(0, 6)": (lambda x: torch.clamp(x, 0, 6), "relu6"),
    "x.clamp(min=0)": (lambda x: x.clamp(min=0), "relu"),
    "x.clip(-1, 1)": (lambda x: x.clip(-1.0, 1.0), "hard_tanh"),
    "x.clamp(max=1)": (lambda x: x.clamp(max=1), None),
    "torch.relu_": (lambda x: torch.relu_(x * 2), "relu"),
    "x.sigmoid()": (lambda x: x.sigmoid(), "sigmoid"),
    "F.softplus(beta=2)": (lambda x: F.softplus(x, beta=2), "softplus"),  # between two Rescaling layers
    "F.softplus(beta=-1)": (lambda x: F.softplus(x, beta=-1), None),
    "GELU(tanh)": (nn.GELU("tanh"), "gelu_tanh"),
    "F.gelu(approximate='tanh')": (lambda x: F.gelu(x, approximate="tanh"), "gelu_tanh"),
    "F.leaky_relu": (lambda x: F.leaky_relu(x, 0.3), "leaky_relu"),
}


@pytest.mark.parametrize("key", list(SPELLINGS))
def test_pytorch_spellings_of_activations(key):
    """Modules, functions and tensor methods all read the one activation table."""
    function, expected = SPELLINGS[key]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = function if isinstance(function, nn.Module) else None

        def forward(self, x):
            return self.act(x) if self.act is not None else function(x)

    if expected is None:
        with pytest.raises(UnsupportedModelError):
            import_torch_model(Net(), [VECTOR])
        return
    imported = import_torch_model(Net(), [VECTOR])
    activations = [params for kind, params in layers(imported.project) if kind == "Activation"]
    assert [params["activation"] for params in activations] == [expected]
