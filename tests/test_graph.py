"""The graph model: ids, names, ports, edits, their validation and their events."""

from __future__ import annotations

import math

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from studio.catalog import ParamError, UnknownKindError
from studio.events import GraphEvents
from studio.graph import MAX_NAME_LENGTH, Edge, Graph, GraphError, first_cycle_edge
from tests.graph_builders import make_graph


class Recorder:
    """Records every event the graph emits, as (type, node_id, data)."""

    def __init__(self, graph: Graph) -> None:
        self.events: list[tuple[str, str | None, dict]] = []
        for name in GraphEvents.NAMES:
            graph.events.emitter(name).connect(self._record)

    def _record(self, event) -> None:
        self.events.append((event.type, event.node_id, dict(event.data)))

    @property
    def types(self) -> list[str]:
        return [event_type for event_type, _, _ in self.events]

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture
def graph() -> Graph:
    return Graph()


def two_inputs_and_merge(kind: str = "Concatenate") -> tuple[Graph, str, str, str]:
    graph = make_graph(
        ("a", "Input", {"shape": [4]}),
        ("b", "Input", {"shape": [6]}),
        ("merge", kind, {}),
    )
    # make_graph chained "merge" to "b" (the previous row); start again from bare ports.
    merge = graph.find("merge").id
    graph.disconnect(merge, 0)
    return graph, graph.find("a").id, graph.find("b").id, merge


# ----- ids ------------------------------------------------------------------------------


def test_ids_are_stable_strings_never_reused(graph):
    first = graph.add_node("Input")
    second = graph.add_node("Dense")
    assert (first.id, second.id) == ("n1", "n2")
    graph.remove_node(second.id)
    assert graph.add_node("Dense").id == "n3"  # n2 is not handed out again
    assert [node.id for node in graph.nodes] == ["n1", "n3"]


def test_explicit_ids_are_kept_and_move_the_counter_past_them(graph):
    graph.add_node("Input", node_id="n7")
    graph.add_node("Dense", node_id="custom")
    assert graph.add_node("Dense").id == "n8"
    assert "custom" in graph and graph.node("custom").kind == "Dense"


@pytest.mark.parametrize(
    ("node_id", "message"),
    [("n1", "a node with id 'n1' already exists"), ("", "node ids must be non-empty strings")],
)
def test_bad_explicit_ids_are_refused(graph, node_id, message):
    graph.add_node("Input")
    with pytest.raises(GraphError, match=message):
        graph.add_node("Dense", node_id=node_id)
    assert len(graph) == 1


def test_unknown_node_and_kind_are_reported(graph):
    with pytest.raises(GraphError, match="there is no node with id 'nope'"):
        graph.node("nope")
    with pytest.raises(UnknownKindError, match="Did you mean Dense"):
        graph.add_node("Dense2D")


@pytest.mark.parametrize(
    "edit",
    [
        lambda g: g.remove_node("ghost"),
        lambda g: g.rename_node("ghost", "x"),
        lambda g: g.move_node("ghost", (1, 2)),
        lambda g: g.set_param("ghost", "units", 3),
        lambda g: g.connect("n1", "ghost"),
        lambda g: g.disconnect("ghost", 0),
        lambda g: g.set_outputs(["ghost"]),
        lambda g: g.input_edges("ghost"),
    ],
    ids=["remove", "rename", "move", "set_param", "connect", "disconnect", "set_outputs", "input_edges"],
)
def test_every_operation_on_an_unknown_node_is_refused(graph, edit):
    graph.add_node("Input")
    recorder = Recorder(graph)
    with pytest.raises(GraphError, match="there is no node with id 'ghost'"):
        edit(graph)
    assert recorder.events == []


# ----- names ----------------------------------------------------------------------------


