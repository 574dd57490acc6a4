"""`verify` proves every layer kind, and every parameter choice that changes semantics, equivalent.

Each case builds a small graph, generates both programs, builds both models
from the generated source, copies the weights and compares outputs, counts
and one SGD step (see codegen/verify.py).
"""

from __future__ import annotations

import itertools

import pytest

from codegen.verify import verify_project
from studio.catalog import CATALOG
from studio.catalog.base import ACTIVATIONS
from tests.graph_builders import chain, make_project

CASES: dict[str, object] = {}
SLOW: set[str] = set()  # cases that repeat what a fast case proves, left to the slow tier


def slow(name: str) -> str:
    SLOW.add(name)
    return name


def case(name: str, project) -> None:
    assert name not in CASES, name
    CASES[name] = project


# ----- core ---------------------------------------------------------------------------
for index, act in enumerate(ACTIVATIONS):
    # The fused form writes the same function as Activation does (tested below for each one).
    name = f"dense-{act}" if index <= ACTIVATIONS.index("hard_sigmoid") else slow(f"dense-{act}")
    case(name, chain([6], ("Dense", {"units": 5, "activation": act})))
case("dense-no-bias-on-sequence", chain([4, 6], ("Dense", {"units": 3, "use_bias": False})))
case(
    "dense-on-image", chain([5, 5, 3], ("Conv2D", {"filters": 4, "padding": "same"}), ("Dense", {"units": 2}))
)
for act in ACTIVATIONS[1:]:
    case(
        f"activation-{act}-on-image",
        chain([5, 5, 3], ("Conv2D", {"filters": 4}), ("Activation", {"activation": act})),
    )
case("activation-leaky-0.3", chain([6], ("Activation", {"activation": "leaky_relu", "negative_slope": 0.3})))
case("activation-elu-0.5", chain([6], ("Activation", {"activation": "elu", "alpha": 0.5})))
case("activation-softmax-sequence", chain([4, 6], ("Activation", {"activation": "softmax"})))
case("dropout", chain([6], ("Dense", {"units": 8}), ("Dropout", {"rate": 0.4}), ("Dense", {"units": 2})))
for mask, shape in (("channel", [5, 5, 3]), ("channel", [7, 3]), ("sample", [5, 5, 3]), ("batch", [6])):
    case(
        f"dropout-{mask}-rank{len(shape)}",
        chain(
            shape, ("Dense", {"units": 4}), ("Dropout", {"rate": 0.3, "mask": mask}), ("Dense", {"units": 2})
        ),
    )
case("prelu-image", chain([5, 5, 3], ("Conv2D", {"filters": 4}), ("PReLU", {})))
case("prelu-sequence-one-slope", chain([7, 3], ("Conv1D", {"filters": 2}), ("PReLU", {"per_channel": False})))
case("prelu-vector", chain([6], ("Dense", {"units": 4}), ("PReLU", {}), ("Dense", {"units": 2})))

# ----- convolutions -------------------------------------------------------------------
for padding, stride, kernel, length in itertools.product(
    ("valid", "same", "causal"), (1, 2), (2, 3), (9, 10)
):
    case(
        f"conv1d-{padding}-s{stride}-k{kernel}-n{length}",
        chain(
            [length, 3],
            ("Conv1D", {"filters": 4, "kernel_size": kernel, "strides": stride, "padding": padding}),
        ),
    )
