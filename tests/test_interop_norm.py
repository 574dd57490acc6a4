"""Normalization options and parameter arithmetic, imported from each framework and checked end to end.

Hand-built models with random weights and statistics: the import gives the expected kinds, and
both generated programs, loaded with the exported weights, reproduce the source within 1e-4.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras import layers  # noqa: E402
from keras.src.applications.convnext import LayerScale  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from studio.interop import UnsupportedModelError, import_model, save_imported  # noqa: E402
from studio.interop.check import TOLERANCE, reproduction_errors  # noqa: E402
from studio.interop.torch_import import import_torch_model  # noqa: E402
from tests.test_interop_onnx import export_torch  # noqa: E402
from tests.test_interop_torch import check_reproduces  # noqa: E402


class NormNet(nn.Module):
    """GroupNorm, InstanceNorm, BatchNorm without affine and with half of it, LayerScale, a buffer
    subtracted, a positional embedding and the functional layer_norm / batch_norm spellings."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.layer_scale = nn.Parameter(torch.rand(6, 1, 1))
        self.gn = nn.GroupNorm(3, 6)
        self.instance = nn.InstanceNorm2d(6, affine=True)
        self.register_buffer("shift", torch.rand(1, 6, 1, 1))
        self.register_buffer("std", torch.rand(6, 1, 1) + 0.5)
        self.bn = nn.BatchNorm2d(6, affine=False)
        self.half_bn = nn.BatchNorm2d(6)
        self.half_bn.bias.requires_grad_(False)  # a frozen zero bias: Keras's center=False
        self.lin = nn.Linear(6, 8)
        self.pos = nn.Parameter(torch.rand(1, 9, 8))
        self.ln_weight = nn.Parameter(torch.rand(8))
        self.ln_bias = nn.Parameter(torch.rand(8))
        self.bn_weight = nn.Parameter(torch.rand(8))
        self.register_buffer("mean", torch.rand(8))
        self.register_buffer("var", torch.rand(8) + 0.5)
        with torch.no_grad():
            for bn in (self.bn, self.half_bn):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
            self.half_bn.bias.zero_()
            for module in (self.gn, self.instance):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = self.gn(self.layer_scale * self.conv(x))
        x = self.half_bn(self.bn(self.instance(x) - self.shift))
        x = F.instance_norm(x, eps=1e-3) / self.std
        y = self.lin(x.flatten(2).transpose(1, 2)) + self.pos
        y = F.layer_norm(y, (8,), self.ln_weight, self.ln_bias, 1e-6)
        return F.batch_norm(y.transpose(1, 2), self.mean, self.var, self.bn_weight, None, False, 0.1, 1e-3)


def kinds(imported) -> list[str]:
    return [node.kind for node in imported.project.graph.nodes]


