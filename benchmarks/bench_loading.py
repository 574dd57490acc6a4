"""Loading and checking large inputs: project files, analysis, CSV headers and ONNX chains.

    .venv/bin/python benchmarks/bench_loading.py [--quick]

Every loader and check must grow linearly (or as n log n) with its input (issue 17). Each
figure is a median, with a ratio against a baseline measured in the same run on the same
input: ``json.loads`` of the project text, or reading the CSV's lines. A ratio that stays
flat as the input grows means linear growth; the exponent k of time ∝ n^k is printed too.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import median_ms, ratio, table  # noqa: E402
from studio.analysis import analyze  # noqa: E402
from studio.project import loads_project  # noqa: E402

PROJECT_SIZES = (10_000, 100_000)
CSV_COLUMNS = (10_000, 100_000)
ONNX_SIZES = (1_000, 5_000)


def residual_project_text(layers: int) -> str:
    """Input, then Dense layers with an Add every third layer, as the text of a project file."""
    nodes = [{"id": "n1", "kind": "Input", "name": "input", "params": {"shape": [8]}}]
    edges = []
    current = skip = "n1"
    for index in range(2, layers + 1):
        node_id = f"n{index}"
        if index % 3 == 0:
            nodes.append({"id": node_id, "kind": "Add", "name": f"add_{index}", "params": {}})
            edges += [{"from": current, "to": node_id, "port": 0}, {"from": skip, "to": node_id, "port": 1}]
            skip = node_id
        else:
            nodes.append({"id": node_id, "kind": "Dense", "name": f"dense_{index}", "params": {"units": 8}})
            edges.append({"from": current, "to": node_id, "port": 0})
        current = node_id
    return json.dumps({"format": "layer-studio", "version": 1, "name": "big", "nodes": nodes, "edges": edges})


def measure_projects(repeat: int) -> dict[int, dict[str, float]]:
    figures = {}
    for layers in PROJECT_SIZES:
        text = residual_project_text(layers)
        project = loads_project(text)
        figures[layers] = {
            "baseline": median_ms(lambda text=text: json.loads(text), repeat),
            "load": median_ms(lambda text=text: loads_project(text), repeat),
            "analyze": median_ms(lambda project=project: analyze(project.graph), repeat),
        }
    return figures


def measure_csv(repeat: int) -> dict[int, dict[str, float]]:
    from studio.datasets import DatasetError
    from studio.datasets.tables import read_csv

    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for columns in CSV_COLUMNS:
            names = [f"c{i}" for i in range(columns)] + ["c0"]  # one name twice: refused after the full check
            text = ",".join(names) + "\n" + ",".join("1" for _ in names) + "\n"
            path = Path(folder) / f"wide{columns}.csv"
            path.write_text(text, encoding="utf-8")

            def check(path: Path = path) -> None:
                try:
                    read_csv(path)
                except DatasetError:
                    pass

            figures[columns] = {
                "baseline": median_ms(lambda text=text: list(csv.reader(io.StringIO(text))), repeat),
                "check": median_ms(check, repeat),
            }
    return figures


def measure_onnx(repeat: int) -> dict[int, dict[str, float]] | None:
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return None
    from studio.interop import import_model

    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for count in ONNX_SIZES:
            nodes, previous = [], "x"
            for index in range(count):  # nameless nodes, as some exporters write them
                nodes.append(helper.make_node("Relu", [previous], [f"t{index}"]))
                previous = f"t{index}"
            graph = helper.make_graph(
                nodes,
                "chain",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [1, 16])],
            )
            path = Path(folder) / f"chain{count}.onnx"
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
            figures[count] = {
                "baseline": median_ms(lambda path=path: onnx.load(str(path)), repeat),
                "import": median_ms(lambda path=path: import_model(path, with_weights=False), repeat),
            }
    return figures


def exponent(figures: dict[int, dict[str, float]], key: str) -> str:
    small, large = sorted(figures)[-2:]
    return f"{math.log(figures[large][key] / figures[small][key]) / math.log(large / small):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else 3

    projects = measure_projects(repeat)
    print("A residual MLP project (an Add every third layer). Baseline: json.loads of its text. Medians.\n")
    rows = [
        (
            f"{n:,}",
            f"{f['baseline']:.0f}",
            f"{f['load']:.0f}",
            f"{f['analyze']:.0f}",
            ratio(f["load"], f["baseline"]),
            ratio(f["analyze"], f["baseline"]),
        )
        for n, f in projects.items()
    ]
    headers = (
        "layers",
        "json.loads (ms)",
        "load (ms)",
        "analyze (ms)",
        "load / baseline",
        "analyze / baseline",
    )
    print(table(headers, rows, "r" * len(headers)))
    print(
        f"\nGrowth exponent k (time ∝ n^k, 1 is linear): load {exponent(projects, 'load')}, "
        f"analyze {exponent(projects, 'analyze')}.\n"
    )

    columns = measure_csv(repeat)
    print("A CSV header with one name twice (the duplicate check runs to the end). Baseline: csv.reader.\n")
    rows = [
        (f"{n:,}", f"{f['baseline']:.1f}", f"{f['check']:.1f}", ratio(f["check"], f["baseline"]))
        for n, f in columns.items()
    ]
    headers = ("columns", "csv.reader (ms)", "read_csv (ms)", "read_csv / baseline")
    print(table(headers, rows, "r" * len(headers)))
    print(f"\nGrowth exponent k: read_csv {exponent(columns, 'check')}.\n")

    chains = measure_onnx(repeat)
    if chains is None:
        print("ONNX: not installed, skipped.")
        return 0
    print("An ONNX chain of nameless Relu nodes. Baseline: onnx.load of the file.\n")
    rows = [
        (f"{n:,}", f"{f['baseline']:.1f}", f"{f['import']:.0f}", ratio(f["import"], f["baseline"]))
        for n, f in chains.items()
    ]
    headers = ("nodes", "onnx.load (ms)", "import (ms)", "import / baseline")
    print(table(headers, rows, "r" * len(headers)))
    print(f"\nGrowth exponent k: import {exponent(chains, 'import')}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
