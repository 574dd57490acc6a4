"""Before a run is spawned: does the dataset fit the model's input? Qt-free, and quick.

The training process checks every dataset when it loads it; this check runs
first, in the GUI process, for the built-in datasets (small, offline), so a
mismatch is explained at once with its fix ("Set Input to 8×8×1") instead of
after a child process has started.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.project import Project

# One sample of each built-in dataset (tests/test_gui_layout.py checks it against the loaders), so that
# pressing Train need not load the dataset (and scikit-learn) in the window's thread.
BUILTIN_SAMPLE_SHAPES = {
    "digits": (8, 8, 1),
    "iris": (4,),
    "wine": (13,),
    "breast_cancer": (30,),
    "moons": (2,),
    "circles": (2,),
    "spirals": (2,),
    "regression": (8,),
}


@dataclass(frozen=True)
class InputMismatch:
    node_id: str
    input_name: str
    dataset: str
    have: tuple[int, ...]  # one sample of the dataset
    want: tuple[int | None, ...]  # the model's Input, without the batch dimension

    @property
    def fix_text(self) -> str:
        return f"Set Input to {dims(self.have)}"

    @property
    def message(self) -> str:
        return (
            f"The dataset {self.dataset!r} has samples of shape {dims(self.have)}, but the Input "
            f"{self.input_name!r} takes {dims(self.want)}. {self.fix_text}, or pick another dataset."
        )


def dims(shape) -> str:
    return "×".join("?" if size is None else str(size) for size in shape)


def input_mismatch(project: Project) -> InputMismatch | None:
    """The mismatch between a built-in dataset and the model's single Input, or None when it fits
    (or when this quick check does not apply: files, downloads, several inputs)."""
    from studio.datasets.fitting import is_trivial_reshape

    settings = project.training
    graph = project.graph
    have = BUILTIN_SAMPLE_SHAPES.get(settings.dataset)
    if have is None or len(graph.input_nodes) != 1:
        return None
    node = graph.node(graph.input_nodes[0])
    want = tuple(node.params.get("shape", ()))
    fits = len(have) == len(want) and all(w is None or h == w for h, w in zip(have, want, strict=True))
    if fits or (None not in want and is_trivial_reshape(have, want)):
        return None
    return InputMismatch(node.id, node.name, settings.dataset, have, want)
