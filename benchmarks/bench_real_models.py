"""Real models cross over: import today's architectures and run them in the other framework.

    python -m benchmarks real-models [--only resnet18,keras/VGG16] [--timeout 420] [--out PATH] [--readme]
    python -m benchmarks real-models --only keras/ --json keras.jsonl     # runs side by side, each saved,
    python -m benchmarks real-models --from-json keras.jsonl torch.jsonl  # then one report from them

For each model of :data:`CASES` (every torchvision classification family at
its smallest variant, every keras.applications model, a few timm models and
keras-hub backbones from small configs), built by its own library with random
weights, randomised BatchNorm statistics, in eval mode:

- a PyTorch model goes ``torch.fx import -> project -> generated Keras model``
  and ``torch.onnx.export -> ONNX import -> generated Keras model``;
- a Keras model goes ``Keras import -> project -> generated PyTorch model``;

and the generated model, with the imported weights, is run on a random batch
of 2 and compared with the source model (:func:`studio.interop.check.difference`:
max abs difference, relative once outputs exceed 1; it reproduces within 1e-4).
Each model runs in its own child process under a timeout; the child reports,
per route, the status (reproduces / differs by X / blocked: the importer's
grouped blockers / exporter failed / failed), the import's time and peak
resident memory above what the process held before it (``VmHWM`` from
``/proc``, reset per route through ``/proc/self/clear_refs``: tracemalloc sees
neither torch's nor TensorFlow's allocations), and the whole route's time.

The table goes into ``benchmarks/results.md`` (its own section, replaced on a
rerun) and, with ``--readme``, into the README's crossover section.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import REPO, table  # noqa: E402

TOLERANCE = 1e-4
IN_FLOAT64 = "in float64"
RESULTS = REPO / "benchmarks" / "results.md"
README = REPO / "README.md"
MARK = "<!-- real-models {} -->"  # the section's start and end markers, in results.md and the README
RESULT_LINE = "REAL-MODEL-RESULT "  # a child's result lines start with this


@dataclass(frozen=True)
class Case:
    """A zoo model (:mod:`studio.interop.zoo`) at a small input, with builder overrides."""

    zoo: str
    input_shape: tuple[int, ...]  # no batch; channels-first for PyTorch models, channels-last for Keras
    options: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        return self.zoo

    @property
    def framework(self) -> str:
        return "keras" if self.zoo.startswith("keras") else "pytorch"


def _torch(zoo: str, size: int = 64, **options) -> Case:
    return Case(zoo, (3, size, size), {"num_classes": 10, **options})


def _keras(application: str, size: int = 32) -> Case:
    return Case(f"keras/{application}", (size, size, 3), {"classes": 10, "classifier_activation": None})


#: 64 x 64 images, except where the architecture needs more: AlexNet's and VGG's adaptive
#: pooling to 6 x 6 / 7 x 7 would upsample, MaxViT's 7 x 7 windows need 224, Inception v3 75.
TORCHVISION_CASES = (
    _torch("torchvision/alexnet", 224),
    _torch("torchvision/convnext_tiny"),
    _torch("torchvision/densenet121"),
    _torch("torchvision/efficientnet_b0"),
    _torch("torchvision/efficientnet_v2_s"),
    _torch("torchvision/googlenet", aux_logits=False, init_weights=False),
    _torch("torchvision/inception_v3", 96, aux_logits=False, init_weights=False),
    _torch("torchvision/maxvit_t", 224),
    _torch("torchvision/mnasnet0_5"),
    _torch("torchvision/mobilenet_v2"),
    _torch("torchvision/mobilenet_v3_small"),
    _torch("torchvision/regnet_x_400mf"),
    _torch("torchvision/regnet_y_400mf"),
    _torch("torchvision/resnet18"),
    _torch("torchvision/resnext50_32x4d"),
    _torch("torchvision/shufflenet_v2_x0_5"),
    _torch("torchvision/squeezenet1_1"),
    _torch("torchvision/swin_t"),
    _torch("torchvision/vgg11", 224),
    _torch("torchvision/vit_b_16", image_size=64),
    _torch("torchvision/wide_resnet50_2"),
)
TIMM_CASES = (
    _torch("timm/resnet18"),
    _torch("timm/efficientnet_b0"),
    _torch("timm/mobilenetv3_small_100"),
    _torch("timm/convnext_atto"),
    _torch("timm/regnetx_002"),
    _torch("timm/vit_tiny_patch16_224", img_size=64),
    # 4 x 4 windows at 64 x 64: two windows a side at the last stage, shifted as at 224
    _torch("timm/swin_tiny_patch4_window7_224", img_size=64, window_size=4),
    _torch("timm/levit_128s", img_size=64),  # BatchNorm1d over (N * L, C)
    _torch("timm/cait_xxs24_224", img_size=64),  # class attention: a token added to a tensor
    _torch("timm/coatnet_0_rw_224", img_size=64),  # attention with a relative position bias mask
    _torch("timm/maxvit_tiny_rw_224", img_size=64),  # block and grid windows folded into the batch
    _torch("timm/resnest14d"),  # split attention: a sum over the radix, a softmax over axis 1
    _torch("timm/twins_svt_small", img_size=64),  # ONNX only: torch.fx cannot trace its control flow
)
#: Every keras.applications model at the smallest input it accepts (32, but Xception 71 and
#: the Inceptions 75), with 10 classes and logits out.
_KERAS_MINIMUM = {"Xception": 71, "InceptionV3": 75, "InceptionResNetV2": 75}
KERAS_CASES = tuple(
    _keras(name, _KERAS_MINIMUM.get(name, 32))
    for name in (
        "ConvNeXtTiny ConvNeXtSmall ConvNeXtBase ConvNeXtLarge ConvNeXtXLarge DenseNet121 DenseNet169 "
        "DenseNet201 EfficientNetB0 EfficientNetB1 EfficientNetB2 EfficientNetB3 EfficientNetB4 "
        "EfficientNetB5 EfficientNetB6 EfficientNetB7 EfficientNetV2B0 EfficientNetV2B1 EfficientNetV2B2 "
        "EfficientNetV2B3 EfficientNetV2S EfficientNetV2M EfficientNetV2L InceptionResNetV2 InceptionV3 "
        "MobileNet MobileNetV2 MobileNetV3Small MobileNetV3Large NASNetMobile NASNetLarge ResNet50 "
        "ResNet101 ResNet152 ResNet50V2 ResNet101V2 ResNet152V2 VGG16 VGG19 Xception"
    ).split()
)
KERAS_HUB_CASES = (
    Case("keras-hub/resnet_18", (64, 64, 3)),
    Case("keras-hub/vgg_11", (64, 64, 3)),
    Case("keras-hub/densenet_121", (64, 64, 3)),
    Case(  # the ViT-B/16 architecture, made small: 2 layers of width 64
        "keras-hub/vit_base_patch16_224",
        (64, 64, 3),
        {"num_layers": 2, "num_heads": 2, "hidden_dim": 64, "mlp_dim": 128},
    ),
)
CASES = TORCHVISION_CASES + TIMM_CASES + KERAS_HUB_CASES + KERAS_CASES
ORDER = {case.name: index for index, case in enumerate(CASES)}
ROUTES = {"pytorch": ("torch.fx → Keras", "ONNX → Keras"), "keras": ("Keras → PyTorch",)}


@dataclass
class Result:
    """One model through one route."""

    model: str
    route: str
    status: str  # "reproduces", "differs", "blocked", "exporter failed", "failed", "timed out", "not run"
    detail: str = ""  # the difference, the grouped blockers, or the error's first line
    difference: float | None = None
    parameters: int | None = None
    layers: int | None = None
    import_seconds: float | None = None
    import_peak_mib: float | None = None  # peak resident memory during the import, above the start
    seconds: float | None = None  # the whole route: export (ONNX), import, build, run, compare
    blockers: list[tuple] = field(default_factory=list)  # (kind, count, names, reason), from group_blockers

    @property
    def verdict(self) -> str:
        if self.status == "reproduces" and self.detail.startswith(IN_FLOAT64):
            return f"reproduces {self.detail}"
        if self.status == "differs":
            return f"differs by {self.difference:.1e}"
        if self.status in ("blocked", "exporter failed", "failed", "timed out"):
            return f"{self.status}: {self.detail}" if self.detail else self.status
        return self.status


# ----- measuring, in the child process ---------------------------------------------------


def _proc_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> int:
    """Reset the process's peak resident memory to its current value; returns that value (KiB)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak then covers the process's whole life
    return _proc_kib("VmRSS")


