"""The warm framework process (studio.warm): Verify, the first training batch, memory, stalls.

    .venv/bin/python benchmarks/bench_warm.py [--quick]

Each figure is measured beside its baseline in the same run: Verify on the
LeNet example in a fresh ``python -m studio verify`` (what the GUI did before)
against the same command in a warm process; the first training batch after
pressing Train with a freshly spawned training process against one that takes
the warm spare over; the GUI's event loop while both processes warm up against
the same loop with nothing warming. The warm processes' memory (VmRSS) is
reported as well. Targets: Verify ≤ 2 s warm, first batch ≤ 1.5 s, no stall
over 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import REPO, ratio, table  # noqa: E402

VERIFY_TARGET = 2.0
FIRST_BATCH_TARGET = 1.5
STALL_MS = 50
TICK_MS = 10


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(process, timeout: float = 300.0) -> float:
    started = time.perf_counter()
    while not process.ready:
        process.poll()
        if time.perf_counter() - started > timeout or not process.alive:
            raise RuntimeError("the warm process did not get ready")
        time.sleep(0.02)
    return process.ready_seconds


def warm_command(process, argv: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    process.send_command(argv)
    while True:
        for reply in process.poll():
            if reply["kind"] == "done":
                return time.perf_counter() - started, reply["exit_code"]
        time.sleep(0.005)


def cold_command(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "studio", *argv], cwd=REPO, capture_output=True, check=False)
    return time.perf_counter() - started


def first_batch(project: Path, framework: str, warm, folder: Path) -> float:
    from studio.training import RunConfig, TrainingRun

    config = RunConfig.from_project(str(project), framework, epochs=1, out_dir=str(folder))
    run = TrainingRun(config, warm=warm)
    started = time.perf_counter()
    run.start()
    seconds = float("nan")
    while run.is_running:
        for message in run.poll():
            if message.get("type") == "batch" and seconds != seconds:
                seconds = time.perf_counter() - started
                run.stop()
        time.sleep(0.005)
    run.close()
    return seconds


def event_loop_gaps(seconds: float | None, with_worker: bool) -> tuple[float, int, float]:
    """(largest gap in ms, gaps over STALL_MS, seconds watched) of a 10 ms timer in a Qt event loop."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from widgets.warm_worker import WarmWorker

    app = QApplication.instance() or QApplication([])
    worker = WarmWorker() if with_worker else None
    clock, gaps, last = QElapsedTimer(), [], [0]
    clock.start()
    loop = QEventLoop()

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now
        done = worker is not None and worker.spare is not None and worker.spare.ready
        if (seconds is not None and now >= seconds * 1000) or done or now > 300_000:
            loop.quit()

    timer = QTimer(interval=TICK_MS)
    timer.timeout.connect(tick)
    timer.start()
    if worker is not None:
        worker.start_soon(0)
    loop.exec()
    timer.stop()
    if worker is not None:
        worker.shutdown()
    app.processEvents()
    return max(gaps), sum(gap > STALL_MS for gap in gaps), clock.elapsed() / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else 5
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from studio.project import save_project
    from studio.templates import create_project
    from studio.warm import WarmProcess

    folder = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    project = folder / "lenet.layers.json"
    save_project(create_project("lenet_digits"), project)
    verify = ["verify", str(project), "--json", "--skip-main"]

    # The event loop while both processes warm up, then the same loop idle for as long.
    worst, stalls, watched = event_loop_gaps(None, with_worker=True)
    idle_worst, idle_stalls, _ = event_loop_gaps(watched, with_worker=False)

    service = WarmProcess(prime=True)
    service.start()
    service_ready = wait_ready(service)
    service_rss = rss_mb(service.pid)
    warm_verify = [warm_command(service, verify)[0] for _ in range(repeat)]
    service_rss_after = rss_mb(service.pid)
    service.stop()
    cold_verify = [cold_command(verify) for _ in range(max(2, repeat // 2))]

    batches = {}
    spare_rss = float("nan")
    for framework in ("pytorch", "keras"):
        cold = [first_batch(project, framework, None, folder / f"cold-{framework}-{i}") for i in range(2)]
        warm = []
        for i in range(2):
            spare = WarmProcess()
            spare.start()
            wait_ready(spare)
            spare_rss = rss_mb(spare.pid)
            warm.append(first_batch(project, framework, spare, folder / f"warm-{framework}-{i}"))
        batches[framework] = (statistics.median(cold), statistics.median(warm))

    cold_median, warm_median = statistics.median(cold_verify), statistics.median(warm_verify)
    rows = [
        (
            "Verify (LeNet), GUI",
            f"{cold_median:.2f}",
            f"{warm_median:.2f}",
            ratio(cold_median, warm_median),
            f"≤ {VERIFY_TARGET:.1f} s: {'yes' if warm_median <= VERIFY_TARGET else '**no**'}",
        )
    ]
    for framework, (cold, warm) in batches.items():
        rows.append(
            (
                f"First batch after Train, {framework}",
                f"{cold:.2f}",
                f"{warm:.2f}",
                ratio(cold, warm),
                f"≤ {FIRST_BATCH_TARGET:.1f} s: {'yes' if warm <= FIRST_BATCH_TARGET else '**no**'}",
            )
        )
    print(
        f"Medians: Verify of {len(cold_verify)} cold and {repeat} warm runs, first batches of 2 each. "
        "Cold: a fresh process imports the frameworks (the baseline, in the same run).\n"
    )
    print(table(("what", "cold (s)", "warm (s)", "speed-up", "target"), rows, "lrrrl"))
    print(
        f"\nWarm-up: the service process (imports, then one small proof) was ready after {service_ready:.1f} s."
        f"\nMemory (VmRSS): service {service_rss:.0f} MB when ready, {service_rss_after:.0f} MB after "
        f"{repeat} proofs; spare training process {spare_rss:.0f} MB."
        f"\nEvent loop ({TICK_MS} ms timer) while both processes warmed up ({watched:.1f} s): largest gap "
        f"{worst:.0f} ms, {stalls} gaps over {STALL_MS} ms; the same loop with nothing warming: largest gap "
        f"{idle_worst:.0f} ms, {idle_stalls} over {STALL_MS} ms."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
