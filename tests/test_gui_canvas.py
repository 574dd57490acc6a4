"""The canvas: items follow the graph; drop, connect, move, delete, copy/paste, layout, zoom."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from studio.project import Project
from widgets.clipboard import MIME_KIND
from widgets.document import Document
from widgets.edge_item import EdgeItem
from widgets.node_geometry import PortRef
from widgets.node_item import NodeItem
from widgets.scene import GraphScene
from widgets.view import GraphView


@pytest.fixture
def canvas(qtbot):
    """A document with Input -> Dense, in a shown view."""
    document = Document()
    graph = document.graph
    source = graph.input_nodes[0]
    graph.set_params(source, {"shape": (16,)})
    dense = graph.add_node("Dense", position=(300, 0))
    graph.connect(source, dense.id)
    scene = GraphScene(document)
    view = GraphView(scene)
    view.resize(1000, 700)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    view.reset_zoom()
    view.centerOn(250, 100)
    return document, scene, view


def port_point(view: GraphView, port: PortRef) -> QPoint:
    item = view.graph_scene.node_item(port.node_id)
    return view.mapFromScene(item.port_scene_pos(port))


def drag(view: GraphView, start: QPoint, end: QPoint, button=Qt.MouseButton.LeftButton) -> None:
    viewport = view.viewport()
    QTest.mousePress(viewport, button, Qt.KeyboardModifier.NoModifier, start)
    for step in range(1, 6):
        QTest.mouseMove(viewport, start + (end - start) * (step / 5))
    QTest.mouseRelease(viewport, button, Qt.KeyboardModifier.NoModifier, end)


def drop_kind(view: GraphView, mime: QMimeData, point: QPoint) -> None:
    """Send the real drag-enter, drag-move and drop events that a palette drag produces."""
    viewport = view.viewport()
    action, left, none = Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QApplication.sendEvent(viewport, QDragEnterEvent(QPointF(point), action, mime, left, none))
    QApplication.sendEvent(viewport, QDragMoveEvent(QPointF(point), action, mime, left, none))
    QApplication.sendEvent(viewport, QDropEvent(QPointF(point), action, mime, left, none))


# ----- the scene follows the model -----------------------------------------------------


def test_items_follow_graph_events(canvas):
    document, scene, _ = canvas
    graph = document.graph
    assert len(scene.node_items()) == 2
    flatten = graph.add_node("Flatten", position=(600, 0))
    assert scene.node_item(flatten.id).pos() == QPointF(600, 0)
    dense = graph.nodes[1].id
    graph.connect(dense, flatten.id)
    assert isinstance(scene.edge_item(flatten.id, 0), EdgeItem)
    graph.move_node(flatten.id, (700, 50))
    assert scene.node_item(flatten.id).pos() == QPointF(700, 50)
    graph.disconnect(flatten.id, 0)
    assert not [
        item for item in scene.items() if isinstance(item, EdgeItem) and item.edge.target == flatten.id
    ]
    graph.remove_node(flatten.id)
    assert flatten.id not in [item.node_id for item in scene.node_items()]


def test_node_item_shows_name_shape_and_params_from_analysis(canvas):
    document, scene, _ = canvas
    dense = document.graph.nodes[1].id
    item = scene.node_item(dense)
    document.graph.rename_node(dense, "classifier")
    assert "classifier" in item.toolTip()
    assert "(None, 64)" in item.toolTip()
    assert document.analysis.params[dense].total == 16 * 64 + 64


def test_merge_shows_connected_ports_plus_one_free(canvas):
    document, scene, _ = canvas
    graph = document.graph
    source, dense = graph.nodes[0].id, graph.nodes[1].id
    add = graph.add_node("Add", position=(600, 0)).id
    assert scene.node_item(add).port_count() == 2
    graph.connect(source, add)
    graph.connect(dense, add)
    assert scene.node_item(add).port_count() == 3
    attention = graph.add_node("MultiHeadAttention", position=(600, 300)).id
    assert scene.node_item(attention).port_count() == 3
    graph.set_param(attention, "padding_mask", True)  # a fourth port, for the mask
    assert scene.node_item(attention).port_count() == 4


# ----- palette drop ----------------------------------------------------------------


def test_dropping_a_palette_item_creates_a_node_where_dropped(canvas, qtbot):
    from widgets.palette import Palette

    document, scene, view = canvas
    palette = Palette()
    qtbot.addWidget(palette)
    item = next(item for item in palette.kind_items() if item.text(0) == "Conv2D")
    mime = palette.tree.mimeData([item])
    assert bytes(mime.data(MIME_KIND).data()) == b"Conv2D"
    point = QPoint(500, 500)
    drop_kind(view, mime, point)
    added = document.graph.nodes[-1]
    assert added.kind == "Conv2D" and len(document.graph) == 3
    center = scene.node_item(added.id).sceneBoundingRect().center()
    dropped_at = view.mapToScene(point)
    assert abs(center.x() - dropped_at.x()) < 20 and abs(center.y() - dropped_at.y()) < 20
    assert document.undo_stack.undoText() == "Add Conv2D 'conv2d'"
    assert scene.selected_node_ids() == [added.id]


def test_dropping_foreign_data_does_nothing(canvas):
    document, _, view = canvas
    mime = QMimeData()
    mime.setText("hello")
    drop_kind(view, mime, QPoint(400, 400))
    assert len(document.graph) == 2


# ----- connecting with the mouse -------------------------------------------------------


def test_dragging_from_output_port_to_input_port_connects(canvas):
    document, scene, view = canvas
    graph = document.graph
    source = graph.input_nodes[0]
    target = graph.add_node("Dense", name="second", position=(300, 250)).id
    drag(view, port_point(view, PortRef(source, False)), port_point(view, PortRef(target, True, 0)))
    assert (source, target, 0) in [(e.source, e.target, e.port) for e in graph.edges]
    assert document.undo_stack.undoText() == "Connect input → second"
    assert scene.edge_item(target, 0) is not None


def test_dragging_from_input_port_to_output_port_connects(canvas):
    document, _, view = canvas
    graph = document.graph
    source = graph.input_nodes[0]
    target = graph.add_node("Dense", name="second", position=(300, 250)).id
    drag(view, port_point(view, PortRef(target, True, 0)), port_point(view, PortRef(source, False)))
    assert graph.inputs_of(target) == [source]


def test_refused_connection_explains_why(canvas, qtbot):
    document, scene, view = canvas
    graph = document.graph
    source, dense = graph.input_nodes[0], graph.nodes[1].id
    with qtbot.waitSignal(scene.message) as signal:
        # The Dense input is taken: connecting the Dense output back into itself is refused.
        drag(view, port_point(view, PortRef(dense, False)), port_point(view, PortRef(dense, True, 0)))
    assert "Cannot connect" in signal.args[0]
    assert graph.inputs_of(dense) == [source]
    assert document.undo_stack.count() == 0


# ----- moving, deleting ----------------------------------------------------------------


def test_dragging_nodes_is_one_undo_step(canvas):
    document, scene, view = canvas
    graph = document.graph
    ids = [node.id for node in graph.nodes]
    scene.select_nodes(ids)
    dense = scene.node_item(ids[1])
    start = view.mapFromScene(dense.sceneBoundingRect().center() + QPointF(0, 10))
    before = {node_id: graph.node(node_id).position for node_id in ids}
    drag(view, start, start + QPoint(80, 40))
    after = {node_id: graph.node(node_id).position for node_id in ids}
    assert all(after[i][0] - before[i][0] == pytest.approx(80, abs=2) for i in ids)
    assert document.undo_stack.count() == 1
    assert document.undo_stack.undoText() == "Move 2 layers"
    document.undo_stack.undo()
    assert {node_id: graph.node(node_id).position for node_id in ids} == before
    assert scene.node_item(ids[1]).pos() == QPointF(*before[ids[1]])


def test_delete_selection_removes_nodes_and_edges_in_one_step(canvas):
    from widgets.canvas_actions import CanvasActions

    document, scene, view = canvas
    actions = CanvasActions(document, scene, view)
    graph = document.graph
    dense = graph.nodes[1].id
    scene.select_nodes([dense])
    actions.delete_selection()
    assert dense not in graph and not graph.edges
    assert document.undo_stack.undoText() == "Delete Dense 'dense'"
    document.undo_stack.undo()
    assert dense in graph and len(graph.edges) == 1
    assert scene.edge_item(dense, 0) is not None


def test_selected_edge_can_be_deleted(canvas):
    from widgets.canvas_actions import CanvasActions

    document, scene, view = canvas
    dense = document.graph.nodes[1].id
    scene.edge_item(dense, 0).setSelected(True)
    CanvasActions(document, scene, view).delete_selection()
    assert not document.graph.edges and len(document.graph) == 2
    assert document.undo_stack.undoText() == "Disconnect input → dense"


def test_copy_paste_and_duplicate(canvas):
    from widgets.canvas_actions import CanvasActions

    document, scene, view = canvas
    actions = CanvasActions(document, scene, view)
    graph = document.graph
    actions.select_all()
    assert actions.copy()
    new_ids = actions.paste()
    assert len(new_ids) == 2 and len(graph) == 4
    assert [graph.node(node_id).name for node_id in new_ids] == ["input_1", "dense_1"]
    assert graph.inputs_of(new_ids[1]) == [new_ids[0]]
    assert scene.selected_node_ids() == new_ids
    assert document.undo_stack.undoText() == "Paste 2 layers"
    document.undo_stack.undo()
    assert len(graph) == 2
    scene.select_nodes([graph.nodes[1].id])
    duplicated = actions.duplicate()
    assert len(duplicated) == 1 and graph.node(duplicated[0]).kind == "Dense"
    assert document.undo_stack.undoText() == "Duplicate 1 layer"


def test_auto_layout_is_one_undo_step_without_overlaps(canvas):
    from widgets.canvas_actions import CanvasActions

    document, scene, view = canvas
    graph = document.graph
    extra = graph.add_node("Dense", position=(0, 0)).id  # on top of the Input
    graph.connect(graph.nodes[1].id, extra)
    actions = CanvasActions(document, scene, view)
    for direction in ("LR", "TB"):
        actions.arrange(direction)
        rects = [item.sceneBoundingRect() for item in scene.node_items()]
        assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1 :])
    assert document.undo_stack.undoText() == "Arrange layers top to bottom"
    xs = [graph.node(node.id).position[1] for node in graph.nodes]
    assert xs == sorted(xs)  # a chain goes down, layer by layer


# ----- problems ------------------------------------------------------------------------


def test_problem_nodes_are_outlined_red_with_the_message(canvas):
    document, scene, _ = canvas
    graph = document.graph
    dense = graph.nodes[1].id
    graph.disconnect(dense, 0)
    item = scene.node_item(dense)
    assert scene.problems_for_node(dense)
    assert "not connected" in item.toolTip()
    assert item._outline(False).color().name() == scene.theme.error
    graph.connect(graph.input_nodes[0], dense)
    assert not scene.problems_for_node(dense)
    assert item._outline(False).color().name() == scene.theme.node_border


# ----- zoom, pan, fit --------------------------------------------------------------


def test_wheel_zooms_and_fit_shows_everything(canvas):
    document, scene, view = canvas
    before = view.zoom()
    center = QPointF(view.viewport().rect().center())
    event = QWheelEvent(
        center,
        view.viewport().mapToGlobal(center),
        QPoint(),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), event)
    assert view.zoom() > before
    document.graph.add_node("Dense", position=(5000, 3000))
    view.fit_all()
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert visible.contains(scene.nodes_rect())


def test_middle_button_pans(canvas):
    _, _, view = canvas
    before = view.visible_scene_center()
    drag(view, QPoint(500, 300), QPoint(400, 250), Qt.MouseButton.MiddleButton)
    after = view.visible_scene_center()
    assert after.x() == pytest.approx(before.x() + 100, abs=2)
    assert after.y() == pytest.approx(before.y() + 50, abs=2)


# ----- performance ---------------------------------------------------------------------


def big_project(count: int = 500) -> Project:
    """A chain of Dense layers with a residual Add every 10 layers: 500 nodes."""
    project = Project()
    graph = project.graph
    previous = graph.add_node("Input", params={"shape": (32,)}, position=(0, 0)).id
    for index in range(1, count):
        kind = "Add" if index % 10 == 0 else "Dense"
        node = graph.add_node(
            kind,
            params={"units": 32} if kind == "Dense" else {},
            position=(index % 25 * 230, index // 25 * 150),
        )
        graph.connect(previous, node.id)
        if kind == "Add":
            graph.connect(graph.nodes[index - 5].id, node.id)
        previous = node.id
    return project


def test_500_nodes_build_pan_and_zoom_quickly(qtbot):
    document = Document(big_project())
    started = time.perf_counter()
    scene = GraphScene(document)
    view = GraphView(scene)
    view.resize(1200, 800)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    view.fit_all()
    view.viewport().grab()
    build = time.perf_counter() - started
    started = time.perf_counter()
    frames = 0
    for factor in (1.25,) * 8 + (0.8,) * 8:
        view.zoom_by(factor)
        view.viewport().grab()
        frames += 1
    for _ in range(10):
        view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 40)
        view.viewport().grab()
        frames += 1
    per_frame = (time.perf_counter() - started) / frames
    assert len(scene.node_items()) == 500
    assert build < 5.0, f"building the canvas for 500 nodes took {build:.2f} s"
    assert per_frame < 0.25, f"a pan/zoom frame with 500 nodes took {per_frame * 1000:.0f} ms"


def test_an_edit_repaints_only_the_items_it_changes(qtbot):
    document = Document(big_project(200))
    scene = GraphScene(document)
    shown = {item.node_id: item._shown for item in scene.node_items()}
    last = document.graph.nodes[-1].id
    document.graph.set_params(last, {"units": 7})
    changed = [item.node_id for item in scene.node_items() if item._shown is not shown[item.node_id]]
    assert changed == [last]


def test_node_items_are_cached_in_device_coordinates(canvas):
    _, scene, _ = canvas
    assert all(item.cacheMode() == NodeItem.CacheMode.DeviceCoordinateCache for item in scene.node_items())


def test_opening_a_long_model_shows_its_inputs_at_a_readable_zoom(qtbot):
    from widgets.view import READABLE_ZOOM

    document = Document(big_project(30))  # 25 layers in a row, then a second row
    scene = GraphScene(document)
    view = GraphView(scene)
    view.resize(800, 600)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    view.fit_readable()
    assert view.zoom() == pytest.approx(READABLE_ZOOM)
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    first = scene.node_item(document.graph.input_nodes[0]).sceneBoundingRect()
    assert visible.contains(first)
    assert first.left() - visible.left() < 100  # the inputs start at the left edge


def test_opening_a_small_model_fits_it(canvas):
    document, scene, view = canvas
    view.fit_readable()
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert visible.contains(scene.nodes_rect()) and view.zoom() <= 1.0
