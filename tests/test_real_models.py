"""Real models cross over (issue 13), through the harness of benchmarks/bench_real_models.py.

Each slow case builds the model with its own library (random weights, randomised
BatchNorm statistics, eval mode), imports it, runs the generated program of the
other framework with the imported weights, and needs the source's outputs within
1e-4. A blocked model lists every blocker, grouped by kind with counts and node
names, and nothing is written.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from benchmarks.bench_real_models import (
    CASES,
    ROUTES,
    Result,
    _blocked,
    _finish,
    cross_over,
    group_blockers,
    measured,
    randomize_keras,
    randomize_torch,
    render,
    replace_section,
)

# Models that cross over today, per direction; the benchmark's table has them all.
CROSSING = [
    "torchvision/resnet18",
    "torchvision/mobilenet_v2",
    "torchvision/squeezenet1_1",
    "timm/resnet18",
    "keras/MobileNetV2",
    "keras/DenseNet121",
    "keras/VGG16",
    "keras/ResNet50V2",
    "keras/InceptionResNetV2",  # CustomScaleLayer: a Rescaling and an Add
    "keras/MobileNetV3Small",  # hard sigmoid as relu6(x + 3) * (1 / 6): Keras operations on numbers
    "keras-hub/vit_base_patch16_224",  # ViTPatchingAndEmbedding and ViTEncoder expanded
    "torchvision/convnext_tiny",  # ONNX writes GELU out with Erf
    "torchvision/shufflenet_v2_x0_5",  # ONNX: a fixed batch in the channel shuffle's reshape
    "torchvision/maxvit_t",  # einsum as MatMul, a relative position bias table read at indices
    "timm/vit_tiny_patch16_224",  # ONNX: attention written out, the class token's Expand
    "torchvision/swin_t",  # fx: window functions rebuilt; ONNX: windows folded into the batch
    "timm/swin_tiny_patch4_window7_224",  # view(-1, ws, ws, C), torch.roll, qkv.unbind(0)
    "timm/levit_128s",  # BatchNorm1d over (N * L, C)
    "timm/cait_xxs24_224",  # a class token added to a tensor
    "timm/maxvit_tiny_rw_224",  # attention masked by a relative bias, windows folded in the batch
]


@pytest.mark.slow
@pytest.mark.parametrize("name", CROSSING)
def test_real_models_cross_over(name):
    case = next(case for case in CASES if case.name == name)
    results = cross_over(case)
    assert [result.route for result in results] == list(ROUTES[case.framework])
    for result in results:
        assert result.status == "reproduces", (result.route, result.verdict)
        assert result.difference <= 1e-4 and result.parameters > 100_000  # a real model, with weights
        assert result.import_seconds > 0 and result.seconds >= result.import_seconds


BLOCKED_MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        a = torch.cumsum(self.conv(x), dim=2)
        b = torch.cumsum(a, dim=3).cumprod(dim=1)  # downstream of a blocker: still listed
        c = torch.logcumsumexp(b, dim=2)
        return self.fc(c.mean(dim=(2, 3)))
"""


