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
# The (center, scale) pairs each kind accepts: torch's BatchNorm `affine` has both
# or neither, and torch's LayerNorm has no bias without a weight.
AFFINE = {
    "BatchNormalization": [(True, True), (False, False)],
    "LayerNormalization": [(True, True), (False, True), (False, False)],
}


def torch_count(module: nn.Module) -> ParamCount:
    buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    return ParamCount(sum(p.numel() for p in module.parameters()), buffers)


def keras_count(layer: keras.layers.Layer) -> ParamCount:
    trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    return ParamCount(trainable, layer.count_params() - trainable)


def test_specs_are_registered_with_their_category():
    assert [spec.key for spec in SPECS] == ["BatchNormalization", "LayerNormalization"]
    for spec in SPECS:
        assert CATALOG.get(spec.key).category == "Normalization"


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


@pytest.mark.parametrize("spec", SPECS)
def test_scalar_input_is_rejected(spec):
    with pytest.raises(ShapeError, match=r"channel axis but received \(None\)"):
        spec.output_shape(spec.defaults(), [()])


@pytest.mark.parametrize(
    ("values", "text"), [({"momentum": 1.5}, "momentum=1.5"), ({"epsilon": 0}, "epsilon=0")]
)
def test_bad_values_are_rejected(values, text):
    with pytest.raises(ParamError, match=text):
        BN.validate_params(values)


@pytest.mark.parametrize(
    ("spec", "values", "text"),
    [
        (BN, {"center": False}, "both true or both false"),
        (BN, {"scale": False}, "both true or both false"),
        (LN, {"scale": False}, "no bias without a weight"),
    ],
)
def test_affine_combinations_without_a_torch_equivalent_are_rejected(spec, values, text):
    with pytest.raises(ParamError, match=text):
        spec.validate_params(values)


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


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(shape, affine):
    params = BN.validate_params({"center": affine, "scale": affine})
    module = TORCH_BATCH_NORMS[len(shape)](shape[-1], affine=affine)
    assert BN.count_torch_params(params, [shape]) == torch_count(module)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("center", "scale"), [(True, True), (False, True), (False, False)])
def test_layer_norm_matches_torch(shape, center, scale):
    # torch's LayerNorm has no bias without a weight; (center=True, scale=False) needs a bare Parameter.
    params = LN.validate_params({"center": center, "scale": scale})
    module = nn.LayerNorm(shape[-1], elementwise_affine=scale, bias=center)
    assert LN.count_torch_params(params, [shape]) == torch_count(module)


def test_torch_momentum_is_one_minus_keras_momentum():
    x = np.random.default_rng(0).normal(2.0, 1.0, size=(16, 3)).astype("float32")
    layer = keras.layers.BatchNormalization(momentum=0.9)
    layer(x, training=True)
    module = nn.BatchNorm1d(3, momentum=1 - 0.9)
    module.train()(torch.from_numpy(x))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.moving_mean), module.running_mean.numpy(), rtol=1e-5
    )
