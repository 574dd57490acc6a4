"""Validation, shape inference and code generation time against graph size.

    .venv/bin/python benchmarks/bench_codegen.py

Each figure is the median of several runs, and also a ratio against a
baseline measured in the same run: writing the same project to JSON, which
visits every node once (so a ratio that stays flat as the graph grows means
linear growth).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codegen import generate  # noqa: E402
from studio.analysis import analyze  # noqa: E402
from studio.graph import Graph  # noqa: E402
from studio.project import Project, dumps_project  # noqa: E402


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


def median_ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    print(
        "| layers | baseline: JSON (ms) | analyze (ms) | Keras code (ms) | PyTorch code (ms) | analyze / baseline | codegen / baseline |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for layers in (10, 100, 1000):
        project = residual_mlp(layers)
        repeat = 20 if layers < 1000 else 7
        baseline = median_ms(lambda project=project: dumps_project(project), repeat)
        analysis_ms = median_ms(lambda project=project: analyze(project.graph), repeat)
        keras_ms = median_ms(lambda project=project: generate(project, "keras"), repeat)
        torch_ms = median_ms(lambda project=project: generate(project, "pytorch"), repeat)
        print(
            f"| {layers} | {baseline:.2f} | {analysis_ms:.2f} | {keras_ms:.2f} | {torch_ms:.2f} "
            f"| {analysis_ms / baseline:.2f} | {max(keras_ms, torch_ms) / baseline:.2f} |"
        )


if __name__ == "__main__":
    main()