def peak_above(start_kib: int) -> float:
    """MiB of peak resident memory above ``start_kib`` (see :func:`reset_peak`)."""
    return max(0, _proc_kib("VmHWM") - start_kib) / 1024


def measured(function: Callable[[], object]) -> tuple[object, float, float]:
    """``function()``, its seconds, and its peak resident memory above the start (MiB)."""
    start = reset_peak()
    began = time.perf_counter()
    value = function()
    return value, time.perf_counter() - began, peak_above(start)


def _spread(values, rng):
    """Values for a weight that its initialiser made constant (a zero head, a LayerScale of 1e-5,
    a zero class token): random around that constant, so that it can no longer hide a difference."""
    constant = float(values.reshape(-1)[0])
    if constant == 0.0:
        return rng.normal(0.0, 0.02, values.shape)
    return constant * rng.uniform(0.5, 1.5, values.shape)


def _is_constant(values) -> bool:
    return values.size > 1 and bool((values == values.reshape(-1)[0]).all())


def randomize_torch(model, seed: int = 0) -> None:
    """Random BatchNorm statistics and affine weights, away from their identity initial values, and
    random values for every other parameter its initialiser left constant."""
    import numpy as np
    import torch

    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            values = parameter.detach().cpu().numpy()
            if parameter.is_floating_point() and _is_constant(values):
                parameter.copy_(torch.from_numpy(_spread(values, rng).astype(values.dtype)))
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                size = module.running_mean.shape
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(size, generator=generator) * 0.1)