def test_names_are_keras_style_and_unique_per_graph(graph):
    names = [graph.add_node("Dense").name for _ in range(3)]
    assert names == ["dense", "dense_1", "dense_2"]
    assert graph.add_node("Conv2DTranspose").name == "conv2d_transpose"
    assert graph.add_node("SimpleRNN").name == "simple_rnn"
    assert graph.add_node("MultiHeadAttention").name == "multi_head_attention"
    graph.rename_node(graph.find("dense_1").id, "head")
    assert graph.add_node("Dense").name == "dense_1"  # the free name is taken again
    # Counters are per graph: a new graph starts from "dense" again.
    assert Graph().add_node("Dense").name == "dense"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must be a non-empty string"),
        ("   ", "must be a non-empty string"),
        (3, "must be a non-empty string"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH} characters"),
        ("a\nb", "control characters"),
        ("a\ud800", "lone surrogate"),
        ("dense", "the name 'dense' is already used by Dense 'dense'"),
    ],
)
def test_bad_names_are_refused_on_add_and_rename(graph, name, message):
    dense = graph.add_node("Dense")
    other = graph.add_node("Dropout")
    recorder = Recorder(graph)
    with pytest.raises(GraphError, match=message):
        graph.add_node("Dense", name=name)
    with pytest.raises(GraphError, match=message):
        graph.rename_node(other.id, name)
    assert [node.name for node in graph.nodes] == ["dense", "dropout"]
    assert graph.node(dense.id).name == "dense"
    assert recorder.events == []


def test_unicode_names_are_allowed(graph):
    node = graph.add_node("Dense", name="couche dense é 密集 🙂")
    assert graph.find("couche dense é 密集 🙂") is node
    assert graph.label(node.id) == "Dense 'couche dense é 密集 🙂'"


def test_renaming_to_the_same_name_is_a_silent_no_op(graph):
    node = graph.add_node("Dense")
    recorder = Recorder(graph)
    graph.rename_node(node.id, "dense")
    assert recorder.events == []


# ----- ports, inputs and outputs -----------------------------------------------------------


def test_input_ports_keep_their_order():
    graph, a, b, merge = two_inputs_and_merge()
    graph.connect(b, merge)  # port 0
    graph.connect(a, merge)  # port 1
    assert graph.inputs_of(merge) == [b, a]
    assert [edge.port for edge in graph.input_edges(merge)] == [0, 1]


def test_explicit_ports_leave_gaps_and_free_port_fills_them():
    graph, a, b, merge = two_inputs_and_merge()
    graph.connect(a, merge, 1)
    assert graph.inputs_of(merge) == [None, a]
    assert graph.free_port(merge) == 0
    assert graph.connect(b, merge) == Edge(b, merge, 0)
    assert graph.inputs_of(merge) == [b, a]
    assert graph.free_port(merge) == 2


def test_subtract_port_order_is_what_the_user_chose():
    graph, a, b, merge = two_inputs_and_merge("Subtract")
    graph.connect(a, merge, 1)
    graph.connect(b, merge, 0)
    assert graph.inputs_of(merge) == [b, a]  # b - a


def test_one_output_feeds_several_ports_of_the_same_node():
    graph, a, _, merge = two_inputs_and_merge("Add")
    graph.connect(a, merge, 0)
    graph.connect(a, merge, 1)
    assert graph.inputs_of(merge) == [a, a]
    assert graph.successors(a) == [merge]
    assert len(graph.edges) == 2


def test_several_inputs_and_declared_outputs_in_order():
    graph = make_graph(
        ("x", "Input", {"shape": [4]}),
        ("y", "Input", {"shape": [4]}),
        ("add", "Add", {}, "x", "y"),
        ("head_a", "Dense", {"units": 2}, "add"),
        ("head_b", "Dense", {"units": 3}, "add"),
    )
    ids = {node.name: node.id for node in graph.nodes}
    assert graph.input_nodes == [ids["x"], ids["y"]]
    assert graph.declared_outputs == []
    assert graph.effective_outputs() == [ids["head_a"], ids["head_b"]]
    graph.set_outputs([ids["head_b"], ids["head_a"]])
    assert graph.effective_outputs() == [ids["head_b"], ids["head_a"]]
    graph.set_outputs([ids["add"]])
    assert graph.effective_outputs() == [ids["add"]]
    graph.set_outputs([])
    assert graph.effective_outputs() == [ids["head_a"], ids["head_b"]]


