"""The benchmark runner: one command, one report with the machine's facts and ratio tables.

Only the cheap path runs here (the code generation benchmark, quick); no timing is asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks import run_all
from benchmarks.report import machine_facts, overhead, ratio, table

REPO = Path(__file__).resolve().parent.parent


def test_quick_codegen_run_writes_a_report_with_the_machine_and_a_ratio_table(tmp_path):
    out = tmp_path / "results.md"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "codegen", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = out.read_text(encoding="utf-8")
    assert report.startswith("# Layer Studio benchmarks\n")
    for label in ("Date", "CPU", "RAM", "OS", "Python", "Command"):
        assert f"\n- {label}: " in report
    for package in ("torch", "tensorflow", "keras", "PySide6"):
        assert f" {package} " in report
    assert "--only codegen" in report
    lines = report.splitlines()
    header = next(line for line in lines if line.startswith("| layers |"))
    assert "ratio: codegen / baseline" in header
    assert lines[lines.index(header) + 1].startswith("|---:|")
    sizes = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and line != header]
    assert sizes == ["10", "100", "1000"]
    assert "Growth from 100 to 1,000 layers" in report
    assert "FAILED" not in report
    assert "## GUI" not in report and "## Training" not in report


def test_a_failing_benchmark_is_reported_with_its_error_output(tmp_path):
    broken = run_all.Benchmark("broken", "benchmarks.no_such_benchmark", "Broken")
    outcome = run_all.run_benchmark(broken, quick=True, timeout=60)
    assert not outcome.ok
    report = run_all.render([outcome], machine_facts(), "python -m benchmarks", quick=True)
    assert "## Broken" in report
    assert "FAILED: broken" in report
    assert "**FAILED** (exit status 1)" in report
    assert "No module named benchmarks.no_such_benchmark" in report


def test_unknown_benchmark_names_are_refused(capsys):
    try:
        run_all.main(["--only", "codegen,nope"])
    except SystemExit as exit:
        assert exit.code == 2
    else:
        raise AssertionError("--only accepted an unknown name")
    assert "unknown benchmark(s) nope" in capsys.readouterr().err


def test_table_and_ratio_formatting():
    assert table(("a", "b"), [(1, "x")], "lr") == "| a | b |\n|---|---:|\n| 1 | x |"
    assert ratio(3.0, 1.5) == "2.0×"
    assert ratio(1.0, 0.0) == "n/a"
    assert overhead(1.05, 1.0) == "1.05× (+5.0%)"