def _keras_layers(model) -> list:
    found = []
    for layer in model.layers:
        found += _keras_layers(layer) if hasattr(layer, "layers") else [layer]
    return found


def randomize_keras(model, seed: int = 0) -> None:
    """Random moving statistics and affine weights for every BatchNormalization, nested ones too,
    and random values for every other trainable weight its initialiser left constant."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in _keras_layers(model):
        if not isinstance(layer, keras.layers.BatchNormalization):
            for variable in layer.trainable_weights:
                values = np.asarray(variable)
                if np.issubdtype(values.dtype, np.floating) and _is_constant(values):
                    variable.assign(_spread(values, rng).astype(values.dtype))
        if isinstance(layer, keras.layers.BatchNormalization):
            arrays = layer.get_weights()
            size = arrays[-1].shape
            gamma_beta = [rng.uniform(0.5, 1.5, size), rng.normal(0, 0.1, size)]
            stats = [rng.normal(0, 0.1, size), rng.uniform(0.5, 1.5, size)]
            kept = [gamma_beta[0]] * layer.scale + [gamma_beta[1]] * layer.center
            layer.set_weights([*kept, *stats])


def build_source(case: Case):
    """The case's model, built by its library with random weights and randomised statistics."""
    from studio.interop.zoo import build_model, find_model

    model = find_model(case.zoo)
    if case.framework == "pytorch":
        import torch

        torch.manual_seed(0)
        built = build_model(model, **case.options)
        randomize_torch(built)
        return built.eval()
    import keras

    keras.utils.set_random_seed(0)
    built = build_model(model, input_shape=case.input_shape, **case.options)
    randomize_keras(built)
    return built


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:240]