def test_an_input_alone_is_not_an_output(graph):
    graph.add_node("Input")
    assert graph.effective_outputs() == []


def test_set_outputs_refuses_unknown_and_repeated_nodes(graph):
    node = graph.add_node("Dense")
    with pytest.raises(GraphError, match="there is no node with id 'zz'"):
        graph.set_outputs([node.id, "zz"])
    with pytest.raises(GraphError, match="only once"):
        graph.set_outputs([node.id, node.id])
    assert graph.declared_outputs == []


def test_positions_are_stored_as_float_pairs(graph):
    node = graph.add_node("Dense", position=(10, -2.5))
    assert node.position == (10.0, -2.5)
    graph.move_node(node.id, [3, 4])
    assert graph.node(node.id).position == (3.0, 4.0)


@pytest.mark.parametrize(
    "position", [(1, 2, 3), None, "12", (math.nan, 0.0), (0.0, math.inf), (True, 1.0), (10**400, 0)]
)
def test_bad_positions_are_refused(graph, position):
    node = graph.add_node("Dense", position=(1, 2))
    with pytest.raises(GraphError, match="a position is a pair of finite numbers"):
        graph.move_node(node.id, position)
    with pytest.raises(GraphError, match="a position is a pair of finite numbers"):
        graph.add_node("Dense", position=position)
    assert graph.node(node.id).position == (1.0, 2.0)
    assert len(graph) == 1


def test_the_graph_holds_one_edge_per_port_keyed_by_port():
    graph, a, b, merge = two_inputs_and_merge("Add")
    graph.connect(a, merge, 0)
    graph.connect(a, merge, 1)
    graph.connect(b, merge, 2)
    assert graph.edges == [Edge(a, merge, 0), Edge(a, merge, 1), Edge(b, merge, 2)]
    assert graph.output_edges(a) == [Edge(a, merge, 0), Edge(a, merge, 1)]
    assert graph.successors(a) == [merge] and graph.inputs_of(merge) == [a, a, b]
    graph.disconnect(merge, 1)
    assert graph.edges == [Edge(a, merge, 0), Edge(b, merge, 2)]
    assert graph.output_edges(a) == [Edge(a, merge, 0)]


def _random_graph(edges: list[tuple[int, int]], count: int) -> tuple[Graph, nx.MultiDiGraph]:
    """Our graph with ``count`` Add layers and ``edges`` (cycles allowed), and networkx's twin."""
    graph, twin = Graph(), nx.MultiDiGraph()
    ids = [graph.add_node("Add", f"add_{index}").id for index in range(count)]
    twin.add_nodes_from(ids)
    for source, target in edges:
        if source != target:
            edge = graph.connect(ids[source], ids[target], check_cycle=False)
            twin.add_edge(edge.source, edge.target, key=edge.port)
    return graph, twin


@given(
    st.integers(1, 9).flatmap(
        lambda count: st.tuples(
            st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)), max_size=20),
            st.just(count),
        )
    )
)
def test_the_graph_algorithms_agree_with_networkx(case):
    """networkx is the oracle for our own path search, ancestors, topological order and cycles."""
    graph, twin = _random_graph(*case)
    components = [set(c) for c in nx.strongly_connected_components(twin) if len(c) > 1]
    assert sorted(map(sorted, components)) == sorted(map(sorted, graph.cycles()))
    in_cycle = set().union(*components)
    acyclic = twin.subgraph([n for n in twin if n not in in_cycle])
    rank = {node.id: f"{index:04d}" for index, node in enumerate(graph.nodes)}
    expected = list(nx.lexicographical_topological_sort(acyclic, key=rank.__getitem__))
    assert graph.topological_order(leave_out=in_cycle) == expected
    for source in twin:
        for target in twin:
            assert graph.has_path(source, target) == nx.has_path(twin, source, target)
        assert graph.ancestors([source]) == nx.ancestors(twin, source) | {source}
        assert graph.successors(source) == list(twin.successors(source))


