"""The studio's training against hand-written training loops, per framework, and the cost of streaming.

    .venv/bin/python benchmarks/bench_training.py [--quick] [--epochs 10] [--repeats 3] [--models a,b] [--threads 1]

1. End to end, per model and framework, interleaved in the same run:

   * studio: a TrainingRun (child process; tf.data or the PyTorch loop,
     per-batch messages, metrics.jsonl, epoch bookkeeping);
   * baseline: the idiomatic loop for the same generated model, data and
     batch size, in its own spawned process: Keras ``model.fit(x, y, ...)``
     on arrays; PyTorch a loop over shuffled index batches (and, for
     reference, the exported script's DataLoader loop).

   Both validate every epoch. Each run's figure is its steady epoch (the
   median time between consecutive epoch ends, after the first epoch); the
   best of the repeats is kept, since other processes on a shared machine
   only ever slow a run down.

2. PyTorch in one process, one studio epoch and one hand-written epoch in
   turn: the overhead of the engine's loop without process start-up noise.

3. The cost of metric streaming per batch.

Every training process gets ``--threads`` compute threads (default 1), on both sides.

The machine this runs on may be shared: rerun when the figures scatter.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.report import overhead, ratio, table  # noqa: E402
from studio.training import RunConfig, TrainingRun  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
MODELS = ("lenet_digits", "mlp_iris")


# ----- shared set-up (also run inside the baseline processes) -------------------------


def _session(model: str, framework: str, epochs: int):
    from studio.training.session import prepare_session

    config = RunConfig.from_project(EXAMPLES / f"{model}.layers.json", framework, epochs=epochs)
    return prepare_session(config)


def _steady(epoch_ends: list[float]) -> float:
    """The median epoch time after the first epoch, from the times at which epochs ended."""
    gaps = np.diff(epoch_ends)
    return float(np.median(gaps)) if len(gaps) else float("nan")


# ----- baselines: hand-written loops --------------------------------------------------


def keras_baseline(model: str, epochs: int, results) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from codegen.runtime import load_module

    session = _session(model, "keras", epochs)
    data, config = session.data, session.config
    code = session.code["keras"]
    program = load_module(code.source, "baseline")
    net = program.build_model()
    from codegen import recipes

    net.compile(
        optimizer=program.make_optimizer(config.learning_rate),
        loss=recipes.keras_loss(keras, config.loss, session.logits),
        metrics=recipes.keras_metrics(keras, config.loss, session.logits, session.classification),
    )
    ends: list[float] = []

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    net.fit(
        data.x_train,
        data.y_train,
        batch_size=config.batch_size,
        epochs=epochs,
        validation_data=(data.x_val, data.y_val),
        callbacks=[EpochClock()],
        verbose=0,
    )
    results.put(_steady(ends))


def torch_baseline(model: str, epochs: int, results, dataloader: bool = False) -> None:
    import torch

    from codegen import recipes
    from codegen.runtime import load_module, to_torch_layout

    session = _session(model, "pytorch", epochs)
    data, config = session.data, session.config
    code = session.code["pytorch"]
    program = load_module(code.source, "baseline")
    net = program.build_model()
    optimizer = program.make_optimizer(net.parameters(), config.learning_rate)
    loss_fn = recipes.torch_loss(torch, config.loss, session.logits)
    layout = session.input.layout
    x_train = torch.from_numpy(np.ascontiguousarray(to_torch_layout(data.x_train, layout)))
    x_val = torch.from_numpy(np.ascontiguousarray(to_torch_layout(data.x_val, layout)))
    y_train, y_val = torch.from_numpy(data.y_train), torch.from_numpy(data.y_val)
    size = config.batch_size
    if dataloader:
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=size, shuffle=True)
    ends: list[float] = []
    for _ in range(epochs):
        net.train()
        batches = loader if dataloader else _shuffled(x_train, y_train, size)
        for x, y in batches:
            optimizer.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            total = sum(
                loss_fn(net(x_val[i : i + size]), y_val[i : i + size]).item()
                for i in range(0, len(x_val), size)
            )
        assert np.isfinite(total)
        ends.append(time.perf_counter())
    results.put(_steady(ends))


def _shuffled(x, y, size: int):
    import torch

    order = torch.randperm(len(x))
    for start in range(0, len(x), size):
        index = order[start : start + size]
        yield x[index], y[index]


# ----- the studio ---------------------------------------------------------------------


def studio_run(model: str, framework: str, epochs: int, folder: Path) -> float:
    config = RunConfig.from_project(
        EXAMPLES / f"{model}.layers.json", framework, epochs=epochs, export_onnx=False, out_dir=str(folder)
    )
    run = TrainingRun(config)
    run.start()
    run.wait()
    run.close()
    if run.outcome["type"] != "finished":
        raise RuntimeError(run.outcome)
    return _steady([m["time"] for m in run.messages if m["type"] == "epoch"])


def in_child(target, *args) -> float:
    """``target(*args, results)`` in a spawned process; the figure it puts on ``results``."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=target, args=(*args, results))
    process.start()
    while True:
        try:
            value = results.get(timeout=1.0)
            break
        except queue.Empty:
            if not process.is_alive():  # one last look: it may have put its figure, then exited
                try:
                    value = results.get(timeout=1.0)
                    break
                except queue.Empty:
                    raise RuntimeError(
                        f"{target.__name__}{args} exited with status {process.exitcode} and no figure"
                    ) from None
    process.join()
    return value


