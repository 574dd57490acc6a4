"""Pooling semantics cross over exactly: PyTorch's ceil_mode, count_include_pad and adaptive
windows, keepdim reductions, and the real models that use them.

Each model is imported, exported to both frameworks with its weights, and the
programs' outputs are compared with the source's (:func:`check_reproduces`).
Inputs to the max poolings are not all non-negative, so -inf padding and zero
padding differ where it matters.
"""

from __future__ import annotations

import itertools
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras import layers  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from studio.interop import UnsupportedModelError  # noqa: E402
from studio.interop.torch_import import import_torch_model  # noqa: E402
from tests.test_interop_keras import import_and_check, randomize_batch_norm  # noqa: E402
from tests.test_interop_onnx import check_onnx_import  # noqa: E402
from tests.test_interop_torch import check_reproduces  # noqa: E402


class Poolings(nn.Module):
    """Every pooling spelling on one 10x10 image and one 12-step sequence, each its own output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.max_ceil = nn.MaxPool2d(3, 2, ceil_mode=True)  # a partial last window: Keras 'same'
        self.max_pad_ceil = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)  # zeros after a ReLU, else edges
        self.max_pad = nn.MaxPool2d((5, 3), 1, padding=(2, 1))
        self.avg_ceil = nn.AvgPool2d(3, 2, ceil_mode=True)  # the partial window averages its cells
        self.avg_include = nn.AvgPool2d(3, 1, padding=1)  # Inception: the zeros count
        self.avg_exclude = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
        self.avg_include_ceil = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)  # counts pads, not overhang
        self.avg_d = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)  # ResNet-D on 5x5
        self.adaptive = nn.AdaptiveAvgPool2d((6, 4))  # overlapping windows
        self.adaptive_up = nn.AdaptiveAvgPool2d((7, 7))  # VGG's head on a small map: repeats cells
        self.adaptive_max = nn.AdaptiveMaxPool2d((4, 3))
        self.seq_max = nn.MaxPool1d(3, 2, ceil_mode=True)
        self.seq_adaptive = nn.AdaptiveAvgPool1d(5)
        self.linear = nn.Linear(4, 3)

    def forward(self, image, sequence):
        x = self.conv(image)
        small = self.max_ceil(x)  # 5x5
        return (
            small,
            self.max_pad_ceil(torch.relu(x)),
            self.max_pad_ceil(x),  # -inf padding on signed values: the edges copied
            self.max_pad(x),
            self.avg_ceil(x),
            self.avg_include(x),
            self.avg_exclude(x),
            self.avg_include_ceil(x),
            self.avg_d(small),
            F.max_pool2d(x, 2, 2, 0, 1, True),
            F.avg_pool2d(x, 3, 2, 0, True, False),
            x.mean((2, 3), keepdim=True),
            torch.amax(x, dim=(-2, -1), keepdim=True),
            F.adaptive_avg_pool2d(x, 1),
            self.adaptive(x),
            self.adaptive_up(F.max_pool2d(x, 5)),
            self.adaptive_max(x),
            F.adaptive_max_pool2d(x, (1, 5)),  # a unit axis: whole windows (MaxPooling)
            self.seq_max(sequence),
            self.seq_adaptive(sequence),
            self.linear(sequence.transpose(1, 2)).mean(1),  # (N, steps, features) over its steps
            x.permute(0, 2, 3, 1).mean((1, 2)),  # channels-last, as Swin pools
        )


def test_pooling_spellings_reproduce_exactly(tmp_path):
    torch.manual_seed(0)
    model = Poolings().eval()
    imported = import_torch_model(model, [(3, 10, 10), (4, 12)])
    graph = imported.project.graph
    kinds = {node.name: (node.kind, node.params) for node in graph.nodes}
    assert kinds["max_ceil"] == ("MaxPooling2D", {"pool_size": (3, 3), "strides": (2, 2), "padding": "same"})
    assert kinds["max_pad_ceil_pad"][1]["padding"] == (1, 2, 1, 2)  # the overhang as zeros, after a ReLU
    # On signed values the -inf padding (1, 2) per axis is the edge row / column copied: once
    # before, twice after (UpSampling2D), joined by a Concatenate per axis.
    copied = [
        kind for name, (kind, _) in kinds.items() if name.startswith("max_pad_ceil_") and "edge" in name
    ]
    assert copied == ["Cropping2D"] * 4
    assert kinds["max_pad_ceil_bottom_copies"] == (
        "UpSampling2D",
        {"size": (2, 1), "interpolation": "nearest"},
    )
    assert kinds["max_pad_ceil_left_right_pad"] == ("Concatenate", {"axis": 2})
    assert kinds["max_pad"][1]["padding"] == "same"  # (2, 2) and (1, 1) for a (5, 3) window: Keras's own
    assert kinds["avg_ceil"][1]["padding"] == "same"
    assert kinds["avg_include_pad"][1]["padding"] == (1, 1, 1, 1)
    assert kinds["avg_include_ceil_pad"][1]["padding"] == (1, 1, 1, 1)  # then 'same' adds the overhang
    assert kinds["avg_include_ceil"][1]["padding"] == "same"
    assert kinds["avg_exclude"][1]["padding"] == "same"
    assert kinds["mean"] == ("GlobalAveragePooling2D", {"keepdims": True})
    assert kinds["amax"] == ("GlobalMaxPooling2D", {"keepdims": True})
    assert kinds["adaptive_avg_pool2d"] == ("GlobalAveragePooling2D", {"keepdims": True})
    assert kinds["adaptive"] == ("AdaptiveAveragePooling2D", {"output_size": (6, 4)})
    assert kinds["adaptive_up"] == ("AdaptiveAveragePooling2D", {"output_size": (7, 7)})
    assert kinds["adaptive_max_pool2d"][0] == "MaxPooling2D"
    assert kinds["seq_adaptive"] == ("AdaptiveAveragePooling1D", {"output_size": (5,)})
    assert kinds["mean_1"] == ("GlobalAveragePooling1D", {"keepdims": False})
    assert kinds["mean_2"] == ("GlobalAveragePooling2D", {"keepdims": False})
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype("float32") for shape in ((2, 3, 10, 10), (2, 4, 12))]
    check_reproduces(imported, model, inputs, tmp_path)


class ExportedPoolings(nn.Module):
    """What torch.onnx writes as MaxPool / AveragePool (ceil_mode, pads, count_include_pad),
    GlobalAveragePool and ReduceMean / ReduceMax with keepdims."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        return (
            F.max_pool2d(x, 3, 2, ceil_mode=True),
            F.max_pool2d(torch.relu(x), 3, 2, 1, ceil_mode=True),
            F.avg_pool2d(x, 3, 2, ceil_mode=True),
            F.avg_pool2d(x, 3, 1, 1),
            F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
            F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
            F.adaptive_avg_pool2d(x, 1),
            F.adaptive_avg_pool2d(x, (5, 2)),  # whole windows: AveragePool
            x.mean((2, 3), keepdim=True),
            x.amax((2, 3)),
        )