for padding in ("valid", "same", "causal"):
    case(
        f"conv1d-{padding}-dilated",
        chain([12, 2], ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": padding, "dilation_rate": 2})),
    )
for padding, stride, kernel, size in itertools.product(("valid", "same"), (1, 2), (2, 3), (7, 8)):
    case(
        f"conv2d-{padding}-s{stride}-k{kernel}-n{size}",
        chain(
            [size, size + 1, 3],
            ("Conv2D", {"filters": 4, "kernel_size": kernel, "strides": stride, "padding": padding}),
        ),
    )
case(
    "conv2d-rect-kernel-strides",
    chain([9, 8, 2], ("Conv2D", {"filters": 3, "kernel_size": [3, 2], "strides": [2, 1], "padding": "same"})),
)
case(
    "conv2d-dilated-same",
    chain([9, 9, 2], ("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same", "dilation_rate": 2})),
)
case(
    "conv2d-no-bias-relu",
    chain([6, 6, 2], ("Conv2D", {"filters": 3, "use_bias": False, "activation": "relu"})),
)
for padding, stride in (("valid", 1), ("same", 2)):  # groups do not interact with the padding
    case(
        f"conv2d-grouped-{padding}-s{stride}",
        chain(
            [7, 8, 6],
            ("Conv2D", {"filters": 9, "kernel_size": 3, "strides": stride, "padding": padding, "groups": 3}),
        ),
    )
case(
    "conv1d-grouped-causal",
    chain([9, 4], ("Conv1D", {"filters": 6, "kernel_size": 3, "padding": "causal", "groups": 2})),
)
for padding, stride, kernel in itertools.product(("valid", "same"), (1, 2, 3), (2, 3, 4)):
    case(
        f"conv2d-transpose-{padding}-s{stride}-k{kernel}",
        chain(
            [5, 4, 3],
            ("Conv2DTranspose", {"filters": 2, "kernel_size": kernel, "strides": stride, "padding": padding}),
        ),
    )
for padding, stride, multiplier in itertools.product(("valid", "same"), (1, 2), (1, 2)):
    case(
        f"depthwise-{padding}-s{stride}-m{multiplier}",
        chain(
            [7, 8, 3],
            (
                "DepthwiseConv2D",
                {"kernel_size": 3, "strides": stride, "padding": padding, "depth_multiplier": multiplier},
            ),
        ),
    )
    case(
        f"separable-{padding}-s{stride}-m{multiplier}",
        chain(
            [7, 8, 3],
            (
                "SeparableConv2D",
                {
                    "filters": 4,
                    "kernel_size": 3,
                    "strides": stride,
                    "padding": padding,
                    "depth_multiplier": multiplier,
                },
            ),
        ),
    )
case(
    "separable-no-bias-dilated",
    chain(
        [9, 9, 2],
        ("SeparableConv2D", {"filters": 3, "padding": "same", "dilation_rate": 2, "use_bias": False}),
    ),
)

# ----- attention ----------------------------------------------------------------------
case(
    "position-embedding-added",
    make_project(
        ("tokens", "Input", {"shape": [5, 8]}),
        ("dense", "Dense", {"units": 6}, "tokens"),
        ("positions", "PositionEmbedding", {"sequence_length": 7}, "dense"),
        ("sum", "Add", {}, "dense", "positions"),
    ),
)

# ----- pooling ------------------------------------------------------------------------
for kind, padding, pool, stride in itertools.product(
    ("MaxPooling2D", "AveragePooling2D"), ("valid", "same"), (2, 3), (None, 1, 2)
):
    case(
        f"{kind}-{padding}-p{pool}-s{stride}",
        chain(
            [7, 8, 2],
            (
                kind,
                {
                    "pool_size": pool,
                    "strides": None if stride is None else [stride, stride],
                    "padding": padding,
                },
            ),
        ),
    )
for kind, padding, pool, stride in itertools.product(
    ("MaxPooling1D", "AveragePooling1D"), ("valid", "same"), (2, 3), (None, 2)
):
    case(
        f"{kind}-{padding}-p{pool}-s{stride}",
        chain(
            [9, 3],
            (kind, {"pool_size": pool, "strides": None if stride is None else [stride], "padding": padding}),
        ),
    )
for kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
    case(kind, chain([5, 6, 3], (kind, {}), ("Dense", {"units": 2})))
for kind in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
    case(kind, chain([7, 3], (kind, {}), ("Dense", {"units": 2})))