def group_blockers(error) -> list[tuple[str, int, list[str], str]]:
    """The importer's blockers grouped by source kind, in the order found: (kind, count, names,
    the first one's reason)."""
    names: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for problem in error.problems:
        names.setdefault(problem.source_kind, []).append(problem.name)
        reasons.setdefault(problem.source_kind, problem.reason)
    return [(kind, len(found), found, reasons[kind]) for kind, found in names.items()]


def _blocked(result: Result, error) -> Result:
    result.status = "blocked"
    result.blockers = group_blockers(error)
    result.detail = ", ".join(f"{kind} ×{count}" for kind, count, *_ in result.blockers)
    return result


def _outputs_list(value) -> list:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _compare(imported, generated_outputs, expected) -> float:
    from studio.interop.check import difference, to_project_layout

    return max(
        difference(got, to_project_layout(want, info))
        for info, got, want in zip(imported.outputs, generated_outputs, expected, strict=True)
    )


def _finish(result: Result, imported, generated_outputs, expected, in_float64=None) -> Result:
    """The verdict of one route. ``in_float64()``: (the generated program's outputs, the reference's),
    both computed in float64, or None where there is no float64 reference. A deep network with
    random weights can amplify float32 rounding past the tolerance (EfficientNetV2-M: a 1e-6 change
    of its input changes its output by 88%); in float64 the rounding is 2^29 times smaller, so a
    program that computes the same function agrees there, and one that does not, still differs."""
    import numpy as np

    result.parameters = imported.imported_parameters
    result.layers = len(imported.project.graph)
    if all(np.ptp(output) == 0 for output in expected):  # nothing to compare: no verdict from it
        result.status, result.detail = "failed", "the source model's outputs are constant"
        return result
    result.difference = _compare(imported, generated_outputs, expected)
    result.status = "reproduces" if result.difference <= TOLERANCE else "differs"
    result.detail = f"{result.difference:.1e}"
    pair = in_float64() if result.status == "differs" and in_float64 is not None else None
    if pair is not None:
        exact = _compare(imported, *pair)
        if exact <= TOLERANCE:
            result.status = "reproduces"
            result.detail = (
                f"{IN_FLOAT64} ({exact:.0e}; in float32 {result.difference:.0e}: the random network "
                "amplifies rounding)"
            )
    return result


def _as_float64(array):
    import numpy as np

    return array.astype(np.float64) if np.issubdtype(array.dtype, np.floating) else array


def _run_keras(imported, inputs, float64: bool = False) -> list:
    """The generated Keras program with the imported weights, on source-layout ``inputs``."""
    import keras
    import numpy as np

    from codegen.runtime import exact_rescaling_constants, keras_float64
    from studio.interop.check import to_project_layout
    from studio.interop.export import build_keras_model

    with keras_float64(keras) if float64 else contextlib.nullcontext():
        model = build_keras_model(imported.project, imported.weights)
    if float64:
        exact_rescaling_constants(model)
    arrays = [to_project_layout(array, info) for info, array in zip(imported.inputs, inputs, strict=True)]
    arrays = [_as_float64(array) for array in arrays] if float64 else arrays
    outputs = model(arrays if len(arrays) > 1 else arrays[0], training=False)
    return [np.asarray(output) for output in _outputs_list(outputs)]


