"""Importing PyTorch models through torch.fx: a ResNet-18-style network from a Python file,
sequence models, and the cases the catalog cannot express.
"""

from __future__ import annotations

import functools
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from studio.analysis import analyze
from studio.interop import (
    CodeExecutionRefused,
    InteropError,
    ModelFileError,
    UnsupportedModelError,
    import_model,
    save_imported,
)
from studio.interop.check import TOLERANCE, reproduction_errors
from studio.interop.torch_import import import_torch_model, torch_parameter_count

RESNET_SOURCE = textwrap.dedent(
    '''
    """A ResNet-18-style network: BasicBlocks with projection shortcuts, narrow for speed."""
    import torch
    from torch import nn


    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
            return self.relu(out)


    class ResNet18(nn.Module):
        def __init__(self, num_classes=10, width=16):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths = [(width, 1), (width * 2, 2), (width * 4, 2), (width * 8, 2)]
            cin = width
            for index, (cout, stride) in enumerate(widths, start=1):
                setattr(self, f"layer{index}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
                cin = cout
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = torch.flatten(self.avgpool(x), 1)
            return self.fc(x)


    def resnet18():
        torch.manual_seed(0)
        model = ResNet18()
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.weight.uniform_(0.5, 1.5, generator=generator)
                    module.bias.normal_(0, 0.1, generator=generator)
                    module.running_mean.normal_(0, 0.1, generator=generator)
                    module.running_var.uniform_(0.5, 1.5, generator=generator)
        return model
    '''
)


@pytest.fixture
def resnet_file(tmp_path):
    path = tmp_path / "resnet.py"
    path.write_text(RESNET_SOURCE, encoding="utf-8")
    return path


def resnet_module(path):
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # the test's own source
    return namespace["resnet18"]().eval()


