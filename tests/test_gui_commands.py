"""Undo and redo of every edit, with readable command texts (no widgets involved)."""

from __future__ import annotations

import pytest

from studio.catalog import ParamError
from studio.graph import GraphError
from widgets import commands, edits
from widgets.clipboard import fragment
from widgets.document import Document


@pytest.fixture
def document(qapp):
    """Input(16) -> Dense, in a fresh document."""
    document = Document()
    graph = document.graph
    graph.set_params(graph.input_nodes[0], {"shape": (16,)})
    dense = graph.add_node("Dense", position=(300, 0))
    graph.connect(graph.input_nodes[0], dense.id)
    document.undo_stack.clear()
    return document


def snapshot(document: Document):
    graph = document.graph
    nodes = [(n.id, n.kind, n.name, dict(n.params), n.position) for n in graph.nodes]
    return sorted(nodes), graph.edges, graph.declared_outputs


def check_undo_redo(document: Document, edit, text: str) -> None:
    """Run ``edit``; then undo must restore the graph exactly and redo must repeat the edit."""
    before = snapshot(document)
    edit()
    after = snapshot(document)
    assert after != before
    stack = document.undo_stack
    assert stack.undoText() == text
    stack.undo()
    assert snapshot(document) == before
    stack.redo()
    assert snapshot(document) == after


def test_add_node(document):
    check_undo_redo(document, lambda: edits.add_node(document, "Dense", (10, 20)), "Add Dense 'dense_1'")


def test_add_node_after_connects_in_one_step(document):
    dense = document.graph.nodes[1].id
    check_undo_redo(
        document,
        lambda: edits.add_node_after(document, "Dropout", (600, 0), dense),
        "Add Dropout 'dropout' after 'dense'",
    )
    dropout = document.graph.find("dropout").id
    assert document.graph.inputs_of(dropout) == [dense]


def test_remove_node_restores_id_edges_and_outputs(document):
    graph = document.graph
    dense = graph.nodes[1].id
    graph.set_outputs([dense])
    check_undo_redo(document, lambda: edits.delete(document, [dense]), "Delete Dense 'dense'")
    assert dense not in graph
    document.undo_stack.undo()
    assert graph.node(dense).name == "dense" and graph.declared_outputs == [dense]


def test_remove_node_command_alone_restores_its_edges(document):
    graph = document.graph
    dense = graph.nodes[1].id
    check_undo_redo(
        document,
        lambda: commands.push(document.undo_stack, commands.RemoveNode(graph, dense)),
        "Delete Dense 'dense'",
    )


def test_connect_and_disconnect(document):
    graph = document.graph
    source, dense = graph.input_nodes[0], graph.nodes[1].id
    check_undo_redo(document, lambda: edits.disconnect(document, dense, 0), "Disconnect input → dense")
    check_undo_redo(document, lambda: edits.connect(document, source, dense, 0), "Connect input → dense")


def test_refused_connection_pushes_nothing(document):
    graph = document.graph
    source, dense = graph.input_nodes[0], graph.nodes[1].id
    with pytest.raises(GraphError, match="takes no inputs"):
        edits.connect(document, dense, source)
    with pytest.raises(GraphError, match="already connected"):
        edits.connect(document, source, dense, 0)
    assert document.undo_stack.count() == 0


def test_rename(document):
    dense = document.graph.nodes[1].id
    check_undo_redo(
        document, lambda: edits.rename(document, dense, "classifier"), "Rename 'dense' to 'classifier'"
    )
    with pytest.raises(GraphError, match="already used"):
        edits.rename(document, dense, "input")


def test_set_param(document):
    dense = document.graph.nodes[1].id
    check_undo_redo(
        document, lambda: edits.set_params(document, dense, {"units": 128}), "Set units of 'dense' to 128"
    )
    check_undo_redo(
        document,
        lambda: edits.set_params(document, dense, {"activation": "relu"}),
        "Set activation of 'dense' to relu",
    )


