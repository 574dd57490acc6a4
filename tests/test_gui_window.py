"""The main window: docks, status bar, problems, files, recovery, themes, palette."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog, QFileDialog, QGraphicsView, QMessageBox

from studio.project import Project, load_project, save_project
from widgets import edits
from widgets.recovery import recovery_path
from widgets.templates import TemplateDialog
from widgets.theme import DARK, LIGHT


def make_valid(window) -> None:
    graph = window.document.graph
    graph.set_params(graph.input_nodes[0], {"shape": (4,)})
    edits.add_node_after(window.document, "Dense", (300, 0), graph.input_nodes[0])


def patch_dialog(monkeypatch, name: str, path: Path | None) -> None:
    monkeypatch.setattr(QFileDialog, name, lambda *args, **kwargs: (str(path) if path else "", ""))


# ----- layout ----------------------------------------------------------------------


def test_docks_have_stable_names_and_default_places(main_window):
    window = main_window
    areas = {name: window.dockWidgetArea(dock) for name, dock in window.docks.items()}
    assert set(areas) == {"palette", "inspector", "codeView", "problems"}
    assert areas["palette"] == Qt.DockWidgetArea.LeftDockWidgetArea
    assert areas["inspector"] == Qt.DockWidgetArea.RightDockWidgetArea
    assert areas["codeView"] == Qt.DockWidgetArea.RightDockWidgetArea
    assert areas["problems"] == Qt.DockWidgetArea.RightDockWidgetArea
    assert window.docks["codeView"] in window.tabifiedDockWidgets(window.docks["problems"])
    assert window.centralWidget().objectName() == "workspace"
    assert window.centralWidget().currentWidget() is window.view
    assert window.view.objectName() == "canvas"
    assert window.findChild(QGraphicsView, "canvas") is window.view


def test_status_bar_shows_layers_parameters_and_validity(main_window):
    summary = main_window.status_summary
    assert summary.layers.text() == "1 layer"
    assert "Invalid" in summary.validity.text()
    make_valid(main_window)
    assert summary.layers.text() == "2 layers"
    assert summary.params.text() == "320 parameters"
    # 64 outputs of 4 MACs (2 FLOPs each) and a bias add each (no activation)
    assert summary.flops.text() == "576 FLOPs"
    assert "576 FLOPs (256 MACs) per sample" in summary.flops.toolTip()
    assert summary.validity.text() == "✓ Valid"


def test_title_shows_name_and_a_star_when_dirty(main_window):
    assert main_window.windowTitle() == "Untitled — Layer Studio"
    make_valid(main_window)
    assert main_window.windowTitle() == "Untitled* — Layer Studio"
    main_window.document.undo_stack.undo()
    assert main_window.windowTitle() == "Untitled — Layer Studio"


# ----- problems --------------------------------------------------------------------


def test_problems_appear_and_clear(main_window):
    panel = main_window.problems
    assert any("no output" in message for message in panel.messages())
    assert main_window.docks["problems"].windowTitle().startswith("Problems (")
    make_valid(main_window)
    assert panel.problem_count() == 0
    assert panel.topLevelItem(0).text(0).startswith("No problems")
    assert main_window.docks["problems"].windowTitle() == "Problems"


def test_clicking_a_problem_selects_and_centres_its_node(main_window):
    make_valid(main_window)
    graph = main_window.document.graph
    far = graph.add_node("Dense", name="far", position=(4000, 3000)).id
    panel = main_window.problems
    row = next(i for i in range(panel.topLevelItemCount()) if panel.topLevelItem(i).text(1) == "far")
    rect = panel.visualItemRect(panel.topLevelItem(row))
    QTest.mouseClick(
        panel.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center()
    )
    assert main_window.scene.selected_node_ids() == [far]
    view = main_window.view
    center = view.mapToScene(view.viewport().rect().center())
    assert main_window.scene.node_item(far).sceneBoundingRect().contains(center)


# ----- files -----------------------------------------------------------------------


def test_save_and_open_through_the_file_actions(main_window, monkeypatch, tmp_path):
    make_valid(main_window)
    target = tmp_path / "model.layers.json"
    patch_dialog(monkeypatch, "getSaveFileName", tmp_path / "model")  # the extension is added
    main_window.actions["save"].trigger()
    assert target.exists() and not main_window.document.is_dirty
    assert main_window.windowTitle() == "model — Layer Studio"
    assert load_project(target).graph.find("dense") is not None

    main_window.document.set_project(Project())
    patch_dialog(monkeypatch, "getOpenFileName", target)
    main_window.actions["open"].trigger()
    assert main_window.document.path == target
    assert [node.kind for node in main_window.document.graph.nodes] == ["Input", "Dense"]
    assert main_window.files.recent_files()[0] == str(target.resolve())

    edits.rename(main_window.document, main_window.document.graph.find("dense").id, "head")
    main_window.actions["save"].trigger()  # no dialog: the document has a path now
    assert load_project(target).graph.find("head") is not None


def test_open_error_is_shown_and_nothing_is_lost(main_window, monkeypatch, tmp_path, dialogs):
    make_valid(main_window)
    broken = tmp_path / "broken.layers.json"
    broken.write_text("{ not json", encoding="utf-8")
    dialogs.answer = QMessageBox.StandardButton.Discard
    patch_dialog(monkeypatch, "getOpenFileName", broken)
    before = [node.name for node in main_window.document.graph.nodes]
    main_window.actions["open"].trigger()
    assert "Cannot open the project" in dialogs.titles("critical")
    assert [node.name for node in main_window.document.graph.nodes] == before


def test_save_error_is_shown_and_the_document_stays_dirty(main_window, tmp_path, dialogs):
    make_valid(main_window)
    assert not main_window.files.save_to(tmp_path / "missing-folder" / "x.layers.json")
    assert "Cannot save the project" in dialogs.titles("critical")
    assert main_window.document.is_dirty


def test_new_from_template_gallery(main_window, monkeypatch, tmp_path):
    examples = tmp_path / "no-examples"
    examples.mkdir()
    project = Project(name="Tiny example", description="Just an input.")
    project.graph.add_node("Input", params={"shape": (3,)})
    save_project(project, examples / "tiny.layers.json")
    chosen = {}

    def accept(dialog):
        chosen["names"] = [dialog.list.item(i).text().splitlines()[0] for i in range(dialog.list.count())]
        dialog.list.setCurrentRow(1)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(TemplateDialog, "exec", accept)
    main_window.actions["new"].trigger()
    assert chosen["names"] == ["Blank", "Tiny example"]
    assert main_window.document.project.name == "Tiny example"
    assert main_window.document.path is None  # a copy: saving asks where


def test_close_with_unsaved_changes_asks(main_window, dialogs):
    make_valid(main_window)
    dialogs.answer = QMessageBox.StandardButton.Cancel
    event = QCloseEvent()
    main_window.closeEvent(event)
    assert not event.isAccepted()
    assert "Unsaved changes" in dialogs.titles("warning")


def test_autosave_writes_a_recovery_file_and_offers_it(main_window, monkeypatch, tmp_path, dialogs):
    target = tmp_path / "model.layers.json"
    make_valid(main_window)
    assert main_window.files.save_to(target)
    edits.rename(main_window.document, main_window.document.graph.find("dense").id, "unsaved_head")
    autosaver = main_window.files.autosaver
    assert autosaver.after_edit.isActive()
    written = autosaver.save_now()
    assert written == recovery_path(autosaver.directory, target)
    assert load_project(written).graph.find("unsaved_head") is not None
    crash_leftover = written.read_text(encoding="utf-8")

    main_window.document.set_project(Project())  # as if the app had crashed and restarted
    written.write_text(crash_leftover, encoding="utf-8")
    later = time.time() + 5
    os.utime(written, (later, later))
    dialogs.answer = QMessageBox.StandardButton.Yes
    assert main_window.files.open_path(target, ask=False)
    assert "Recover unsaved changes?" in dialogs.titles("question")
    assert main_window.document.graph.find("unsaved_head") is not None
    assert main_window.document.is_dirty and main_window.document.path == target

    assert main_window.files.save()
    assert not written.exists()  # saved: the recovery file is gone


# ----- palette, themes, errors ---------------------------------------------------------


def test_palette_lists_every_kind_and_filters(main_window):
    from studio.catalog import CATALOG

    palette = main_window.palette_widget
    assert sorted(palette.visible_kinds()) == sorted(CATALOG.keys())
    categories = {palette.tree.topLevelItem(i).text(0) for i in range(palette.tree.topLevelItemCount())}
    assert categories == {spec.category for spec in CATALOG}
    assert all(
        not palette.tree.topLevelItem(i).icon(0).isNull() for i in range(palette.tree.topLevelItemCount())
    )
    palette.search.setText("pool")
    assert palette.visible_kinds() and all("Pool" in kind for kind in palette.visible_kinds())
    first = palette.kind_items()[1]
    assert first.toolTip(0) == CATALOG.get(first.text(0)).summary()


def test_double_click_in_palette_adds_after_the_selection(main_window):
    graph = main_window.document.graph
    source = graph.input_nodes[0]
    main_window.scene.select_nodes([source])
    palette = main_window.palette_widget
    item = next(item for item in palette.kind_items() if item.text(0) == "Flatten")
    tree = palette.tree
    tree.scrollToItem(item)
    point = tree.visualItemRect(item).center()
    QTest.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    QTest.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    flatten = graph.find("flatten")
    assert flatten is not None and graph.inputs_of(flatten.id) == [source]
    assert flatten.position[0] > graph.node(source).position[0]
    assert main_window.scene.selected_node_ids() == [flatten.id]


def test_dark_theme_toggle(main_window, qt_settings):
    main_window.actions["dark"].setChecked(True)
    assert main_window.scene.theme is DARK
    assert qt_settings.value("theme") == "dark"
    main_window.actions["dark"].setChecked(False)
    assert main_window.scene.theme is LIGHT


def test_keyboard_shortcuts_edit_the_canvas(main_window):
    make_valid(main_window)
    view = main_window.view
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(main_window.scene.selected_node_ids()) == 2
    QTest.keyClick(view, Qt.Key.Key_Delete)
    assert len(main_window.document.graph) == 0
    QTest.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(main_window.document.graph) == 2


def test_exception_hook_reports_and_keeps_running(main_window, capsys):
    from widgets.errors import ExceptionHook

    hook = ExceptionHook(main_window, show_dialog=False)
    try:
        raise ValueError("boom")
    except ValueError as error:
        hook(type(error), error, error.__traceback__)
    assert hook.count == 1
    assert "ValueError: boom" in capsys.readouterr().err


def test_context_menu_lists_edit_actions(main_window):
    texts = [action.text() for action in main_window.view.context_actions if action is not None]
    assert "&Delete" in texts and "D&uplicate" in texts


@pytest.mark.parametrize(
    "key", ["undo", "redo", "save", "open", "new", "copy", "paste", "delete", "select_all"]
)
def test_standard_actions_have_shortcuts(main_window, key):
    assert main_window.actions[key].shortcuts()


def test_space_drag_pans(main_window):
    view = main_window.view
    view.setFocus()
    QTest.keyPress(view, Qt.Key.Key_Space)
    before = view.visible_scene_center()
    viewport = view.viewport()
    start = QPoint(300, 300)
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewport, start + QPoint(-60, 0))
    QTest.mouseRelease(
        viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(-60, 0)
    )
    QTest.keyRelease(view, Qt.Key.Key_Space)
    assert view.visible_scene_center().x() > before.x() + 30
    assert main_window.document.undo_stack.count() == 0
    assert QEvent.Type.KeyRelease  # the view took the space key, nothing was typed
