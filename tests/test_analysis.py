"""Shape inference, parameter counts and validation of whole graphs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.analysis import ERROR, WARNING, Problem, analyze
from studio.catalog import CATALOG, ParamCount, ParamError
from studio.catalog.params import BoolParam, ChoiceParam, FloatParam, IntParam, IntTupleParam, Param
from studio.graph import Edge, Graph, GraphError
from studio.project import Project, load_project
from studio.summary import format_summary
from tests.graph_builders import chain, make_graph, make_project

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "assets" / "examples").glob("*.layers.json"))


def messages(graph: Graph, severity: str | None = None) -> list[str]:
    return [p.message for p in analyze(graph).problems if severity is None or p.severity == severity]


# ----- random graphs (also used by test_project) -------------------------------------------


def param_values(param: Param) -> st.SearchStrategy:
    """Values of one parameter, mostly valid; cross-parameter rules may still refuse them."""
    if isinstance(param, BoolParam):
        return st.booleans()
    if isinstance(param, ChoiceParam):
        return st.sampled_from(param.choices)
    if isinstance(param, IntParam):
        low = -3 if param.minimum is None else param.minimum
        high = low + 6 if param.maximum is None else param.maximum
        return st.integers(low, high)
    if isinstance(param, FloatParam):
        low = -10.0 if param.minimum is None else param.minimum
        high = low + 10.0 if param.maximum is None else param.maximum
        return st.floats(low, high, exclude_max=param.exclusive_maximum, exclude_min=param.exclusive_minimum)
    if isinstance(param, IntTupleParam):
        items = st.integers(param.minimum, param.minimum + 5)
        if param.allow_minus_one:
            items = items | st.just(-1)
        size = param.length or 4
        tuples = st.lists(items, min_size=param.length or 1, max_size=size)
        return (st.none() | tuples) if param.nullable else tuples
    raise AssertionError(f"no strategy for {type(param).__name__}")


@st.composite
def layer_params(draw, kind: str) -> dict:
    """Default parameters, or random values for some of them."""
    spec = CATALOG.get(kind)
    chosen = draw(st.lists(st.sampled_from(spec.params), unique=True)) if spec.params else []
    params = {param.name: draw(param_values(param)) for param in chosen}
    if kind == "Input" and draw(st.booleans()):
        params["shape"] = draw(st.lists(st.integers(4, 12), min_size=1, max_size=3))  # room for kernels
    return params


@st.composite
def random_graphs(draw, max_nodes: int = 8, names=None, positions=None) -> Graph:
    """A graph built only through the public API, so it is as valid as the API keeps it."""
    graph = Graph()
    for index in range(draw(st.integers(1, max_nodes))):
        first_input = index == 0 and draw(st.integers(0, 9)) > 0  # most graphs start with an Input
        kind = "Input" if first_input else draw(st.sampled_from(["Input", *CATALOG.keys()]))
        name = draw(names) if names is not None else None
        position = draw(positions) if positions is not None else (0.0, 0.0)
        params = draw(layer_params(kind))
        try:
            graph.add_node(kind, name=name, params=params, position=position)
        except ParamError:
            graph.add_node(kind, name=name, position=position)
        except GraphError:  # a drawn name that is taken or not allowed
            graph.add_node(kind, params={}, position=position)
    ids = [node.id for node in graph.nodes]
    # Mostly forward edges (earlier node to later node), so that many graphs are connected.
    attempts = [(draw(st.sampled_from(ids[:index])), target) for index, target in enumerate(ids) if index]
    attempts += draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=len(ids)))
    for source, target in attempts:
        try:
            graph.connect(source, target, draw(st.none() | st.integers(0, 3)))
        except GraphError:
            pass
    if draw(st.booleans()):
        graph.set_outputs(draw(st.lists(st.sampled_from(ids), unique=True, max_size=3)))
    return graph


def force_edge(graph: Graph, source: str, target: str, port: int) -> None:
    """Add an edge behind the API's back (into both private structures), skipping its checks."""
    graph._targets[source][(target, port)] = None
    graph._ports[target][port] = source


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs(), data=st.data())
def test_analysis_never_raises_on_random_graphs(graph, data):
    if data.draw(st.booleans(), label="close a cycle"):
        # Graph.connect refuses cycles; analysis must still survive one in a corrupted model.
        ids = [node.id for node in graph.nodes]
        source, target = data.draw(st.sampled_from(ids)), data.draw(st.sampled_from(ids))
        spec, port = graph.spec(target), graph.free_port(target)
        closes_cycle = source == target or graph.has_path(target, source)
        port_exists = spec.max_inputs is None or port < spec.max_inputs
        if closes_cycle and port_exists:
            force_edge(graph, source, target, port)
    analysis = analyze(graph)
    assert all(isinstance(problem, Problem) for problem in analysis.problems)
    assert all(problem.severity in (ERROR, WARNING) for problem in analysis.problems)
    assert all(problem.node_id is None or problem.node_id in graph for problem in analysis.problems)
    assert set(analysis.shapes) == {node.id for node in graph.nodes}
    for node_id, shape in analysis.shapes.items():
        assert shape is None or all(isinstance(dim, int) and dim > 0 for dim in shape)
        if shape is None and analysis.is_valid:
            assert node_id not in analysis.live  # a valid model knows the shape of every live layer
    assert analysis.total_params.total >= 0
    format_summary(graph, analysis=analysis)  # the table copes with whatever was found


