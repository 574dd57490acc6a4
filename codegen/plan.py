"""The model plan: everything both emitters, the weight converter and the verifier share.

It fixes, for one valid project: the live layers in model order, a unique
Python identifier per layer, every input and output shape, and the layout of
every tensor in the PyTorch program.

PyTorch layouts. Keras is channels-last throughout. In the PyTorch program:

- ``cf`` (channels-first): images are ``(N, C, H, W)``; sequences fed to Conv1D
  and pooling are ``(N, C, L)``;
- ``cl`` (channels-last): vectors ``(N, F)``, and sequences ``(N, L, F)`` as RNNs
  (``batch_first=True``), attention, Dense and LayerNorm take them;
- ``flat_cf``: a vector made by ``torch.flatten`` of a channels-first tensor,
  so its features are in ``(c, h, w)`` order. It is only used when every
  consumer is a Dense layer (possibly through Dropout/Activation/Rescaling);
  the weight converter permutes that Dense layer's input columns.

Each layer kind states the layout it needs; the PyTorch emitter inserts a
``permute``/``transpose`` only where a tensor's layout changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codegen.layers import LOWERINGS
from codegen.layers.base import CF, CL, FLAT_CF, KEEP, Layout
from codegen.names import PROGRAM_NAMES, Namespace, to_class_name, to_identifier
from studio.analysis import Analysis, analyze
from studio.catalog import LayerSpec, Shape, format_shape
from studio.graph import Node
from studio.project import Project

__all__ = ["CF", "CL", "FLAT_CF", "CodegenError", "LayerPlan", "Layout", "ModelPlan", "build_plan"]


class CodegenError(ValueError):
    """The project cannot be turned into code (it has errors)."""


@dataclass
class LayerPlan:
    node: Node
    spec: LayerSpec
    ident: str
    inputs: list[str]  # ids of the source layers, by port
    input_shapes: list[Shape]
    shape: Shape
    layout: Layout = field(default_factory=lambda: Layout(CL))
    input_layout: str | None = None  # the layout this layer needs its inputs in (None: any)

    @property
    def id(self) -> str:
        return self.node.id

    def torch_shape_text(self) -> str:
        """The output shape as the PyTorch program holds it, with its layout stated."""
        shape = self.shape
        if self.layout.kind == CF and len(shape) >= 2:
            return f"{format_shape((shape[-1], *shape[:-1]))} channels-first"
        if self.layout.kind == FLAT_CF:
            return f"{format_shape(shape)} flattened channels-first"
        return f"{format_shape(shape)} channels-last" if len(shape) >= 2 else format_shape(shape)

    @property
    def kind(self) -> str:
        return self.node.kind

    @property
    def params(self) -> dict:
        return self.node.params


@dataclass
class ModelPlan:
    name: str
    class_name: str
    model_name: str
    layers: list[LayerPlan]
    inputs: list[LayerPlan]
    outputs: list[LayerPlan]
    analysis: Analysis
    project: Project

    def layer(self, node_id: str) -> LayerPlan:
        return self._by_id[node_id]

    def __post_init__(self) -> None:
        self._by_id = {layer.id: layer for layer in self.layers}
        self._consumers: dict[str, list[LayerPlan]] = {}
        for layer in self.layers:
            for source in dict.fromkeys(layer.inputs):
                self._consumers.setdefault(source, []).append(layer)

    def consumers(self, node_id: str) -> list[LayerPlan]:
        return self._consumers.get(node_id, [])

    def only_flat_consumers(self, layer: LayerPlan, output_ids: set[str]) -> bool:
        """True if every path from ``layer`` reaches a ``flat_cf`` consumer (Dense) through
        single-input element-wise layers only, and none of them is a model output."""
        pending = [layer]
        while pending:
            current = pending.pop()
            consumers = self.consumers(current.id)
            if current.id in output_ids or not consumers:
                return False
            for consumer in consumers:
                flat = LOWERINGS[consumer.kind].flat
                if flat == "pass" and len(consumer.inputs) == 1:
                    pending.append(consumer)
                elif flat != "consume":
                    return False
        return True


def build_plan(project: Project, analysis: Analysis | None = None) -> ModelPlan:
    graph = project.graph
    analysis = analysis or analyze(graph)
    if not analysis.is_valid:
        first = analysis.errors[0].message
        more = len(analysis.errors) - 1
        raise CodegenError(f"the model has errors: {first}" + (f" (and {more} more)" if more else ""))
    # One namespace per program: the model class first, then one identifier per layer.
    namespace = Namespace()
    class_name = namespace.claim(to_class_name(project.name))
    layers = []
    for node_id in analysis.order:
        if node_id not in analysis.live:
            continue
        node = graph.node(node_id)
        sources = [source for source in graph.inputs_of(node_id) if source is not None]
        layers.append(
            LayerPlan(
                node=node,
                spec=graph.registry.get(node.kind),
                ident=namespace.claim(node.name),
                inputs=sources,
                input_shapes=[analysis.shapes[source] for source in sources],
                shape=analysis.shapes[node_id],
            )
        )
    plan = ModelPlan(
        name=project.name,
        class_name=class_name,
        model_name=_model_name(project.name),
        layers=layers,
        inputs=[layer for layer in layers if layer.spec.is_source],
        outputs=[],
        analysis=analysis,
        project=project,
    )
    plan.outputs = [plan.layer(node_id) for node_id in analysis.outputs]
    _assign_layouts(plan)
    return plan


def _model_name(name: str) -> str:
    """The Keras model's ``name=`` and the file name's stem: a string, not a name in the program."""
    return to_identifier(name.lower(), PROGRAM_NAMES)


def _assign_layouts(plan: ModelPlan) -> None:
    """Each layer's PyTorch layout, as its lowering asks (see the module docstring)."""
    output_ids = {layer.id for layer in plan.outputs}
    for layer in plan.layers:
        if layer.spec.is_source:
            layer.layout = Layout(CF if len(layer.shape) == 3 else CL)
            continue
        lowering = LOWERINGS[layer.kind]
        if lowering.assign_layout is not None:
            lowering.assign_layout(plan, layer, output_ids)
        else:
            _default_layout(plan, layer, lowering.layout, lowering.flat)


def _default_layout(plan: ModelPlan, layer: LayerPlan, needs: str, flat: str | None) -> None:
    first = plan.layer(layer.inputs[0]).layout
    if needs == CF:
        layer.input_layout = CF
        layer.layout = Layout(CF if len(layer.shape) >= 2 else CL)
        return
    if needs == KEEP:
        layouts = {plan.layer(source).layout.kind for source in layer.inputs}
        if len(layouts) == 1 and (first.kind != FLAT_CF or flat == "pass"):
            layer.layout = Layout(first.kind, first.source)
            return
    if flat == "consume" and first.kind == FLAT_CF:
        layer.layout = Layout(CL)  # the weight converter permutes this layer's input columns
        return
    layer.input_layout = CL
    layer.layout = Layout(CL)