# ----- streaming cost -----------------------------------------------------------------


def streaming_cost_us(batches: int = 20000) -> float:
    """Microseconds per batch for add + due + grouped send + the metrics.jsonl line."""
    from studio.training.emitter import BatchStream, Emitter

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    reader = threading.Thread(target=_drain, args=(queue,), daemon=True)
    reader.start()  # the caller's side, here in-process: its share of the GIL is counted too
    with tempfile.TemporaryDirectory() as folder:
        emitter = Emitter(queue, Path(folder) / "metrics.jsonl")
        stream = BatchStream(emitter, "pytorch")
        stream.start_epoch()
        start = time.perf_counter()
        for step in range(batches):
            stream.add(1, step + 1, step + 1, 0.5, 32)
            if stream.due():
                stream.flush()
        stream.flush()
        elapsed = time.perf_counter() - start
        emitter.close()
    queue.put(None)
    reader.join()
    return elapsed / batches * 1e6


def _drain(queue) -> None:
    while queue.get() is not None:
        pass


# ----- PyTorch, interleaved in one process -------------------------------------------


def torch_interleaved(model: str, epochs: int) -> dict[str, float]:
    """Medians over alternating epochs, one of the studio's and one hand-written:
    ``baseline_ms``/``studio_ms`` per whole epoch, ``baseline_rate``/``studio_rate`` training
    samples/s over the training batches alone.

    The studio epoch is the engine's own: its batch loop with live per-batch
    metrics (streamed to a real queue and metrics.jsonl), its validation pass
    and its epoch bookkeeping (message, best snapshot, checkpoint capture).
    Its training time is the engine's own record of its batches (no
    validation). Alternating epochs makes a burst of load on a shared machine
    hit both alike.
    """
    import torch

    from studio.training.emitter import Emitter
    from studio.training.rundir import RunFolder
    from studio.training.torch_engine import TorchEngine

    session = _session(model, "pytorch", epochs * 2)
    samples = session.data.num_train
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    reader = threading.Thread(target=_drain, args=(queue,), daemon=True)
    reader.start()
    times: dict[str, list[float]] = {"studio": [], "baseline": [], "studio_train": [], "baseline_train": []}
    with tempfile.TemporaryDirectory() as folder:
        emitter = Emitter(queue, Path(folder) / "metrics.jsonl")
        engine = TorchEngine(session, RunFolder(folder), emitter)
        engine.setup()
        baseline = _TorchLoop(torch, session)
        for epoch in range(epochs):
            start = time.perf_counter()
            engine.run_epoch(epoch)
            times["studio"].append(time.perf_counter() - start)
            times["studio_train"].append(engine.timings[-1][1])
            start = time.perf_counter()
            times["baseline_train"].append(baseline.epoch())
            times["baseline"].append(time.perf_counter() - start)
        emitter.close()
    queue.put(None)
    reader.join()
    median = {name: statistics.median(values[1:]) for name, values in times.items()}
    return {
        "baseline_ms": median["baseline"] * 1000,
        "studio_ms": median["studio"] * 1000,
        "baseline_rate": samples / median["baseline_train"],
        "studio_rate": samples / median["studio_train"],
    }


