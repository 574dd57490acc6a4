"""Importing a 25M-parameter model: time and peak memory against the weights' own bytes.

    python -m benchmarks.bench_import [--quick]

Targets (issue 13): at most 10 s, and a peak resident memory at most 3x the
bytes of the model's weights (float32), for torchvision's ResNet-50 through
torch.fx and keras.applications' ResNet50 from a ``.keras`` file (and, for reference, the same
torchvision model exported to ONNX and imported from the ``.onnx`` file). Each case
runs in a fresh child process: the model is built first (not measured), then
the import alone is timed, and its peak resident memory above the process's
resident memory before it is read from ``/proc`` (``VmHWM`` after a reset
through ``/proc/self/clear_refs``): tracemalloc would see neither torch's nor
TensorFlow's allocations.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import REPO, load_average, table  # noqa: E402

SECONDS_TARGET, MEMORY_TARGET = 10.0, 3.0
CASES = {
    "torchvision/resnet50 (torch.fx)": "torch",
    "keras.applications ResNet50 (.keras file)": "keras",
    "torchvision/resnet50 (torch.onnx.export, .onnx file)": "onnx",
}
MEASURES = {"torch": "measure_torch", "keras": "measure_keras", "onnx": "measure_onnx"}


def measure_torch() -> dict:
    import torch

    from studio.interop.torch_import import import_torch_model
    from studio.interop.zoo import build_model, find_model

    torch.manual_seed(0)
    model = build_model(find_model("torchvision/resnet50"))
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    return _figures(lambda: import_torch_model(model, [(3, 224, 224)]), weights)


def measure_keras() -> dict:
    import keras

    from studio.interop import import_model

    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None)
    weights = model.count_params() * 4
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resnet50.keras"
        model.save(path)
        del model
        return _figures(lambda: import_model(path), weights)


def measure_onnx() -> dict:
    import warnings

    import torch

    from studio.interop import import_model
    from studio.interop.zoo import build_model, find_model

    torch.manual_seed(0)
    model = build_model(find_model("torchvision/resnet50"))
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resnet50.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False)
        del model
        return _figures(lambda: import_model(path), weights)


def _cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its waited-for children (the HDF5 check)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _figures(run_import, weights_bytes: int) -> dict:
    from benchmarks.bench_real_models import measured

    cpu = _cpu_seconds()
    imported, seconds, peak = measured(run_import)
    return {
        "parameters": imported.imported_parameters,
        "weights_mib": weights_bytes / 2**20,
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu,
        "peak_mib": peak,
    }


def run_child(kind: str) -> dict:
    from benchmarks.run_all import child_env

    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_import", "--child", kind],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} import benchmark failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same (one run per case already)")
    parser.add_argument("--child", choices=sorted(set(CASES.values())), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(globals()[MEASURES[args.child]]()))
        return 0
    rows = []
    for label, kind in CASES.items():
        figures = run_child(kind)
        times = figures["peak_mib"] / figures["weights_mib"]
        ok = figures["seconds"] <= SECONDS_TARGET and times <= MEMORY_TARGET
        rows.append(
            (
                label,
                f"{figures['parameters']:,}",
                f"{figures['weights_mib']:.0f}",
                f"{figures['seconds']:.2f}",
                f"{figures['cpu_seconds']:.2f}",
                f"{figures['peak_mib']:.0f}",
                f"{times:.2f}×",
                "yes" if ok else "**no**",
            )
        )
    print(
        f"The import alone, in a fresh process (model built first). Targets: ≤ {SECONDS_TARGET:g} s and a peak "
        f"resident memory ≤ {MEMORY_TARGET:g}× the weights' bytes.\n"
    )
    headers = (
        "model",
        "parameters",
        "weights (MiB)",
        "import (s)",
        "CPU (s)",
        "peak above start (MiB)",
        "peak / weights",
        "meets",
    )
    print(table(headers, rows, "lrrrrrrl"))
    print(
        "\nCPU: the import's processor time (its threads, and the child process that reads an HDF5 file "
        "through before Keras opens it); on a busy shared machine the wall time grows, this does not. "
        f"Load average at the end: {load_average()}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
