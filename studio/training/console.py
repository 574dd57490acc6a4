"""Terminal output of ``studio train`` and ``studio compare``: a progress line and result tables."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from studio.training import messages

BAR_WIDTH = 24
REFRESH = 0.1  # seconds between redraws of the progress line


class ProgressPrinter:
    """A single progress line redrawn with ``\\r`` on a terminal; one plain line per epoch otherwise."""

    def __init__(self, out: TextIO = sys.stdout, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._line_length = 0
        self._last_draw = 0.0
        self._epochs: dict[str, int] = {}
        self._batches: dict[str, int] = {}
        self._last_epoch: dict[str, dict[str, Any]] = {}

    def handle(self, message: dict[str, Any]) -> None:
        kind, framework = message.get("type"), message.get("framework", "")
        if kind == messages.STARTED:
            self._epochs[framework] = message["config"]["epochs"]
            self._batches[framework] = message["batches_per_epoch"]
            self._print(
                f"{framework}: training on {message['device']} from epoch {message['initial_epoch'] + 1}; "
                f"{message['dataset']}\n{framework}: run folder {message['run_dir']}"
            )
        elif kind == messages.BATCH and self.tty:
            now = time.monotonic()
            if now - self._last_draw >= REFRESH:
                self._last_draw = now
                self._draw(self._progress_line(message))
        elif kind == messages.EPOCH:
            self._last_epoch[framework] = message
            if self.tty:
                self._draw(self._epoch_line(message))
            else:
                self._print(self._epoch_line(message))
        elif kind == messages.FAILED:
            self._end_line()
            print(f"error: {message['message']}", file=sys.stderr)
        elif kind in (messages.FINISHED, messages.STOPPED):
            self._end_line()

    def close(self) -> None:
        self._end_line()

    def _progress_line(self, message: dict[str, Any]) -> str:
        framework = message["framework"]
        total = self._batches.get(framework, 0) or 1
        done = min(message["step"], total)
        filled = round(BAR_WIDTH * done / total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        line = (
            f"{framework} epoch {message['epoch']}/{self._epochs.get(framework, '?')} [{bar}] "
            f"{done}/{total} loss {message['loss']:.4f}"
        )
        previous = self._last_epoch.get(framework)
        if previous and previous.get("val_loss") is not None:
            line += f" (val_loss {previous['val_loss']:.4f})"
        return line

    def _epoch_line(self, message: dict[str, Any]) -> str:
        framework = message["framework"]
        parts = [f"loss {message['train_loss']:.4f}"]
        for key, label in (("train_accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")):
            if message.get(key) is not None:
                parts.append(f"{label} {message[key]:.4f}")
        if message.get("learning_rate") is not None:
            parts.append(f"lr {message['learning_rate']:.3g}")
        return (
            f"{framework} epoch {message['epoch']}/{self._epochs.get(framework, '?')}: "
            + ", ".join(parts)
            + f" ({message['epoch_time']:.2f} s)"
        )

    def _draw(self, line: str) -> None:
        padding = " " * max(self._line_length - len(line), 0)
        self.out.write("\r" + line + padding)
        self.out.flush()
        self._line_length = len(line)

    def _end_line(self) -> None:
        if self._line_length:
            self.out.write("\n")
            self.out.flush()
            self._line_length = 0

    def _print(self, text: str) -> None:
        self._end_line()
        self.out.write(text + "\n")
        self.out.flush()


def follow(run: Any, printer: ProgressPrinter, interval: float = 0.05) -> dict[str, Any] | None:
    """Show a run's messages until it ends; Ctrl-C stops it cleanly. Returns the outcome message."""
    try:
        while run.is_running:
            for message in run.poll():
                printer.handle(message)
            if run.is_running:
                time.sleep(interval)
    except KeyboardInterrupt:
        printer.close()
        print("stopping: saving the weights trained so far ...", file=sys.stderr)
        for message in run.stop():
            printer.handle(message)
    finally:
        printer.close()
    return getattr(run, "outcome", None)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    final = summary.get("final", {})
    params = summary.get("params") or {}
    rows = [
        ("epochs", _number(summary.get("epochs_completed"))),
        ("best epoch", _number(summary.get("best_epoch"))),
        ("train loss", _number(final.get("train_loss"))),
        ("train accuracy", _number(final.get("train_accuracy"))),
        ("val loss", _number(final.get("val_loss"))),
        ("val accuracy", _number(final.get("val_accuracy"))),
        ("time per epoch (s)", _number(summary.get("epoch_time"), 3)),
        ("samples/s", _number(summary.get("samples_per_s"), 0)),
        ("peak memory (MiB)", _number(summary.get("peak_memory_mb"), 0)),
        ("parameters", f"{params.get('trainable', 0) + params.get('non_trainable', 0):,}" if params else "-"),
        ("device", _number(summary.get("device"))),
    ]
    if summary.get("gpu_peak_memory_mb") is not None:
        rows.insert(9, ("GPU peak memory (MiB)", _number(summary["gpu_peak_memory_mb"], 0)))
    return rows


