"""Shape inference and validation over the whole graph.

:func:`analyze` walks the graph once in topological order. It gives every
node its output shape (channels-last, batch excluded) and parameter count,
and collects every problem it finds. It never raises for a bad graph: bad
graphs are what the user is in the middle of editing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.catalog import FlopCount, ParamCount, Shape, ShapeError, format_shape
from studio.catalog.base import MAX_MODEL_PARAMS, check_param_count, check_size
from studio.graph import Edge, Graph

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    severity: str  # ERROR or WARNING
    message: str
    node_id: str | None = None
    edge: Edge | None = None

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


@dataclass
class Analysis:
    """What the checker learned about a graph."""

    order: list[str] = field(default_factory=list)  # topological order of the acyclic part
    shapes: dict[str, Shape | None] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    params: dict[str, ParamCount] = field(default_factory=dict)
    torch_params: dict[str, ParamCount] = field(default_factory=dict)
    flops: dict[str, FlopCount] = field(default_factory=dict)  # per sample, see FlopCount
    problems: list[Problem] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    live: set[str] = field(default_factory=set)  # nodes that feed an output

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == ERROR]

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def total_params(self) -> ParamCount:
        return sum((self.params[node_id] for node_id in self.order if node_id in self.live), ParamCount())

    @property
    def total_torch_params(self) -> ParamCount:
        return sum(
            (self.torch_params[node_id] for node_id in self.order if node_id in self.live), ParamCount()
        )

    @property
    def total_flops(self) -> FlopCount:
        """The work of one sample's forward pass through the layers that feed an output."""
        return sum(
            (self.flops.get(node_id, FlopCount()) for node_id in self.order if node_id in self.live),
            FlopCount(),
        )

    def problems_for(self, node_id: str) -> list[Problem]:
        return [problem for problem in self.problems if problem.node_id == node_id]


def analyze(graph: Graph) -> Analysis:
    result = Analysis()
    _check_cycles(graph, result)
    _infer_shapes(graph, result)
    _check_inputs_and_outputs(graph, result)
    return result


def _check_cycles(graph: Graph, result: Analysis) -> None:
    for component in graph.cycles():
        names = ", ".join(sorted(graph.label(node_id) for node_id in component))
        for node_id in sorted(component):
            result.problems.append(
                Problem(ERROR, f"{graph.label(node_id)} is part of a cycle ({names})", node_id)
            )


def _infer_shapes(graph: Graph, result: Analysis) -> None:
    in_cycle = {problem.node_id for problem in result.problems}
    result.order = graph.topological_order(leave_out=in_cycle)
    for node_id in in_cycle:
        result.shapes[node_id] = None
        result.params[node_id] = result.torch_params[node_id] = ParamCount()
    for node_id in result.order:
        _infer_node(graph, node_id, result)


def _infer_node(graph: Graph, node_id: str, result: Analysis) -> None:
    node = graph.node(node_id)
    spec = graph.registry.get(node.kind)
    label = graph.label(node_id)
    result.shapes[node_id] = None
    result.params[node_id] = result.torch_params[node_id] = ParamCount()
    result.dtypes[node_id] = node.params.get("dtype", "float32") if spec.is_source else "float32"

    edges = graph.input_edges(node_id)
    sources: list[str | None] = [None] * (edges[-1].port + 1 if edges else 0)
    for edge in edges:
        sources[edge.port] = edge.source
    missing = [port for port, source in enumerate(sources) if source is None]
    if len(sources) < spec.min_inputs:
        missing += list(range(len(sources), spec.min_inputs))
    if missing:
        ports = ", ".join(str(port + 1) for port in missing)
        noun = "input" if len(missing) == 1 else "inputs"
        need = _input_count_text(spec.min_inputs, spec.max_inputs)
        result.problems.append(Problem(ERROR, f"{label} {noun} {ports} not connected ({need})", node_id))
        return
    input_shapes = [result.shapes.get(source) for source in sources]
    if any(shape is None for shape in input_shapes):
        return  # an upstream problem was already reported
    if not _check_dtypes(graph, node_id, sources, edges, result):
        return
    try:
        shape = spec.output_shape(node.params, input_shapes)
        if any(dim <= 0 for dim in shape):
            raise ShapeError(f"would produce the empty shape {format_shape(shape)}")
        check_size(shape)
        params = spec.count_params(node.params, input_shapes)
        torch_params = spec.count_torch_params(node.params, input_shapes)
        check_param_count(params)
        check_param_count(torch_params)
        flops = spec.count_flops(node.params, input_shapes, shape)
    except ShapeError as error:
        result.problems.append(Problem(ERROR, f"{label} {error}", node_id))
        return
    result.shapes[node_id] = tuple(shape)
    result.params[node_id] = params
    result.torch_params[node_id] = torch_params
    result.flops[node_id] = flops


def _input_count_text(minimum: int, maximum: int | None) -> str:
    if maximum == minimum:
        return f"it takes {minimum} input{'s' if minimum != 1 else ''}"
    if maximum is None:
        return f"it takes {minimum} or more inputs"
    return f"it takes {minimum} to {maximum} inputs"


def _check_dtypes(graph: Graph, node_id: str, sources: list, edges: list[Edge], result: Analysis) -> bool:
    """Only Embedding takes integer token ids, and Embedding takes nothing else; a mask input
    (attention's padding mask) takes either."""
    node = graph.node(node_id)
    spec = graph.registry.get(node.kind)
    wants_ids = spec.takes_token_ids
    mask = spec.mask_input(node.params, len(sources))
    for source, edge in zip(sources, edges, strict=True):
        if edge.port == mask:
            continue
        is_ids = result.dtypes.get(source) == "int32"
        if is_ids != wants_ids:
            if wants_ids:
                message = (
                    f"{graph.label(node_id)} needs integer token ids from an int32 Input, "
                    f"but {graph.label(source)} gives float32 values"
                )
            else:
                message = (
                    f"{graph.label(node_id)} receives int32 token ids from {graph.label(source)}; "
                    "only Embedding accepts integer inputs (set the Input's dtype to float32)"
                )
            result.problems.append(Problem(ERROR, message, node_id, edge))
            return False
    return True


def _check_inputs_and_outputs(graph: Graph, result: Analysis) -> None:
    if len(graph) == 0:
        result.problems.append(Problem(ERROR, "the model is empty: add an Input layer"))
        return
    if not graph.input_nodes:
        result.problems.append(Problem(ERROR, "the model has no Input layer"))
    result.outputs = graph.effective_outputs()
    if not result.outputs:
        result.problems.append(
            Problem(
                ERROR,
                "the model has no output: connect a layer after the Input, or mark a layer as an output",
            )
        )
        return
    live = graph.ancestors(result.outputs)
    result.live = live
    for node in graph.nodes:
        if node.id in live:
            continue
        result.problems.append(
            Problem(
                WARNING,
                f"{graph.label(node.id)} does not reach any model output, so the generated model leaves it out",
                node.id,
            )
        )
    reached_inputs = [node_id for node_id in graph.input_nodes if node_id in live]
    if graph.input_nodes and not reached_inputs:
        result.problems.append(Problem(ERROR, "no Input layer is connected to a model output"))
    total = max(result.total_params.total, result.total_torch_params.total)
    if total > MAX_MODEL_PARAMS:
        result.problems.append(
            Problem(
                ERROR,
                f"the model would have {total:,} weights; a model may have at most {MAX_MODEL_PARAMS:,} "
                "(2 GiB of float32), so that verify, training and export can hold it",
            )
        )