def _run_torch(imported, inputs, float64: bool = False) -> list:
    """The generated PyTorch program with the imported weights, outputs in the project's layout."""
    import torch

    from codegen.plan import build_plan
    from codegen.runtime import to_keras_layout, to_torch_layout
    from studio.interop.export import build_torch_model

    model = build_torch_model(imported.project, imported.weights)
    if float64:
        model = model.double()
        inputs = [_as_float64(array) for array in inputs]
    plan = build_plan(imported.project)
    by_name = {info.layer: array for info, array in zip(imported.inputs, inputs, strict=True)}
    tensors = [
        torch.from_numpy(to_torch_layout(by_name[layer.node.name], layer.layout)) for layer in plan.inputs
    ]
    with torch.no_grad():
        outputs = _outputs_list(model(*tensors))
    by_output = {
        layer.node.name: to_keras_layout(output.numpy(), layer.layout)
        for layer, output in zip(plan.outputs, outputs, strict=True)
    }
    return [by_output[info.layer] for info in imported.outputs]


def torch_routes(case: Case, model, folder: Path) -> list[Result]:
    import numpy as np
    import torch

    from studio.interop.onnx_import import import_onnx_file
    from studio.interop.torch_import import import_torch_model

    inputs = [np.random.default_rng(1).standard_normal((2, *case.input_shape)).astype("float32")]
    with torch.no_grad():
        expected = [t.numpy() for t in _outputs_list(model(*map(torch.from_numpy, inputs)))]

    def source_in_float64(imported) -> tuple[list, list]:
        """The Keras program and the source model, both in float64."""
        double = copy.deepcopy(model).double()
        with torch.no_grad():
            outputs = double(*[torch.from_numpy(_as_float64(array)) for array in inputs])
        return _run_keras(imported, inputs, float64=True), [t.numpy() for t in _outputs_list(outputs)]

    def to_keras(imported) -> list:
        return _run_keras(imported, inputs)

    fx = Result(case.name, ROUTES["pytorch"][0], "failed")
    importer = functools.partial(import_torch_model, model, [case.input_shape], source=case.name)
    _route(fx, importer, to_keras, expected, source_in_float64)

    via_onnx = Result(case.name, ROUTES["pytorch"][1], "failed")
    began = time.perf_counter()
    path = folder / "model.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (torch.from_numpy(inputs[0]),), str(path), dynamo=False, opset_version=17
            )
    except Exception as error:  # noqa: BLE001
        via_onnx.status, via_onnx.detail = "exporter failed", _first_line(error)
    else:
        _route(via_onnx, functools.partial(import_onnx_file, path), to_keras, expected, source_in_float64)
    via_onnx.seconds = time.perf_counter() - began  # the export too
    return [fx, via_onnx]


def keras_routes(case: Case, model) -> list[Result]:
    import numpy as np

    from studio.interop.keras_import import import_keras_model

    inputs = [np.random.default_rng(1).standard_normal((2, *case.input_shape)).astype("float32")]
    expected = [np.asarray(t) for t in _outputs_list(model(inputs[0], training=False))]

    def programs_in_float64(imported) -> tuple[list, list] | None:
        """The PyTorch and the Keras program in float64, where the Keras program (the source's own
        layers, rebuilt) reproduces the source in float32; None where it does not."""
        if _compare(imported, _run_keras(imported, inputs), expected) > TOLERANCE:
            return None
        return _run_torch(imported, inputs, float64=True), _run_keras(imported, inputs, float64=True)

    def to_torch(imported) -> list:
        return _run_torch(imported, inputs)

    result = Result(case.name, ROUTES["keras"][0], "failed")
    importer = functools.partial(import_keras_model, model, source=case.name)
    return [_route(result, importer, to_torch, expected, programs_in_float64)]


def _route(result: Result, importer, run, expected, in_float64) -> Result:
    """One route, into ``result``: the import (timed, with its peak memory), the other framework's
    program on the inputs (``run(imported)``), the verdict (``in_float64(imported)``: see _finish).
    A blocked import and any failure become the result, never an exception."""
    from studio.interop import UnsupportedModelError

    began = time.perf_counter()
    try:
        imported, result.import_seconds, result.import_peak_mib = measured(importer)
        _finish(result, imported, run(imported), expected, lambda: in_float64(imported))
    except UnsupportedModelError as error:
        _blocked(result, error)
    except Exception as error:  # noqa: BLE001 - every failure is a row of the table
        result.detail = _first_line(error)
        traceback.print_exc()
    result.seconds = time.perf_counter() - began
    return result