def format_table(summaries: dict[str, dict[str, Any]], extra: list[tuple[str, list[str]]] = ()) -> str:
    """A plain-text table: one column per framework, one row per figure."""
    names = list(summaries)
    rows = [(label, [value]) for label, value in summary_rows(summaries[names[0]])] if names else []
    for other in names[1:]:
        for row, (_, value) in zip(rows, summary_rows(summaries[other]), strict=False):
            row[1].append(value)
    rows += list(extra)
    label_width = max([len(label) for label, _ in rows] + [6])
    widths = [
        max([len(name)] + [len(values[i]) for _, values in rows if i < len(values)])
        for i, name in enumerate(names)
    ]
    header = (
        " " * label_width
        + "  "
        + "  ".join(name.rjust(width) for name, width in zip(names, widths, strict=True))
    )
    lines = [header]
    for label, values in rows:
        cells = "  ".join(value.rjust(width) for value, width in zip(values, widths, strict=False))
        lines.append(label.ljust(label_width) + "  " + cells)
    return "\n".join(lines)


def format_files(summary: dict[str, Any]) -> str:
    files = summary.get("files", {})
    lines = [f"run folder: {summary.get('run_dir')}"]
    labels = {"confusion_matrix": "confusion", "tensorboard": "tensorboard"}
    for kind in ("final", "best", "onnx", "code", "confusion_matrix", "tensorboard"):
        if kind in files:
            lines.append(f"  {labels.get(kind, kind):5s} {files[kind]}")
    if "tensorboard" in files:
        lines.append(f"watch it: tensorboard --logdir {files['tensorboard']}")
    lines += [f"note: {warning}" for warning in summary.get("warnings", [])]
    return "\n".join(lines)


def format_comparison(data: dict[str, Any]) -> str:
    """The figures of compare.json as a table: one column per framework (median [min–max] over repeats)."""
    names = [name for name in ("keras", "pytorch") if name in data]
    sizes = list((data[names[0]].get("inference_ms_per_batch") or {}) if names else [])
    rows: list[tuple[str, list[str]]] = [
        ("threads (intra/inter-op)", [_threads(data[name].get("threads")) for name in names]),
        ("device", [_number(data[name].get("device")) for name in names]),
        (
            "train s/epoch (no validation)",
            [_spread(data[name].get("train_seconds_per_epoch"), 4) for name in names],
        ),
        ("first step (s)", [_spread(data[name].get("first_step_seconds"), 3) for name in names]),
        ("samples/s", [_spread(data[name].get("samples_per_second"), 0) for name in names]),
    ]
    for size in sizes:
        rows.append(
            (
                f"inference ms, batch {size}",
                [_spread((data[name].get("inference_ms_per_batch") or {}).get(size), 3) for name in names],
            )
        )
    rows += [
        ("model memory (KiB)", [_kib(data[name].get("model_bytes")) for name in names]),
        ("parameters", [f"{data[name].get('parameters', 0):,}" for name in names]),
        ("final train loss", [_number(data[name].get("final_loss")) for name in names]),
        ("val accuracy", [_number(data[name].get("val_accuracy")) for name in names]),
    ]
    label_width = max(len(label) for label, _ in rows)
    widths = [max([len(name)] + [len(values[i]) for _, values in rows]) for i, name in enumerate(names)]
    lines = [" " * label_width + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    for label, values in rows:
        cells = "  ".join(value.rjust(width) for value, width in zip(values, widths, strict=True))
        lines.append(label.ljust(label_width) + "  " + cells)
    return "\n".join(lines)


def _spread(figure: dict[str, float] | None, digits: int) -> str:
    if not figure:
        return "-"
    median = f"{figure['median']:,.{digits}f}"
    if figure["min"] == figure["max"]:
        return median
    return f"{median} [{figure['min']:,.{digits}f}–{figure['max']:,.{digits}f}]"


def _threads(threads: dict[str, int] | None) -> str:
    if not threads:
        return "-"
    return "/".join(str(threads.get(key) or "default") for key in ("intra_op", "inter_op"))


def _kib(size: int | None) -> str:
    return "-" if size is None else f"{size / 1024:,.1f}"
