"""Hypothesis draws random valid graphs (chains, branches, merges, mixed families) and verifies them.

The CI budget is small; set STUDIO_FUZZ_EXAMPLES=500 for a long local run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from codegen.verify import verify_project
from studio.analysis import analyze
from studio.catalog.base import ACTIVATIONS
from studio.graph import Graph
from studio.project import Project, dumps_project

EXAMPLES = int(os.environ.get("STUDIO_FUZZ_EXAMPLES", "12"))


class Builder:
    """Grows a graph one layer at a time from the current tensor."""

    def __init__(self, draw) -> None:
        self.draw = draw
        self.graph = Graph()
        self.current = None

    def add(self, kind: str, params: dict | None = None, *sources: str) -> str:
        node = self.graph.add_node(kind, params=params or {})
        for source in sources or ([self.current] if self.current else []):
            self.graph.connect(source, node.id)
        self.current = node.id
        return node.id

    def shape(self, node_id: str | None = None):
        return analyze(self.graph).shapes[node_id or self.current]


def image_step(b: Builder) -> None:
    draw = b.draw
    height, width, channels = b.shape()
    small = min(height, width) < 4
    kind = draw(st.sampled_from(["conv", "depthwise", "pool", "bn", "act", "pad", "up", "add", "concat"]))
    padding = "same" if small else draw(st.sampled_from(["valid", "same"]))
    stride = 1 if small else draw(st.integers(1, 2))
    if kind == "conv":
        b.add(
            "Conv2D",
            {
                "filters": draw(st.integers(1, 4)),
                "kernel_size": draw(st.integers(1, 3)),
                "strides": stride,
                "padding": padding,
                "activation": draw(st.sampled_from(ACTIVATIONS)),
            },
        )
    elif kind == "depthwise":
        b.add(
            "DepthwiseConv2D",
            {
                "kernel_size": 3,
                "strides": stride,
                "padding": padding,
                "depth_multiplier": draw(st.integers(1, 2)),
            },
        )
    elif kind == "pool":
        b.add(
            draw(st.sampled_from(["MaxPooling2D", "AveragePooling2D"])),
            {"pool_size": 2, "padding": padding, "strides": [stride, stride]},
        )
    elif kind == "bn":
        b.add("BatchNormalization", {})
    elif kind == "act":
        b.add("Activation", {"activation": draw(st.sampled_from(ACTIVATIONS[1:]))})
    elif kind == "pad":
        b.add("ZeroPadding2D", {"padding": draw(st.lists(st.integers(0, 2), min_size=4, max_size=4))})
    elif kind == "up" and height * width <= 36:
        b.add("UpSampling2D", {"interpolation": draw(st.sampled_from(["nearest", "bilinear"]))})
    elif kind in ("add", "concat"):
        trunk = b.current
        branch = b.add(
            "Conv2D", {"filters": channels, "kernel_size": draw(st.integers(1, 3)), "padding": "same"}, trunk
        )
        if kind == "add":
            b.add(
                draw(st.sampled_from(["Add", "Multiply", "Maximum", "Average", "Subtract"])),
                {},
                branch,
                trunk,
            )
        else:
            b.add("Concatenate", {"axis": draw(st.sampled_from([-1, 1, 2]))}, branch, trunk)


def sequence_step(b: Builder) -> None:
    draw = b.draw
    steps, features = b.shape()
    kind = draw(st.sampled_from(["conv", "rnn", "dense", "ln", "mha", "pool", "add"]))
    if kind == "conv":
        b.add(
            "Conv1D",
            {
                "filters": draw(st.integers(1, 4)),
                "kernel_size": draw(st.integers(1, 3)),
                "padding": draw(st.sampled_from(["same", "causal"])),
            },
        )
    elif kind == "rnn":
        b.add(
            draw(st.sampled_from(["SimpleRNN", "LSTM", "GRU"])),
            {
                "units": draw(st.integers(1, 4)),
                "return_sequences": True,
                "bidirectional": draw(st.booleans()),
            },
        )
    elif kind == "dense":
        b.add("Dense", {"units": draw(st.integers(1, 6)), "activation": draw(st.sampled_from(ACTIVATIONS))})
    elif kind == "ln":
        b.add("LayerNormalization", {})
    elif kind == "mha":
        b.add("Dense", {"units": 8})
        b.add("MultiHeadAttention", {"num_heads": draw(st.sampled_from([1, 2, 4, 8])), "key_dim": 1})
        b.graph.set_params(b.current, {"key_dim": 8 // b.graph.node(b.current).params["num_heads"]})
    elif kind == "pool" and steps >= 2:
        b.add(draw(st.sampled_from(["MaxPooling1D", "AveragePooling1D"])), {"padding": "same"})
    elif kind == "add":
        trunk = b.current
        branch = b.add("Dense", {"units": features}, trunk)
        b.add("Add", {}, branch, trunk)


def vector_step(b: Builder) -> None:
    draw = b.draw
    (features,) = b.shape()
    kind = draw(st.sampled_from(["dense", "bn", "dropout", "merge"]))
    if kind == "dense":
        b.add("Dense", {"units": draw(st.integers(1, 8)), "activation": draw(st.sampled_from(ACTIVATIONS))})
    elif kind == "bn":
        b.add("BatchNormalization", {})
    elif kind == "dropout":
        b.add("Dropout", {"rate": 0.3})
    else:
        trunk = b.current
        left = b.add("Dense", {"units": features}, trunk)
        right = b.add("Dense", {"units": features, "activation": "tanh"}, trunk)
        merge = draw(st.sampled_from(["Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate"]))
        b.add(merge, {}, left, right)


def finish(b: Builder) -> None:
    rank = len(b.shape())
    if rank == 3:
        b.add(b.draw(st.sampled_from(["Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D"])), {})
    elif rank == 2:
        b.add(b.draw(st.sampled_from(["Flatten", "GlobalAveragePooling1D", "LSTM"])), {})
    b.add("Dense", {"units": 3})


@st.composite
def random_projects(draw) -> Project:
    b = Builder(draw)
    family = draw(st.sampled_from(["image", "sequence", "vector"]))
    if family == "image":
        b.add("Input", {"shape": [draw(st.integers(3, 9)), draw(st.integers(3, 9)), draw(st.integers(1, 3))]})
    elif family == "sequence":
        b.add("Input", {"shape": [draw(st.integers(2, 7)), draw(st.integers(1, 5))]})
    else:
        b.add("Input", {"shape": [draw(st.integers(1, 8))]})
    for _ in range(draw(st.integers(1, 5))):
        rank = len(b.shape())
        {3: image_step, 2: sequence_step, 1: vector_step}[rank](b)
    if len(b.graph) == 1 or draw(st.booleans()):
        finish(b)
    return Project(b.graph, name="fuzzed")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_projects())
def test_random_graphs_are_equivalent(project):
    note(dumps_project(project))
    analysis = analyze(project.graph)
    assert analysis.is_valid, [str(p) for p in analysis.problems]
    report = verify_project(project)
    assert report.ok, report.format()