# keepdims: a squeeze-and-excitation style 1x1 convolution on the pooled (1, 1, c) map.
case(
    "GlobalAveragePooling2D-keepdims",
    chain(
        [5, 6, 3],
        ("GlobalAveragePooling2D", {"keepdims": True}),
        ("Conv2D", {"filters": 2, "kernel_size": 1}),
    ),
)
case("GlobalMaxPooling1D-keepdims", chain([7, 3], ("GlobalMaxPooling1D", {"keepdims": True})))
# Adaptive pooling with PyTorch's windows: overlapping (7 -> 3), repeating (2 -> 7, 1 -> 6).
for kind, size, out in (
    ("AdaptiveAveragePooling2D", (7, 8), (3, 5)),
    ("AdaptiveAveragePooling2D", (2, 1), (7, 6)),
    ("AdaptiveMaxPooling2D", (7, 5), (3, 2)),
):
    case(f"{kind}-{size}-to-{out}", chain([*size, 2], (kind, {"output_size": out})))
case("AdaptiveAveragePooling1D", chain([9, 2], ("AdaptiveAveragePooling1D", {"output_size": 4})))
case("AdaptiveMaxPooling1D", chain([5, 2], ("AdaptiveMaxPooling1D", {"output_size": 3})))

# ----- normalization ------------------------------------------------------------------
case("batchnorm-image", chain([5, 5, 3], ("BatchNormalization", {"momentum": 0.9, "epsilon": 1e-5})))
case("batchnorm-vector", chain([6], ("Dense", {"units": 4}), ("BatchNormalization", {})))
case("batchnorm-sequence", chain([7, 3], ("BatchNormalization", {})))
case("batchnorm-no-affine", chain([5, 5, 3], ("BatchNormalization", {"center": False, "scale": False})))
case("layernorm-sequence", chain([7, 3], ("LayerNormalization", {})))
case("layernorm-image", chain([4, 4, 3], ("LayerNormalization", {"epsilon": 1e-5})))
case("layernorm-no-center", chain([7, 3], ("LayerNormalization", {"center": False})))
case("layernorm-no-affine", chain([7, 3], ("LayerNormalization", {"center": False, "scale": False})))
# NORM: one of center / scale (torch keeps the other frozen at 1 or 0), group norm both layouts.
for center, scale in ((True, False), (False, True)):
    case(
        f"batchnorm-center{center}-scale{scale}",
        chain([5, 5, 4], ("BatchNormalization", {"momentum": 0.8, "center": center, "scale": scale})),
    )
case("groupnorm-center-only", chain([7, 6], ("GroupNormalization", {"groups": 3, "scale": False})))
case("layernorm-center-only", chain([7, 3], ("LayerNormalization", {"scale": False})))
case(
    "groupnorm-image",
    chain([5, 4, 6], ("Conv2D", {"filters": 8}), ("GroupNormalization", {"groups": 4, "epsilon": 1e-5})),
)
case(
    "groupnorm-instance",
    chain([5, 4, 6], ("GroupNormalization", {"groups": 6, "center": False, "scale": False})),
)
case("groupnorm-vector", chain([6], ("GroupNormalization", {"groups": 2})))
case("rmsnorm-sequence", chain([7, 5], ("RMSNormalization", {})))
case("rmsnorm-image", chain([4, 4, 3], ("Conv2D", {"filters": 4}), ("RMSNormalization", {"epsilon": 1e-5})))
# Affine: weights of any broadcast shape, in either PyTorch layout, learned or constant.
case("affine-layer-scale-image", chain([5, 4, 3], ("Conv2D", {"filters": 6}), ("Affine", {"shape": [6]})))
case(
    "affine-scale-offset-image",
    chain([5, 4, 3], ("Conv2D", {"filters": 2}), ("Affine", {"shape": [3, 1, 2], "offset": True})),
)
case(
    "affine-position-embedding",
    chain([5, 4], ("Dense", {"units": 6}), ("Affine", {"shape": [5, 6], "scale": False, "offset": True})),
)
case("normalization-image", chain([4, 5, 3], ("Normalization", {}), ("Conv2D", {"filters": 2})))
case("normalization-vector", chain([6], ("Normalization", {}), ("Dense", {"units": 2})))
case(
    "affine-divide-image",
    chain([4, 4, 3], ("Conv2D", {"filters": 3}), ("Affine", {"shape": [3], "divide": True, "offset": True})),
)
case(
    "affine-constant",
    chain([6], ("Affine", {"shape": [6], "offset": True, "trainable": False}), ("Dense", {"units": 2})),
)

