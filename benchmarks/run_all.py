"""Run every benchmark, each in its own process, and write one markdown report.

    .venv/bin/python -m benchmarks [--quick] [--only codegen,loading,gui,training] [--out PATH]

(``scripts/run-benchmarks.sh`` sets up the environment first, then runs this.)
The report starts with the date, the machine and the versions measured, then
each benchmark's tables. A benchmark that fails is reported with the tail of
its error output; the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import REPO, load_average, machine_facts  # noqa: E402


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    title: str


@dataclass
class Outcome:
    benchmark: Benchmark
    command: list[str]
    status: int | None  # None: timed out
    seconds: float
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0


BENCHMARKS = (
    Benchmark(
        "codegen",
        "benchmarks.bench_codegen",
        "Validation, shape inference and code generation against graph size",
    ),
    Benchmark(
        "loading",
        "benchmarks.bench_loading",
        "Loading and checking large inputs: projects, analysis, CSV headers, ONNX chains",
    ),
    Benchmark("gui", "benchmarks.bench_gui", "GUI: start-up, event-loop stalls, edits, memory"),
    Benchmark("training", "benchmarks.bench_training", "Training overhead against hand-written loops"),
    Benchmark(
        "warm", "benchmarks.bench_warm", "The warm framework process: Verify, first batch, memory, stalls"
    ),
    Benchmark(
        "cli", "benchmarks.bench_cli", "CLI: `studio --help` and each command's help, in fresh processes"
    ),
    Benchmark("import", "benchmarks.bench_import", "Importing a 25M-parameter model: time and peak memory"),
)
DEFAULT_OUT = REPO / "benchmarks" / "results.md"
ERROR_TAIL_LINES = 40


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    return env


def run_benchmark(benchmark: Benchmark, quick: bool, timeout: float) -> Outcome:
    """The benchmark's module in a fresh interpreter (so one's imports cannot skew another's figures)."""
    command = [sys.executable, "-m", benchmark.module, *(["--quick"] if quick else [])]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends its training processes too
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        status: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        status = None
    return Outcome(benchmark, command, status, time.perf_counter() - started, stdout, stderr)


#: Start-of-line markers of TensorFlow's start-up chatter, left out of an error tail.
NOISE = ("WARNING: All log messages before absl::InitializeLog()", "I0000 ", "W0000 ")


def tail(text: str, lines: int = ERROR_TAIL_LINES) -> str:
    kept = [line for line in text.rstrip().splitlines() if not line.startswith(NOISE)]
    return "\n".join(kept[-lines:])


def section(outcome: Outcome) -> str:
    benchmark = outcome.benchmark
    shown = shlex.join(["python", *outcome.command[1:]])
    parts = [f"## {benchmark.title}", f"`{shown}` — {outcome.seconds:.1f} s"]
    if outcome.stdout.strip():
        parts.append(outcome.stdout.strip())
    if not outcome.ok:
        why = (
            f"timed out after {outcome.seconds:.0f} s"
            if outcome.status is None
            else f"exit status {outcome.status}"
        )
        parts.append(
            f"**FAILED** ({why}). Last lines of its error output:\n\n```text\n{tail(outcome.stderr)}\n```"
        )
    return "\n\n".join(parts)


def render(outcomes: list[Outcome], facts: list[tuple[str, str]], command: str, quick: bool) -> str:
    total = sum(outcome.seconds for outcome in outcomes)
    failed = [outcome.benchmark.name for outcome in outcomes if not outcome.ok]
    header = [
        "# Layer Studio benchmarks",
        "",
        *(f"- {label}: {value}" for label, value in facts),
        f"- Command: `{command}`" + (" (quick: a smoke run, fewer repeats)" if quick else ""),
        f"- Total time: {total:.{0 if total >= 10 else 1}f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""),
        "",
        "Every figure that has a baseline measured in the same run is also given as a ratio against it: "
        "the machine may be shared, and a ratio moves less than a time when it is busy.",
    ]
    return "\n".join(header) + "\n\n" + "\n\n".join(section(outcome) for outcome in outcomes) + "\n"


def parse_only(text: str) -> list[Benchmark]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = {benchmark.name: benchmark for benchmark in BENCHMARKS}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}"
        )
    return [benchmark for benchmark in BENCHMARKS if benchmark.name in names]


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer repeats (about a minute)")
    parser.add_argument(
        "--only",
        type=parse_only,
        default=list(BENCHMARKS),
        metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(b.name for b in BENCHMARKS)}",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report path (default %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds allowed per benchmark (default %(default)s)"
    )
    args = parser.parse_args(argv)
    arguments = sys.argv[1:] if argv is None else argv
    command = " ".join([prog, *map(shlex.quote, arguments)])

    facts = machine_facts()  # before anything runs: the load average is the machine's, not ours
    outcomes = []
    for benchmark in args.only:
        print(f"{benchmark.name}: running…", file=sys.stderr, flush=True)
        outcome = run_benchmark(benchmark, args.quick, args.timeout)
        verdict = "ok" if outcome.ok else "FAILED"
        print(f"{benchmark.name}: {verdict} in {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes.append(outcome)

    facts.append(("Load average at end", load_average()))
    report = render(outcomes, facts, command, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    print(f"Report written to {args.out}", file=sys.stderr)
    return 0 if all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(prog="python benchmarks/run_all.py"))