def test_a_long_chain_and_a_long_cycle_need_no_deep_recursion():
    graph, _ = _random_graph([(index, index + 1) for index in range(4999)] + [(4999, 0)], 5000)
    assert [len(component) for component in graph.cycles()] == [5000]
    assert graph.topological_order() == []


# ----- parameters ------------------------------------------------------------------------


def test_parameters_are_validated_and_completed_with_defaults(graph):
    node = graph.add_node("Dense", params={"units": 5})
    assert node.params == {"units": 5, "activation": "linear", "use_bias": True}
    graph.set_param(node.id, "activation", "relu")
    assert graph.node(node.id).params["activation"] == "relu"


def test_bad_parameter_message_names_layer_and_value(graph):
    node = graph.add_node("Dense")
    with pytest.raises(ParamError) as error:
        graph.set_param(node.id, "units", -3)
    assert str(error.value) == "Dense 'dense': expected a positive integer. Received: units=-3"
    with pytest.raises(ParamError) as error:
        graph.add_node("Dense", name="head", params={"units": 0})
    assert str(error.value) == "Dense 'head': expected a positive integer. Received: units=0"
    with pytest.raises(ParamError, match=r"Dense 'dense': Dense has no parameter 'filters'"):
        graph.set_param(node.id, "filters", 3)
    assert graph.node(node.id).params["units"] == 64
    assert graph.find("head") is None


def test_set_params_validates_everything_before_changing_anything(graph):
    node = graph.add_node("Dense")
    recorder = Recorder(graph)
    with pytest.raises(ParamError, match="Received: activation='nope'"):
        graph.set_params(node.id, {"units": 8, "activation": "nope"})
    assert graph.node(node.id).params["units"] == 64
    assert recorder.events == []


def test_cross_parameter_rules_apply(graph):
    node = graph.add_node("Permute")
    with pytest.raises(ParamError, match=r"Permute 'permute': expected a permutation of 1..2"):
        graph.set_param(node.id, "dims", [1, 1])


# ----- connections ------------------------------------------------------------------------


def test_connect_refuses_self_loops():
    graph = make_graph(("x", "Input", {"shape": [4]}), ("d", "Dense", {}))
    with pytest.raises(GraphError, match="cannot connect Dense 'd' to itself"):
        graph.connect("n2", "n2")


def test_connect_refuses_cycles():
    graph = make_graph(
        ("x", "Input", {"shape": [4]}),
        ("a", "Add", {}, "x", "x"),
        ("d", "Dense", {"units": 4}),
        ("e", "Dense", {"units": 4}),
    )
    a, e = graph.find("a").id, graph.find("e").id
    with pytest.raises(GraphError, match="connecting Dense 'e' to Add 'a' would create a cycle"):
        graph.connect(e, a, 2)
    assert not graph.cycles()


def test_connect_refuses_occupied_ports():
    graph, a, b, merge = two_inputs_and_merge()
    graph.connect(a, merge, 0)
    with pytest.raises(GraphError, match="input 1 of Concatenate 'merge' is already connected to Input 'a'"):
        graph.connect(b, merge, 0)
    with pytest.raises(GraphError, match="Input 'a' is already connected to input 1 of Concatenate 'merge'"):
        graph.connect(a, merge, 0)


def test_connect_refuses_ports_beyond_max_inputs():
    graph, a, b, merge = two_inputs_and_merge("Subtract")
    graph.connect(a, merge)
    graph.connect(b, merge)
    with pytest.raises(GraphError, match="Subtract 'merge' takes 2 inputs; input 3 does not exist"):
        graph.connect(a, merge)
    dense = graph.add_node("Dense").id
    graph.connect(a, dense)
    with pytest.raises(GraphError, match="Dense 'dense' takes 1 input; input 2 does not exist"):
        graph.connect(b, dense)


