"""The canvas-first window: sizes, toolbar, workspaces, remembered panels, find, preflight."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QToolButton

from widgets import edits
from widgets.document import Document
from widgets.fake_run import FakeRun
from widgets.main_window import DESIGN, TRAINING, MainWindow

SIZES = {(1400, 900): (0.60, 300), (1024, 700): (0.50, 150)}  # canvas share, plot height


def lay_out(window, qtbot, width: int, height: int) -> None:
    window.resize(width, height)
    window.default_layout()
    qtbot.waitUntil(lambda: window.width() == width and window.height() == height, timeout=2000)
    QTest.qWait(50)


@pytest.mark.parametrize("size", list(SIZES))
def test_the_canvas_and_the_plots_get_most_of_the_window(main_window, qtbot, size):
    canvas_share, plot_height = SIZES[size]
    window = main_window
    lay_out(window, qtbot, *size)
    viewport = window.view.viewport()
    assert viewport.width() * viewport.height() >= canvas_share * size[0] * size[1]
    palette = window.palette_widget
    widest = max(palette.tree.fontMetrics().horizontalAdvance(i.text(0)) for i in palette.kind_items())
    assert palette.tree.viewport().width() >= widest + palette.tree.indentation()  # labels whole

    window.show_training()
    panel = window.training
    qtbot.waitUntil(lambda: panel.plots is not None, timeout=5000)
    panel.detector.kill()
    QTest.qWait(50)
    assert all(dock.isHidden() for dock in window.docks.values())
    assert panel.width() == window.width()  # the plots get the full width
    assert panel.plots.loss_widget.height() >= plot_height
    window.show_design()
    assert window.view.isVisible() and window.docks["inspector"].isVisible()


def test_the_toolbar_holds_the_everyday_actions(main_window):
    names = {button.objectName() for button in main_window.toolbar.findChildren(QToolButton)}
    for name in ("new", "open", "save", "undo", "redo", "fit", "verify", "train", "stop_training"):
        assert f"toolbar_{name}" in names
    train = main_window.toolbar.findChild(QToolButton, "toolbar_train")
    assert train.text() == "Train" and train.isVisible()
    selector = main_window.framework_selector
    selector.setCurrentIndex(selector.findData("pytorch"))
    assert main_window.training.form.framework_choice() == "pytorch"
    main_window.training.form.set_framework("both")
    assert selector.currentData() == "both"


def test_the_toolbar_train_button_trains_in_the_training_workspace(main_window, qtbot, tmp_path):
    window = main_window
    graph = window.document.graph
    edits.add_node_after(window.document, "Flatten", (200, 0), graph.input_nodes[0])
    edits.add_node_after(window.document, "Dense", (400, 0), graph.find("flatten").id)
    window.training.runs_root = tmp_path / "runs"
    started = []

    def fake_run(framework, resume_from=None):
        started.append(framework)
        return FakeRun(framework, epochs=1, batches_per_epoch=10, rate=5000), str(tmp_path / "run")

    window.training._make_run = fake_run
    QTest.mouseClick(window.toolbar.findChild(QToolButton, "toolbar_train"), Qt.MouseButton.LeftButton)
    assert started == ["keras"] and window.current_workspace == TRAINING
    window.training.detector.kill()
    qtbot.waitUntil(lambda: not window.training.is_running, timeout=5000)
    assert window.training.records[-1].status == "finished"


def test_a_dataset_that_does_not_fit_the_input_is_caught_before_a_run_starts(main_window, qtbot):
    window = main_window
    document = window.document
    input_id = document.graph.input_nodes[0]
    edits.set_params(document, input_id, {"shape": (28, 28, 1)})
    edits.add_node_after(document, "Flatten", (200, 0), input_id)
    edits.add_node_after(document, "Dense", (400, 0), document.graph.find("flatten").id)
    panel = window.training
    panel._make_run = lambda *args, **kwargs: pytest.fail("no run may start")
    assert document.analysis.is_valid
    assert not panel.start()
    assert "'digits' has samples of shape 8×8×1" in panel.error.text()
    assert "takes 28×28×1" in panel.error.text()
    assert panel.fix_button.isVisibleTo(panel) and panel.fix_button.text() == "Set Input to 8×8×1"
    panel.fix_button.click()
    assert tuple(document.graph.node(input_id).params["shape"]) == (8, 8, 1)
    assert panel.error.isHidden() and panel.fix_button.isHidden()
    document.undo_stack.undo()
    assert tuple(document.graph.node(input_id).params["shape"]) == (28, 28, 1)


def test_the_blank_project_fits_the_default_dataset(main_window):
    from widgets.preflight import input_mismatch

    assert main_window.document.project.training.dataset == "digits"
    assert input_mismatch(main_window.document.project) is None


def test_panels_and_workspace_are_remembered(main_window, qtbot, qt_settings, tmp_path):
    main_window.docks["codeView"].hide()
    main_window._save_settings()
    other = MainWindow(settings=qt_settings, recovery_dir=tmp_path / "recovery", examples_dir=tmp_path)
    qtbot.addWidget(other)
    other.show()
    assert other.docks["codeView"].isHidden() and other.docks["inspector"].isVisible()
    other.show_training()
    other.training.detector.kill()
    other._save_settings()
    other.files.autosaver.stop()
    third = MainWindow(settings=qt_settings, recovery_dir=tmp_path / "recovery", examples_dir=tmp_path)
    qtbot.addWidget(third)
    third.show()
    third.training.detector.kill()
    assert third.current_workspace == TRAINING
    third.show_design()  # the panels come back as they were left
    assert third.docks["codeView"].isHidden() and third.docks["inspector"].isVisible()
    assert third.current_workspace == DESIGN
    for window in (other, third):
        window.files.autosaver.stop()
        window.document.mark_saved(tmp_path / "x.layers.json")


def test_find_a_layer_by_name_or_kind(main_window):
    window = main_window
    document = window.document
    edits.add_node_after(document, "Flatten", (200, 0), document.graph.input_nodes[0])
    edits.add_node_after(document, "Dense", (400, 0), document.graph.find("flatten").id)
    edits.add_node_after(document, "Dense", (600, 0), document.graph.find("dense").id)
    window.actions["find"].trigger()
    assert window.find_bar.hasFocus()
    QTest.keyClicks(window.find_bar, "dense")
    QTest.keyClick(window.find_bar, Qt.Key.Key_Return)
    assert window.scene.selected_node_ids() == [document.graph.find("dense").id]
    QTest.keyClick(window.find_bar, Qt.Key.Key_Return)
    assert window.scene.selected_node_ids() == [document.graph.find("dense_1").id]
    window.find_bar.clear()
    QTest.keyClicks(window.find_bar, "flatten")
    QTest.keyClick(window.find_bar, Qt.Key.Key_Return)
    assert window.scene.selected_node_ids() == [document.graph.find("flatten").id]
    window.find_bar.setText("conv")
    assert window.find_bar.find_next() is None


def test_jump_to_problem_selects_and_shows_the_layer(main_window):
    window = main_window
    document = window.document
    far = document.graph.add_node("Dense", name="far", position=(5000, 3000)).id  # not connected
    assert window.jump_to_problem() == far
    assert window.scene.selected_node_ids() == [far]
    center = window.view.mapToScene(window.view.viewport().rect().center())
    assert window.scene.node_item(far).sceneBoundingRect().contains(center)
    document.graph.remove_node(far)
    edits.add_node_after(document, "Flatten", (200, 0), document.graph.input_nodes[0])
    assert window.jump_to_problem() is None


# ----- readable graphs -----------------------------------------------------------------


EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "assets" / "examples").glob("*.layers.json"))


@pytest.mark.parametrize("size", list(SIZES))
def test_every_example_opens_whole_at_a_readable_zoom(main_window, qtbot, size):
    from PySide6.QtCore import QRectF, QSizeF

    from widgets.templates import Template
    from widgets.view import READABLE_ZOOM

    window = main_window
    lay_out(window, qtbot, *size)
    assert len(EXAMPLES) >= 6
    for path in EXAMPLES:
        assert window.files.new_from(Template(path.stem, "", path))
        visible = window.view.mapToScene(window.view.viewport().rect()).boundingRect()
        for item in window.scene.node_items():
            assert visible.contains(item.sceneBoundingRect()), f"{path.name}: {item.node.name} not in view"
        assert window.view.zoom() >= READABLE_ZOOM, path.name
        bodies = [QRectF(item.pos(), QSizeF(*item.size)) for item in window.scene.node_items()]
        assert not any(a.intersects(b) for i, a in enumerate(bodies) for b in bodies[i + 1 :]), path.name


def test_orientation_belongs_to_each_project(main_window, tmp_path):
    from studio.project import save_project

    window = main_window
    edits.add_node_after(window.document, "Flatten", (200, 0), window.document.graph.input_nodes[0])
    window.canvas_actions.arrange("TB")
    assert window.scene.orientation == "TB"
    top_down = tmp_path / "tb.layers.json"
    save_project(window.document.project, top_down)
    window.document.set_project(Document().project)  # a new project lays out left to right
    assert window.scene.orientation == "LR"
    assert window.files.open_path(top_down, ask=False, offer_recovery=False)
    assert window.scene.orientation == "TB"


def test_edges_are_routed_around_nodes_they_would_pass(main_window):
    from PySide6.QtCore import QPointF

    window = main_window
    document = window.document
    graph = document.graph
    first = graph.input_nodes[0]
    edits.set_params(document, first, {"shape": (8,)})
    chain = [first]
    for index in range(3):
        chain.append(edits.add_node_after(document, "Dense", (240.0 * (index + 1), 0.0), chain[-1]))
    merge = edits.add_node_after(document, "Add", (960.0, 0.0), chain[-1])
    edits.connect(document, first, merge, 1)  # a skip edge along the chain's line
    skip = window.scene.edge_item(merge, 1)
    path = skip.path()
    for node_id in chain[1:]:
        body = window.scene.node_item(node_id).sceneBoundingRect().adjusted(8, 8, -8, -8)
        samples = [path.pointAtPercent(step / 200) for step in range(201)]
        assert not any(body.contains(QPointF(point)) for point in samples), graph.node(node_id).name


def test_the_diagram_exports_as_png_and_svg(main_window, tmp_path):
    from PySide6.QtGui import QImage

    window = main_window
    document = window.document
    edits.add_node_after(document, "Flatten", (200, 0), document.graph.input_nodes[0])
    edits.add_node_after(document, "Dense", (400, 0), document.graph.find("flatten").id)
    window.scene.select_nodes([document.graph.find("dense").id])
    png = window.export_diagram(str(tmp_path / "model.png"))
    image = QImage(str(png))
    nodes = window.scene.nodes_rect()
    assert image.width() >= 2 * nodes.width() and image.height() >= 2 * nodes.height()
    svg = window.export_diagram(str(tmp_path / "model.svg")).read_text(encoding="utf-8")
    assert "<svg" in svg and all(name in svg for name in ("input", "flatten", "dense"))
    assert window.scene.selected_node_ids() == [document.graph.find("dense").id]  # as it was
    assert not window.scene.plain_background


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_every_template_fits_its_default_dataset(path):
    from studio.project import load_project
    from studio.templates import blank_project
    from widgets.preflight import input_mismatch

    assert input_mismatch(load_project(path)) is None
    assert input_mismatch(blank_project()) is None


def test_the_minimap_shows_where_the_view_is_and_moves_it(main_window, qtbot):
    window = main_window
    document = window.document
    edits.set_params(document, document.graph.input_nodes[0], {"shape": (8,)})
    previous = document.graph.input_nodes[0]
    for index in range(12):
        previous = edits.add_node_after(document, "Dense", (240.0 * (index + 1), 0.0), previous)
    view, minimap = window.view, window.view.minimap
    view.fit_all()
    qtbot.waitUntil(lambda: not minimap.isVisible(), timeout=2000)
    view.reset_zoom()
    view.center_on_node(document.graph.input_nodes[0])
    qtbot.waitUntil(minimap.isVisible, timeout=2000)
    assert minimap.geometry().bottomRight().x() <= view.viewport().geometry().right()
    last = window.scene.node_item(previous).sceneBoundingRect().center()
    QTest.mouseClick(minimap.viewport(), Qt.MouseButton.LeftButton, pos=minimap.mapFromScene(last))
    center = view.mapToScene(view.viewport().rect().center())
    assert abs(center.x() - last.x()) < 60 and window.scene.node_item(previous).isVisible()
    assert minimap.visible_rect().contains(last)


def test_clicking_the_validity_in_the_status_bar_shows_the_problem(main_window):
    window = main_window
    far = window.document.graph.add_node("Dense", name="far", position=(5000, 3000)).id
    QTest.mouseClick(window.status_summary.validity, Qt.MouseButton.LeftButton)
    assert window.scene.selected_node_ids() == [far]


def test_counts_are_pluralised(main_window):
    from widgets.text import counted

    assert [counted(n, "layer") for n in (0, 1, 2, 12345)] == [
        "0 layers",
        "1 layer",
        "2 layers",
        "12,345 layers",
    ]
    window = main_window
    window.document.graph.add_node("Dense", name="far", position=(500, 0))
    errors = len(window.document.analysis.errors)
    assert errors >= 1
    hint = window.inspector.widget().text()  # the project at a glance
    assert "2 layers" in hint and f"{counted(errors, 'error')}</p>" in hint and "(s)" not in hint
    assert window.status_summary.validity.text() == f"✗ Invalid: {counted(errors, 'error')}"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_every_template_trains_on_its_default_dataset(main_window, qtbot, tmp_path, path):
    from widgets.templates import Template

    window = main_window
    panel = window.training
    panel.runs_root = tmp_path / "runs"
    panel.interactive = False
    assert window.files.new_from(Template(path.stem, "", path))
    panel.edit_setting("epochs", 1)
    panel.form.set_framework("pytorch")
    assert panel.start(), panel.error.text()
    panel.detector.kill()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=180_000)
    record = panel.records[-1]
    assert record.status == "finished", record.errors()


def test_the_preflight_knows_every_builtin_datasets_sample_shape():
    from studio.datasets import list_builtin, load_dataset
    from widgets.preflight import BUILTIN_SAMPLE_SHAPES

    assert set(BUILTIN_SAMPLE_SHAPES) == set(list_builtin())
    for name, shape in BUILTIN_SAMPLE_SHAPES.items():
        assert load_dataset(name).input_shape == shape, name


def test_an_edge_is_rerouted_when_a_node_moves_onto_it(main_window):
    from PySide6.QtCore import QPointF

    window = main_window
    document = window.document
    graph = document.graph
    first = graph.input_nodes[0]
    edits.set_params(document, first, {"shape": (8,)})
    dense = edits.add_node_after(document, "Dense", (900.0, 0.0), first)
    lonely = edits.add_node(document, "Dense", (400.0, 400.0))
    edge = window.scene.edge_item(dense, 0)

    def crosses(node_id: str) -> bool:
        body = window.scene.node_item(node_id).sceneBoundingRect().adjusted(8, 8, -8, -8)
        return any(body.contains(QPointF(edge.path().pointAtPercent(step / 200))) for step in range(201))

    assert not crosses(lonely)
    edits.move_nodes(document, {lonely: ((400.0, 400.0), (400.0, 0.0))})  # onto the edge's line
    assert not crosses(lonely)
    document.undo_stack.undo()
    assert edge.path().boundingRect().height() < 60  # straight again once the node has gone
