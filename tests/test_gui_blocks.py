"""Blocks on the canvas: group, ungroup, rename, collapse and expand, undo, find, save and reopen,
and an imported ResNet-50 that opens as a readable graph of blocks."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRectF, QSizeF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QInputDialog

from codegen import generate
from studio.project import load_project, save_project
from tests.test_gui_layout import SIZES, lay_out
from widgets import edits
from widgets.block_item import BlockFrame, CollapsedBlockItem
from widgets.edge_item import EdgeItem
from widgets.node_geometry import PortRef
from widgets.node_item import NodeItem
from widgets.view import READABLE_ZOOM

CHAIN = (("Conv2D", {"filters": 4, "kernel_size": 3}), ("Activation", {}), ("Conv2D", {"filters": 8}))


def build_chain(window) -> list[str]:
    """input → conv2d → activation → conv2d_1 → flatten → dense: the ids, in order."""
    document = window.document
    ids = [document.graph.input_nodes[0]]
    for index, (kind, params) in enumerate([*CHAIN, ("Flatten", {}), ("Dense", {"units": 3})]):
        ids.append(edits.add_node_after(document, kind, (220.0 * (index + 1), 0.0), ids[-1]))
        if params:
            edits.set_params(document, ids[-1], params)
    return ids


def items_of(scene, kind) -> list:
    return [item for item in scene.items() if isinstance(item, kind)]


def answer_dialog(monkeypatch, answer: str) -> list[str]:
    """QInputDialog.getText answers ``answer``; returns the default names it was offered."""
    offered: list[str] = []

    def get_text(parent, title, label, text=""):
        offered.append(text)
        return answer, True

    monkeypatch.setattr(QInputDialog, "getText", staticmethod(get_text))
    return offered


def double_click(view, scene_point) -> None:
    QTest.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.mapFromScene(scene_point))


def test_group_ungroup_and_undo_redo(main_window, monkeypatch):
    window = main_window
    graph, stack = window.document.graph, window.document.undo_stack
    ids = build_chain(window)
    offered = answer_dialog(monkeypatch, "features")
    window.scene.select_nodes(ids[1:4])
    window.actions["group"].trigger()
    assert offered == ["block"]  # conv2d, activation, conv2d_1 share no prefix
    assert [(block.name, block.members, block.collapsed) for block in graph.blocks] == [
        ("features", ids[1:4], False)
    ]
    frame = items_of(window.scene, BlockFrame)
    assert len(frame) == 1 and frame[0].name == "features"
    for node_id in ids[1:4]:  # the frame surrounds its members and no other layer
        assert frame[0].shape().contains(window.scene.node_item(node_id).sceneBoundingRect())
    for node_id in (ids[0], ids[4]):
        assert not frame[0].shape().intersects(window.scene.node_item(node_id).sceneBoundingRect())
    assert stack.undoText() == "Group 3 layers as 'features'"
    stack.undo()
    assert graph.blocks == [] and items_of(window.scene, BlockFrame) == []
    stack.redo()
    assert graph.block("features").members == ids[1:4]
    window.scene.select_nodes([ids[2]])  # a layer of the block is enough to ungroup it
    window.actions["ungroup"].trigger()
    assert graph.blocks == []
    stack.undo()
    assert graph.block("features").members == ids[1:4]
    window.canvas_actions.rename_block("features", "trunk")
    assert [block.name for block in graph.blocks] == ["trunk"]
    assert items_of(window.scene, BlockFrame)[0].name == "trunk"
    window.canvas_actions.rename_block("trunk", "")
    assert [block.name for block in graph.blocks] == ["trunk"]  # refused, said in the status bar
    stack.undo()
    assert [block.name for block in graph.blocks] == ["features"]


def test_a_default_name_is_the_selections_common_prefix(main_window, monkeypatch):
    window = main_window
    ids = build_chain(window)
    window.scene.select_nodes([ids[1], ids[3]])  # conv2d, conv2d_1
    offered = answer_dialog(monkeypatch, "convs")
    assert window.canvas_actions.group_selection() == "convs"
    assert offered == ["conv2d"]


def test_a_collapsed_block_is_one_item_that_edges_attach_to(main_window, qtbot):
    window = main_window
    scene, view, graph = window.scene, window.view, window.document.graph
    ids = build_chain(window)
    edits.group(window.document, "features", ids[1:4])
    view.fit_all()
    double_click(view, items_of(scene, BlockFrame)[0].title.center())  # the frame's title, on no layer
    assert graph.block("features").collapsed
    (block,) = items_of(scene, CollapsedBlockItem)
    assert items_of(scene, BlockFrame) == []
    assert [scene.node_item(node_id).isVisible() for node_id in ids] == [
        True,
        False,
        False,
        False,
        True,
        True,
    ]
    assert block.members == ids[1:4]
    assert block.shape_line() == "8×8×1 → 4×4×8"  # what enters and what leaves the block
    entering = scene.edge_item(ids[1], 0)
    leaving = scene.edge_item(ids[4], 0)
    inner = scene.edge_item(ids[2], 0)
    assert entering.isVisible() and leaving.isVisible() and not inner.isVisible()
    assert entering.path().pointAtPercent(1) == block.port_scene_pos(PortRef(ids[1], True))
    assert leaving.path().pointAtPercent(0) == block.port_scene_pos(PortRef(ids[3], False))
    # Fit and layout treat the block as one node: nothing overlaps, everything is in view.
    shown = [
        item
        for item in scene.items()
        if isinstance(item, (NodeItem, CollapsedBlockItem)) and item.isVisible()
    ]
    assert len(shown) == 4
    bodies = [QRectF(item.pos(), QSizeF(*item.size)) for item in shown]
    assert not any(a.intersects(b) for i, a in enumerate(bodies) for b in bodies[i + 1 :])
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert all(visible.contains(body) for body in bodies)
    # Dragging the block moves its layers with it, one undo step.
    before = {node_id: graph.node(node_id).position for node_id in ids[1:4]}
    scene.select_nodes([ids[2]])
    assert block.isSelected() and scene.selected_node_ids() == ids[1:4]
    start = view.mapFromScene(block.sceneBoundingRect().center())
    QTest.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    QTest.mouseMove(view.viewport(), start + start.__class__(0, 60))
    QTest.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=start + start.__class__(0, 60))
    moved = {node_id: graph.node(node_id).position for node_id in ids[1:4]}
    deltas = {(round(moved[n][0] - before[n][0]), round(moved[n][1] - before[n][1])) for n in ids[1:4]}
    assert len(deltas) == 1 and deltas != {(0, 0)}
    window.document.undo_stack.undo()
    assert {node_id: graph.node(node_id).position for node_id in ids[1:4]} == before
    # Its + button expands it, and so does a double-click; undo collapses it.
    block = items_of(scene, CollapsedBlockItem)[0]
    view.reset_zoom()
    view.centerOn(block)
    button = view.mapFromScene(block.mapToScene(block.button_rect().center()))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=button)
    assert not graph.block("features").collapsed
    window.document.undo_stack.undo()
    assert graph.block("features").collapsed
    double_click(view, items_of(scene, CollapsedBlockItem)[0].sceneBoundingRect().center())
    assert not graph.block("features").collapsed
    assert all(scene.node_item(node_id).isVisible() for node_id in ids)
    assert inner.isVisible() and items_of(scene, CollapsedBlockItem) == []
    window.document.undo_stack.undo()
    assert graph.block("features").collapsed and not scene.node_item(ids[2]).isVisible()


def test_deleting_layers_of_a_block_and_undoing(main_window):
    window = main_window
    graph, stack = window.document.graph, window.document.undo_stack
    ids = build_chain(window)
    edits.group(window.document, "head", ids[4:6])
    edits.set_collapsed(window.document, "head", True)
    edits.delete(window.document, [ids[5]])
    assert graph.block("head").members == [ids[4]]
    edits.delete(window.document, [ids[4]])
    assert graph.blocks == [] and items_of(window.scene, CollapsedBlockItem) == []
    stack.undo()
    stack.undo()
    assert sorted(graph.block("head").members) == sorted(ids[4:6]) and graph.block("head").collapsed
    assert len(items_of(window.scene, CollapsedBlockItem)) == 1
    assert not window.scene.node_item(ids[5]).isVisible()
    window.scene.select_nodes([ids[4]])  # selecting a collapsed block and deleting deletes its layers
    window.canvas_actions.delete_selection()
    assert ids[4] not in graph and ids[5] not in graph and graph.blocks == []


def test_find_shows_a_layer_in_a_collapsed_block_as_its_block(main_window):
    window = main_window
    ids = build_chain(window)
    edits.group(window.document, "features", ids[1:4])
    edits.set_collapsed(window.document, "features", True)
    window.view.reset_zoom()
    window.view.centerOn(-3000, -3000)
    window.find_bar.setText("activation")
    assert window.find_bar.find_next() == ids[2]
    (block,) = items_of(window.scene, CollapsedBlockItem)
    assert block.isSelected()
    center = window.view.mapToScene(window.view.viewport().rect().center())
    assert block.sceneBoundingRect().contains(center)


def test_blocks_are_saved_reopened_and_leave_the_code_alone(main_window, qtbot, tmp_path):
    window = main_window
    ids = build_chain(window)
    plain = {
        framework: generate(window.document.project, framework).source for framework in ("keras", "pytorch")
    }
    edits.group(window.document, "features", ids[1:4])
    edits.group(window.document, "head", ids[4:6])
    edits.set_collapsed(window.document, "features", True)
    path = tmp_path / "blocks.layers.json"
    save_project(window.document.project, path)
    assert window.files.open_path(path, ask=False)
    graph = window.document.graph
    assert [(block.name, block.members, block.collapsed) for block in graph.blocks] == [
        ("features", ids[1:4], True),
        ("head", ids[4:6], False),
    ]
    assert (
        len(items_of(window.scene, CollapsedBlockItem)) == 1 and len(items_of(window.scene, BlockFrame)) == 1
    )
    for framework, source in plain.items():
        assert generate(window.document.project, framework).source == source
        qtbot.waitUntil(lambda framework=framework: window.code_view.text(framework) == plain[framework])
    assert load_project(path).graph.blocks == graph.blocks


@pytest.fixture(scope="module")
def resnet50_project(tmp_path_factory):
    """torchvision's ResNet-50 imported through torch.fx (made once: its import starts helper threads)."""
    from studio.interop import save_imported
    from studio.interop.torch_import import import_torch_model
    from tests.torchvision_shim import import_torchvision

    model = import_torchvision().models.resnet50(weights=None)
    imported = import_torch_model(model, [(3, 224, 224)], with_weights=False, name="resnet50")
    path = tmp_path_factory.mktemp("resnet50") / "resnet50.layers.json"
    save_imported(imported, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("size", list(SIZES))
def test_an_imported_resnet50_opens_as_blocks_that_fit_at_a_readable_zoom(
    main_window, qtbot, tmp_path, resnet50_project, size
):
    path = tmp_path / "resnet50.layers.json"
    path.write_bytes(resnet50_project.read_bytes())
    window = main_window
    lay_out(window, qtbot, *size)
    window.importer._fit_to_window(path)  # as the import command does, then opens it
    assert window.files.open_path(path, ask=False)
    window.view.fit_readable()
    graph, scene, view = window.document.graph, window.scene, window.view
    assert len(graph) > 170
    assert len(graph.blocks) == 16 and all(block.collapsed for block in graph.blocks)
    assert all(8 <= len(block.members) <= 14 for block in graph.blocks)
    shown = [
        item
        for item in scene.items()
        if isinstance(item, (NodeItem, CollapsedBlockItem)) and item.isVisible()
    ]
    assert len(shown) < 40
    assert view.zoom() >= READABLE_ZOOM
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    bodies = [QRectF(item.pos(), QSizeF(*item.size)) for item in shown]
    assert all(visible.contains(body) for body in bodies)
    assert not any(a.intersects(b) for i, a in enumerate(bodies) for b in bodies[i + 1 :])
    for edge in items_of(scene, EdgeItem):  # only the edges inside a block are hidden
        source, target = graph.block_of(edge.edge.source), graph.block_of(edge.edge.target)
        assert edge.isVisible() == (source is None or source is not target)
    # Expanding one block lays the graph out again around its layers.
    window.canvas_actions.set_collapsed("layer2.0", False)
    shown = [
        item
        for item in scene.items()
        if isinstance(item, (NodeItem, CollapsedBlockItem)) and item.isVisible()
    ]
    bodies = [QRectF(item.pos(), QSizeF(*item.size)) for item in shown]
    assert not any(a.intersects(b) for i, a in enumerate(bodies) for b in bodies[i + 1 :])
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert all(visible.contains(body) for body in bodies)


def test_a_hostile_block_name_is_shown_as_text(main_window):
    window = main_window
    ids = build_chain(window)
    name = '<img src="file:///etc/passwd"> & \u202eevil'
    edits.group(window.document, name, ids[1:3])
    frame = items_of(window.scene, BlockFrame)[0]
    assert "&lt;img" in frame.toolTip()
    window.view.reset_zoom()
    window.view.centerOn(frame)
    button = window.view.mapFromScene(frame.button_rect().center())
    QTest.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=button)  # the frame's − collapses
    assert window.document.graph.block(name).collapsed
    (block,) = items_of(window.scene, CollapsedBlockItem)
    assert "<img" not in block.toolTip() and "&lt;img" in block.toolTip()
    window.view.grab()  # paints the name as plain text