def test_invalid_param_pushes_nothing(document):
    dense = document.graph.nodes[1].id
    count = document.undo_stack.count()
    with pytest.raises(ParamError, match="positive integer"):
        edits.set_params(document, dense, {"units": -3})
    assert document.undo_stack.count() == count


def test_unchanged_param_pushes_nothing(document):
    dense = document.graph.nodes[1].id
    edits.set_params(document, dense, {"units": 64})
    assert document.undo_stack.count() == 0


def test_quick_changes_of_one_param_merge(document, monkeypatch):
    dense = document.graph.nodes[1].id
    clock = iter([0.0, 0.5, 1.0, 10.0])
    monkeypatch.setattr(commands.time, "monotonic", lambda: next(clock))
    for units in (65, 66, 67):  # three spin-box clicks
        edits.set_params(document, dense, {"units": units})
    assert document.undo_stack.count() == 1
    assert document.undo_stack.undoText() == "Set units of 'dense' to 67"
    edits.set_params(document, dense, {"units": 68})  # much later: a new step
    assert document.undo_stack.count() == 2
    document.undo_stack.undo()
    document.undo_stack.undo()
    assert document.graph.node(dense).params["units"] == 64


def test_move_nodes(document):
    graph = document.graph
    ids = [node.id for node in graph.nodes]
    moves = {node_id: (graph.node(node_id).position, (5.0, 6.0 + index)) for index, node_id in enumerate(ids)}
    check_undo_redo(document, lambda: edits.move_nodes(document, moves), "Move 2 layers")
    one = {ids[0]: ((5.0, 6.0), (50.0, 60.0))}
    check_undo_redo(document, lambda: edits.move_nodes(document, one), "Move 'input'")


def test_set_output(document):
    graph = document.graph
    source, dense = graph.input_nodes[0], graph.nodes[1].id
    extra = graph.add_node("Dense", name="aux").id
    graph.connect(source, extra)
    document.undo_stack.clear()
    check_undo_redo(document, lambda: edits.set_output(document, dense, False), "Unmark 'dense' as an output")
    assert graph.declared_outputs == [extra]
    with pytest.raises(GraphError, match="at least one output"):
        edits.set_output(document, extra, False)


def test_delete_selection_with_edges_is_one_macro(document):
    graph = document.graph
    source, dense = graph.input_nodes[0], graph.nodes[1].id
    add = graph.add_node("Add").id
    graph.connect(source, add)
    graph.connect(dense, add)
    document.undo_stack.clear()
    check_undo_redo(document, lambda: edits.delete(document, [dense, add]), "Delete 2 layers")
    assert document.undo_stack.count() == 1


def test_paste_is_one_macro_with_fresh_names(document):
    graph = document.graph
    data = fragment(graph, [node.id for node in graph.nodes])
    check_undo_redo(document, lambda: edits.paste(document, data, (40, 40)), "Paste 2 layers")
    names = sorted(node.name for node in graph.nodes)
    assert names == ["dense", "dense_1", "input", "input_1"]
    pasted = graph.find("dense_1").id
    assert graph.inputs_of(pasted) == [graph.find("input_1").id]
    assert graph.node(pasted).position == (340.0, 40.0)


def test_failed_macro_is_rolled_back(document):
    before = snapshot(document)
    with pytest.raises(RuntimeError):
        with edits.macro(document, "Broken"):
            edits.add_node(document, "Dense", (0, 0))
            raise RuntimeError("boom")
    assert snapshot(document) == before
    assert not document.undo_stack.canRedo()


def test_dirty_follows_the_undo_stack(document):
    states = []
    document.dirtyChanged.connect(states.append)
    dense = document.graph.nodes[1].id
    edits.rename(document, dense, "fc")
    assert document.is_dirty
    document.undo_stack.undo()
    assert not document.is_dirty
    assert states == [True, False]


def test_moves_do_not_recompute_the_analysis(document):
    analysis = document.analysis
    edits.move_nodes(document, {document.graph.nodes[1].id: ((300.0, 0.0), (310.0, 0.0))})
    assert document.analysis is analysis
    edits.set_params(document, document.graph.nodes[1].id, {"units": 3})
    assert document.analysis is not analysis