class _TorchLoop:
    """The hand-written loop of torch_baseline, one epoch at a time."""

    def __init__(self, torch, session) -> None:
        from codegen import recipes
        from codegen.runtime import load_module, to_torch_layout

        data, config = session.data, session.config
        self.torch, self.size = torch, config.batch_size
        program = load_module(session.code["pytorch"].source, "baseline")
        self.net = program.build_model()
        self.optimizer = program.make_optimizer(self.net.parameters(), config.learning_rate)
        self.loss_fn = recipes.torch_loss(torch, config.loss, session.logits)
        layout = session.input.layout
        self.x_train = torch.from_numpy(np.ascontiguousarray(to_torch_layout(data.x_train, layout)))
        self.x_val = torch.from_numpy(np.ascontiguousarray(to_torch_layout(data.x_val, layout)))
        self.y_train, self.y_val = torch.from_numpy(data.y_train), torch.from_numpy(data.y_val)

    def epoch(self) -> float:
        """One epoch; the seconds its training batches took (validation left out)."""
        torch, net, size = self.torch, self.net, self.size
        start = time.perf_counter()
        net.train()
        for x, y in _shuffled(self.x_train, self.y_train, size):
            self.optimizer.zero_grad()
            loss = self.loss_fn(net(x), y)
            loss.backward()
            self.optimizer.step()
        train_seconds = time.perf_counter() - start
        net.eval()
        with torch.no_grad():
            total = sum(
                self.loss_fn(net(self.x_val[i : i + size]), self.y_val[i : i + size]).item()
                for i in range(0, len(self.x_val), size)
            )
        assert np.isfinite(total)
        return train_seconds


# ----- report -------------------------------------------------------------------------


def end_to_end(model: str, framework: str, epochs: int, repeats: int, root: Path) -> dict[str, float]:
    """Best-of-``repeats`` steady epoch (s) of the studio and of each baseline, run in turn."""
    baselines = {"keras": {"fit(x, y)": keras_baseline}, "pytorch": {"index loop": torch_baseline}}[framework]
    if framework == "pytorch":
        baselines["DataLoader"] = _dataloader_baseline
    times: dict[str, list[float]] = {"studio": [], **{name: [] for name in baselines}}
    for repeat in range(repeats):
        times["studio"].append(studio_run(model, framework, epochs, root / f"{model}-{framework}-{repeat}"))
        for name, target in baselines.items():
            times[name].append(in_child(target, model, epochs))
    return {name: min(values) for name, values in times.items()}


def _dataloader_baseline(model: str, epochs: int, results) -> None:
    torch_baseline(model, epochs, results, dataloader=True)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def limit_threads(threads: int) -> None:
    """Give every framework ``threads`` compute threads, here and in every process started from here.

    On a shared machine a framework's default pool (one thread per core) collapses as soon as
    another process holds a core: with one busy neighbour on 2 cores, a PyTorch LeNet epoch
    took 1.6 s with two threads and 0.11 s with one. A fixed, small pool keeps the comparison
    about the loops. Both sides get the same setting, through the environment that spawned
    processes inherit.
    """
    if threads > 0:
        os.environ.update({name: str(threads) for name in THREAD_VARIABLES})