def test_an_edge_no_longer_goes_around_the_layers_a_collapsed_block_hides(main_window, tmp_path):
    """A block's members lie where the block would be expanded: collapsed, they are no obstacle,
    so an edge drawn around them while they showed takes its straight way again (reopened too)."""
    window = main_window
    document, graph = window.document, window.document.graph
    ids = build_chain(window)
    edits.group(document, "head", ids[4:6])
    first, second = graph.node(ids[1]).position, graph.node(ids[2]).position
    # The block's second layer sits right on the line from the first conv2d to the activation.
    # The collapsed block takes its members' top-left corner: far up and left, out of the way.
    corner, between = (first[0] - 600.0, first[1] - 400.0), ((first[0] + second[0]) / 2, first[1])
    moves = {ids[4]: (graph.node(ids[4]).position, corner), ids[5]: (graph.node(ids[5]).position, between)}
    edits.move_nodes(document, moves)
    around = window.scene.edge_item(ids[2], 0)
    assert around.path().boundingRect().height() > 40  # it goes around the Dense
    edits.set_collapsed(document, "head", True)
    assert around.path().boundingRect().height() < 1  # a straight line between two ports
    path = tmp_path / "hidden.layers.json"
    save_project(document.project, path)
    assert window.files.open_path(path, ask=False)
    assert window.scene.edge_item(ids[2], 0).path().boundingRect().height() < 1


def test_long_layer_names_keep_their_end_when_elided(main_window):
    """Imported layers share long prefixes (features.1.0.attn, features.1.0.attn_12): a name that
    does not fit loses its middle, so the part that tells them apart stays visible."""
    window = main_window
    ids = build_chain(window)
    edits.rename(window.document, ids[1], "features.1.0.attention.qkv_projection_12")
    item = next(item for item in items_of(window.scene, NodeItem) if item.node_id == ids[1])
    window.view.zoom_by(0.35 / window.view.zoom())  # the overview: a badge with name and shape
    window.view.viewport().grab()
    name = item._overview_text[1][0]
    assert "…" in name and name.endswith("_12") and name.startswith("fe")
