"""BatchNormalization and LayerNormalization specs, checked by hand and against real Keras and torch."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from studio.catalog import CATALOG, ParamCount, ParamError, ShapeError  # noqa: E402
from studio.catalog.normalization import SPECS, BatchNormalization, LayerNormalization  # noqa: E402

BN = BatchNormalization()
LN = LayerNormalization()

SHAPES = [(5,), (7, 3), (4, 4, 3), (2, 3, 4, 5)]
# Every (center, scale) pair: where torch has no module for one (BatchNorm's affine has both or
# neither, LayerNorm has no bias without a weight), the PyTorch program freezes the other at 1 or 0.
PAIRS = [(True, True), (True, False), (False, True), (False, False)]
AFFINE = {"BatchNormalization": PAIRS, "LayerNormalization": PAIRS}


def torch_count(module: nn.Module) -> ParamCount:
    buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    return ParamCount(sum(p.numel() for p in module.parameters()), buffers)


def keras_count(layer: keras.layers.Layer) -> ParamCount:
    trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    return ParamCount(trainable, layer.count_params() - trainable)


def test_specs_are_registered_with_their_category():
    assert [spec.key for spec in SPECS] == [
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
        "Affine",
        "Normalization",
    ]
    for spec in SPECS:
        expected = {"Affine": "Core", "Normalization": "Preprocessing"}.get(spec.key, "Normalization")
        assert CATALOG.get(spec.key).category == expected


def test_keras_defaults_are_explicit():
    assert BN.defaults() == {"momentum": 0.99, "epsilon": 1e-3, "center": True, "scale": True}
    assert LN.defaults() == {"epsilon": 1e-3, "center": True, "scale": True}
    assert "1 - this" in BN.param("momentum").doc


def test_batch_norm_by_hand():
    params = BN.defaults()
    assert BN.output_shape(params, [(28, 28, 3)]) == (28, 28, 3)
    assert BN.count_params(params, [(28, 28, 3)]) == ParamCount(trainable=6, non_trainable=6)
    neither = BN.validate_params({"center": False, "scale": False})
    assert BN.count_params(neither, [(8,)]) == ParamCount(0, 16)


def test_layer_norm_by_hand():
    params = LN.defaults()
    assert LN.output_shape(params, [(10, 64)]) == (10, 64)
    assert LN.count_params(params, [(10, 64)]) == ParamCount(128)
    assert LN.count_params(LN.validate_params({"center": False}), [(10, 64)]) == ParamCount(64)


@pytest.mark.parametrize("spec", SPECS[:4])
def test_scalar_input_is_rejected(spec):
    with pytest.raises(ShapeError, match=r"channel axis but received \(None\)"):
        spec.output_shape(spec.defaults(), [()])


@pytest.mark.parametrize(
    ("values", "text"), [({"momentum": 1.5}, "momentum=1.5"), ({"epsilon": 0}, "epsilon=0")]
)
def test_bad_values_are_rejected(values, text):
    with pytest.raises(ParamError, match=text):
        BN.validate_params(values)


def test_affine_without_scale_or_offset_is_rejected():
    with pytest.raises(ParamError, match="scale or offset"):
        CATALOG.get("Affine").validate_params({"scale": False})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    ("spec", "layer_class", "center", "scale"),
    [(spec, spec.key, *pair) for spec in (BN, LN) for pair in AFFINE[spec.key]],
)
def test_matches_keras(spec, layer_class, shape, center, scale):
    params = spec.validate_params({"center": center, "scale": scale})
    layer = getattr(keras.layers, layer_class)(center=center, scale=scale)
    out = layer(keras.Input(shape))
    assert spec.output_shape(params, [shape]) == tuple(out.shape[1:])
    assert spec.count_params(params, [shape]) == keras_count(layer)
    assert spec.count_params(params, [shape]).total == layer.count_params()


TORCH_BATCH_NORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}


def frozen_torch_count(module: nn.Module) -> ParamCount:
    """torch's count with frozen parameters as non-trainable (the catalog's torch rule)."""
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    count = torch_count(module)
    return ParamCount(count.trainable - frozen, count.non_trainable + frozen)


def freeze_missing(module: nn.Module, center: bool, scale: bool) -> nn.Module:
    missing = module.bias if scale else module.weight
    if center != scale and missing is not None:
        missing.requires_grad_(False)
    return module


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("center", "scale"), PAIRS)
def test_batch_norm_matches_torch(shape, center, scale):
    params = BN.validate_params({"center": center, "scale": scale})
    module = TORCH_BATCH_NORMS[len(shape)](shape[-1], affine=center or scale)
    assert BN.count_torch_params(params, [shape]) == frozen_torch_count(freeze_missing(module, center, scale))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("center", "scale"), PAIRS)
def test_layer_norm_matches_torch(shape, center, scale):
    params = LN.validate_params({"center": center, "scale": scale})
    module = nn.LayerNorm(shape[-1], elementwise_affine=center or scale, bias=center)
    assert LN.count_torch_params(params, [shape]) == frozen_torch_count(freeze_missing(module, center, scale))


GN = CATALOG.get("GroupNormalization")


@pytest.mark.parametrize("shape", [(6,), (5, 6), (4, 4, 6)])
@pytest.mark.parametrize(("center", "scale"), PAIRS)
def test_group_norm_matches_keras_and_torch(shape, center, scale):
    params = GN.validate_params({"groups": 3, "center": center, "scale": scale})
    layer = keras.layers.GroupNormalization(groups=3, center=center, scale=scale)
    out = layer(keras.Input(shape))
    assert GN.output_shape(params, [shape]) == tuple(out.shape[1:])
    assert GN.count_params(params, [shape]) == keras_count(layer)
    module = freeze_missing(nn.GroupNorm(3, shape[-1], affine=center or scale), center, scale)
    assert GN.count_torch_params(params, [shape]) == frozen_torch_count(module)


def test_group_norm_groups_must_divide_the_channels():
    with pytest.raises(ShapeError, match="groups=4"):
        GN.output_shape(GN.validate_params({"groups": 4}), [(5, 6)])


def test_affine_weight_shape_must_broadcast_without_changing_the_input():
    affine = CATALOG.get("Affine")
    params = affine.validate_params({"shape": [1, 6], "offset": True, "trainable": False})
    assert affine.output_shape(params, [(4, 5, 6)]) == (4, 5, 6)
    assert affine.count_params(params, [(4, 5, 6)]) == ParamCount(0, 12)
    for bad in ([5], [2, 6], [3, 4, 5, 6]):
        with pytest.raises(ShapeError, match="broadcasts"):
            affine.output_shape(affine.validate_params({"shape": bad}), [(4, 5, 6)])


def test_torch_momentum_is_one_minus_keras_momentum():
    x = np.random.default_rng(0).normal(2.0, 1.0, size=(16, 3)).astype("float32")
    layer = keras.layers.BatchNormalization(momentum=0.9)
    layer(x, training=True)
    module = nn.BatchNorm1d(3, momentum=1 - 0.9)
    module.train()(torch.from_numpy(x))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.moving_mean), module.running_mean.numpy(), rtol=1e-5
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_rms_norm_matches_keras_and_torch(shape):
    spec = CATALOG.get("RMSNormalization")
    params = spec.defaults()
    layer = keras.layers.RMSNormalization()
    out = layer(keras.Input(shape))
    assert spec.output_shape(params, [shape]) == tuple(out.shape[1:])
    assert spec.count_params(params, [shape]) == keras_count(layer)
    assert spec.count_torch_params(params, [shape]) == torch_count(nn.RMSNorm(shape[-1]))
