"""From a list of mapped layers to an editable project: the part every importer shares.

An importer walks its source model and calls :meth:`GraphBuilder.add` for
each layer it can express (kind, Keras-named params, inputs, Keras-layout
weights) and :meth:`GraphBuilder.unsupported` for each one it cannot. The
builder checks every layer's parameters against the catalog as it goes,
so a model that fails is reported as a whole: :meth:`GraphBuilder.build`
raises one :class:`UnsupportedModelError` listing every problem, and only
returns a project that analyzes as valid, with weights that fit it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.analysis import analyze
from studio.catalog import CATALOG, ParamError, Registry, UnknownKindError
from studio.graph import MAX_NAME_LENGTH, Graph, GraphError
from studio.interop.errors import UnsupportedLayer, UnsupportedModelError
from studio.layout import DEFAULT_NODE_SIZE, fitted_layout
from studio.project import Project

Weights = dict[str, list[np.ndarray]]

# Imported models are grouped into blocks by their layers' names (module paths, name prefixes);
# a model with more layers than this opens with its blocks collapsed.
COLLAPSE_ABOVE = 60
MIN_BLOCK = 3  # fewer layers under one prefix make no block
MAX_BLOCK = 24  # more are too many to read as one block
_SEPARATOR = re.compile(r"[._/]+")


@dataclass(frozen=True)
class TensorInfo:
    """How one model input or output of the source corresponds to the project's.

    ``channels_first``: the source tensor is the project's (Keras,
    channels-last) tensor with its channel axis moved to axis 1, as
    PyTorch and ONNX images are; otherwise both have the same axes.
    """

    source_name: str
    layer: str  # the project's node name
    channels_first: bool = False


@dataclass
class ImportedModel:
    """The result of an import: a valid project, and its weights when they were read."""

    project: Project
    weights: Weights | None
    source_format: str  # "keras", "onnx" or "pytorch"
    source_parameters: int | None  # as the source framework counts them
    parameter_rule: str  # "keras" or "torch": the catalog rule comparable to source_parameters
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def imported_parameters(self) -> int:
        """The project's parameter count under the source framework's counting rule."""
        analysis = analyze(self.project.graph)
        total = analysis.total_torch_params if self.parameter_rule == "torch" else analysis.total_params
        return total.total


@dataclass
class PendingLayer:
    name: str
    kind: str
    params: dict[str, Any]
    inputs: list[str]
    weights: list[np.ndarray] | None
    source_kind: str


class GraphBuilder:
    """Collects layers and problems; builds the project once everything is known."""

    def __init__(self, source: str, registry: Registry = CATALOG) -> None:
        self.source = source  # e.g. "model.keras", for messages
        self.registry = registry
        self.layers: dict[str, PendingLayer] = {}
        self.problems: list[UnsupportedLayer] = []
        self.notes: list[str] = []
        self._taken: set[str] = set()
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._next_suffix: dict[str, int] = {}

    # ----- collecting -----------------------------------------------------------------

    def claim_name(self, wanted: str, fallback: str = "layer") -> str:
        """A valid, unused node name as close to ``wanted`` as possible (Keras-style ``_1`` suffixes)."""
        text = re.sub(r"[\x00-\x1f\x7f]", "_", str(wanted)).strip()
        text = "".join(char for char in text if not 0xD800 <= ord(char) <= 0xDFFF)
        base = (text or fallback)[: MAX_NAME_LENGTH - 6]
        candidate, index = base, self._next_suffix.get(base, 1)
        while candidate in self._taken:
            candidate = f"{base}_{index}"
            index += 1
        self._next_suffix[base] = index  # the next claim of ``base`` starts here: linear, not quadratic
        self._taken.add(candidate)
        return candidate

    def add(
        self,
        kind: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        inputs: Sequence[str] = (),
        weights: Sequence[np.ndarray] | None = None,
        source_kind: str | None = None,
        claimed: bool = False,
    ) -> str | None:
        """Add a layer; returns its node name, or None when its parameters are invalid (recorded)."""
        source_kind = source_kind or kind
        node_name = name if claimed else self.claim_name(name)
        try:
            spec = self.registry.get(kind)
            clean = spec.validate_params(dict(params or {}))
        except (ParamError, UnknownKindError) as error:
            self.unsupported(node_name, source_kind, f"no catalog equivalent: {error}")
            return None
        if not spec.accepts_input_count(len(inputs)):
            most = {spec.min_inputs: "", None: " or more"}.get(spec.max_inputs, f" to {spec.max_inputs}")
            self.unsupported(
                node_name,
                source_kind,
                f"it receives {len(inputs)} inputs; the catalog's {kind} takes {spec.min_inputs}{most}",
            )
            return None
        layer_weights = None if weights is None else [np.asarray(w, dtype=np.float32) for w in weights]
        self.layers[node_name] = PendingLayer(
            node_name, kind, clean, list(inputs), layer_weights, source_kind
        )
        return node_name

    def validate(
        self, kind: str, name: str, params: Mapping[str, Any], source_kind: str | None = None
    ) -> bool:
        """Check parameters without adding a layer (its inputs were unsupported); records a problem."""
        try:
            self.registry.get(kind).validate_params(dict(params))
        except (ParamError, UnknownKindError) as error:
            self.unsupported(name, source_kind or kind, f"no catalog equivalent: {error}")
            return False
        return True

    def unsupported(self, name: str, source_kind: str, reason: str) -> None:
        self.problems.append(UnsupportedLayer(name, source_kind, reason))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def shape(self, name: str) -> tuple[int, ...]:
        """The Keras (channels-last, batch-less) output shape of a layer added so far.

        Raises ShapeError when the layer cannot take its inputs.
        """
        stack = [name]  # an explicit stack, not recursion: a chain may be thousands of layers deep
        while stack:
            current = stack[-1]
            if current in self._shapes:
                stack.pop()
                continue
            layer = self.layers[current]
            missing = [source for source in layer.inputs if source not in self._shapes]
            if missing:
                stack.extend(missing)
                continue
            spec = self.registry.get(layer.kind)
            inputs = [self._shapes[source] for source in layer.inputs]
            self._shapes[current] = tuple(spec.output_shape(layer.params, inputs))
            stack.pop()
        return self._shapes[name]

    # ----- building -------------------------------------------------------------------

    def check(self) -> None:
        """Raise UnsupportedModelError listing every problem collected so far."""
        if self.problems:
            raise UnsupportedModelError(self.problems, self.source)

    def build(
        self,
        project_name: str,
        outputs: Sequence[str],
        description: str = "",
        with_weights: bool = True,
    ) -> tuple[Project, Weights | None]:
        self.check()
        outputs = list(dict.fromkeys(outputs))  # two source outputs may be the same layer
        live = self._live(outputs)
        layers = [layer for layer in self.layers.values() if layer.name in live]
        self._set_token_inputs(layers)
        names = [layer.name for layer in layers]
        edges = [(source, layer.name) for layer in layers for source in layer.inputs]
        blocks = name_blocks(names)
        collapsed = len(layers) > COLLAPSE_ABOVE
        groups = list(blocks.values()) if collapsed else []
        # Wrapped into rows that a typical window shows whole (the GUI fits its own window again).
        positions = fitted_layout(names, edges, lambda *_: DEFAULT_NODE_SIZE, groups=groups).positions
        graph = Graph(self.registry)
        ids: dict[str, str] = {}
        try:
            with graph.batch():
                for layer in layers:
                    node = graph.add_node(
                        layer.kind, name=layer.name, params=layer.params, position=positions[layer.name]
                    )
                    ids[layer.name] = node.id
                for layer in layers:
                    for port, source in enumerate(layer.inputs):
                        # No search for cycles per edge (quadratic): analysis below reports any.
                        graph.connect(ids[source], ids[layer.name], port, check_cycle=False)
                graph.set_outputs([ids[name] for name in outputs])
                for block, members in blocks.items():
                    graph.add_block(block, [ids[name] for name in members], collapsed)
        except (GraphError, ParamError) as error:  # what add() could not foresee: reported, not raised
            raise UnsupportedModelError(
                [UnsupportedLayer("model", "Model", str(error))], self.source
            ) from None
        project = Project(graph=graph, name=project_name, description=description)
        self._check_analysis(project, layers, ids)
        weights = None
        if with_weights:
            weights = {layer.name: layer.weights for layer in layers if layer.weights}
        return project, weights

    def _live(self, outputs: Sequence[str]) -> set[str]:
        live: set[str] = set()
        stack = list(outputs)
        while stack:
            name = stack.pop()
            if name in live:
                continue
            live.add(name)
            stack.extend(self.layers[name].inputs)
        return live

    @staticmethod
    def _set_token_inputs(layers: list[PendingLayer]) -> None:
        """An Input that feeds only Embedding layers holds token ids: int32."""
        for layer in layers:
            if layer.kind != "Input":
                continue
            consumers = [other for other in layers if layer.name in other.inputs]
            if consumers and all(CATALOG.get(other.kind).takes_token_ids for other in consumers):
                layer.params = {**layer.params, "dtype": "int32"}

    def _check_analysis(self, project: Project, layers: list[PendingLayer], ids: dict[str, str]) -> None:
        graph = project.graph
        analysis = analyze(graph)
        by_id = {node_id: name for name, node_id in ids.items()}
        problems = []
        for problem in analysis.errors:
            name = by_id.get(problem.node_id, "model")
            source_kind = self.layers[name].source_kind if name in self.layers else "Model"
            problems.append(UnsupportedLayer(name, source_kind, problem.message))
        if problems:
            raise UnsupportedModelError(problems, self.source)
        for layer in layers:
            if layer.weights is None:
                continue
            expected = analysis.params[ids[layer.name]].total
            found = int(sum(array.size for array in layer.weights))
            if expected != found:
                problems.append(
                    UnsupportedLayer(
                        layer.name,
                        layer.source_kind,
                        f"its weights hold {found:,} values but the catalog's {layer.kind} expects {expected:,}",
                    )
                )
        if problems:
            raise UnsupportedModelError(problems, self.source)


def name_blocks(names: Sequence[str]) -> dict[str, list[str]]:
    """Blocks from the structure in layer names: ``layer1.0.conv1`` and ``layer1.0.bn1`` go to
    ``layer1.0``, ``conv2_block1_1_conv`` to ``conv2_block1``, ``/layer1/layer1.0/conv1/Conv`` to
    ``/layer1/layer1.0``.

    A name's prefix of ``depth`` parts (parts are split at ``.``, ``_`` and ``/``) is its block when
    something follows it; the depth chosen is the one whose blocks of MIN_BLOCK to MAX_BLOCK layers
    cover the most layers, fewer blocks breaking near-ties (each block counts as two layers less).
    """
    best: dict[str, list[str]] = {}
    best_score = 0
    deepest = max((len(_parts(name)) for name in names), default=0)
    for depth in range(1, deepest):
        groups: dict[str, list[str]] = {}
        for name in names:
            prefix = _prefix(name, depth)
            if prefix is not None:
                groups.setdefault(prefix, []).append(name)
        kept = {
            prefix: members for prefix, members in groups.items() if MIN_BLOCK <= len(members) <= MAX_BLOCK
        }
        score = sum(len(members) - 2 for members in kept.values())
        if score > best_score:
            best, best_score = kept, score
    return best


def _parts(name: str) -> list[str]:
    return [part for part in _SEPARATOR.split(name) if part]


def _prefix(name: str, depth: int) -> str | None:
    """``name`` up to the end of its ``depth``-th part, if more parts follow; else None."""
    matches = list(re.finditer(r"[^._/]+", name))
    if len(matches) <= depth:
        return None
    return name[: matches[depth - 1].end()]
