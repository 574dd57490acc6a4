"""Validation, shape inference and code generation time against graph size.

    .venv/bin/python benchmarks/bench_codegen.py [--quick]

Each figure is the median of several runs, and also a ratio against a
baseline measured in the same run: writing the same project to JSON, which
visits every node once (so a ratio that stays flat as the graph grows means
linear growth).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import median_ms, ratio, table  # noqa: E402
from codegen import generate  # noqa: E402
from studio.analysis import analyze  # noqa: E402
from studio.graph import Graph  # noqa: E402
from studio.project import Project, dumps_project  # noqa: E402

SIZES = (10, 100, 1000)


def residual_mlp(layers: int) -> Project:
    """Input, then Dense layers with a residual Add every third layer."""
    graph = Graph()
    current = graph.add_node("Input", params={"shape": [32]}).id
    skip = current
    with graph.batch():
        for index in range(layers - 1):
            if index % 3 == 2:
                node = graph.add_node("Add")
                graph.connect(current, node.id)
                graph.connect(skip, node.id)
                skip = node.id
            else:
                node = graph.add_node("Dense", params={"units": 32, "activation": "relu"})
                graph.connect(current, node.id)
            current = node.id
    return Project(graph, name=f"residual mlp {layers}")


def measure(layers: int, repeat: int) -> dict[str, float]:
    """Median milliseconds of the baseline, the analysis and each program's generation."""
    project = residual_mlp(layers)
    return {
        "baseline": median_ms(lambda: dumps_project(project), repeat),
        "analyze": median_ms(lambda: analyze(project.graph), repeat),
        "keras": median_ms(lambda: generate(project, "keras"), repeat),
        "pytorch": median_ms(lambda: generate(project, "pytorch"), repeat),
    }


def growth(figures: dict[int, dict[str, float]]) -> str:
    """How time grew with size: the exponent k of time ∝ layers^k between the two largest sizes."""
    small, large = sorted(figures)[-2:]
    names = {"analyze": "analyze", "keras": "Keras code", "pytorch": "PyTorch code", "baseline": "baseline"}
    exponents = ", ".join(
        f"{label} {math.log(figures[large][key] / figures[small][key]) / math.log(large / small):.2f}"
        for key, label in names.items()
    )
    spreads = []
    for label, keys in (("analyze", ("analyze",)), ("codegen", ("keras", "pytorch"))):
        values = [max(figures[size][key] for key in keys) / figures[size]["baseline"] for size in figures]
        spreads.append(f"{label} {min(values):.2f}–{max(values):.2f}")
    return (
        f"Growth from {small:,} to {large:,} layers, as the exponent k in time ∝ layers^k "
        f"(1 is linear): {exponents}. Ratio against the baseline across all sizes: {'; '.join(spreads)}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    figures = {}
    for layers in SIZES:
        repeat = (5 if layers < 1000 else 3) if args.quick else (20 if layers < 1000 else 9)
        figures[layers] = measure(layers, repeat)
    print(
        "A residual MLP (Dense layers, an Add every third layer). Baseline: writing the same project "
        "to JSON. Codegen is the slower of the two programs, analysis included. Medians.\n"
    )
    rows = []
    for layers, f in figures.items():
        slowest = max(f["keras"], f["pytorch"])
        rows.append(
            (
                layers,
                f"{f['baseline']:.2f}",
                f"{f['analyze']:.2f}",
                f"{f['keras']:.2f}",
                f"{f['pytorch']:.2f}",
                f"{slowest / layers * 1000:.0f}",
                ratio(f["analyze"], f["baseline"], 2),
                ratio(slowest, f["baseline"], 2),
            )
        )
    headers = (
        "layers",
        "baseline: JSON (ms)",
        "analyze (ms)",
        "Keras code (ms)",
        "PyTorch code (ms)",
        "codegen per layer (µs)",
        "ratio: analyze / baseline",
        "ratio: codegen / baseline",
    )
    print(table(headers, rows, "r" * len(headers)))
    print("\n" + growth(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