def test_torch_norms_and_parameter_operands(tmp_path):
    model = NormNet().eval()
    imported = import_torch_model(model, [(3, 5, 5)])
    found = kinds(imported)
    assert found.count("Affine") == 4 and found.count("GroupNormalization") == 3
    # F.batch_norm without a bias: the PyTorch program adds a frozen zero bias (8 values)
    assert imported.imported_parameters == imported.source_parameters + 8
    params = {node.name: node.params for node in imported.project.graph.nodes}
    assert params["half_bn"]["center"] is False and params["half_bn"]["scale"] is True
    assert params["mul"]["trainable"] and not params["sub"]["trainable"]  # parameter vs buffer
    assert list(params["add"]["shape"]) == [9, 8]  # the unit batch axis dropped
    inputs = [np.random.default_rng(0).normal(size=(2, 3, 5, 5)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


@pytest.mark.slow
def test_onnx_norms_and_initializer_operands(tmp_path):
    """torch.onnx writes GroupNorm as InstanceNormalization of a reshape, then Mul and Add of
    per-channel initializers: Affine layers."""
    model = NormNet().eval()
    inputs = np.random.default_rng(1).normal(size=(2, 3, 5, 5)).astype("float32")
    path = tmp_path / "norms.onnx"
    export_torch(model, inputs, path)
    imported = import_model(path)
    assert {"LayerNormalization", "GroupNormalization", "Affine"} <= set(kinds(imported))
    check_reproduces(imported, model, [inputs], tmp_path)


@pytest.mark.parametrize(
    ("operation", "reason"), [(lambda x, w: w / x, "w / x"), (lambda x, w: w - x, "w - x")]
)
def test_inexact_parameter_arithmetic_is_refused_by_name(operation, reason):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.rand(4) + 1)

        def forward(self, x):
            return operation(x, self.weight)

    with pytest.raises(UnsupportedModelError, match=reason.replace("/", "/")):
        import_torch_model(Net(), [(4,)])


class ConvNeXtBlock(nn.Module):
    """torchvision's CNBlock with the permutes spelled as tensor methods: depthwise conv, layer norm
    over the channels (functional, with parameters), MLP, then LayerScale ``(C, 1, 1) * x`` and the
    residual; and a LayerNorm2d-style downsampling norm."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm_weight = nn.Parameter(torch.rand(channels) + 0.5)
        self.norm_bias = nn.Parameter(torch.rand(channels))
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels)
        )
        self.layer_scale = nn.Parameter(torch.rand(channels))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.mlp(self.norm(y)).permute(0, 3, 1, 2)
        x = x + y.mul(self.layer_scale.view(1, -1, 1, 1))  # timm's spelling of LayerScale2d
        x = F.layer_norm(x.permute(0, 2, 3, 1), (8,), self.norm_weight, self.norm_bias, 1e-6)
        return x.permute(0, 3, 1, 2)


def test_convnext_block_layer_scale_and_layer_norm(tmp_path):
    model = ConvNeXtBlock().eval()
    imported = import_torch_model(model, [(8, 6, 6)])
    found = kinds(imported)
    assert found.count("LayerNormalization") == 2 and found.count("Affine") == 1
    affine = next(node.params for node in imported.project.graph.nodes if node.kind == "Affine")
    assert list(affine["shape"]) == [8] and affine["trainable"]
    inputs = [np.random.default_rng(3).normal(size=(2, 8, 6, 6)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


class ResMLPAffine(nn.Module):
    """timm's ResMLP ``Affine``: torch.addcmul(beta, alpha, x) with (1, 1, D) weights, on tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.rand(1, 1, 6) + 0.5)
        self.beta = nn.Parameter(torch.rand(1, 1, 6))
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return self.fc(torch.addcmul(self.beta, self.alpha, x))


def test_addcmul_of_two_weights(tmp_path):
    model = ResMLPAffine().eval()
    imported = import_torch_model(model, [(4, 6)])
    affine = [node.params for node in imported.project.graph.nodes if node.kind == "Affine"]
    assert [(a["scale"], a["offset"], list(a["shape"]), a["trainable"]) for a in affine] == [
        (True, False, [6], True),
        (False, True, [6], True),
    ]
    check_reproduces(
        imported, model, [np.random.default_rng(4).normal(size=(2, 4, 6)).astype("float32")], tmp_path
    )


class RMSNet(nn.Module):
    def __init__(self, eps: float | None = 1e-5) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(6, eps=eps)
        self.weight = nn.Parameter(torch.rand(6) + 0.5)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)

    def forward(self, x):
        return F.rms_norm(self.norm(x), (6,), self.weight, 1e-6)