def check_reproduces(imported, model, inputs, tmp_path) -> None:
    """Saved weights, exported to both frameworks, reproduce ``model`` on ``inputs`` (source layout)."""
    _, weights_path = save_imported(imported, tmp_path / "imported.layers.json")
    with torch.no_grad():
        expected = model(*[torch.from_numpy(array) for array in inputs])
    expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
    errors = reproduction_errors(imported, weights_path, inputs, expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors


def reproduced_kinds(net, shape, tmp_path, seed: int) -> list[str]:
    """``net()`` (built with seed 0) imported, its two programs checked against it on a random
    batch of ``shape``: the imported layers' kinds."""
    torch.manual_seed(0)
    model = net().eval()
    x = np.random.default_rng(seed).standard_normal((2, *shape)).astype("float32")
    imported = import_torch_model(model, [shape])
    check_reproduces(imported, model, [x], tmp_path)
    return [node.kind for node in imported.project.graph.nodes]


def test_resnet18_from_a_python_file(resnet_file, tmp_path):
    imported = import_model(f"{resnet_file}:resnet18", input_shapes=[(3, 64, 64)], allow_code=True)
    model = resnet_module(resnet_file)
    graph = imported.project.graph
    assert analyze(graph).is_valid
    assert imported.imported_parameters == torch_parameter_count(model) == imported.source_parameters
    assert graph.find("x").params["shape"] == (64, 64, 3)  # channels-first (3, 64, 64) -> channels-last
    # 7x7 stride-2 padding 3 is not Keras 'same' (which pads 2, 3 at 64): explicit zero padding
    assert graph.find("conv1_pad").params["padding"] == (3, 3, 3, 3)
    assert graph.find("conv1").params["padding"] == "valid"
    # MaxPool2d(3, 2, 1) follows a ReLU, so zero padding equals its -inf padding
    assert graph.find("maxpool_pad").kind == "ZeroPadding2D"
    # 3x3 stride-1 padding 1 is exactly Keras 'same'
    assert graph.find("layer1.0.conv1").params["padding"] == "same"
    add = graph.find("layer2.0.add")
    assert [graph.node(s).name for s in graph.inputs_of(add.id)] == ["layer2.0.bn2", "layer2.0.downsample.1"]
    assert graph.find("avgpool").kind == "GlobalAveragePooling2D"
    assert imported.inputs[0].channels_first
    inputs = [np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


def test_python_files_run_only_when_allowed(resnet_file, tmp_path, capsys):
    from studio.interop.commands import cmd_import, parse_import_args

    marker = tmp_path / "ran.txt"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\nimport torch\nNet = torch.nn.Identity\n")
    with pytest.raises(CodeExecutionRefused, match="would execute it"):
        import_model(f"{evil}:Net", input_shapes=[(3,)])
    assert not marker.exists()
    args = parse_import_args([f"{evil}:Net", "-o", str(tmp_path / "net.layers.json"), "--input-shape", "3"])
    assert cmd_import(args) == 2
    assert "--allow-code" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "net.layers.json").exists()


def test_command_line_import_of_a_python_model(resnet_file, tmp_path, capsys):
    from studio.interop.commands import cmd_import, parse_import_args
    from studio.interop.weights_file import load_weights

    output = tmp_path / "resnet18.layers.json"
    argv = [
        f"{resnet_file}:resnet18",
        "-o",
        str(output),
        "--weights",
        "--allow-code",
        "--input-shape",
        "3,32,32",
    ]
    args = parse_import_args(argv)
    assert cmd_import(args) == 0
    out = capsys.readouterr().out
    assert "the same as the pytorch model's" in out
    weights = load_weights(tmp_path / "resnet18.weights.npz")
    assert weights["conv1"][0].shape == (7, 7, 3, 16)  # Keras layout (kh, kw, in, out)
    assert len(weights["layer1.0.bn1"]) == 4


class SequenceNet(nn.Module):
    """Embedding, a bidirectional LSTM, self-attention, a GRU and LayerNorm: batch-first sequences."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(100, 16)
        self.lstm = nn.LSTM(16, 8, batch_first=True, bidirectional=True)
        self.attention = nn.MultiheadAttention(16, 4, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.gru = nn.GRU(16, 12, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, tokens):
        x = self.embedding(tokens)
        x, _ = self.lstm(x)
        attended, _ = self.attention(x, x, x, need_weights=False)
        x = self.norm(x + attended)
        _, h_n = self.gru(x)
        return self.head(torch.relu(h_n[-1]))


class LastStepNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(5, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        out, (h, c) = self.rnn(x)
        return self.fc(out[:, -1])


class BiFinalNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(5, 6, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        _, h = self.rnn(x)
        return self.fc(torch.cat([h[-2], h[-1]], dim=1))


def test_sequence_models(tmp_path):
    torch.manual_seed(0)
    model = SequenceNet().eval()
    imported = import_torch_model(model, [(10,)])
    graph = imported.project.graph
    assert graph.find("tokens").params["dtype"] == "int32"
    assert graph.find("lstm").params == {"units": 8, "return_sequences": True, "bidirectional": True}
    assert graph.find("gru").params["return_sequences"] is False
    assert graph.find("attention").kind == "MultiHeadAttention"
    assert imported.imported_parameters == torch_parameter_count(model)
    tokens = np.random.default_rng(0).integers(0, 100, (3, 10)).astype("int64")
    check_reproduces(imported, model, [tokens], tmp_path)


@pytest.mark.parametrize("net", [LastStepNet, BiFinalNet])
def test_final_states_of_recurrent_layers(net, tmp_path):
    torch.manual_seed(0)
    model = net().eval()
    imported = import_torch_model(model, [(7, 5)])
    assert imported.project.graph.find("rnn").params["return_sequences"] is False
    inputs = [np.random.default_rng(1).standard_normal((2, 7, 5)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


class FlattenHead(nn.Module):
    """A channels-first flatten feeding a Linear, and Conv1d / functional calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(2, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        x = self.pool(nn.functional.leaky_relu(self.conv(x), 0.1))
        x = x.view(x.size(0), -1)
        return torch.softmax(self.fc(x) * 0.5 + 1.0, dim=1)


def test_flatten_of_channels_first_images_reorders_dense_rows(tmp_path):
    torch.manual_seed(0)
    model = FlattenHead().eval()
    imported = import_torch_model(model, [(2, 10, 10)])
    graph = imported.project.graph
    assert graph.find("pool_pad").params["padding"] == (1, 1, 1, 1)  # count_include_pad: zeros count
    assert [node.kind for node in graph.nodes][-3:] == ["Rescaling", "Rescaling", "Activation"]
    inputs = [np.random.default_rng(2).standard_normal((2, 2, 10, 10)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


class Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.ConvTranspose2d(4, 4, 3, groups=2)  # Keras's Conv2DTranspose has no groups
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.norm = nn.LocalResponseNorm(2)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.pool(self.grouped(x))  # no ReLU before: -inf padding is not zero padding
        x = self.norm(x).mean(dim=(2, 3))
        return self.fc(x)


def test_unsupported_modules_are_all_listed():
    with pytest.raises(UnsupportedModelError) as caught:
        import_torch_model(Unsupported().eval(), [(4, 12, 12)])
    problems = {problem.name: problem.reason for problem in caught.value.problems}
    assert set(problems) == {"grouped", "norm"}
    assert "groups=2" in problems["grouped"]
    assert "LocalResponseNorm" in problems["norm"]


class ThreeUnsupportedKinds(nn.Module):
    """LocalResponseNorm twice, torch.abs and Tensor.exp, each downstream of another unsupported node."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.norm_a = nn.LocalResponseNorm(2)
        self.norm_b = nn.LocalResponseNorm(2)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = torch.abs(self.norm_a(self.conv(x)))
        x = self.norm_b(x).exp()
        return self.fc(x.mean(dim=(2, 3)))


def test_every_unsupported_kind_is_listed_with_counts_even_downstream():
    with pytest.raises(UnsupportedModelError) as caught:
        import_torch_model(ThreeUnsupportedKinds().eval(), [(4, 6, 6)], source="net.py:Net")
    problems = [(p.source_kind, p.name) for p in caught.value.problems]
    assert problems == [
        ("LocalResponseNorm", "norm_a"),
        ("torch.abs", "abs"),
        ("LocalResponseNorm", "norm_b"),
        ("Tensor.exp", "exp"),
    ]
    assert str(caught.value).splitlines() == [
        "net.py:Net cannot be imported: 4 unsupported layers",
        "  - LocalResponseNorm (2): norm_a, norm_b: nn.LocalResponseNorm has no catalog equivalent",
        "  - torch.abs (1): abs: this function has no catalog equivalent",
        "  - Tensor.exp (1): exp: the tensor method .exp() has no catalog equivalent",
    ]


def test_max_pool_padding_without_relu_copies_the_edges(tmp_path):
    """-inf padding on signed values: the edge rows and columns are copied into the padding."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, 2, padding=1)).eval()
    imported = import_torch_model(model, [(3, 12, 12)])
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert kinds.count("Cropping2D") == 4 and kinds.count("Concatenate") == 2
    inputs = [np.random.default_rng(3).standard_normal((2, 3, 12, 12)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


def test_max_pool_1d_padding_without_relu_is_refused():
    model = nn.Sequential(nn.Conv1d(3, 4, 3), nn.MaxPool1d(3, 2, padding=1)).eval()
    with pytest.raises(UnsupportedModelError) as caught:
        import_torch_model(model, [(3, 12)])
    assert [p.name for p in caught.value.problems] == ["1"]
    assert "non-negative" in caught.value.problems[0].reason


def test_wrong_input_shapes_and_missing_entries_are_clear(resnet_file):
    with pytest.raises(InteropError, match="input shape"):
        import_model(f"{resnet_file}:resnet18", input_shapes=[(3, 8)], allow_code=True)
    with pytest.raises(ModelFileError, match="defines no 'ResNet50'.*ResNet18"):
        import_model(f"{resnet_file}:ResNet50", input_shapes=[(3, 64, 64)], allow_code=True)


def test_state_dicts_load_without_pickle(resnet_file, tmp_path):
    model = resnet_module(resnet_file)
    state = tmp_path / "state.pt"
    torch.save(model.state_dict(), state)
    imported = import_model(
        f"{resnet_file}:ResNet18", input_shapes=[(3, 32, 32)], allow_code=True, state_dict=state
    )
    np.testing.assert_array_equal(
        imported.weights["layer1.0.bn1"][2], model.layer1[0].bn1.running_mean.numpy()
    )
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": LastStepNet()}, pickled)  # a whole module object: needs pickle, refused
    with pytest.raises(ModelFileError, match="without pickle"):
        import_model(
            f"{resnet_file}:ResNet18", input_shapes=[(3, 32, 32)], allow_code=True, state_dict=pickled
        )


class Zoo(nn.Module):
    """Depthwise and transposed convolutions, functional pooling and padding, cropping, upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.bn = nn.BatchNorm2d(8)
        self.up = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1)  # Keras 'same'
        self.up2 = nn.ConvTranspose2d(6, 6, 3, stride=2, padding=1, output_padding=1)  # 'valid' + crop
        self.ups = nn.Upsample(scale_factor=2, mode="nearest")
        self.act = nn.Hardtanh(0, 6)
        self.conv = nn.Conv2d(6, 5, 3, padding="same")
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        x = F.relu(self.bn(self.dw(x)))
        x = F.max_pool2d(x, 2)
        x = self.up2(self.act(self.up(x)))
        x = F.pad(x, (1, 1, 2, 0))[:, :, 1:-1, 1:-1]
        x = F.elu(self.conv(self.ups(x)), alpha=0.5)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.gelu(self.fc(x))


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.pool = nn.MaxPool1d(2)
        self.fc = nn.Linear(8 * 5, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.bn(self.conv(x)))), 1))


class GroupedNet(nn.Module):
    """Grouped convolutions (module, F.conv2d, Conv1d), a depthwise multiplier, a strided padded one."""

    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(6, 12, 3, padding=1, groups=3)
        self.depthwise = nn.Conv2d(12, 36, 3, stride=2, padding=1, groups=12, bias=False)  # M = 3
        self.strided = nn.Conv2d(36, 8, 3, stride=2, padding=1, groups=4)
        self.kernel = nn.Parameter(torch.randn(8, 4, 1, 1))
        self.conv1d = nn.Conv1d(8, 4, 3, padding=1, groups=2)

    def forward(self, x):
        x = self.strided(F.relu(self.depthwise(self.grouped(x))))
        x = F.conv2d(x, self.kernel, groups=2)  # 8 -> 8 channels in 2 groups
        x = self.conv1d(x.flatten(2))  # (N, 8, h*w): a sequence of 8 channels
        return x.mean(dim=2)


ZOO = {"zoo": (Zoo, (4, 8, 8)), "conv1d": (Conv1dNet, (3, 10)), "grouped": (GroupedNet, (6, 9, 10))}


@pytest.mark.parametrize("key", list(ZOO))
def test_layer_zoo(key, tmp_path):
    net, shape = ZOO[key]
    torch.manual_seed(0)
    model = net().eval()
    imported = import_torch_model(model, [shape])
    assert imported.imported_parameters == torch_parameter_count(model)
    if key == "zoo":
        graph = imported.project.graph
        assert graph.find("dw").kind == "DepthwiseConv2D"
        assert graph.find("up").params["padding"] == "same"
        assert graph.find("up2_crop").params["cropping"] == (1, 0, 1, 0)
        assert graph.find("getitem").kind == "Cropping2D"
    if key == "grouped":
        graph = imported.project.graph
        assert graph.find("grouped").params["groups"] == 3
        assert graph.find("depthwise").kind == "DepthwiseConv2D"
        assert graph.find("depthwise").params["depth_multiplier"] == 3
        assert graph.find("conv2d").params["groups"] == 2
        assert graph.find("conv1d").params["groups"] == 2
    inputs = [np.random.default_rng(0).standard_normal((2, *shape)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnext50_32x4d", "regnet_x_400mf"])
def test_torchvision_grouped_convolution_networks(name, tmp_path):
    """ResNeXt (32 groups) and RegNetX (group width 16): grouped 3x3 convolutions, exported to Keras."""
    from tests.torchvision_shim import import_torchvision

    torch.manual_seed(0)
    model = getattr(import_torchvision().models, name)(weights=None).eval()
    randomize_batch_norm_statistics(model)
    imported = import_torch_model(model, [(3, 64, 64)])
    assert imported.imported_parameters == torch_parameter_count(model)
    groups = [node.params["groups"] for node in imported.project.graph.nodes if node.kind == "Conv2D"]
    assert max(groups) > 1


# ----- ACT slice (issue 13): activations, structured dropout, broadcasting merges ------------------


class SqueezeExcite(nn.Module):
    """torchvision's SqueezeExcitation as MobileNetV3 writes it: (N, C, 1, 1) * (N, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // 2, 1)
        self.fc2 = nn.Conv2d(channels // 2, channels, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))


class ActivationsNet(nn.Module):
    """Every spelling family of the slice: modules, F functions, tensor methods, torchvision ops."""

    def __init__(self, stochastic_depth: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.Hardswish()
        self.prelu = nn.PReLU(8)
        self.se = SqueezeExcite(8)
        self.drop = nn.Dropout2d(0.2)
        self.depth = stochastic_depth
        self.celu = nn.CELU(1.5)
        self.shrink = nn.Softshrink(0.8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.drop(self.se(self.prelu(self.act(self.conv(x)))))
        y = y + self.depth(y)
        y = torch.minimum(y, F.mish(y)) - y.mean((2, 3), keepdim=True)
        y = F.dropout(y, 0.5, self.training)
        # Parameters Keras's activations fix, written with Rescaling layers around them.
        y = self.celu(F.softplus(y, beta=2.0)) + F.hardshrink(y, 0.3) + self.shrink(y)
        return self.out(F.selu(y).sigmoid_())


@pytest.mark.slow
def test_activations_dropout_and_broadcasting_merges(tmp_path):
    from tests.torchvision_shim import import_torchvision

    torch.manual_seed(0)
    model = ActivationsNet(import_torchvision().ops.StochasticDepth(0.1, "row")).eval()
    with torch.no_grad():
        model.prelu.weight.uniform_(-0.5, 0.5)
    imported = import_torch_model(model, [(3, 12, 12)])
    graph = imported.project.graph
    assert graph.find("act").params["activation"] == "hard_silu"
    assert graph.find("prelu").kind == "PReLU" and graph.find("prelu").params["per_channel"]
    assert graph.find("se.mul").kind == "Multiply"  # (1, 1, C) * (H, W, C): no Reshape of the image
    assert graph.find("drop").params["mask"] == "channel"
    depth = [node for node in graph.nodes if node.kind == "Dropout" and node.params["mask"] == "sample"]
    assert [node.params["rate"] for node in depth] == [0.1]  # torchvision's stochastic_depth, mode "row"
    assert graph.find("minimum").kind == "Minimum"
    inputs = [np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


def torchvision_model(name: str):
    """A torchvision classifier with random weights and randomised BatchNorm statistics, in eval mode."""
    from tests.torchvision_shim import import_torchvision

    torch.manual_seed(0)
    model = getattr(import_torchvision().models, name)(weights=None)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model.eval()


# ----- tensor operations: split, slice, permute, traced shape arithmetic (issue 13) ---------------


class Pieces(nn.Module):
    """chunk, split, cat in a new order, an item (x[:, 0]), narrow, and a permute of a sliced image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        c, d, e = torch.split(b, [1, 2, 1], dim=1)
        y = torch.cat([d, a, c * e], dim=1)
        width = torch.narrow(y, 3, 1, 4)
        return self.fc(width.permute(0, 2, 1, 3)[:, 1]).flatten(1), y[:, 0]


class ChannelShuffle(nn.Module):
    """ShuffleNet V2's unit: split the channels, convolve one half, join and shuffle them."""

    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch(x2)), dim=1)
        batch, channels, height, width = out.size()
        out = out.view(batch, 2, channels // 2, height, width)
        out = torch.transpose(out, 1, 2).contiguous()
        return out.view(batch, -1, height, width)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt without LayerScale and stochastic depth: LayerNorm2d (permute, F.layer_norm, permute)
    and a block that runs its Linear layers channels-last between two permutes."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, dim, 2, 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = self.conv(x)
        x = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.norm.weight, self.norm.bias, 1e-6)
        x = x.permute(0, 3, 1, 2)
        y = torch.permute(self.dw(x), [0, 2, 3, 1])
        y = self.fc2(F.gelu(self.fc1(y)))
        return x + y.permute(0, 3, 1, 2)


class PatchEncoder(nn.Module):
    """A ViT's forward without its position embedding: shapes read from x.shape, torch._assert,
    patches reshaped and permuted into a sequence, a class token, nn.MultiheadAttention, the token
    taken back."""

    def __init__(self, image: int = 16, patch: int = 8, dim: int = 8) -> None:
        super().__init__()
        self.image, self.patch, self.dim = image, patch, dim
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim))
        self.attention = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        n, c, h, w = x.shape
        torch._assert(h == self.image, "wrong image height")
        torch._assert(w % self.patch == 0, "width not divisible")
        x = self.proj(x).reshape(n, self.dim, (h // self.patch) * (w // self.patch)).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = self.attention(x, x, x, need_weights=False)[0] + x
        return self.head(x[:, 0])


class HandAttention(nn.Module):
    """Self-attention written out as timm writes it: qkv reshaped and permuted with the batch moved
    off axis 0, then taken apart by ``unbind(0)`` (or ``qkv[i]``), then ``q @ k.transpose(-2, -1)``,
    softmax, ``@ v`` (or ``F.scaled_dot_product_attention``)."""

    def __init__(self, dim: int = 8, heads: int = 2, fused: bool = False) -> None:
        super().__init__()
        self.heads, self.fused = heads, fused
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        batch, steps, features = x.shape
        qkv = self.qkv(x).reshape(batch, steps, 3, self.heads, features // self.heads).permute(2, 0, 3, 1, 4)
        if self.fused:
            x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        else:
            q, k, v = qkv.unbind(0)
            scores = (q * (features // self.heads) ** -0.5) @ k.transpose(-2, -1)
            x = torch.matmul(scores.softmax(dim=-1), v)
        return self.proj(x.transpose(1, 2).reshape(batch, steps, features))


class TinyViT(nn.Module):
    """Patches, a class token expanded over the batch, one block of attention (hand-written or
    fused), and a head on the class token."""

    def __init__(self, fused: bool = True, dim: int = 8) -> None:
        super().__init__()
        self.patches = nn.Conv2d(3, dim, 4, 4)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim))
        self.norm = nn.LayerNorm(dim)
        self.attention = HandAttention(dim, fused=fused)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.attention(self.norm(x))
        return self.head(x[:, 0])


class RelativeAttention(nn.Module):
    """MaxViT's attention over windows (B, G, P, D): qkv chunked, heads by reshape and permute,
    ``torch.einsum`` for the scores and the weighted sum, and a relative position bias: a learned
    table read at a buffer of indices, added to the scores."""

    def __init__(self, dim: int = 8, heads: int = 2, side: int = 2) -> None:
        super().__init__()
        self.heads, self.side = heads, side
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.table = nn.Parameter(torch.randn((2 * side - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + side - 1
        self.register_buffer("index", relative[..., 0] * (2 * side - 1) + relative[..., 1])

    def forward(self, x):
        batch, groups, points, features = x.shape
        q, k, v = torch.chunk(self.to_qkv(x), 3, dim=-1)
        q, k, v = (t.reshape(batch, groups, points, self.heads, -1).permute(0, 1, 3, 2, 4) for t in (q, k, v))
        scores = torch.einsum("B G H I D, B G H J D -> B G H I J", q, k * 0.5)
        bias = self.table[self.index.view(-1)].view(points, points, -1).permute(2, 0, 1).contiguous()
        weights = F.softmax(scores + bias.unsqueeze(0), dim=-1)
        out = torch.einsum("B G H I J, B G H J D -> B G H I D", weights, v)
        return out.permute(0, 1, 3, 2, 4).reshape(batch, groups, points, features)


TENSOR_ZOO = {
    "pieces": (Pieces, (3, 8, 8)),
    "channel_shuffle": (ChannelShuffle, (8, 5, 5)),
    "convnext_block": (ConvNeXtBlock, (3, 8, 8)),
    "patch_encoder": (PatchEncoder, (3, 16, 16)),
    "hand_attention": (HandAttention, (5, 8)),
    "tiny_vit_fused": (TinyViT, (3, 12, 12)),
    "tiny_vit_by_hand": (functools.partial(TinyViT, fused=False), (3, 12, 12)),
}


@pytest.mark.slow
def test_relative_attention_reproduces(tmp_path):
    """The bias table becomes a full (heads, P, P) weight, so the count differs from the source's."""
    torch.manual_seed(0)
    model = RelativeAttention().eval()
    imported = import_torch_model(model, [(3, 4, 8)])
    inputs = [np.random.default_rng(0).standard_normal((2, 3, 4, 8)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


def test_einsum_and_an_indexed_bias_table_import_as_matmul_and_affine():
    imported = import_torch_model(RelativeAttention().eval(), [(3, 4, 8)])
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert kinds.count("MatMul") == 2 and kinds.count("Affine") == 1, kinds
    bias = next(node for node in imported.project.graph.nodes if node.kind == "Affine")
    assert list(bias.params["shape"]) == [2, 4, 4] and bias.params["trainable"]
    assert any("repeated entries learn separately" in note for note in imported.notes)


def test_einsum_with_a_transposed_operand_reproduces(tmp_path):
    class Gram(nn.Module):
        def forward(self, x):
            return torch.einsum("bij,bkj->bki", x, x.relu())

    imported = import_torch_model(Gram(), [(3, 4)])
    assert [node.kind for node in imported.project.graph.nodes].count("MatMul") == 1
    inputs = [np.random.default_rng(5).standard_normal((2, 3, 4)).astype("float32")]
    check_reproduces(imported, Gram(), inputs, tmp_path)


@pytest.mark.parametrize("equation", ["bij,bjk", "bi,bj->bij", "bij,bjk->bk", "bij,bij->bij", "bii,bij->bj"])
def test_einsums_other_than_a_batched_matrix_product_are_refused_by_name(equation):
    class Einsum(nn.Module):
        def forward(self, x):
            return torch.einsum(equation, x, x)

    with pytest.raises(UnsupportedModelError, match="einsum"):
        import_torch_model(Einsum(), [(3,) * (len(equation.split(",")[0]) - 1)])


def test_attention_written_out_imports_as_matmul_layers():
    """The moved batch axis comes home through an index: each of q, k, v is a Slice, a Reshape and a
    Permute; the scores and the weighted sum are MatMul layers around a softmax."""
    for fused in (False, True):
        imported = import_torch_model(HandAttention(fused=fused).eval(), [(5, 8)])
        kinds = [node.kind for node in imported.project.graph.nodes]
        assert kinds.count("MatMul") == 2 and kinds.count("Slice") == 3, kinds
        assert "Activation" in kinds and "Rescaling" in kinds


class SequenceFirstAttention(nn.Module):
    """``nn.MultiheadAttention`` as the ONNX exporter writes it: sequence-first inside, the batch
    folded into the heads, ``(L, N * H, d)``, and the output projection on ``(L * N, E)``."""

    def __init__(self, batch_first: bool = True) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.attention = nn.MultiheadAttention(16, 4, batch_first=batch_first)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        y = x if self.batch_first else x.transpose(0, 1)  # (L, N, E) for batch_first=False
        y = self.attention(y, y, y, need_weights=False)[0]
        return self.head((y if self.batch_first else y.transpose(0, 1)) + x)


WINDOW_INPUT = (8, 6, 8)  # (C, H, W)


class WindowMixer(nn.Module):
    """Swin's window moves, written out: the image moved channels-last and padded to whole windows,
    the windows folded into the batch, ``(N * windows, area, C)``, attention per window with a
    relative bias, its heads joined again, the windows put back, and patch merging by every second
    row and column."""

    def __init__(self, window: int = 3) -> None:
        super().__init__()
        self.window = window
        self.qk = nn.Linear(8, 16)
        self.bias = nn.Parameter(torch.randn(2, window * window, window * window))
        self.reduce = nn.Linear(32, 8)

    def forward(self, image):
        x = image.permute(0, 2, 3, 1)
        n, h, w, c = x.shape
        ws, area = self.window, self.window * self.window
        x = F.pad(x, (0, 0, 0, (-w) % ws, 0, (-h) % ws))
        ph, pw = x.shape[1], x.shape[2]
        windows = x.view(n, ph // ws, ws, pw // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, area, c)
        q, k = self.qk(windows).reshape(windows.shape[0], area, 2, 2, 4).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * 0.5 + self.bias
        values = windows.reshape(-1, area, 2, c // 2).transpose(1, 2)
        heads = scores.softmax(-1) @ values  # (N * windows, 2, area, c / 2)
        mixed = torch.cat([heads[:, 0], heads[:, 1]], dim=-1)
        x = mixed.view(n, ph // ws, pw // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(n, ph, pw, c)
        x = torch.roll(x[:, :h, :w, :], shifts=(1, -2), dims=(1, 2))
        merged = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduce(merged)


def test_windows_folded_into_the_batch_cross_through_torch_fx(tmp_path):
    """view(-1, area, C) folds the windows into the batch: the importer holds the fold, runs the
    Linear, the products, the bias and the softmax per window, and brings the batch home; the
    cyclic shift (torch.roll) and the strided slices of patch merging are catalog layers too."""
    kinds = reproduced_kinds(WindowMixer, WINDOW_INPUT, tmp_path, seed=8)
    assert kinds.count("MatMul") == 2 and "ZeroPadding2D" in kinds and "Concatenate" in kinds, kinds


def test_sequence_first_multihead_attention_is_one_layer(tmp_path):
    """batch_first=False between x.transpose(0, 1) and back: the transposes cancel around one
    MultiHeadAttention."""
    torch.manual_seed(0)
    model = SequenceFirstAttention(batch_first=False).eval()
    x = np.random.default_rng(3).standard_normal((2, 5, 16)).astype("float32")
    imported = import_torch_model(model, [(5, 16)])
    assert [node.kind for node in imported.project.graph.nodes] == [
        "Input",
        "MultiHeadAttention",
        "Add",
        "Dense",
    ]
    check_reproduces(imported, model, [x], tmp_path)


class ComputedConstants(nn.Module):
    """What timm's LeViT, CaiT and XCiT write: a sinusoidal position table computed in forward from
    torch.arange (folded at import), BatchNorm1d over (N * L, C) with the steps folded into the
    batch and put back by reshape_as, and a class token expanded over the batch added to a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(6)
        self.token = nn.Parameter(torch.randn(1, 1, 6))
        with torch.no_grad():  # statistics that are not the identity
            self.norm.running_mean.uniform_(-1, 1)
            self.norm.running_var.uniform_(0.5, 2)

    def forward(self, x):  # (N, L, C)
        steps = torch.arange(x.shape[1], dtype=torch.float32, device=x.device)
        frequencies = 10000 ** (-torch.arange(0, 6, 2).float() / 6)
        angles = steps[:, None] * frequencies[None, :]
        table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # (L, C)
        y = self.norm((x + table).flatten(0, 1)).reshape_as(x)
        return torch.cat([self.token.expand(x.shape[0], -1, -1) + y[:, :1], y[:, 1:]], dim=1).softmax(-1)


def test_constants_the_model_computes_fold_and_batch_norm_runs_on_a_folded_batch(tmp_path):
    kinds = reproduced_kinds(ComputedConstants, (5, 6), tmp_path, seed=5)
    assert "BatchNormalization" in kinds and kinds.count("Affine") == 2, kinds  # the table, the token


def test_a_constant_made_from_the_batch_size_is_refused_by_name():
    class BatchSized(nn.Module):
        def forward(self, x):
            return x + torch.arange(x.shape[0], dtype=torch.float32)[:, None]  # (N, 1), one per sample

    with pytest.raises(UnsupportedModelError, match=r"computes a constant from the batch size"):
        import_torch_model(BatchSized(), [(4,)])


def test_a_causal_attention_mask_built_in_forward_is_the_causal_mask(tmp_path):
    """``torch.triu(torch.full((L, L), -inf), 1)`` computed in forward folds to a constant, read as
    MultiHeadAttention's use_causal_mask; any other constant mask is refused by name."""

    class Causal(nn.Module):
        def __init__(self, other: bool = False) -> None:
            super().__init__()
            self.other = other
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            steps = x.shape[1]
            mask = torch.triu(torch.full((steps, steps), float("-inf")), 2 if self.other else 1)
            return self.attention(x, x, x, attn_mask=mask, need_weights=False)[0]

    torch.manual_seed(0)
    model = Causal().eval()
    imported = import_torch_model(model, [(5, 8)])
    attention = next(node for node in imported.project.graph.nodes if node.kind == "MultiHeadAttention")
    assert attention.params["use_causal_mask"]
    x = np.random.default_rng(2).standard_normal((2, 5, 8)).astype("float32")
    check_reproduces(imported, model, [x], tmp_path)
    with pytest.raises(UnsupportedModelError, match=r"attn_mask other than the causal one"):
        import_torch_model(Causal(other=True).eval(), [(5, 8)])


class Rotary(nn.Module):
    """EVA's rotary position embedding: every second feature negated and interleaved with the rest
    by torch.stack, cast back with type_as, then the mean over the steps."""

    def __init__(self) -> None:
        super().__init__()
        angles = torch.arange(5.0)[:, None] * torch.tensor([1.0, 0.5, 0.25, 0.125]).repeat_interleave(2)
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())

    def forward(self, x):  # (N, steps, 8)
        rotated = torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape).type_as(x)
        return (x * self.cos + rotated * self.sin).float().mean(1)


def test_rotary_position_embedding_crosses(tmp_path):
    kinds = reproduced_kinds(Rotary, (5, 8), tmp_path, seed=6)
    assert "Concatenate" in kinds and "Rescaling" in kinds, kinds  # the stack, the negation
    with pytest.raises(UnsupportedModelError, match=r"casts to torch.float64"):
        import_torch_model(_Doubles(), [(4,)])


class _Doubles(nn.Module):
    def forward(self, x):
        return x.to(torch.float64)


class RadixSum(nn.Module):
    """ResNeSt's split attention: a sum over the radix axis of (N, radix, C, H, W), and a softmax
    over axis 1 of a tensor in the source's order."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        y = self.conv(x)
        n = y.shape[0]
        total = y.view(n, 2, 4, y.shape[2], y.shape[3]).sum(dim=1)  # (N, 4, H, W)
        pooled = total.mean((2, 3))
        gate = pooled.view(n, 2, 2).softmax(dim=1).flatten(1)
        return pooled * gate + torch.sum(y.view(n, 2, 4, -1), 1, keepdim=True).flatten(1)[:, :4]


def test_a_sum_over_a_short_axis_and_a_softmax_over_axis_1_cross(tmp_path):
    assert "Add" in reproduced_kinds(RadixSum, (3, 5, 5), tmp_path, seed=9)

    class LongSum(nn.Module):
        def forward(self, x):
            return x.sum(1)

    with pytest.raises(UnsupportedModelError, match=r"sums an axis of 12; the catalog adds up to 8"):
        import_torch_model(LongSum(), [(12, 3)])


class Unbound(nn.Module):
    """``q, k, v = qkv.unbind(2)`` on a batch-first layout, and ``x.unbind(1)[-1][:, None]``."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        q, k, v = self.qkv(x).reshape(x.shape[0], x.shape[1], 3, 8).unbind(2)
        return (q @ k.transpose(-2, -1)).softmax(-1) @ v + x.unbind(1)[-1][:, None]


class TokenTwice(nn.Module):
    """A class token joined before the sequence and added to it (CaiT uses its token both ways)."""

    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, 4))

    def forward(self, x):
        token = self.token.expand(x.shape[0], -1, -1)
        return torch.cat([token, x + token], dim=1)


def test_a_class_token_used_twice_is_two_weights_with_a_note(tmp_path):
    kinds = reproduced_kinds(TokenTwice, (3, 4), tmp_path, seed=2)
    assert kinds == ["Input", "Affine", "ClassToken"], kinds
    imported = import_torch_model(TokenTwice(), [(3, 4)])
    assert any("class token used by several layers" in note for note in imported.notes)
    assert imported.imported_parameters == 2 * 4


def test_unbind_on_any_axis_and_a_new_axis_by_indexing(tmp_path):
    kinds = reproduced_kinds(Unbound, (5, 8), tmp_path, seed=1)
    assert kinds.count("Slice") == 4, kinds  # q, k, v and the last step; no slice left unused


def test_a_moved_batch_axis_used_otherwise_is_refused_by_name():
    """Element-wise and last-axis operations run on a tensor whose batch was moved; a reduction over
    the axis that holds it, a roll without axes, and a moved tensor as the output are refused."""

    class Reduces(nn.Module):
        def forward(self, x):
            return x.permute(1, 0, 2).relu().mean(1)

    class Rolls(nn.Module):
        def forward(self, x):
            return torch.roll(x, 1)

    class ReturnsIt(nn.Module):
        def forward(self, x):
            return x.permute(1, 0, 2).relu()

    with pytest.raises(
        UnsupportedModelError, match=r"shape \(3, N, 4\) whose batch axis is not alone on axis 0"
    ):
        import_torch_model(Reduces(), [(3, 4)])
    with pytest.raises(UnsupportedModelError, match=r"rolls the flattened tensor"):
        import_torch_model(Rolls(), [(3, 4)])
    with pytest.raises(
        UnsupportedModelError, match=r"output: .* shape \(3, N, 4\) whose batch axis is not alone"
    ):
        import_torch_model(ReturnsIt(), [(3, 4)])


class MaskedAttention(nn.Module):
    """F.scaled_dot_product_attention with each kind of mask: causal, a learned float bias (timm's
    relative position bias), a boolean buffer, and a bias computed from the input."""

    def __init__(self, mask: str) -> None:
        super().__init__()
        self.mask = mask
        self.bias = nn.Parameter(torch.randn(2, 5, 5))
        self.register_buffer("allowed", torch.rand(5, 5) > 0.3)
        self.allowed[:, 0] = True  # every query attends somewhere

    def forward(self, x):  # (N, heads, steps, d)
        if self.mask == "causal":
            return F.scaled_dot_product_attention(x, x, x, is_causal=True)
        mask = {"bias": self.bias, "boolean": self.allowed, "computed": x @ x.transpose(-2, -1) * 0.1}
        return F.scaled_dot_product_attention(x, x * 2, x, attn_mask=mask[self.mask])


@pytest.mark.parametrize("mask", ["causal", "bias", "boolean", "computed"])
def test_masked_scaled_dot_product_attention_reproduces(mask, tmp_path):
    torch.manual_seed(0)
    model = MaskedAttention(mask).eval()
    x = np.random.default_rng(4).standard_normal((2, 2, 5, 4)).astype("float32")
    imported = import_torch_model(model, [(2, 5, 4)])
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert kinds.count("MatMul") >= 2 and ("Affine" in kinds or "Add" in kinds), kinds
    check_reproduces(imported, model, [x], tmp_path)


def test_grouped_query_attention_is_refused_by_name():
    class Grouped(nn.Module):
        def forward(self, x):
            return F.scaled_dot_product_attention(x, x, x, enable_gqa=True)

    with pytest.raises(UnsupportedModelError, match="enable_gqa is given"):
        import_torch_model(Grouped(), [(2, 3, 4)])


def test_slices_and_splits_import_as_slice_layers():
    imported = import_torch_model(Pieces().eval(), [(3, 8, 8)])
    graph = imported.project.graph
    slices = {node.name: node.params for node in graph.nodes if node.kind == "Slice"}
    # chunk(2) of 8 channels: the second half 4:8, then split [1, 2, 1] of it; channels are axis -1
    assert {"axis": -1, "start": 4, "stop": 8} in slices.values()
    assert {"axis": -1, "start": 0, "stop": 1} in slices.values()
    # the width 1:5 of a channels-first image is a crop; x[:, 1] of (N, H, C, W) a Slice and a Reshape
    assert graph.find("narrow").kind == "Cropping2D"
    assert graph.find("narrow").params["cropping"] == (0, 0, 1, 3)
    assert graph.find("getitem_1").kind == "Reshape"


def test_permutes_around_channels_last_layers_are_layout_changes():
    """ConvNeXt's permute -> F.layer_norm -> permute, and permute -> Linear -> permute: no Permute layer."""
    model = ConvNeXtBlock().eval()
    imported = import_torch_model(model, [(3, 8, 8)])
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert "Permute" not in kinds
    assert kinds.count("LayerNormalization") == 1 and kinds.count("Dense") == 2
    assert imported.imported_parameters == torch_parameter_count(model)


def test_traced_shape_arithmetic_folds_and_asserts_drop():
    imported = import_torch_model(PatchEncoder().eval(), [(3, 16, 16)])
    kinds = {node.kind for node in imported.project.graph.nodes}
    # (N, C, H, W) -> (N, C, H * W) -> (N, H * W, C): a Keras Reshape of the patches, no Permute
    assert kinds == {
        *(
            "Input",
            "Conv2D",
            "Reshape",
            "ClassToken",
            "MultiHeadAttention",
            "Add",
            "Slice",
            "Flatten",
            "Dense",
        )
    }
    assert imported.weights["cat"][0].shape == (8,)  # the class token, one value per feature
    with pytest.raises(InteropError, match="wrong image height"):
        import_torch_model(PatchEncoder().eval(), [(3, 24, 16)])


def test_other_expands_are_refused_by_name():
    class AfterTheSequence(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token = nn.Parameter(torch.zeros(1, 1, 4))

        def forward(self, x):
            return torch.cat([x, self.token.expand(x.shape[0], -1, -1)], dim=1)

    class Tiled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token = nn.Parameter(torch.zeros(1, 1, 4))

        def forward(self, x):
            return torch.cat([self.token.expand(x.shape[0], 2, -1), x], dim=1)

    with pytest.raises(UnsupportedModelError, match=r"cat.*other than before a sequence"):
        import_torch_model(AfterTheSequence(), [(3, 4)])
    with pytest.raises(UnsupportedModelError, match=r"expand.*expands to \[2, 2, -1\]"):
        import_torch_model(Tiled(), [(3, 4)])


def test_arithmetic_on_tensors_is_not_taken_for_a_size():
    class FloorDivide(nn.Module):
        def forward(self, x):
            return x // 2

    with pytest.raises(UnsupportedModelError, match=r"floordiv.*only the sizes that tracing leaves fold"):
        import_torch_model(FloorDivide(), [(4,)])


@pytest.mark.slow
@pytest.mark.parametrize("key", list(TENSOR_ZOO))
def test_tensor_zoo(key, tmp_path):
    net, shape = TENSOR_ZOO[key]
    torch.manual_seed(0)
    model = net().eval()
    imported = import_torch_model(model, [shape])
    assert imported.imported_parameters == torch_parameter_count(model)
    inputs = [np.random.default_rng(0).standard_normal((2, *shape)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


def randomize_batch_norm_statistics(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "activations"),
    [
        ("mobilenet_v3_small", {"hard_silu", "hard_sigmoid", "relu"}),  # SE: Multiply (1, 1, C) by the image
        ("efficientnet_b0", {"silu", "sigmoid"}),  # SE and stochastic depth (Dropout per sample)
    ],
)
def test_torchvision_models_with_squeeze_excitation(name, activations, tmp_path):
    model = torchvision_model(name)
    imported = import_torch_model(model, [(3, 64, 64)])
    nodes = list(imported.project.graph.nodes)
    assert {node.params["activation"] for node in nodes if node.kind == "Activation"} == activations
    assert sum(node.kind == "Multiply" for node in nodes) >= 9
    residual = sum(bool(getattr(module, "use_res_connect", False)) for module in model.modules())
    depth = [node for node in nodes if node.kind == "Dropout" and node.params["mask"] == "sample"]
    assert len(depth) == (residual if name == "efficientnet_b0" else 0)  # stochastic depth on residuals


def test_torchvision_shufflenet_v2(tmp_path):
    from tests.torchvision_shim import import_torchvision

    torch.manual_seed(0)
    model = randomize_batch_norm_statistics(import_torchvision().models.shufflenet_v2_x0_5())
    imported = import_torch_model(model, [(3, 64, 64)])
    assert imported.imported_parameters == torch_parameter_count(model)
    inputs = [np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


@pytest.mark.slow
def test_torchvision_convnext_stages_without_layer_scale(tmp_path):
    """torchvision's own LayerNorm2d and Permute modules in ConvNeXt's stem, blocks (depthwise 7x7,
    Permute, LayerNorm, Linear, GELU, Linear, Permute) and downsampling; LayerScale and stochastic
    depth are left out (other kinds' work)."""
    from tests.torchvision_shim import import_torchvision

    import_torchvision()
    from torchvision.models.convnext import LayerNorm2d
    from torchvision.ops.misc import Permute

    def block(dim: int) -> nn.Module:
        layers = [nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1])]
        layers += [nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU()]
        return nn.Sequential(*layers, nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))

    class Residual(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.block = block(dim)

        def forward(self, x):
            return x + self.block(x)

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 16, 4, 4), LayerNorm2d(16, eps=1e-6)),
        Residual(16),
        nn.Sequential(LayerNorm2d(16, eps=1e-6), nn.Conv2d(16, 32, 2, 2)),
        Residual(32),
        nn.AdaptiveAvgPool2d(1),
        nn.Sequential(LayerNorm2d(32, eps=1e-6), nn.Flatten(1), nn.Linear(32, 10)),
    ).eval()
    imported = import_torch_model(model, [(3, 64, 64)])
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert "Permute" not in kinds and kinds.count("LayerNormalization") == 5
    assert imported.imported_parameters == torch_parameter_count(model)
    inputs = [np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)