def test_a_blocked_model_lists_every_blocker_grouped_and_writes_nothing(tmp_path, capsys):
    from studio.interop import UnsupportedModelError, import_model
    from studio.interop.commands import cmd_import, parse_import_args

    source = tmp_path / "net.py"
    source.write_text(textwrap.dedent(BLOCKED_MODEL), encoding="utf-8")
    target = f"{source}:Net"
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(target, input_shapes=[(3, 8, 8)], allow_code=True)
    groups = group_blockers(caught.value)
    assert [group[:3] for group in groups] == [
        ("torch.cumsum", 2, ["cumsum", "cumsum_1"]),
        ("Tensor.cumprod", 1, ["cumprod"]),
        ("torch.logcumsumexp", 1, ["logcumsumexp"]),
    ]
    assert groups[1][3] == "the tensor method .cumprod() has no catalog equivalent"
    result = _blocked(Result("net", "torch.fx → Keras", "failed"), caught.value)  # the table's line
    assert result.verdict == "blocked: torch.cumsum ×2, Tensor.cumprod ×1, torch.logcumsumexp ×1"
    output = tmp_path / "net.layers.json"
    argv = [target, "--input-shape", "3,8,8", "--allow-code", "--weights", "-o", str(output)]
    assert cmd_import(parse_import_args(argv)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: net.py:Net cannot be imported: 4 unsupported layers"
    assert err[1].startswith("  - torch.cumsum (2): cumsum, cumsum_1: ")
    assert err[2].startswith("  - Tensor.cumprod (1): cumprod: ")
    assert err[3].startswith("  - torch.logcumsumexp (1): logcumsumexp: ")
    assert err[-1] == "nothing was written"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["net.py"]


def test_peak_memory_is_measured_above_the_start():
    _, seconds, peak = measured(lambda: np.ones(50 * 2**20 // 8).sum())  # 50 MiB, touched
    assert seconds > 0 and 45 <= peak < 200
    _, _, small = measured(lambda: sum(range(1000)))
    assert small < 10  # the peak was reset: the 50 MiB above is not counted again


def test_the_table_goes_in_its_own_section_replaced_on_a_rerun(tmp_path):
    results = [
        Result("torchvision/resnet18", ROUTES["pytorch"][0], "reproduces", "3.1e-06", 3.1e-6, 11_000_000, 60),
        Result("keras/Foo", ROUTES["keras"][0], "differs", "2.0e-02", 2e-2),
        Result(
            "torchvision/swin_t",
            ROUTES["pytorch"][1],
            "blocked",
            "Roll ×2",
            blockers=[("Roll", 2, ["a", "b"], "torch.roll has no | catalog equivalent")],
        ),
    ]
    section = render(results, 12.0)
    assert "| `keras/Foo` | Keras → PyTorch | differs by 2.0e-02 |" in section
    assert "- torch.fx → Keras: 1 of 1 reproduce (1 reproduces)" in section
    assert "- `torchvision/swin_t` (ONNX → Keras): Roll ×2: a, b — torch.roll has no \\| catalog" in section
    report = tmp_path / "results.md"
    report.write_text("# Benchmarks\n\nother sections\n", encoding="utf-8")
    replace_section(report, section)
    replace_section(report, render(results[:1], 3.0))
    text = report.read_text(encoding="utf-8")
    assert (
        text.startswith("# Benchmarks\n\nother sections\n") and text.count("## Real models cross over") == 1
    )
    assert "keras/Foo" not in text and "torchvision/resnet18" in text


def test_constant_weights_are_randomised_and_constant_outputs_give_no_verdict():
    """A zero-initialised head (torchvision's ViT) makes every output 0 in both programs: such a
    comparison proves nothing, so the weights are spread and a constant source output fails."""
    import keras
    import numpy as np
    import torch

    head = torch.nn.Linear(4, 3)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    randomize_torch(head)
    assert head.weight.std() > 0.005 and head.bias.std() > 0.005
    scale = keras.layers.Dense(3, kernel_initializer="ones", bias_initializer="zeros")
    model = keras.Sequential([keras.Input((4,)), scale])
    randomize_keras(model)
    kernel, bias = (np.asarray(weight) for weight in scale.weights)
    assert kernel.std() > 0.05 and 0.5 <= kernel.min() and kernel.max() <= 1.5 and bias.std() > 0.005

    class Imported:
        imported_parameters, project = 15, type("Project", (), {"graph": []})()

    result = _finish(
        Result("m", "torch.fx → Keras", "not run"), Imported(), [np.zeros((2, 3))], [np.zeros((2, 3))]
    )
    assert result.status == "failed" and result.detail == "the source model's outputs are constant"


def test_a_float32_difference_is_judged_again_in_float64():
    """Rounding a chaotic random network amplifies passes in float64; a real difference does not."""
    import numpy as np

    class Imported:
        imported_parameters, project = 15, type("Project", (), {"graph": []})()
        outputs = [type("Info", (), {"channels_first": False})()]

    want = np.linspace(-3.0, 3.0, 6).reshape(2, 3)
    noisy = [want + 1e-3]
    rounding = _finish(
        Result("m", "r", "not run"), Imported(), noisy, [want], lambda: ([want + 1e-12], [want])
    )
    assert rounding.status == "reproduces" and rounding.verdict.startswith(
        "reproduces in float64 (3e-13; in float32 3e-04"
    )
    real = _finish(Result("m", "r", "not run"), Imported(), noisy, [want], lambda: ([want + 1e-3], [want]))
    assert real.status == "differs" and real.verdict == "differs by 3.3e-04"
    untested = _finish(Result("m", "r", "not run"), Imported(), noisy, [want], lambda: None)
    assert untested.status == "differs"