def test_pooling_exported_to_onnx_reproduces_onnxruntime(tmp_path):
    torch.manual_seed(0)
    model = ExportedPoolings().eval()
    image = np.random.default_rng(5).standard_normal((2, 3, 10, 10)).astype("float32")
    path = tmp_path / "poolings.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(image),), str(path), dynamo=False, input_names=["image"])
    imported = check_onnx_import(path, [image], tmp_path)  # against onnxruntime, both programs
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert kinds.count("GlobalAveragePooling2D") == 2 and kinds.count("GlobalMaxPooling2D") == 1


class Refused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.max_dilated = nn.MaxPool2d(3, 2, padding=1, dilation=2)
        self.avg_exclude = nn.AvgPool2d(2, 2, padding=1, count_include_pad=False)

    def forward(self, x):
        x = self.conv(x)
        return self.max_dilated(x), self.avg_exclude(x), x.mean(1)


def test_what_keras_cannot_pool_exactly_is_refused_by_name():
    with pytest.raises(UnsupportedModelError) as caught:
        import_torch_model(Refused().eval(), [(3, 10, 10)])
    problems = {problem.name: problem.reason for problem in caught.value.problems}
    assert set(problems) == {"max_dilated", "avg_exclude", "mean"}
    assert "dilation" in problems["max_dilated"]
    assert "leaves the padding out of the average" in problems["avg_exclude"]
    assert "dims [1]" in problems["mean"]