# ----- sequences ----------------------------------------------------------------------
for kind, bidirectional, sequences in itertools.product(
    ("SimpleRNN", "LSTM", "GRU"), (False, True), (False, True)
):
    case(
        f"{kind}-bi{bidirectional}-seq{sequences}",
        chain([5, 3], (kind, {"units": 4, "bidirectional": bidirectional, "return_sequences": sequences})),
    )
case("simplernn-relu", chain([5, 3], ("SimpleRNN", {"units": 4, "activation": "relu"})))
case(
    "embedding-lstm",
    make_project(
        ("tokens", "Input", {"shape": [6], "dtype": "int32"}),
        ("embed", "Embedding", {"input_dim": 20, "output_dim": 5}),
        ("lstm", "LSTM", {"units": 4}),
        ("out", "Dense", {"units": 2}),
    ),
)
case(
    "stacked-gru-conv1d",
    chain(
        [10, 3],
        ("Conv1D", {"filters": 4, "kernel_size": 3}),
        ("GRU", {"units": 5, "return_sequences": True}),
        ("Conv1D", {"filters": 2, "kernel_size": 2}),
    ),
)
case("mha-self", chain([5, 8], ("MultiHeadAttention", {"num_heads": 2, "key_dim": 4})))
case(
    "mha-self-no-bias",
    chain([5, 8], ("MultiHeadAttention", {"num_heads": 4, "key_dim": 2, "use_bias": False})),
)
case(
    "mha-cross-value-dims",
    make_project(
        ("query", "Input", {"shape": [4, 8]}),
        ("context", "Input", {"shape": [6, 5]}),
        ("mha", "MultiHeadAttention", {"num_heads": 2, "key_dim": 4}, "query", "context"),
    ),
)
case(
    "mha-query-value-key",
    make_project(
        ("query", "Input", {"shape": [4, 8]}),
        ("value", "Input", {"shape": [6, 3]}),
        ("key", "Input", {"shape": [6, 5]}),
        ("mha", "MultiHeadAttention", {"num_heads": 2, "key_dim": 4}, "query", "value", "key"),
    ),
)
# Masks (issue 13, MASK slice): verify draws 0/1 masks with some samples fully masked.
case(
    "mha-padding-mask-int",
    make_project(
        ("x", "Input", {"shape": [5, 8]}),
        ("mask", "Input", {"shape": [5], "dtype": "int32"}),
        ("mha", "MultiHeadAttention", {"num_heads": 2, "key_dim": 4, "padding_mask": True}, "x", "mask"),
    ),
)
case(
    "mha-causal",
    chain([5, 8], ("MultiHeadAttention", {"num_heads": 2, "key_dim": 4, "use_causal_mask": True})),
)
case(
    "mha-cross-padding-and-causal-float-mask",
    make_project(
        ("query", "Input", {"shape": [4, 8]}),
        ("context", "Input", {"shape": [6, 5]}),
        ("mask", "Input", {"shape": [6]}),
        (
            "mha",
            "MultiHeadAttention",
            {"num_heads": 2, "key_dim": 4, "padding_mask": True, "use_causal_mask": True, "dropout": 0.1},
            "query",
            "context",
            "mask",
        ),
    ),
)

