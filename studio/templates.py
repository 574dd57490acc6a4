"""Project templates: Blank and the example projects (assets/examples/). No Qt here.

A template's name is its file's stem (``lenet_digits``), or ``blank``; the
GUI's New-project gallery and ``studio new`` offer the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.project import EXTENSION, Project, ProjectError, load_project

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
BLANK_NAME = "blank"
# The samples of the default dataset (digits) are 8×8 grayscale images: a first model trains as it is.
BLANK_INPUT_SHAPE = (8, 8, 1)


@dataclass(frozen=True)
class TemplateInfo:
    name: str  # what `studio new --template` takes
    title: str
    description: str
    path: Path | None  # None: the blank project


def blank_project() -> Project:
    """An empty model with one Input, ready for the first layer."""
    project = Project()
    project.graph.add_node("Input", params={"shape": BLANK_INPUT_SHAPE}, position=(0.0, 0.0))
    return project


def list_templates(directory: Path = EXAMPLES_DIR) -> list[TemplateInfo]:
    """Blank, then every readable example project, by name (broken examples are skipped)."""
    templates = [TemplateInfo(BLANK_NAME, "Blank", "An empty model with one Input layer.", None)]
    for path in sorted(Path(directory).glob(f"*{EXTENSION}")):
        try:
            project = load_project(path)
        except ProjectError:
            continue
        templates.append(TemplateInfo(path.name[: -len(EXTENSION)], project.name, project.description, path))
    return templates


def create_project(name: str, directory: Path = EXAMPLES_DIR) -> Project:
    """A fresh project from the template ``name`` (its name or title, any case).

    Raises ProjectError naming the templates there are when there is none by that name.
    """
    templates = list_templates(directory)
    wanted = name.strip().lower()
    for template in templates:
        if wanted in (template.name.lower(), template.title.lower()):
            return blank_project() if template.path is None else load_project(template.path)
    names = ", ".join(template.name for template in templates)
    raise ProjectError(f"no template named {name!r}; the templates are: {names}")
