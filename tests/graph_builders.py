"""Compact graph construction for tests.

    project = make_project(
        ("x", "Input", {"shape": [8, 8, 3]}),
        ("conv", "Conv2D", {"filters": 4}, "x"),
        ("add", "Add", {}, "conv", "x"),
    )

Each row is (name, kind, params, *input names in port order). A row without
inputs after a row that produced a tensor is chained to the previous row.
"""

from __future__ import annotations

from studio.graph import Graph
from studio.project import Project, TrainingSettings


def make_graph(*rows) -> Graph:
    graph = Graph()
    ids: dict[str, str] = {}
    previous = None
    for index, row in enumerate(rows):
        name, kind, params, *sources = row
        node = graph.add_node(kind, name=name, params=params, position=(index * 200, 0))
        ids[name] = node.id
        if not sources and kind != "Input" and previous is not None:
            sources = [previous]
        for source in sources:
            graph.connect(ids[source], node.id)
        previous = name
    return graph


def make_project(*rows, name: str = "test model", **training) -> Project:
    return Project(make_graph(*rows), name=name, training=TrainingSettings(**training))


def chain(input_shape, *layers, **training) -> Project:
    """Input followed by ``layers`` given as (kind, params) pairs, each fed by the previous one."""
    rows = [("input", "Input", {"shape": list(input_shape)})]
    rows += [(f"{kind.lower()}_{index}", kind, params) for index, (kind, params) in enumerate(layers)]
    return make_project(*rows, **training)