@pytest.mark.parametrize("port", [-1, True, 1.5, "0"])
def test_connect_refuses_bad_port_numbers(port):
    graph, a, _, merge = two_inputs_and_merge()
    with pytest.raises(GraphError, match="input ports are numbered from 0"):
        graph.connect(a, merge, port)


def test_connect_refuses_inputs_into_an_input_node():
    graph, a, b, _ = two_inputs_and_merge()
    with pytest.raises(GraphError, match="Input 'b' is a model input and takes no inputs"):
        graph.connect(a, b)


def test_connect_refuses_unknown_nodes():
    graph, a, _, _ = two_inputs_and_merge()
    with pytest.raises(GraphError, match="there is no node with id 'ghost'"):
        graph.connect(a, "ghost")
    with pytest.raises(GraphError, match="there is no node with id 'ghost'"):
        graph.connect("ghost", a)


def test_refused_connections_change_nothing_and_emit_nothing():
    graph, a, b, merge = two_inputs_and_merge("Subtract")
    graph.connect(a, merge, 0)
    before = graph.edges
    recorder = Recorder(graph)
    for source, target, port in [(merge, merge, 1), (b, merge, 0), (b, merge, 2), (merge, a, None)]:
        with pytest.raises(GraphError):
            graph.connect(source, target, port)
    assert graph.edges == before
    assert recorder.events == []


def test_disconnect_returns_the_edge_and_refuses_free_ports():
    graph, a, _, merge = two_inputs_and_merge()
    graph.connect(a, merge, 1)
    assert graph.disconnect(merge, 1) == Edge(a, merge, 1)
    assert graph.edges == []
    with pytest.raises(GraphError, match="input 1 of Concatenate 'merge' is not connected"):
        graph.disconnect(merge, 0)


# ----- events -----------------------------------------------------------------------------


def test_each_edit_emits_its_event_then_one_changed(graph):
    recorder = Recorder(graph)
    x = graph.add_node("Input", params={"shape": [4]})
    dense = graph.add_node("Dense")
    edits = [
        (lambda: graph.connect(x.id, dense.id), "edge_added", dense.id, {"source": x.id, "port": 0}),
        (
            lambda: graph.rename_node(dense.id, "head"),
            "node_renamed",
            dense.id,
            {"old": "dense", "new": "head"},
        ),
        (lambda: graph.move_node(dense.id, (5, 6)), "node_moved", dense.id, {"position": (5.0, 6.0)}),
        (lambda: graph.set_outputs([dense.id]), "outputs_changed", None, {"old": [], "new": [dense.id]}),
        (lambda: graph.disconnect(dense.id, 0), "edge_removed", dense.id, {"source": x.id, "port": 0}),
    ]
    assert recorder.types == ["node_added", "changed", "node_added", "changed"]
    assert recorder.events[0][1] == x.id
    for edit, event_type, node_id, data in edits:
        recorder.clear()
        edit()
        assert recorder.types == [event_type, "changed"]
        assert recorder.events[0] == (event_type, node_id, data)
        assert recorder.events[1][2] == {"reasons": [event_type]}


def test_params_changed_carries_old_and_new_values(graph):
    node = graph.add_node("Dense")
    recorder = Recorder(graph)
    graph.set_param(node.id, "units", 3)
    assert recorder.types == ["params_changed", "changed"]
    _, node_id, data = recorder.events[0]
    assert node_id == node.id
    assert data["old"]["units"] == 64 and data["new"]["units"] == 3
    recorder.clear()
    graph.set_param(node.id, "units", 3)  # unchanged: nothing to tell
    assert recorder.events == []