@pytest.mark.slow  # the Keras round trip tests cover the mappings in the fast tier
def test_keras_keepdims_and_adaptive_pooling_reproduce_in_pytorch(tmp_path):
    keras.utils.set_random_seed(0)
    images = keras.Input((9, 7, 3))
    x = layers.Conv2D(4, 3, name="conv")(images)
    squeeze = layers.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    excite = layers.Conv2D(4, 1, activation="sigmoid", name="excite")(squeeze)
    x = layers.Multiply(name="scale")([x, layers.UpSampling2D((7, 5), name="tile")(excite)])
    pooled = layers.AdaptiveAveragePooling2D((4, 6), name="adaptive")(x)
    peak = layers.GlobalMaxPooling2D(keepdims=True, name="peak")(pooled)
    model = keras.Model(images, [layers.AdaptiveMaxPooling2D((3, 2), name="adaptive_max")(x), peak])
    inputs = np.random.default_rng(3).standard_normal((2, 9, 7, 3)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    assert project.graph.find("squeeze").params == {"keepdims": True}
    assert project.graph.find("adaptive").params == {"output_size": (4, 6)}


class Grid(nn.Module):
    """One output per pooling configuration: (kind, kernel, stride, padding, ceil_mode, count_include_pad)."""

    def __init__(self, configs) -> None:
        super().__init__()
        self.configs = configs

    def forward(self, x):
        outputs = []
        for kind, k, s, p, ceil, include in self.configs:
            if kind == "max":
                outputs.append(F.max_pool2d(x, k, s, p, 1, ceil))
            else:
                outputs.append(F.avg_pool2d(x, k, s, p, ceil, include))
        return tuple(outputs)


@pytest.mark.slow
@pytest.mark.parametrize("size", [6, 7])
def test_every_pooling_configuration_reproduces_or_is_refused_by_name(size, tmp_path):
    """Windows 2-4, strides 1-3, every padding PyTorch allows, ceil_mode and count_include_pad, on
    signed values: each imports exactly or names the padding Keras cannot reproduce."""
    accepted, refused = [], []
    for kind, k, s, ceil, include in itertools.product(
        ("max", "avg"), (2, 3, 4), (1, 2, 3), *[(False, True)] * 2
    ):
        for p in range(k // 2 + 1):
            config = (kind, k, s, p, ceil, include)
            if (kind == "max" and include) or (size + 2 * p - k) < 0:
                continue
            try:
                import_torch_model(Grid([config]).eval(), [(2, size, size)])
            except UnsupportedModelError as error:
                refused.append(config)
                assert (
                    "leaves the padding out of the average; Keras 'same' would pad"
                    in error.problems[0].reason
                )
            else:
                accepted.append(config)
    assert all(config[0] == "avg" for config in refused)  # a max pooling always comes across
    assert len(accepted) > 4 * len(refused)
    model = Grid(accepted).eval()
    imported = import_torch_model(model, [(2, size, size)])
    inputs = [np.random.default_rng(size).standard_normal((2, 2, size, size)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


# ----- real models (slow) -------------------------------------------------------------------------


def _randomize_statistics(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)


def _torchvision(name: str):
    from tests.torchvision_shim import import_torchvision

    models = import_torchvision().models
    if name == "googlenet":
        return models.googlenet(aux_logits=False, transform_input=False, init_weights=True)
    if name == "inception_v3":
        return models.inception_v3(aux_logits=False, transform_input=False, init_weights=True)
    return getattr(models, name)()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("squeezenet1_0", 64),  # MaxPool2d(3, 2, ceil_mode=True)
        ("googlenet", 64),  # ceil_mode max pools, MaxPool2d(3, 1, 1, ceil_mode=True) branches
        ("alexnet", 64),  # AdaptiveAvgPool2d((6, 6)) on a 1x1 map
        ("vgg11", 64),  # AdaptiveAvgPool2d((7, 7)) on a 2x2 map
        ("inception_v3", 75),  # avg_pool2d(3, 1, 1): the padding counted
        ("mnasnet0_5", 64),  # x.mean([2, 3])
    ],
)
def test_torchvision_models_cross_over(name, size, tmp_path):
    torch.manual_seed(0)
    model = _torchvision(name).eval()
    _randomize_statistics(model)
    imported = import_torch_model(model, [(3, size, size)])
    inputs = [np.random.default_rng(0).standard_normal((2, 3, size, size)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_keras_application_with_pooling_crosses_over(pooling, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(64, 64, 3), include_top=False, pooling=pooling
    )
    randomize_batch_norm(model)
    inputs = np.random.default_rng(4).standard_normal((2, 64, 64, 3)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    kind = "GlobalAveragePooling2D" if pooling == "avg" else "GlobalMaxPooling2D"
    assert [node.kind for node in project.graph.nodes].count(kind) == 1