# Attention written out: heads split by Reshape + Permute, scores by MatMul, softmax, MatMul by v.
case(
    "matmul-attention-by-hand",
    make_project(
        ("x", "Input", {"shape": [5, 8]}),
        ("q", "Dense", {"units": 8}, "x"),
        ("k", "Dense", {"units": 8}, "x"),
        ("v", "Dense", {"units": 8}, "x"),
        ("q_heads", "Reshape", {"target_shape": [5, 2, 4]}, "q"),
        ("q_first", "Permute", {"dims": [2, 1, 3]}, "q_heads"),
        ("k_heads", "Reshape", {"target_shape": [5, 2, 4]}, "k"),
        ("k_t", "Permute", {"dims": [2, 3, 1]}, "k_heads"),
        ("v_heads", "Reshape", {"target_shape": [5, 2, 4]}, "v"),
        ("v_first", "Permute", {"dims": [2, 1, 3]}, "v_heads"),
        ("scores", "MatMul", {}, "q_first", "k_t"),
        ("weights", "Activation", {"activation": "softmax"}, "scores"),
        ("mixed", "MatMul", {}, "weights", "v_first"),
        ("back", "Permute", {"dims": [2, 1, 3]}, "mixed"),
        ("joined", "Reshape", {"target_shape": [5, 8]}, "back"),
        ("out", "Dense", {"units": 3}, "joined"),
    ),
)
# An image (channels-first in PyTorch) multiplied by itself transposed: the Gram matrix of its rows,
# with a broadcast leading axis.
case(
    "matmul-image-gram",
    make_project(
        ("x", "Input", {"shape": [4, 3, 2]}),
        ("conv", "Conv2D", {"filters": 3, "padding": "same"}, "x"),
        ("rows", "Permute", {"dims": [1, 3, 2]}, "conv"),
        ("first", "Slice", {"axis": 1, "start": 0, "stop": 1}, "conv"),
        ("gram", "MatMul", {}, "first", "rows"),
        ("flat", "Flatten", {}, "gram"),
        ("out", "Dense", {"units": 2}, "flat"),
    ),
)

# ----- merges -------------------------------------------------------------------------
for kind in ("Add", "Multiply", "Average", "Maximum"):
    case(
        f"{kind}-three-images",
        make_project(
            ("x", "Input", {"shape": [5, 5, 2]}),
            ("a", "Conv2D", {"filters": 3, "padding": "same"}, "x"),
            ("b", "Conv2D", {"filters": 3, "kernel_size": 1}, "x"),
            ("c", "Conv2D", {"filters": 3, "kernel_size": 5, "padding": "same"}, "x"),
            ("merge", kind, {}, "a", "b", "c"),
        ),
    )
# Zero padding makes exact ties (a zero-bias conv over zeros is zero): Keras sends
# a tie's gradient to the first input, so the SGD step catches torch.maximum's split.
case(
    "maximum-ties-after-zero-padding",
    make_project(
        ("x", "Input", {"shape": [4, 4, 2]}),
        ("pad", "ZeroPadding2D", {"padding": [2, 2, 2, 2]}, "x"),
        ("conv", "Conv2D", {"filters": 2, "padding": "same"}, "pad"),
        ("max", "Maximum", {}, "conv", "pad", "conv"),
    ),
)
case(
    "minimum-three-with-ties",
    make_project(
        ("x", "Input", {"shape": [4, 4, 2]}),
        ("pad", "ZeroPadding2D", {"padding": [2, 2, 2, 2]}, "x"),
        ("conv", "Conv2D", {"filters": 2, "padding": "same"}, "pad"),
        ("min", "Minimum", {}, "conv", "pad", "conv"),
    ),
)
# Broadcasting (Keras aligns the last axes): squeeze-and-excitation's (1, 1, C) scale, a pooled
# (C,) vector against an image, and a (L, 1) sequence against an (L, C) one.
case(
    "multiply-squeeze-excitation",
    make_project(
        ("x", "Input", {"shape": [5, 6, 4]}),
        ("conv", "Conv2D", {"filters": 4, "padding": "same"}, "x"),
        ("pool", "GlobalAveragePooling2D", {}, "conv"),
        ("fc", "Dense", {"units": 4, "activation": "hard_sigmoid"}, "pool"),
        ("scale", "Reshape", {"target_shape": [1, 1, 4]}, "fc"),
        ("se", "Multiply", {}, "scale", "conv"),
    ),
)
for kind in ("Add", "Subtract", "Average", "Maximum", "Minimum"):
    case(
        f"{kind}-vector-against-image"
        if kind in ("Add", "Minimum")
        else slow(f"{kind}-vector-against-image"),
        make_project(
            ("x", "Input", {"shape": [3, 4, 2]}),
            ("conv", "Conv2D", {"filters": 3, "padding": "same"}, "x"),
            ("pool", "GlobalMaxPooling2D", {}, "conv"),
            ("fc", "Dense", {"units": 3}, "pool"),
            ("merge", kind, {}, "conv", "fc"),
        ),
    )
