"""The inspector: a form per spec; valid edits become commands, invalid ones are refused."""

from __future__ import annotations

import importlib

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from widgets.document import Document
from widgets.inspector import Inspector
from widgets.scene import GraphScene


def codegen_available() -> bool:
    try:
        return callable(getattr(importlib.import_module("codegen"), "generate", None))
    except ImportError:
        return False


@pytest.fixture
def inspector(qtbot):
    document = Document()
    graph = document.graph
    graph.set_params(graph.input_nodes[0], {"shape": (8, 8, 1)})
    conv = graph.add_node("Conv2D", position=(300, 0))
    graph.connect(graph.input_nodes[0], conv.id)
    document.undo_stack.clear()
    scene = GraphScene(document)
    widget = Inspector(document, scene)
    qtbot.addWidget(widget)
    widget.show()
    scene.select_nodes([conv.id])
    return document, scene, widget


def conv_id(document: Document) -> str:
    return document.graph.nodes[1].id


def type_into(qtbot, edit: QLineEdit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    QTest.keyClicks(edit, text)
    QTest.keyClick(edit, Qt.Key.Key_Return)


def test_form_is_built_from_the_spec(inspector):
    _, _, widget = inspector
    editors = {name: editor.widget for name, editor in widget.editors.items()}
    assert isinstance(editors["filters"], QSpinBox)
    assert editors["filters"].minimum() == 1
    assert isinstance(editors["padding"], QComboBox)
    assert [editors["padding"].itemText(i) for i in range(editors["padding"].count())] == ["valid", "same"]
    assert isinstance(editors["use_bias"], QCheckBox)
    assert isinstance(editors["kernel_size"], QLineEdit) and editors["kernel_size"].text() == "3, 3"
    assert widget.name_edit.text() == "conv2d"


def test_nothing_or_many_selected_shows_a_hint(inspector):
    document, scene, widget = inspector
    scene.clearSelection()
    assert widget.node_id is None and "Select a layer" in widget._hint.text()
    scene.select_nodes([node.id for node in document.graph.nodes])
    assert "2 layers selected" in widget._hint.text()


def test_spin_box_edit_changes_the_graph_as_one_command(inspector, qtbot):
    document, _, widget = inspector
    widget.editors["filters"].widget.setValue(128)
    assert document.graph.node(conv_id(document)).params["filters"] == 128
    assert document.undo_stack.undoText() == "Set filters of 'conv2d' to 128"
    document.undo_stack.undo()
    assert widget.editors["filters"].widget.value() == 32  # the form follows the model


def test_combo_and_tuple_edits(inspector, qtbot):
    document, _, widget = inspector
    combo = widget.editors["padding"].widget
    combo.setCurrentText("same")
    combo.activated.emit(combo.currentIndex())
    type_into(qtbot, widget.editors["kernel_size"].widget, "5")
    params = document.graph.node(conv_id(document)).params
    assert params["padding"] == "same" and params["kernel_size"] == (5, 5)
    assert widget.editors["kernel_size"].widget.text() == "5, 5"
    assert document.undo_stack.undoText() == "Set kernel_size of 'conv2d' to (5, 5)"


def test_invalid_value_is_refused_with_the_reason(inspector, qtbot):
    document, _, widget = inspector
    count = document.undo_stack.count()
    type_into(qtbot, widget.editors["kernel_size"].widget, "0, 3")
    assert "expected 2 integers >= 1" in widget.error_text("kernel_size")
    assert "kernel_size" in widget.error_text("kernel_size")
    type_into(qtbot, widget.editors["strides"].widget, "a, b")
    assert "expected integers" in widget.error_text("strides")
    assert document.undo_stack.count() == count
    assert document.graph.node(conv_id(document)).params["kernel_size"] == (3, 3)
    type_into(qtbot, widget.editors["kernel_size"].widget, "3, 1")
    assert widget.error_text("kernel_size") == ""


def test_invalid_float_is_refused(qtbot):
    document = Document()
    dropout = document.graph.add_node("Dropout").id
    scene = GraphScene(document)
    widget = Inspector(document, scene)
    qtbot.addWidget(widget)
    widget.show()
    scene.select_nodes([dropout])
    type_into(qtbot, widget.editors["rate"].widget, "1.5")
    assert "rate=1.5" in widget.error_text("rate")
    assert document.graph.node(dropout).params["rate"] == 0.5
    assert document.undo_stack.count() == 0
    type_into(qtbot, widget.editors["rate"].widget, "0.25")
    assert document.graph.node(dropout).params["rate"] == 0.25 and widget.error_text("rate") == ""


def test_rename_and_duplicate_name_refused(inspector, qtbot):
    document, _, widget = inspector
    type_into(qtbot, widget.name_edit, "features")
    assert document.graph.node(conv_id(document)).name == "features"
    assert document.undo_stack.undoText() == "Rename 'conv2d' to 'features'"
    type_into(qtbot, widget.name_edit, "input")
    assert "already used" in widget.error_text("name")
    assert document.graph.node(conv_id(document)).name == "features"


def test_output_toggle_uses_set_outputs(inspector):
    document, _, widget = inspector
    graph = document.graph
    assert widget.output_check.isChecked()  # the only sink is an output
    dense = graph.add_node("Dense").id
    graph.connect(graph.input_nodes[0], dense)
    widget.output_check.setChecked(False)
    assert graph.declared_outputs == [dense]
    widget.output_check.setChecked(True)
    assert graph.declared_outputs == [dense, conv_id(document)]
    document.undo_stack.undo()
    assert not widget.output_check.isChecked()


def test_info_shows_shape_parameters_and_problems(inspector):
    document, _, widget = inspector
    assert "(None, 6, 6, 32)" in widget._info.text()
    assert "320" in widget._info.text()
    assert "21,888 FLOPs (10,368 MACs) per sample" in widget._info.text()
    document.graph.disconnect(conv_id(document), 0)
    assert "not connected" in widget._info.text()


def test_inspector_edit_updates_the_code_view(inspector, qtbot):
    if not codegen_available():
        pytest.skip("codegen.generate is not available yet")
    from widgets.code_view import CodeView

    document, _, widget = inspector
    code = CodeView(document)
    qtbot.addWidget(code)
    assert code.results["keras"].ok, code.text("keras")
    before = code.text("keras")
    with qtbot.waitSignal(code.regenerated, timeout=1000):
        widget.editors["filters"].widget.setValue(77)
    assert code.text("keras") != before
    assert "77" in code.text("keras") and "77" in code.text("pytorch")


def test_info_states_the_layout_in_each_framework(inspector):
    document, _, widget = inspector
    text = widget._info.text()
    assert "(None, 6, 6, 32)</code> channels-last (Keras)" in text
    assert "(None, 32, 6, 6) channels-first" in text  # how the PyTorch program holds it
    document.graph.set_param(conv_id(document), "kernel_size", (9, 9))  # invalid: no PyTorch shape to show
    assert "In PyTorch" not in widget._info.text()