# ----- shapes and counts ------------------------------------------------------------------


def test_shapes_exclude_the_symbolic_batch_dimension():
    project = chain([8, 8, 1], ("Conv2D", {"filters": 4}), ("Flatten", {}), ("Dense", {"units": 10}))
    analysis = analyze(project.graph)
    assert analysis.is_valid and analysis.problems == []
    assert [analysis.shapes[node_id] for node_id in analysis.order] == [(8, 8, 1), (6, 6, 4), (144,), (10,)]
    assert [analysis.params[node_id] for node_id in analysis.order] == [
        ParamCount(),
        ParamCount(3 * 3 * 1 * 4 + 4),
        ParamCount(),
        ParamCount(144 * 10 + 10),
    ]
    assert analysis.total_params == ParamCount(40 + 1450)
    summary = format_summary(project.graph, title="t")
    assert "(None, 6, 6, 4)" in summary and " Total params: 1,490" in summary


def test_batch_normalization_statistics_are_non_trainable():
    project = chain([5], ("BatchNormalization", {}))
    assert analyze(project.graph).total_params == ParamCount(trainable=10, non_trainable=10)


def test_order_is_topological_and_follows_insertion_between_equals():
    graph = make_graph(
        ("x", "Input", {"shape": [4]}),
        ("b", "Dense", {"units": 2}, "x"),
        ("a", "Dense", {"units": 2}, "x"),
        ("join", "Add", {}, "a", "b"),
    )
    names = [graph.node(node_id).name for node_id in analyze(graph).order]
    assert names == ["x", "b", "a", "join"]


# ----- problems ---------------------------------------------------------------------------


def test_an_empty_graph_needs_an_input():
    assert messages(Graph()) == ["the model is empty: add an Input layer"]


def test_a_graph_without_input_layer():
    graph = Graph()
    dense = graph.add_node("Dense")
    problems = analyze(graph).problems
    assert Problem(ERROR, "the model has no Input layer") in problems
    assert Problem(ERROR, "Dense 'dense' input 1 not connected (it takes 1 input)", dense.id) in problems


def test_a_graph_without_output():
    graph = make_graph(("x", "Input", {"shape": [4]}))
    problems = analyze(graph).problems
    assert len(problems) == 1
    assert problems[0].severity == ERROR and problems[0].message.startswith("the model has no output")