def cross_over(case: Case) -> list[Result]:
    """Every route of ``case``, in this process (tests call this; the benchmark runs it in a child)."""
    from studio.stack import call_with_deep_stack

    try:
        model = build_source(case)
    except Exception as error:  # noqa: BLE001
        return [
            Result(case.name, route, "failed", f"building it: {_first_line(error)}")
            for route in ROUTES[case.framework]
        ]
    if case.framework == "keras":
        return call_with_deep_stack(keras_routes, case, model)
    with tempfile.TemporaryDirectory() as folder:
        return call_with_deep_stack(torch_routes, case, model, Path(folder))


# ----- running every case, each in a child process ---------------------------------------


def child_main(name: str) -> int:
    case = next(case for case in CASES if case.name == name)
    for result in cross_over(case):
        print(RESULT_LINE + json.dumps(asdict(result)), flush=True)
    return 0


def run_case(case: Case, timeout: float) -> list[Result]:
    from benchmarks.run_all import child_env

    command = [sys.executable, "-m", "benchmarks.bench_real_models", "--child", case.name]
    began = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return [
            Result(
                case.name, route, "timed out", f"after {timeout:.0f} s", seconds=time.perf_counter() - began
            )
            for route in ROUTES[case.framework]
        ]
    results = [
        Result(**json.loads(line[len(RESULT_LINE) :]))
        for line in done.stdout.splitlines()
        if line.startswith(RESULT_LINE)
    ]
    if not results:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return [
            Result(case.name, route, "failed", f"exit {done.returncode}: {tail[0][:200]}")
            for route in ROUTES[case.framework]
        ]
    return results


# ----- the report ------------------------------------------------------------------------


