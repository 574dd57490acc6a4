"""Responsiveness of the desktop app, offscreen, with a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_gui.py [--quick] [--no-real-run]

Prints one markdown table:

* start-up: process launch to the main window shown with the LeNet example
  (a fresh child process each time), against a bare ``QMainWindow().show()``;
* event-loop stall while a run streams per-batch metrics: a 5 ms timer
  measures how late it fires, while FakeRun feeds 300 (and 1,000) batch
  messages a second through the dashboard's own polling, buffers and 50 ms
  redraw, against the same probe with nothing running; then one real short
  training run (LeNet on digits, PyTorch), from the Train click on (the
  click itself is timed separately);
* adding one layer to a 500-layer graph: the edit, re-validation, shape
  inference, the canvas update and regenerating both programs, against the
  edit and analysis alone;
* pan/zoom frame time with 500 layers, against the 9-layer LeNet;
* peak memory (RSS) of the app with 500 layers, against the bare window.

Every figure is a median unless it says max. Training processes are spawned,
so this file keeps its work under ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.report import ratio, table  # noqa: E402

LENET = REPO / "assets" / "examples" / "lenet_digits.layers.json"
BIG = 500


def big_project(count: int = BIG):
    """A chain of Dense layers with a residual Add every 10 layers (the canvas test's graph)."""
    from studio.project import Project

    project = Project(name=f"{count} layers")
    graph = project.graph
    previous = graph.add_node("Input", params={"shape": (32,)}, position=(0, 0)).id
    with graph.batch():
        for index in range(1, count):
            kind = "Add" if index % 10 == 0 else "Dense"
            node = graph.add_node(
                kind,
                params={"units": 32} if kind == "Dense" else {},
                position=(index % 25 * 230, index // 25 * 150),
            )
            graph.connect(previous, node.id)
            if kind == "Add":
                graph.connect(graph.nodes[index - 5].id, node.id)
            previous = node.id
    return project


# ----- child processes: start-up and memory ----------------------------------------------------

# Each child reports when its window was first painted: the moment the user sees it.
FIRST_PAINT = """
    from PySide6.QtCore import QEvent, QObject
    class FirstPaint(QObject):
        at = None
        def eventFilter(self, watched, event):
            if event.type() == QEvent.Type.Paint and FirstPaint.at is None:
                FirstPaint.at = time.time()
            return False
    def painted(app, widget):
        probe = FirstPaint()
        widget.installEventFilter(probe)
        deadline = time.time() + 10
        while FirstPaint.at is None and time.time() < deadline:
            app.processEvents()
        return FirstPaint.at or time.time()
"""

BARE = """
    import sys, time, resource
    from PySide6.QtWidgets import QApplication, QMainWindow
    app = QApplication([])
    window = QMainWindow()
    window.resize(1400, 900)
    window.show()
    shown = painted(app, window)
    print(json.dumps({"shown": shown, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

# The baseline: what any PySide6 + pyqtgraph app with docks pays before it shows a window.
DOCKED = """
    import sys, time, resource
    import pyqtgraph
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import (
        QApplication, QDockWidget, QGraphicsScene, QGraphicsView, QListWidget, QMainWindow,
        QPlainTextEdit, QToolBar,
    )
    app = QApplication([])
    window = QMainWindow()
    window.setCentralWidget(QGraphicsView(QGraphicsScene()))
    window.addToolBar(QToolBar("main"))
    docks = [("palette", QListWidget()), ("inspector", QListWidget()), ("code", QPlainTextEdit()),
             ("plots", pyqtgraph.PlotWidget())]
    for title, widget in docks:
        dock = QDockWidget(title)
        dock.setWidget(widget)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(1400, 900)
    window.show()
    shown = painted(app, window.centralWidget().viewport())
    print(json.dumps({"shown": shown, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

STUDIO = """
    import sys, time, resource
    import widgets.app as studio_app
    app = studio_app.create_application()
    window = studio_app.create_main_window(restore_layout=False)
    window.files.interactive = False
    window.open_initial(PROJECT, interactive=False)
    window.show()
    shown = painted(app, window.view.viewport())
    if SETTLE:
        studio_app.process_events_for(300)
        window.code_view.regenerate()
        window.view.fit_all()
        window.view.viewport().grab()
    print(json.dumps({"shown": shown, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "heavy": sorted(m for m in ("torch", "tensorflow", "keras") if m in sys.modules)}))
    sys.stdout.flush()
    window.training.shutdown()
    import os; os._exit(0)
"""


def run_child(code: str, home: Path, **constants) -> dict:
    prelude = (
        "import json, time\n"
        + textwrap.dedent(FIRST_PAINT)
        + "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    )
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
    }
    env["XDG_DATA_HOME"] = str(home / "data")
    launched = time.time()
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    data = json.loads(result.stdout.strip().splitlines()[-1])
    data["startup_s"] = data["shown"] - launched
    return data


def startup_and_memory(repeats: int, home: Path) -> dict:
    bare, docked, studio = [], [], []
    for _ in range(repeats):  # interleaved, so a busy moment hurts all alike
        bare.append(run_child(BARE, home))
        docked.append(run_child(DOCKED, home))
        studio.append(run_child(STUDIO, home, PROJECT=str(LENET), SETTLE=False))
    big_path = home / "big.layers.json"
    from studio.project import save_project

    save_project(big_project(), big_path)
    big = run_child(STUDIO, home, PROJECT=str(big_path), SETTLE=True)
    return {
        "startup": statistics.median(item["startup_s"] for item in studio),
        "startup_bare": statistics.median(item["startup_s"] for item in bare),
        "startup_docked": statistics.median(item["startup_s"] for item in docked),
        "heavy": studio[0]["heavy"],
        "rss_big_mb": big["rss"] / 1024,
        "rss_bare_mb": statistics.median(item["rss"] for item in bare) / 1024,
    }


# ----- in-process: event-loop stall, edits, frames --------------------------------------------


class LagProbe:
    """A 5 ms repeating timer; records how much later than due each timeout fires."""

    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import QTimer

        self.interval = interval_ms / 1000
        self.lags: list[float] = []
        self._last = None
        self.timer = QTimer(interval=interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.lags.append(max(0.0, now - self._last - self.interval))
        self._last = now

    def start(self) -> None:
        self.lags, self._last = [], None
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        lags = sorted(self.lags) or [0.0]
        return {"max_ms": lags[-1] * 1000, "p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000}


def make_window(home: Path):
    from PySide6.QtCore import QSettings

    from widgets.app import create_application, create_main_window, process_events_for

    create_application()
    settings = QSettings(str(home / "bench.ini"), QSettings.Format.IniFormat)
    window = create_main_window(
        settings=settings, recovery_dir=home / "recovery", restore_layout=False, runs_root=home / "runs"
    )
    window.files.interactive = False
    window.training.interactive = False
    window.open_initial(str(LENET), interactive=False)
    window.show()
    window.show_training()
    process_events_for(300)
    window.training.detector.kill()
    return window


def run_for(seconds: float) -> None:
    from widgets.app import process_events_for

    process_events_for(int(seconds * 1000))


def stall(window, seconds: float, rate: float | None) -> dict:
    """The lag probe over ``seconds``, with FakeRun streaming ``rate`` batches/s (None: idle)."""
    from studio.training.run_metrics import RunRecord
    from widgets.app import process_events_for
    from widgets.fake_run import FakeRun

    panel = window.training
    probe = LagProbe()
    redraws = panel.plots.redraw_count
    probe.start()
    received = 0
    if rate is None:
        run_for(seconds)
    else:
        batches = int(rate * seconds)
        record = RunRecord.create(panel.runs.next_number(), f"fake {rate:.0f}/s", "keras")
        panel.start_run(FakeRun("keras", epochs=4, batches_per_epoch=max(1, batches // 4), rate=rate), record)
        while panel.is_running:
            process_events_for(50)
        received = len(record.frameworks["keras"].batches)
    result = probe.stop()
    result["batches"] = received
    result["redraws"] = panel.plots.redraw_count - redraws
    return result


def real_run_stall(window, epochs: int) -> dict:
    from widgets.app import process_events_for

    panel = window.training
    panel.form.set_framework("pytorch")
    panel.form.epochs.setValue(epochs)
    probe = LagProbe()
    started = time.perf_counter()
    ok = panel.start()  # a one-off cost, reported on its own row
    start_call = time.perf_counter() - started
    probe.start()
    while panel.is_running:
        process_events_for(50)
    result = probe.stop()
    record = panel.records[-1]
    metrics = record.frameworks["pytorch"]
    result.update(
        ok=ok and record.status == "finished",
        start_call_ms=start_call * 1000,
        batches=len(metrics.batches),
        rate=len(metrics.batches) / max(1e-9, (metrics.last_time or 0) - (metrics.first_time or 0)),
    )
    return result


def add_node_times(repeats: int) -> dict:
    from widgets import edits
    from widgets.code_view import CodeView
    from widgets.document import Document
    from widgets.scene import GraphScene

    document = Document(big_project())
    scene = GraphScene(document)
    view = CodeView(document)
    last = document.graph.nodes[-1].id
    full, edit_only = [], []
    for index in range(repeats):
        started = time.perf_counter()
        edits.add_node_after(document, "Dense", (6000.0, 4000.0 + index), last)
        middle = time.perf_counter()
        view.regenerate()  # what the 60 ms debounce runs after the edit
        done = time.perf_counter()
        edit_only.append(middle - started)
        full.append(done - started)
        document.undo_stack.undo()
    view.timer.stop()
    assert scene is not None
    return {"full_ms": statistics.median(full) * 1000, "edit_ms": statistics.median(edit_only) * 1000}


def frame_times(project) -> dict:
    from widgets.document import Document
    from widgets.scene import GraphScene
    from widgets.view import GraphView

    document = Document(project)
    scene = GraphScene(document)
    view = GraphView(scene)
    view.resize(1200, 800)
    view.show()
    view.fit_all()
    view.viewport().grab()
    zooms, pans = [], []
    for factor in (1.25,) * 8 + (0.8,) * 8:
        started = time.perf_counter()
        view.zoom_by(factor)
        view.viewport().grab()
        zooms.append(time.perf_counter() - started)
    for _ in range(16):
        started = time.perf_counter()
        view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 40)
        view.viewport().grab()
        pans.append(time.perf_counter() - started)
    view.close()
    return {
        "zoom_ms": statistics.median(zooms) * 1000,
        "zoom_max_ms": max(zooms) * 1000,
        "pan_ms": statistics.median(pans) * 1000,
        "pan_max_ms": max(pans) * 1000,
    }


# ----- the table -----------------------------------------------------------------------------


def row(name: str, value: str, baseline: str, ratio_: str, target: str, ok: bool | None) -> tuple:
    return (name, value, baseline, ratio_, target, "" if ok is None else ("✓" if ok else "✗"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GUI responsiveness benchmarks (offscreen).")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and shorter streams")
    parser.add_argument("--no-real-run", action="store_true", help="skip the real training run")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 5
    seconds = 2.0 if args.quick else 5.0
    home = Path(tempfile.mkdtemp(prefix="layer-studio-bench-"))

    boot = startup_and_memory(repeats, home)
    window = make_window(home)
    idle = stall(window, seconds, None)
    s300 = stall(window, seconds, 300.0)
    s1000 = stall(window, seconds, 1000.0)
    real = None if args.no_real_run else real_run_stall(window, 2)
    add = add_node_times(7 if args.quick else 15)
    frames_big = frame_times(big_project())
    from studio.project import load_project

    frames_small = frame_times(load_project(LENET))
    window.training.shutdown()
    window.files.autosaver.stop()
    window.document.undo_stack.setClean()
    shutil.rmtree(home, ignore_errors=True)

    idle_text = f"{idle['max_ms']:.1f} ms idle (p99 {idle['p99_ms']:.1f})"
    idle_max = max(idle["max_ms"], 0.1)
    rows = [
        row(
            "start-up to window shown (LeNet example)",
            f"{boot['startup']:.2f} s",
            f"{boot['startup_bare']:.2f} s bare QMainWindow",
            ratio(boot["startup"], boot["startup_bare"]),
            "< 1.5 s",
            boot["startup"] < 1.5,
        ),
        row(
            "start-up against a bare window with pyqtgraph and docks",
            f"{boot['startup']:.2f} s",
            f"{boot['startup_docked']:.2f} s QMainWindow + pyqtgraph PlotWidget + 4 docks + toolbar",
            ratio(boot["startup"], boot["startup_docked"], 2),
            "≤ 1.2×",
            boot["startup"] <= 1.2 * boot["startup_docked"],
        ),
        row(
            "frameworks imported at start-up",
            ", ".join(boot["heavy"]) or "none",
            "",
            "",
            "none",
            not boot["heavy"],
        ),
    ]
    for label, result in (("300", s300), ("1,000", s1000)):
        rows.append(
            row(
                f"max event-loop stall, fake run at {label} batches/s ({result['batches']} batches)",
                f"{result['max_ms']:.1f} ms (p99 {result['p99_ms']:.1f})",
                idle_text,
                ratio(result["max_ms"], idle_max),
                "< 50 ms",
                result["max_ms"] < 50,
            )
        )
    if real is not None:
        rows.append(
            row(
                f"max stall, real run (LeNet, PyTorch, 2 epochs, {real['batches']} batches)",
                f"{real['max_ms']:.1f} ms (p99 {real['p99_ms']:.1f})",
                idle_text,
                ratio(real["max_ms"], idle_max),
                "< 50 ms",
                real["max_ms"] < 50 and real["ok"],
            )
        )
        rows.append(
            row(
                "Train button: starting the run (GUI thread)",
                f"{real['start_call_ms']:.0f} ms",
                "",
                "",
                "",
                None,
            )
        )
    rows.append(
        row(
            f"add a layer to {BIG} layers: validate, infer, canvas, both programs",
            f"{add['full_ms']:.1f} ms",
            f"{add['edit_ms']:.1f} ms edit + analysis only",
            ratio(add["full_ms"], add["edit_ms"]),
            "< 100 ms",
            add["full_ms"] < 100,
        )
    )
    for kind in ("pan", "zoom"):
        big, small = frames_big[f"{kind}_ms"], frames_small[f"{kind}_ms"]
        rows.append(
            row(
                f"{kind} frame, whole {BIG}-layer graph in view (max)",
                f"{big:.1f} ms ({frames_big[f'{kind}_max_ms']:.1f})",
                f"{small:.1f} ms LeNet, 9 layers",
                ratio(big, small),
                "< 50 ms",
                big < 50,
            )
        )
    rows.append(
        row(
            f"peak memory (RSS), {BIG} layers, code generated",
            f"{boot['rss_big_mb']:.0f} MB",
            f"{boot['rss_bare_mb']:.0f} MB bare QMainWindow",
            ratio(boot["rss_big_mb"], boot["rss_bare_mb"]),
            "",
            None,
        )
    )
    print(
        f"Offscreen. Start-up and memory: median of {repeats} fresh processes each, interleaved with the "
        f"baseline's. Stalls: a 5 ms timer's lateness over {seconds:.0f} s streams.\n"
    )
    print(table(("measure", "result", "baseline (same run)", "ratio", "target", ""), rows, "lrrrrc"))
    print(
        f"\nRedraws during the 300/s stream: {s300['redraws']} (the plots redraw on a 50 ms timer, "
        "never per message)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