def test_an_output_that_no_input_reaches():
    graph = make_graph(("x", "Input", {"shape": [4]}), ("d", "Dense", {}, "x"))
    lonely = graph.add_node("Dense", name="lonely")
    graph.set_outputs([lonely.id])
    found = messages(graph)
    assert "no Input layer is connected to a model output" in found
    assert "Dense 'lonely' input 1 not connected (it takes 1 input)" in found
    assert "Input 'x' does not reach any model output, so the generated model leaves it out" in found


def test_a_merge_with_one_input_names_the_missing_port():
    graph = make_graph(("x", "Input", {"shape": [4]}), ("add", "Add", {}))
    add = graph.find("add").id
    assert analyze(graph).problems == [
        Problem(ERROR, "Add 'add' input 2 not connected (it takes 2 or more inputs)", add)
    ]


def test_a_gap_between_ports_is_reported():
    graph = make_graph(("x", "Input", {"shape": [4]}), ("y", "Input", {"shape": [4]}))
    sub = graph.add_node("Subtract", name="sub")
    graph.connect(graph.find("x").id, sub.id, 1)
    problems = analyze(graph).problems_for(sub.id)
    assert [p.message for p in problems] == ["Subtract 'sub' input 1 not connected (it takes 2 inputs)"]


def test_concatenate_with_mismatched_axes_names_both_shapes_in_port_order():
    graph = make_graph(
        ("a", "Input", {"shape": [28, 28, 32]}),
        ("b", "Input", {"shape": [14, 14, 32]}),
        ("concatenate", "Concatenate", {}, "a", "b"),
    )
    concatenate = graph.find("concatenate").id
    assert analyze(graph).problems == [
        Problem(
            ERROR,
            "Concatenate 'concatenate' input 2 has shape (None, 14, 14, 32) but input 1 has "
            "(None, 28, 28, 32): all axes but -1 must match",
            concatenate,
        )
    ]
    # Swapping the ports swaps the roles in the message.
    a, b = graph.find("a").id, graph.find("b").id
    graph.disconnect(concatenate, 0)
    graph.disconnect(concatenate, 1)
    graph.connect(b, concatenate, 0)
    graph.connect(a, concatenate, 1)
    assert messages(graph) == [
        "Concatenate 'concatenate' input 2 has shape (None, 28, 28, 32) but input 1 has "
        "(None, 14, 14, 32): all axes but -1 must match"
    ]


def test_concatenate_of_compatible_shapes_joins_the_axis():
    graph = make_graph(
        ("a", "Input", {"shape": [28, 28, 32]}),
        ("b", "Input", {"shape": [28, 28, 8]}),
        ("concatenate", "Concatenate", {}, "a", "b"),
    )
    analysis = analyze(graph)
    assert analysis.problems == []
    assert analysis.shapes[graph.find("concatenate").id] == (28, 28, 40)


def test_add_with_different_shapes():
    graph = make_graph(
        ("a", "Input", {"shape": [4]}),
        ("b", "Input", {"shape": [5]}),
        ("add", "Add", {}, "a", "b"),
    )
    assert messages(graph) == [
        "Add 'add' input 2 has shape (None, 5) but input 1 has (None, 4): they do not broadcast "
        "(axis -1 has sizes 4 and 5; sizes must match or be 1)"
    ]


def test_kernel_larger_than_its_input():
    project = chain([4, 4, 1], ("Conv2D", {"kernel_size": 5}))
    assert messages(project.graph) == [
        "Conv2D 'conv2d_0' kernel (5, 5) is larger than the input size (4, 4) "
        "(padding 'valid', strides (1, 1)); received (None, 4, 4, 1)"
    ]


def test_reshape_with_another_element_count():
    project = chain([4, 4, 1], ("Reshape", {"target_shape": [5, 3]}))
    assert messages(project.graph) == [
        "Reshape 'reshape_0' cannot reshape the input (None, 4, 4, 1) of 16 elements to (None, 5, 3) of 15 elements"
    ]


