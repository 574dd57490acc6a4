"""Importing PyTorch models through torch.fx: a ResNet-18-style network from a Python file,
sequence models, and the cases the catalog cannot express.
"""

from __future__ import annotations

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
        self.grouped = nn.Conv2d(4, 4, 3, groups=2)
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


def test_max_pool_padding_without_relu_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, 2, padding=1)).eval()
    with pytest.raises(UnsupportedModelError) as caught:
        import_torch_model(model, [(3, 12, 12)])
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


ZOO = {"zoo": (Zoo, (4, 8, 8)), "conv1d": (Conv1dNet, (3, 10))}


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
    inputs = [np.random.default_rng(0).standard_normal((2, *shape)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)