case(
    "add-broadcast-sequences-mixed-layouts",
    make_project(
        ("x", "Input", {"shape": [6, 3]}),
        ("conv", "Conv1D", {"filters": 1, "padding": "same"}, "x"),
        ("dense", "Dense", {"units": 3}, "x"),
        ("vector", "Input", {"shape": [3]}),
        ("sum", "Add", {}, "conv", "dense", "vector"),
        ("image", "Reshape", {"target_shape": [6, 1, 3]}, "sum"),
        ("conv2", "Conv2D", {"filters": 3, "kernel_size": 1}, "image"),
        ("gate", "Multiply", {}, "conv2", "sum"),
    ),
)
case(
    "subtract-order",
    make_project(
        ("x", "Input", {"shape": [6]}),
        ("a", "Dense", {"units": 3}, "x"),
        ("b", "Dense", {"units": 3, "activation": "relu"}, "x"),
        ("minus", "Subtract", {}, "b", "a"),
    ),
)
for axis in (-1, 1, 2, 3):
    case(
        f"concatenate-image-axis{axis}",
        make_project(
            ("x", "Input", {"shape": [4, 4, 2]}),
            ("a", "Conv2D", {"filters": 2, "padding": "same"}, "x"),
            ("cat", "Concatenate", {"axis": axis}, "a", "x"),
        ),
    )
case(
    "concatenate-sequence-and-vectors",
    make_project(
        ("x", "Input", {"shape": [5, 3]}),
        ("y", "Input", {"shape": [4]}),
        ("conv", "Conv1D", {"filters": 3, "padding": "same"}, "x"),
        ("seq", "Concatenate", {"axis": 1}, "conv", "x"),
        ("flat", "Flatten", {}, "seq"),
        ("both", "Concatenate", {}, "flat", "y"),
        ("out", "Dense", {"units": 2}, "both"),
    ),
)

