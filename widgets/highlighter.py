"""Python syntax highlighting for the code view: a few regular-expression rules."""

from __future__ import annotations

import builtins
import keyword

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument

from widgets.theme import LIGHT, Theme

IN_TRIPLE_DOUBLE, IN_TRIPLE_SINGLE = 1, 2
TRIPLE_QUOTES = {IN_TRIPLE_DOUBLE: '"""', IN_TRIPLE_SINGLE: "'''"}

_BUILTINS = sorted(name for name in dir(builtins) if not name.startswith("_") and name not in keyword.kwlist)


def _words(words: list[str]) -> str:
    return r"\b(?:" + "|".join(words) + r")\b"


# (pattern, format name, capture group) in the order they are applied; later rules win.
RULES: list[tuple[str, str, int]] = [
    (_words(_BUILTINS), "builtin", 0),
    (_words(keyword.kwlist), "keyword", 0),
    (r"\b(?:self|cls)\b", "self", 0),
    (r"\b(?:0[xX][0-9a-fA-F_]+|\d[\d_]*\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)\b", "number", 0),
    (r"\b(?:def|class)\s+(\w+)", "definition", 1),
    (r"^\s*@[\w.]+", "decorator", 0),
    (r"[rbfuRBFU]{0,2}\"(?:[^\"\\\\]|\\\\.)*\"", "string", 0),
    (r"[rbfuRBFU]{0,2}'(?:[^'\\\\]|\\\\.)*'", "string", 0),
    (r"#[^\n]*", "comment", 0),
]


class PythonHighlighter(QSyntaxHighlighter):
    def __init__(self, document: QTextDocument, theme: Theme = LIGHT) -> None:
        super().__init__(document)
        self._rules = [(QRegularExpression(pattern), name, group) for pattern, name, group in RULES]
        self.formats: dict[str, QTextCharFormat] = {}
        self.set_theme(theme)

    def set_theme(self, theme: Theme) -> None:
        colors = {
            "keyword": theme.code_keyword,
            "builtin": theme.code_builtin,
            "self": theme.code_self,
            "number": theme.code_number,
            "definition": theme.code_definition,
            "decorator": theme.code_decorator,
            "string": theme.code_string,
            "comment": theme.code_comment,
        }
        self.formats = {
            name: _format(color, bold=name in ("keyword", "definition"), italic=name == "comment")
            for name, color in colors.items()
        }
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:
        for expression, name, group in self._rules:
            matches = expression.globalMatch(text)
            while matches.hasNext():
                match = matches.next()
                self.setFormat(match.capturedStart(group), match.capturedLength(group), self.formats[name])
        self._highlight_triple_quotes(text)

    def _highlight_triple_quotes(self, text: str) -> None:
        """Docstrings may span lines: the block state carries the open quote."""
        self.setCurrentBlockState(0)
        state = self.previousBlockState()
        if state in TRIPLE_QUOTES:
            start, search_from = 0, 0
        else:
            state, start = self._find_opening(text, 0)
            search_from = start + 3
        while state in TRIPLE_QUOTES:
            end = text.find(TRIPLE_QUOTES[state], search_from)
            if end < 0:
                self.setFormat(start, len(text) - start, self.formats["string"])
                self.setCurrentBlockState(state)
                return
            end += 3
            self.setFormat(start, end - start, self.formats["string"])
            state, start = self._find_opening(text, end)
            search_from = start + 3

    @staticmethod
    def _find_opening(text: str, offset: int) -> tuple[int, int]:
        found = [(text.find(quote, offset), state) for state, quote in TRIPLE_QUOTES.items()]
        found = [(index, state) for index, state in found if index >= 0]
        if not found:
            return 0, -1  # state 0: no string open
        index, state = min(found)
        return state, index


def _format(color: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(color))
    if bold:
        fmt.setFontWeight(QFont.Weight.DemiBold)
    fmt.setFontItalic(italic)
    return fmt
