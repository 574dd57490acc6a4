"""What the code view shows for a framework: generated code, or why there is none.

``codegen`` is imported when first needed. It never imports torch or
TensorFlow at module level, so this stays fast.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

from studio.analysis import ERROR, Analysis
from studio.project import FRAMEWORK_TITLES, Project

log = logging.getLogger(__name__)

UNAVAILABLE = "Code generation is not available yet."


@dataclass(frozen=True)
class CodeResult:
    text: str
    ok: bool  # True: ``text`` is generated source; False: an explanation, as comments


def _comment(lines: list[str]) -> str:
    return "\n".join(f"# {line}".rstrip() for line in lines) + "\n"


def problems_text(analysis: Analysis) -> str:
    count = len(analysis.errors)
    what = "this problem is" if count == 1 else f"these {count} problems are"
    lines = [f"The model cannot be turned into code until {what} fixed:", ""]
    for problem in analysis.problems:
        mark = "✗" if problem.severity == ERROR else "!"
        lines.append(f"  {mark} {problem.message}")
    return _comment(lines)


def generate_code(project: Project, analysis: Analysis, framework: str) -> CodeResult:
    if not analysis.is_valid:
        return CodeResult(problems_text(analysis), False)
    try:
        import codegen
        from codegen import generate
    except (ImportError, AttributeError):
        return CodeResult(_comment([UNAVAILABLE]), False)
    codegen_error = getattr(codegen, "CodegenError", None)
    try:
        return CodeResult(generate(project, framework, analysis).source, True)  # analysed once per edit
    except Exception as error:  # noqa: BLE001 - shown in the view rather than crashing the app
        if codegen_error is not None and isinstance(error, codegen_error):
            return CodeResult(
                _comment([f"Cannot generate {FRAMEWORK_TITLES[framework]} code:", "", str(error)]), False
            )
        log.exception("code generation failed for %s", framework)
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        return CodeResult(_comment([f"Code generation failed unexpectedly: {detail}"]), False)