# ----- reshaping ----------------------------------------------------------------------
case(
    "flatten-dense",
    chain([4, 5, 3], ("Conv2D", {"filters": 2, "padding": "same"}), ("Flatten", {}), ("Dense", {"units": 3})),
)
case(
    "flatten-dropout-dense",
    chain(
        [4, 5, 3],
        ("Conv2D", {"filters": 2}),
        ("Flatten", {}),
        ("Dropout", {"rate": 0.2}),
        ("Activation", {"activation": "relu"}),
        ("Dense", {"units": 3}),
    ),
)
case("flatten-output", chain([4, 5, 3], ("Conv2D", {"filters": 2}), ("Flatten", {})))
case("flatten-sequence", chain([6, 3], ("Conv1D", {"filters": 2}), ("Flatten", {}), ("Dense", {"units": 3})))
case(
    "reshape-to-image",
    chain(
        [6],
        ("Dense", {"units": 32}),
        ("Reshape", {"target_shape": [4, 4, 2]}),
        ("Conv2D", {"filters": 3, "padding": "same"}),
    ),
)
case(
    "reshape-image-to-sequence",
    chain(
        [4, 4, 2],
        ("Conv2D", {"filters": 3, "padding": "same"}),
        ("Reshape", {"target_shape": [-1, 3]}),
        ("LSTM", {"units": 2}),
    ),
)
case("permute-sequence", chain([5, 3], ("Permute", {"dims": [2, 1]}), ("Dense", {"units": 2})))
case("permute-image", chain([4, 5, 3], ("Conv2D", {"filters": 2}), ("Permute", {"dims": [3, 1, 2]})))
for interpolation in ("nearest", "bilinear"):
    case(
        f"upsampling-{interpolation}",
        chain(
            [3, 4, 2],
            ("UpSampling2D", {"size": [2, 3], "interpolation": interpolation}),
            ("Conv2D", {"filters": 2}),
        ),
    )
case(
    "zero-padding", chain([4, 4, 2], ("ZeroPadding2D", {"padding": [1, 2, 0, 3]}), ("Conv2D", {"filters": 2}))
)
case("cropping", chain([6, 7, 2], ("Cropping2D", {"cropping": [1, 0, 2, 1]}), ("Conv2D", {"filters": 2})))
case(
    "rescaling",
    chain([4, 4, 1], ("Rescaling", {"scale": 1 / 255, "offset": -0.5}), ("Conv2D", {"filters": 2})),
)
case(
    "zero-padding-1d",
    chain(
        [5, 3], ("Conv1D", {"filters": 2}), ("ZeroPadding1D", {"padding": [2, 1]}), ("Conv1D", {"filters": 2})
    ),
)
# Slices of the channels of an image (channels-first in PyTorch), of a sequence's steps, of a vector.
case(
    "slice-channels",
    chain(
        [6, 6, 3],
        ("Conv2D", {"filters": 6}),
        ("Slice", {"axis": -1, "start": 2, "stop": 5}),
        ("Conv2D", {"filters": 2}),
    ),
)
case(
    "slice-height",
    chain([5, 4, 3], ("Conv2D", {"filters": 2}), ("Slice", {"axis": 1, "start": 1, "stop": 3})),
)
case("slice-steps", chain([6, 3], ("Slice", {"axis": 1, "start": 0, "stop": 1}), ("Dense", {"units": 2})))
case(
    "class-token",
    chain(
        [4, 6],
        ("Dense", {"units": 8}),
        ("ClassToken", {}),
        ("LayerNormalization", {}),
        ("Slice", {"axis": 1, "start": 0, "stop": 1}),
    ),
)
case("slice-vector", chain([8], ("Slice", {"axis": -1, "start": 3, "stop": 8}), ("Dense", {"units": 2})))

# ----- multi-input, multi-output ------------------------------------------------------
case(
    "two-inputs-two-outputs",
    make_project(
        ("image", "Input", {"shape": [6, 6, 1]}),
        ("meta", "Input", {"shape": [3]}),
        ("conv", "Conv2D", {"filters": 2, "strides": 2, "padding": "same"}, "image"),
        ("pool", "GlobalAveragePooling2D", {}, "conv"),
        ("joined", "Concatenate", {}, "pool", "meta"),
        ("head_a", "Dense", {"units": 2}, "joined"),
        ("head_b", "Dense", {"units": 1, "activation": "sigmoid"}, "joined"),
    ),
)


def test_every_catalog_kind_is_covered():
    used = {node.kind for project in CASES.values() for node in project.graph.nodes}
    assert used == set(CATALOG.keys())


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else []) for name in sorted(CASES)]
)
def test_generated_models_are_equivalent(name):
    report = verify_project(CASES[name])
    assert report.ok, report.format()
    assert report.outputs.max_abs < 1e-4 or report.outputs.max_rel < 1e-4
