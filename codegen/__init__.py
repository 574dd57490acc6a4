"""Code generation: idiomatic Keras 3 and PyTorch programs from one graph.

    from codegen import generate
    keras_code = generate(project, "keras")      # GeneratedCode(source=..., ...)
    torch_code = generate(project, "pytorch")

Depends on ``studio`` only; never imports Qt, and imports the frameworks
only in the verifier (``codegen.verify``).
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen.plan import CodegenError, ModelPlan, build_plan
from codegen.program import keras_program, torch_program
from studio.analysis import Analysis
from studio.project import FRAMEWORKS, Project


@dataclass(frozen=True)
class GeneratedCode:
    framework: str
    source: str
    plan: ModelPlan

    @property
    def filename(self) -> str:
        return f"{self.plan.model_name}_{self.framework}.py"


def generate(project: Project, framework: str, analysis: Analysis | None = None) -> GeneratedCode:
    """The program for ``framework`` ("keras" or "pytorch"); raises CodegenError for invalid graphs."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")
    plan = build_plan(project, analysis)
    source = keras_program(plan) if framework == "keras" else torch_program(plan)
    return GeneratedCode(framework, source, plan)


__all__ = ["FRAMEWORKS", "CodegenError", "GeneratedCode", "generate"]
