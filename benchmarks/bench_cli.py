"""CLI response: `studio --help` and every `studio COMMAND --help`, each in a fresh process.

    .venv/bin/python benchmarks/bench_cli.py [--quick]

Each figure is the median wall time of several fresh interpreters, and also a
ratio against a baseline measured in the same run: ``python -c pass``, the
cost of starting Python at all. The target is 1.0 s per help text. Each
process is also asked which heavy modules the help loaded (none is expected).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import REPO, ratio, table  # noqa: E402

TARGET_SECONDS = 1.0
HEAVY = ("torch", "tensorflow", "keras", "onnx", "sklearn", "scipy", "networkx", "numpy", "PySide6")

# Runs the CLI's help the way the `studio` script does, then reports the heavy modules it loaded.
HELP_PROBE = """
import json, sys
from studio.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(name for name in {heavy!r} if name in sys.modules)
sys.stderr.write("LOADED " + json.dumps(heavy) + "\\n")
"""


def commands() -> list[str]:
    from studio.cli import build_parser

    parser = build_parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return list(subparsers.choices)


def fresh_process(arguments: list[str]) -> tuple[float, list[str]]:
    """(wall seconds, heavy modules loaded) of one fresh interpreter running ``arguments``."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    seconds = time.perf_counter() - started
    loaded = []
    for line in result.stderr.splitlines():
        if line.startswith("LOADED "):
            loaded = json.loads(line[len("LOADED ") :])
    return seconds, loaded


def measure(arguments: list[str], repeat: int) -> tuple[float, list[str]]:
    fresh_process(arguments)  # warm the disk cache
    runs = [fresh_process(arguments) for _ in range(repeat)]
    return statistics.median(seconds for seconds, _ in runs), runs[-1][1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 9
    probe = HELP_PROBE.format(heavy=HEAVY)
    baseline, _ = measure(["-c", "pass"], repeat)
    rows = []
    slowest = 0.0
    for words in [[]] + [[command] for command in commands()]:
        seconds, loaded = measure(["-c", probe, *words, "--help"], repeat)
        slowest = max(slowest, seconds)
        rows.append(
            (
                f"`studio {' '.join([*words, '--help'])}`",
                f"{seconds * 1000:.0f}",
                ratio(seconds, baseline),
                "yes" if seconds <= TARGET_SECONDS else "**no**",
                ", ".join(loaded) or "none",
            )
        )
    print(
        f"Each help in a fresh interpreter; medians of {repeat}. Baseline: `python -c pass` "
        f"({baseline * 1000:.0f} ms) in the same run. Target: ≤ {TARGET_SECONDS:.1f} s.\n"
    )
    headers = ("command", "time (ms)", "ratio: help / python", "≤ 1.0 s", "heavy modules loaded")
    print(table(headers, rows, "lrrcl"))
    print(f"\nSlowest help: {slowest * 1000:.0f} ms ({ratio(slowest, baseline)} the bare interpreter).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
