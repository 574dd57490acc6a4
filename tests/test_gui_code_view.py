"""The code view: debounced regeneration, explanations instead of code, copy and export."""

from __future__ import annotations

import sys
import time
import types

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QPlainTextEdit

from widgets.code_view import CodeView
from widgets.codegen_bridge import UNAVAILABLE
from widgets.document import Document
from widgets.highlighter import PythonHighlighter


class FakeCodegenError(Exception):
    pass


def fake_codegen(monkeypatch, generate=None) -> None:
    """Replace the codegen package: without ``generate``, or with a given one."""
    module = types.ModuleType("codegen")
    module.CodegenError = FakeCodegenError
    if generate is not None:
        module.generate = generate
    monkeypatch.setitem(sys.modules, "codegen", module)


def echo_generate(project, framework, analysis=None):
    names = ", ".join(node.name for node in project.graph.nodes)
    return types.SimpleNamespace(source=f"# {framework}\nmodel = build({names!r})\n")


@pytest.fixture
def valid_document(qapp):
    document = Document()
    graph = document.graph
    graph.set_params(graph.input_nodes[0], {"shape": (4,)})
    dense = graph.add_node("Dense")
    graph.connect(graph.input_nodes[0], dense.id)
    return document


def make_view(qtbot, document) -> CodeView:
    view = CodeView(document)
    qtbot.addWidget(view)
    return view


def test_without_codegen_says_it_is_not_available(qtbot, valid_document, monkeypatch):
    fake_codegen(monkeypatch)
    view = make_view(qtbot, valid_document)
    assert UNAVAILABLE in view.text("keras") and UNAVAILABLE in view.text("pytorch")
    assert not view.copy_button.isEnabled() and not view.export_button.isEnabled()


def test_regenerates_within_200_ms_of_an_edit(qtbot, valid_document, monkeypatch):
    fake_codegen(monkeypatch, echo_generate)
    view = make_view(qtbot, valid_document)
    assert view.text("keras") == "# keras\nmodel = build('input, dense')\n"
    started = time.perf_counter()
    with qtbot.waitSignal(view.regenerated, timeout=1000):
        valid_document.graph.rename_node(valid_document.graph.nodes[1].id, "head")
    assert time.perf_counter() - started < 0.2
    assert "head" in view.text("keras") and "head" in view.text("pytorch")


def test_edits_in_a_burst_regenerate_once(qtbot, valid_document, monkeypatch):
    calls = []

    def counting(project, framework, analysis=None):
        calls.append(framework)
        return echo_generate(project, framework, analysis)

    fake_codegen(monkeypatch, counting)
    view = make_view(qtbot, valid_document)
    calls.clear()
    with qtbot.waitSignal(view.regenerated, timeout=1000):
        for units in range(1, 11):
            valid_document.graph.set_params(valid_document.graph.nodes[1].id, {"units": units})
    assert calls == ["keras", "pytorch"]


def test_invalid_graph_shows_the_problems(qtbot, valid_document, monkeypatch):
    """Without valid code to keep, the tab explains what is wrong."""
    fake_codegen(monkeypatch, echo_generate)
    valid_document.graph.disconnect(valid_document.graph.nodes[1].id, 0)
    view = make_view(qtbot, valid_document)
    text = view.text("keras")
    assert text.startswith("# The model cannot be turned into code")
    assert "not connected" in text
    assert not view.results["keras"].ok and not view.is_stale("keras")
    assert view.banner.isHidden()


def test_an_error_keeps_the_last_valid_code_dimmed_under_a_banner(qtbot, valid_document, monkeypatch):
    fake_codegen(monkeypatch, echo_generate)
    view = make_view(qtbot, valid_document)
    view.show()
    valid_code = view.text("keras")
    assert valid_code.startswith("# keras") and view.banner.isHidden()
    with qtbot.waitSignal(view.regenerated, timeout=1000):
        valid_document.graph.disconnect(valid_document.graph.nodes[1].id, 0)
    assert view.text("keras") == valid_code and view.text("pytorch").startswith("# pytorch")
    assert view.is_stale("keras") and not view.results["keras"].ok
    assert view.editors["keras"].viewport().graphicsEffect() is not None  # dimmed
    assert view.banner.isVisible()
    assert "last valid code" in view.banner.text() and "not connected" in view.banner.text()
    assert not view.copy_button.isEnabled()  # what is copied or exported is always current
    with qtbot.waitSignal(view.problemLinkActivated, timeout=1000):
        view.banner.linkActivated.emit("problem")
    with qtbot.waitSignal(view.regenerated, timeout=1000):
        valid_document.graph.connect(valid_document.graph.nodes[0].id, valid_document.graph.nodes[1].id)
    assert not view.is_stale("keras") and view.banner.isHidden()
    assert view.editors["keras"].viewport().graphicsEffect() is None


def test_codegen_error_is_shown(qtbot, valid_document, monkeypatch):
    def failing(project, framework, analysis=None):
        raise FakeCodegenError("Dense 'dense': not supported")

    fake_codegen(monkeypatch, failing)
    view = make_view(qtbot, valid_document)
    assert "Cannot generate Keras code" in view.text("keras")
    assert "not supported" in view.text("pytorch")


def test_copy_and_export(qtbot, valid_document, monkeypatch, tmp_path):
    fake_codegen(monkeypatch, echo_generate)
    view = make_view(qtbot, valid_document)
    view.tabs.setCurrentIndex(1)
    view.copy_current()
    assert QGuiApplication.clipboard().text().startswith("# pytorch")
    target = tmp_path / "model.py"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    assert view.export_current() == target
    assert target.read_text(encoding="utf-8") == "# pytorch\nmodel = build('input, dense')\n"


def test_highlighter_colours_python(qtbot):
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    document = editor.document()
    highlighter = PythonHighlighter(document)
    editor.setPlainText('def build(self):\n    return "x"  # done\n"""doc\nstring"""\n')
    first = document.firstBlock().layout().formats()
    colors = {fmt.format.foreground().color().name() for fmt in first}
    assert highlighter.formats["keyword"].foreground().color().name() in colors
    assert highlighter.formats["definition"].foreground().color().name() in colors
    third = document.findBlockByNumber(3)
    assert document.findBlockByNumber(2).userState() == 1  # inside a docstring
    assert third.userState() == 0  # closed again
    assert third.layout().formats()[0].format.foreground() == highlighter.formats["string"].foreground()


def test_verify_shows_its_stages_and_can_be_cancelled(qtbot, valid_document, monkeypatch):
    fake_codegen(monkeypatch, echo_generate)
    view = make_view(qtbot, valid_document)
    view.show()
    process = view.verifier.process
    real_start = process.start
    monkeypatch.setattr(process, "start", lambda arguments: real_start(["-c", "import time; time.sleep(60)"]))
    view.verify()
    panel = view.verify_panel
    assert view.verifier.is_running and not view.verify_button.isEnabled()
    assert panel.busy.isVisible() and panel.cancel_button.isVisible()
    assert panel.title.text().startswith("Verifying…")
    assert "import TensorFlow and PyTorch" in panel.details.text()
    started = time.monotonic()
    with qtbot.waitSignal(view.verified, timeout=3000) as signal:
        panel.cancel_button.click()
    assert time.monotonic() - started < 2.0
    result = signal.args[0]
    assert result.cancelled and result.verdict == "Cancelled"
    assert not view.verifier.is_running
    assert view.verify_button.isEnabled() and view.verify_button.text() == "Verify"
    assert not panel.busy.isVisible() and "Cancelled" in panel.title.text()