def test_errors_do_not_cascade_downstream():
    project = chain(
        [4, 4, 1], ("Reshape", {"target_shape": [5, 3]}), ("Flatten", {}), ("Dense", {"units": 2})
    )
    analysis = analyze(project.graph)
    assert len(analysis.problems) == 1
    assert [analysis.shapes[node_id] for node_id in analysis.order] == [(4, 4, 1), None, None, None]


def test_layers_that_reach_no_output_are_warnings_and_left_out_of_the_count():
    graph = make_graph(
        ("x", "Input", {"shape": [4]}),
        ("head", "Dense", {"units": 2}),
        ("side", "Dense", {"units": 3}, "x"),
    )
    head, side = graph.find("head").id, graph.find("side").id
    graph.set_outputs([head])
    analysis = analyze(graph)
    assert analysis.is_valid
    assert analysis.problems == [
        Problem(
            WARNING,
            "Dense 'side' does not reach any model output, so the generated model leaves it out",
            side,
        )
    ]
    assert analysis.live == {graph.find("x").id, head}
    assert analysis.params[side] == ParamCount(15)  # still counted for the layer itself
    assert analysis.total_params == ParamCount(10)  # but not for the model


def test_int32_ids_into_a_layer_other_than_embedding():
    graph = make_graph(("ids", "Input", {"shape": [6], "dtype": "int32"}), ("dense", "Dense", {}))
    ids, dense = graph.find("ids").id, graph.find("dense").id
    assert analyze(graph).problems == [
        Problem(
            ERROR,
            "Dense 'dense' receives int32 token ids from Input 'ids'; only Embedding accepts integer inputs "
            "(set the Input's dtype to float32)",
            dense,
            Edge(ids, dense, 0),
        )
    ]


def test_embedding_needs_int32_ids():
    graph = make_graph(
        ("x", "Input", {"shape": [6]}), ("emb", "Embedding", {"input_dim": 10, "output_dim": 3})
    )
    problem = analyze(graph).problems[0]
    assert problem.message == (
        "Embedding 'emb' needs integer token ids from an int32 Input, but Input 'x' gives float32 values"
    )
    assert problem.edge == Edge("n1", "n2", 0)
    graph.set_param("n1", "dtype", "int32")
    analysis = analyze(graph)
    assert analysis.problems == [] and analysis.shapes["n2"] == (6, 3)


def test_a_cycle_is_reported_for_every_node_in_it():
    graph = make_graph(
        ("x", "Input", {"shape": [4]}),
        ("add", "Add", {}, "x"),
        ("dense", "Dense", {"units": 4}),
        ("out", "Dense", {"units": 2}),
    )
    add, dense = graph.find("add").id, graph.find("dense").id
    # Graph.connect refuses cycles, so the only way to test the checker's own cycle
    # detection (a defence against a corrupted model) is to edit the private graph.
    force_edge(graph, dense, add, 1)
    analysis = analyze(graph)
    cycle = [p for p in analysis.problems if "cycle" in p.message]
    assert cycle == [
        Problem(ERROR, "Add 'add' is part of a cycle (Add 'add', Dense 'dense')", add),
        Problem(ERROR, "Dense 'dense' is part of a cycle (Add 'add', Dense 'dense')", dense),
    ]
    assert analysis.shapes[add] is None and analysis.shapes[dense] is None
    assert add not in analysis.order
    assert not analysis.is_valid


def test_problem_text_and_lookup():
    graph = make_graph(("x", "Input", {"shape": [4]}), ("add", "Add", {}))
    analysis = analyze(graph)
    add = graph.find("add").id
    assert str(analysis.problems[0]) == "error: Add 'add' input 2 not connected (it takes 2 or more inputs)"
    assert analysis.problems_for(add) == analysis.errors
    assert analysis.problems_for("n1") == []


# ----- agreement with Keras ---------------------------------------------------------------