def test_remove_node_removes_its_edges_and_output_in_one_change():
    graph = make_graph(
        ("x", "Input", {"shape": [4]}),
        ("mid", "Dense", {"units": 4}),
        ("out", "Dense", {"units": 2}),
    )
    mid = graph.find("mid").id
    graph.set_outputs([mid, graph.find("out").id])
    recorder = Recorder(graph)
    graph.remove_node(mid)
    assert sorted(recorder.types[:-2]) == ["edge_removed", "edge_removed", "outputs_changed"]
    assert recorder.types[-2:] == ["node_removed", "changed"]
    assert recorder.types.count("changed") == 1
    assert mid not in graph
    assert graph.edges == []
    assert graph.declared_outputs == [graph.find("out").id]


def test_batch_emits_changed_once_with_every_reason(graph):
    recorder = Recorder(graph)
    with graph.batch():
        x = graph.add_node("Input", params={"shape": [4]})
        with graph.batch():
            dense = graph.add_node("Dense")
            graph.connect(x.id, dense.id)
        assert "changed" not in recorder.types  # the inner block does not end the outer one
        graph.move_node(dense.id, (1, 1))
    assert recorder.types == ["node_added", "node_added", "edge_added", "node_moved", "changed"]
    assert recorder.events[-1][2] == {"reasons": ["node_added", "node_added", "edge_added", "node_moved"]}


def test_an_empty_or_failed_batch_emits_no_changed(graph):
    node = graph.add_node("Dense")
    recorder = Recorder(graph)
    with graph.batch():
        pass
    with pytest.raises(GraphError), graph.batch():
        graph.connect(node.id, node.id)
    assert recorder.events == []


def test_a_batch_interrupted_after_an_edit_still_reports_it(graph):
    recorder = Recorder(graph)
    with pytest.raises(RuntimeError), graph.batch():
        graph.add_node("Dense")
        raise RuntimeError("boom")
    assert recorder.types == ["node_added", "changed"]


def test_callbacks_can_be_disconnected(graph):
    seen = []
    graph.events.node_added.connect(seen.append)
    graph.events.node_added.connect(seen.append)  # connecting twice does not call twice
    graph.add_node("Dense")
    graph.events.node_added.disconnect(seen.append)
    graph.add_node("Dense")
    assert [event.node_id for event in seen] == ["n1"]


# ----- one cycle check for a whole edge list (issue 17: linear project loading) ------------------


def _first_cycle_edge_one_by_one(edges: list[tuple[str, str]]) -> int | None:
    graph = nx.DiGraph()
    for index, (source, target) in enumerate(edges):
        if source == target or (target in graph and source in graph and nx.has_path(graph, target, source)):
            return index
        graph.add_edge(source, target)
    return None


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from("abcdef")), max_size=14))
def test_the_first_edge_closing_a_cycle_is_the_one_found_edge_by_edge(edges):
    assert first_cycle_edge(edges) == _first_cycle_edge_one_by_one(edges)


def test_a_cycle_closed_by_the_last_of_many_edges_is_named():
    edges = [(f"n{i}", f"n{i + 1}") for i in range(20_000)] + [("n20000", "n5")]
    assert first_cycle_edge(edges) == 20_000
    assert first_cycle_edge(edges[:-1]) is None


def test_the_connection_limit_counts_edges_added_and_removed(monkeypatch):
    import studio.graph as graph_module

    monkeypatch.setattr(graph_module, "MAX_EDGES", 2)
    graph = make_graph(("x", "Input", {"shape": [4]}), ("a", "Add", {}, "x", "x"))
    add = graph.find("a").id
    graph.disconnect(add, 1)
    graph.connect(graph.find("x").id, add, 1)
    with pytest.raises(GraphError, match="a model may have at most 2 connections"):
        graph.connect(graph.find("x").id, add, 2)
    graph.remove_node(add)
    other = graph.add_node("Add", name="b")
    graph.connect(graph.find("x").id, other.id)
    graph.connect(graph.find("x").id, other.id)