def test_torch_rms_norm_module_and_function(tmp_path):
    model = RMSNet().eval()
    imported = import_torch_model(model, [(4, 6)])
    assert kinds(imported).count("RMSNormalization") == 2
    inputs = [np.random.default_rng(2).normal(size=(2, 4, 6)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)
    with pytest.raises(UnsupportedModelError, match="eps=None"):
        import_torch_model(RMSNet(eps=None).eval(), [(4, 6)])


@pytest.mark.parametrize(
    ("class_name", "config", "text"),
    [
        ("Rescaling", {"scale": [1.0, 2.0], "offset": 0.0}, "one per channel"),
        ("Rescaling", {"scale": [1.0, float("nan"), 2.0]}, "finite"),
        ("Normalization", {"axis": -1, "mean": [0.0] * 4, "variance": [1.0] * 4}, "one per channel"),
        ("Normalization", {"axis": 1}, "axis=1"),
        ("Normalization", {"axis": -1, "invert": True}, "invert=True"),
        ("LayerNormalization", {"rms_scaling": True}, "rms_scaling=True"),
        ("GroupNormalization", {"groups": 2, "axis": 1}, "axis=1"),
    ],
)
def test_keras_configs_without_an_exact_equivalent_are_refused(class_name, config, text):
    from codegen.layers.base import KerasContext, Unsupported
    from studio.interop.keras_import import map_keras_layer

    with pytest.raises(Unsupported, match=text):
        map_keras_layer(class_name, config, KerasContext([(None, 4, 4, 3)]))


def keras_norm_model() -> keras.Model:
    images = keras.Input((8, 8, 3), name="images")
    x = layers.Rescaling(1 / 255, name="to_unit")(images)
    x = layers.Normalization(name="adapted")(x)
    x = layers.Rescaling([0.5, 2.0, 1.5], offset=[0.1, -0.2, 0.3], name="per_channel")(x)
    x = layers.Normalization(mean=[0.4, 0.5, 0.6], variance=[0.04, 0.09, 0.16], name="fixed")(x)
    x = layers.Conv2D(8, 3, name="conv")(x)
    x = layers.GroupNormalization(groups=4, epsilon=1e-5, name="group_norm")(x)
    x = layers.BatchNormalization(center=False, name="bn_scale_only")(x)
    x = layers.BatchNormalization(scale=False, name="bn_center_only")(x)
    x = LayerScale(0.1, 8, name="layer_scale")(x)
    x = layers.LayerNormalization(scale=False, name="ln_center_only")(x)
    model = keras.Model(images, x, name="norms")
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights(
                [
                    w if w.dtype.kind == "i" else rng.uniform(0.5, 1.5, w.shape).astype(w.dtype)
                    for w in weights
                ]
            )
    return model


@pytest.mark.slow
def test_keras_norms_rescaling_lists_and_layer_scale(tmp_path):
    model = keras_norm_model()
    path = tmp_path / "norms.keras"
    model.save(path)
    imported = import_model(path)
    params = {node.name: (node.kind, node.params) for node in imported.project.graph.nodes}
    assert params["per_channel"][0] == "Affine" and not params["per_channel"][1]["trainable"]
    assert params["layer_scale"][0] == "Affine" and params["fixed"][0] == "Normalization"
    _, weights_path = save_imported(imported, tmp_path / "norms.layers.json")
    loaded = keras.saving.load_model(path)  # statistics loaded the way Keras applies them
    inputs = np.random.default_rng(1).uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    expected = [np.asarray(loaded(inputs, training=False))]
    errors = reproduction_errors(imported, weights_path, [inputs], expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors


# ----- real models (slow) ------------------------------------------------------------------------


def without_other_slices(model) -> keras.Model:
    """An inference-equivalent copy without what other slices of issue 13 import (Dropout's
    noise_shape; Conv2D with groups == channels, written here as the DepthwiseConv2D it is), with
    random weights and statistics."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, layers.Dropout):
            config["noise_shape"] = None
        if type(layer) is layers.Conv2D and config["groups"] > 1:
            keys = ("kernel_size", "strides", "padding", "use_bias", "name")
            return layers.DepthwiseConv2D(**{key: config[key] for key in keys})
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    rng = np.random.default_rng(0)
    for old, new in zip(model.layers, copy.layers, strict=True):
        weights = old.get_weights()
        if isinstance(new, layers.DepthwiseConv2D) and type(old) is layers.Conv2D:
            weights[0] = weights[0].transpose(0, 1, 3, 2)  # (k, k, 1, C) -> (k, k, C, 1)
        if isinstance(new, (layers.BatchNormalization, layers.Normalization, layers.LayerNormalization)):
            weights = [
                w if w.dtype.kind == "i" else rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in weights
            ]
        if isinstance(new, LayerScale):
            weights = [rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in weights]
        new.set_weights(weights)
        if isinstance(new, layers.Normalization):
            new.finalize_state()
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("name", ["EfficientNetB0", "ConvNeXtTiny"])
def test_keras_applications_to_pytorch(name, tmp_path):
    """EfficientNetB0 (Rescaling, adapted Normalization) and ConvNeXtTiny (Normalization with a
    mean and variance in its config, LayerScale, LayerNormalization) reproduce in both programs."""
    source = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3), classes=10)
    if name == "EfficientNetB0":  # its squeeze-excite blocks broadcast a Multiply (another slice): the stem
        source = keras.Model(source.input, source.get_layer("stem_activation").output, name=name)
    model = without_other_slices(source)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    imported = import_model(path)
    found = {node.kind for node in imported.project.graph.nodes}
    assert "Normalization" in found and ("Affine" in found) == (name == "ConvNeXtTiny")
    _, weights_path = save_imported(imported, tmp_path / f"{name}.layers.json")
    inputs = np.random.default_rng(1).uniform(0, 255, size=(2, 64, 64, 3)).astype("float32")
    expected = [np.asarray(model(inputs, training=False))]
    errors = reproduction_errors(imported, weights_path, [inputs], expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convnext_atto", "poolformer_s12"])
def test_timm_models_to_keras(name, tmp_path):
    """timm's ConvNeXt (LayerNorm2d as permute + F.layer_norm, LayerScale x.mul(gamma.reshape(1, -1, 1, 1)))
    and PoolFormer (GroupNorm(1, C), LayerScale2d): torch.fx import, both programs reproduce."""
    from tests.torchvision_shim import import_torchvision

    import_torchvision()  # timm imports torchvision
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    rng = torch.Generator().manual_seed(1)
    with torch.no_grad():  # scales and biases away from their identity initial values
        for parameter_name, parameter in model.named_parameters():
            if parameter.dim() == 1 or parameter_name.endswith(("gamma", "scale")):
                parameter.copy_(torch.rand(parameter.shape, generator=rng) + 0.5)
    imported = import_torch_model(model, [(3, 64, 64)])
    found = {node.kind for node in imported.project.graph.nodes}
    assert {"Affine", "LayerNormalization"} <= found
    inputs = [np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)