def extra_projects() -> dict[str, Project]:
    projects = {
        "two-inputs-two-outputs": make_project(
            ("image", "Input", {"shape": [8, 8, 3]}),
            ("features", "Input", {"shape": [5]}),
            ("conv", "Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, "image"),
            ("bn", "BatchNormalization", {}),
            ("pool", "GlobalAveragePooling2D", {}),
            ("dense", "Dense", {"units": 6}, "features"),
            ("joined", "Concatenate", {}, "pool", "dense"),
            ("label", "Dense", {"units": 3, "activation": "softmax"}, "joined"),
            ("score", "Dense", {"units": 1}, "joined"),
        ),
        "tokens-and-rnns": make_project(
            ("tokens", "Input", {"shape": [7], "dtype": "int32"}),
            ("emb", "Embedding", {"input_dim": 50, "output_dim": 8}),
            ("gru", "GRU", {"units": 5, "return_sequences": True, "bidirectional": True}),
            ("rnn", "SimpleRNN", {"units": 3}),
            ("out", "Dense", {"units": 2}),
        ),
        "image-reshaping": make_project(
            ("x", "Input", {"shape": [9, 8, 2]}),
            ("pad", "ZeroPadding2D", {"padding": [1, 0, 2, 1]}),
            ("dw", "DepthwiseConv2D", {"depth_multiplier": 2}),
            ("sep", "SeparableConv2D", {"filters": 3, "padding": "same"}),
            ("crop", "Cropping2D", {"cropping": [1, 0, 0, 1]}),
            ("up", "UpSampling2D", {}),
            ("tconv", "Conv2DTranspose", {"filters": 2, "strides": 2}),
            ("avg", "AveragePooling2D", {"pool_size": 3}),
            ("flat", "Flatten", {}),
            ("reshape", "Reshape", {"target_shape": [-1, 6]}),
            ("perm", "Permute", {"dims": [2, 1]}),
            ("conv1d", "Conv1D", {"filters": 3, "kernel_size": 2, "padding": "causal"}),
            ("lstm", "LSTM", {"units": 4}),
            ("out", "Dense", {"units": 2}),
        ),
        "attention-and-merges": make_project(
            ("seq", "Input", {"shape": [6, 8]}),
            ("val", "Dense", {"units": 8}, "seq"),
            ("mha", "MultiHeadAttention", {"num_heads": 2, "key_dim": 4}, "seq", "val", "seq"),
            ("ln", "LayerNormalization", {}),
            ("sub", "Subtract", {}, "ln", "seq"),
            ("mul", "Multiply", {}, "sub", "seq"),
            ("mx", "Maximum", {}, "mul", "seq"),
            ("av", "Average", {}, "mx", "seq", "sub"),
            ("gmp", "GlobalMaxPooling1D", {}),
            ("act", "Activation", {"activation": "gelu"}),
            ("drop", "Dropout", {"rate": 0.1}),
            ("resc", "Rescaling", {"scale": 2.0}),
            ("out", "Dense", {"units": 3}),
        ),
    }
    return projects


KERAS_CASES = {path.name: path for path in EXAMPLES} | extra_projects()


@pytest.fixture(scope="module")
def keras_builder():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from codegen import generate
    from codegen.runtime import load_module

    def build(project: Project):
        code = generate(project, "keras")
        return code.plan, load_module(code.source, "m").build_model()

    return build


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_shapes_and_counts_equal_keras(case, keras_builder):
    source = KERAS_CASES[case]
    project = load_project(source) if isinstance(source, Path) else source
    analysis = analyze(project.graph)
    assert analysis.problems == []
    plan, model = keras_builder(project)
    assert {layer.id for layer in plan.layers} == {node.id for node in project.graph.nodes}
    for layer in plan.layers:
        keras_layer = model.get_layer(layer.ident)
        trainable = sum(math.prod(weight.shape) for weight in keras_layer.trainable_weights)
        assert tuple(keras_layer.output.shape[1:]) == analysis.shapes[layer.id], layer.ident
        assert keras_layer.count_params() == analysis.params[layer.id].total, layer.ident
        assert trainable == analysis.params[layer.id].trainable, layer.ident
    assert model.count_params() == analysis.total_params.total