def threads_text() -> str:
    threads = os.environ.get("OMP_NUM_THREADS")
    return f"{threads} compute thread{'s' if threads != '1' else ''}" if threads else "default threads"


def batches_per_epoch(model: str) -> int:
    session = _session(model, "pytorch", 1)
    return -(-session.data.num_train // session.config.batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the iris MLP only, 3 epochs, one repeat")
    parser.add_argument("--epochs", type=int, help="epochs per end-to-end run (default 10; quick 3)")
    parser.add_argument("--repeats", type=int, help="end-to-end runs of each kind (default 3; quick 1)")
    parser.add_argument("--models", help=f"comma-separated (default {','.join(MODELS)}; quick mlp_iris)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="compute threads for every training process, studio's and baselines' alike "
        "(default 1; 0 leaves the frameworks' defaults)",
    )
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    epochs = args.epochs or (3 if args.quick else 10)
    repeats = args.repeats or (1 if args.quick else 3)
    models = (args.models or ("mlp_iris" if args.quick else ",".join(MODELS))).split(",")
    interleaved = 20 if args.quick else 60
    batches = {model: batches_per_epoch(model) for model in models}

    rows = []
    with tempfile.TemporaryDirectory() as root:
        for model in models:
            for framework in ("keras", "pytorch"):
                figures = end_to_end(model, framework, epochs, repeats, Path(root))
                studio = figures.pop("studio")
                for name, baseline in figures.items():
                    rows.append(
                        (
                            model,
                            framework,
                            batches[model],
                            name,
                            f"{baseline * 1000:.1f}",
                            f"{studio * 1000:.1f}",
                            overhead(studio, baseline),
                            ratio(baseline, studio, 2),
                        )
                    )
    print(
        f"End to end: a training process each, {epochs} epochs with validation, {threads_text()}; "
        f"the steady epoch (median after the first), best of {repeats}. "
        "Ratio: studio / hand-written baseline; speed is its inverse (epochs, so samples, per second; "
        "target ≥ 0.90× for PyTorch, ≥ 1.0× for Keras against fit).\n"
    )
    headers = (
        "model",
        "framework",
        "batches/epoch",
        "baseline",
        "baseline epoch (ms)",
        "studio epoch (ms)",
        "ratio (overhead)",
        "speed: studio / baseline",
    )
    print(table(headers, rows, "llrlrrrr"))

    rows, per_batch_baseline = [], {}
    for model in models:
        figures = torch_interleaved(model, interleaved + 1)
        baseline, studio = figures["baseline_ms"], figures["studio_ms"]
        per_batch_baseline[model] = baseline / batches[model] * 1000
        rows.append(
            (
                model,
                f"{baseline:.2f}",
                f"{studio:.2f}",
                overhead(studio, baseline),
                f"{(studio - baseline) / batches[model] * 1000:+.0f}",
                f"{figures['baseline_rate']:,.0f}",
                f"{figures['studio_rate']:,.0f}",
                ratio(figures["studio_rate"], figures["baseline_rate"], 2),
            )
        )
    print(
        "\nPyTorch, studio and hand-written epochs alternating in one process "
        f"(medians of {interleaved} epochs). Samples/s: training batches only, the studio's with "
        "live per-batch metrics; target ≥ 0.90×:\n"
    )
    headers = (
        "model",
        "baseline epoch (ms)",
        "studio epoch (ms)",
        "ratio (overhead)",
        "per batch (µs)",
        "baseline samples/s",
        "studio samples/s",
        "samples/s: studio / baseline",
    )
    print(table(headers, rows, "lrrrrrrr"))

    cost = streaming_cost_us()
    shares = ", ".join(
        f"{cost / per_batch:.1%} of a hand-written {model} batch ({per_batch:.0f} µs)"
        for model, per_batch in per_batch_baseline.items()
    )
    print(
        "\nMetric streaming (BatchStream.add + grouped queue send + metrics.jsonl line): "
        f"{cost:.1f} µs per batch: {shares}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