def _figure(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render(results: list[Result], seconds: float, how: str = "") -> str:
    """The markdown section: a summary line per route, the table, and every blocker list in full.

    ``how``: how the results were gathered, when not by one run of this command.
    """
    routes = [route for routes in ROUTES.values() for route in routes]
    lines = [MARK.format("start"), "## Real models cross over", ""]
    lines.append(
        f"`python -m benchmarks real-models` — {len(results)} model/route pairs in {seconds:.0f} s"
        f"{f' ({how})' if how else ''}; {time.strftime('%Y-%m-%d', time.gmtime())}. "
        "Random weights, randomised BatchNorm statistics, eval mode, a random batch of 2; "
        f"reproduces means max abs difference ≤ {TOLERANCE:g} (relative once outputs exceed 1). "
        "Import: the importer alone (seconds, peak resident memory above the process's before it)."
    )
    lines.append("")
    for route in routes:
        counts = Counter(result.status for result in results if result.route == route)
        if counts:
            total = sum(counts.values())
            parts = ", ".join(f"{count} {status}" for status, count in counts.most_common())
            lines.append(f"- {route}: {counts.get('reproduces', 0)} of {total} reproduce ({parts})")
    lines.append("")
    rows = [
        (
            f"`{result.model}`",
            result.route,
            result.verdict.replace("|", "\\|"),
            "" if result.parameters is None else f"{result.parameters:,}",
            _figure(result.import_seconds),
            _figure(result.import_peak_mib, 0),
            _figure(result.seconds),
        )
        for result in results
    ]
    headers = ("model", "route", "status", "parameters", "import (s)", "import peak (MiB)", "route (s)")
    lines.append(table(headers, rows, "lllrrrr"))
    blocked = [result for result in results if result.blockers]
    if blocked:
        lines += ["", "Blockers in full (kind ×count: nodes — the first one's reason):", ""]
        for result in blocked:
            groups = "; ".join(_blocker_text(*blocker) for blocker in result.blockers)
            lines.append(f"- `{result.model}` ({result.route}): {groups}")
    lines.append(MARK.format("end"))
    return "\n".join(lines)


def _blocker_text(kind: str, count: int, names: list[str], reason: str = "") -> str:
    shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
    because = f" — {reason[:160]}{'…' if len(reason) > 160 else ''}" if reason else ""
    return f"{kind} ×{count}: {shown}{because}".replace("|", "\\|")


def replace_section(path: Path, section: str) -> None:
    """Put ``section`` (with its markers) in place of the old one in ``path``, or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(re.escape(MARK.format("start")) + ".*?" + re.escape(MARK.format("end")), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def _matches(part: str, case: Case) -> bool:
    if part.endswith("/"):  # a whole library: keras/, torchvision/
        return case.name.startswith(part)
    return part == case.name or case.name.endswith("/" + part)


def select(only: str | None) -> list[Case]:
    """The cases named in ``only`` (names, short names or ``library/``), in the order given."""
    if not only:
        return list(CASES)
    chosen: list[Case] = []
    for part in filter(None, (part.strip() for part in only.split(","))):
        chosen += [case for case in CASES if _matches(part, case) and case not in chosen]
    if not chosen:
        raise SystemExit(f"no case matches {only!r}; cases: {', '.join(case.name for case in CASES)}")
    return chosen


def load_results(paths: list[Path]) -> list[Result]:
    """Results saved by ``--json`` runs (one JSON object a line), in the order of :data:`CASES`."""
    results: dict[tuple[str, str], Result] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                result = Result(**json.loads(line))
                results.setdefault((result.model, result.route), result)  # the first run of a pair counts
    return sorted(results.values(), key=lambda result: ORDER.get(result.model, len(ORDER)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks real-models", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", metavar="NAMES", help="comma-separated cases, e.g. resnet18,keras/VGG16")
    parser.add_argument("--timeout", type=float, default=420, help="seconds per model (default %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="report to update (default %(default)s)")
    parser.add_argument(
        "--json", type=Path, help="also append each result here as it comes (a JSON object a line)"
    )
    parser.add_argument(
        "--from-json", type=Path, nargs="+", metavar="PATH", help="write the report from saved results only"
    )
    parser.add_argument("--readme", action="store_true", help="also update the README's crossover table")
    parser.add_argument("--quick", action="store_true", help="three small models only (a smoke run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.from_json:
        results = load_results(args.from_json)
        seconds = sum(result.seconds or 0 for result in results)
        measured_models = {result.model for result in results}
        results += [  # the cases the saved runs did not reach, too
            Result(case.name, route, "not run")
            for case in CASES
            if case.name not in measured_models
            for route in ROUTES[case.framework]
        ]
        results.sort(key=lambda result: ORDER.get(result.model, len(ORDER)))
    else:
        quick = "torchvision/resnet18,keras/MobileNetV2,keras-hub/resnet_18"
        results, began = [], time.perf_counter()
        for case in select(quick if args.quick else args.only):
            for result in run_case(case, args.timeout):
                print(
                    f"{result.model:40} {result.route:18} {result.verdict[:100]}", file=sys.stderr, flush=True
                )
                if args.json:
                    with args.json.open("a", encoding="utf-8") as saved:
                        saved.write(json.dumps(asdict(result)) + "\n")
                results.append(result)
        seconds = time.perf_counter() - began
    how = (
        f"the routes' times summed over the runs saved in {len(args.from_json)} file(s)"
        if args.from_json
        else ""
    )
    section = render(results, seconds, how)
    print(section)
    if args.out:
        replace_section(args.out, section)
    if args.readme:
        replace_section(
            README, section.replace("## Real models cross over\n\n", "", 1)
        )  # the README has its own heading
    return 0


if __name__ == "__main__":
    sys.exit(main())
