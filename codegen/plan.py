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

from codegen.names import Namespace, to_class_name
from studio.analysis import Analysis, analyze
from studio.catalog import LayerSpec, Shape, format_shape
from studio.graph import Graph, Node
from studio.project import Project

CL, CF, FLAT_CF = "cl", "cf", "flat_cf"

# Kinds that PyTorch runs on channels-first tensors.
CHANNELS_FIRST_KINDS = frozenset(
    {
        "Conv1D",
        "Conv2D",
        "Conv2DTranspose",
        "DepthwiseConv2D",
        "SeparableConv2D",
        "MaxPooling1D",
        "MaxPooling2D",
        "AveragePooling1D",
        "AveragePooling2D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "UpSampling2D",
        "ZeroPadding2D",
        "Cropping2D",
        "BatchNormalization",
    }
)
# Kinds that keep whatever layout their input has (element-wise, or all inputs alike).
LAYOUT_PRESERVING_KINDS = frozenset(
    {"Activation", "Dropout", "Rescaling", "Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate"}
)
# Element-wise kinds a ``flat_cf`` vector may pass through on its way to Dense.
FLAT_PASS_THROUGH_KINDS = frozenset({"Activation", "Dropout", "Rescaling"})


class CodegenError(ValueError):
    """The project cannot be turned into code (it has errors)."""


@dataclass
class Layout:
    """How PyTorch holds one tensor. ``source`` is the pre-flatten shape of a ``flat_cf`` vector."""

    kind: str
    source: Shape | None = None


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
    flatten_in_torch_order: bool = False  # Flatten only

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

    def consumers(self, node_id: str) -> list[LayerPlan]:
        return [layer for layer in self.layers if node_id in layer.inputs]


def build_plan(project: Project, analysis: Analysis | None = None) -> ModelPlan:
    graph = project.graph
    analysis = analysis or analyze(graph)
    if not analysis.is_valid:
        first = analysis.errors[0].message
        more = len(analysis.errors) - 1
        raise CodegenError(f"the model has errors: {first}" + (f" (and {more} more)" if more else ""))
    namespace = Namespace()
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
        class_name=to_class_name(project.name),
        model_name=_model_name(project.name),
        layers=layers,
        inputs=[layer for layer in layers if layer.spec.is_source],
        outputs=[],
        analysis=analysis,
        project=project,
    )
    plan.outputs = [plan.layer(node_id) for node_id in analysis.outputs]
    _assign_layouts(plan, graph)
    return plan


def _model_name(name: str) -> str:
    from codegen.names import to_identifier

    return to_identifier(name.lower())


def _assign_layouts(plan: ModelPlan, graph: Graph) -> None:
    output_ids = {layer.id for layer in plan.outputs}
    for layer in plan.layers:
        rank = len(layer.shape)
        if layer.spec.is_source:
            layer.layout = Layout(CF if rank == 3 else CL)
            continue
        first = plan.layer(layer.inputs[0]).layout
        if layer.kind in CHANNELS_FIRST_KINDS:
            layer.input_layout = CF
            layer.layout = Layout(CF if rank >= 2 else CL)
        elif layer.kind in LAYOUT_PRESERVING_KINDS:
            layouts = {plan.layer(source).layout.kind for source in layer.inputs}
            if len(layouts) == 1 and (first.kind != FLAT_CF or layer.kind in FLAT_PASS_THROUGH_KINDS):
                layer.layout = Layout(first.kind, first.source)
            else:
                layer.input_layout = CL
                layer.layout = Layout(CL)
        elif layer.kind == "Flatten":
            source_shape = layer.input_shapes[0]
            if first.kind == CF and _only_dense_consumers(plan, layer, output_ids):
                layer.flatten_in_torch_order = True
                layer.layout = Layout(FLAT_CF, source_shape)
            else:
                layer.input_layout = CL
                layer.layout = Layout(CL)
        elif layer.kind == "Dense" and first.kind == FLAT_CF:
            layer.layout = Layout(CL)  # the converter permutes this layer's input columns
        else:
            layer.input_layout = CL
            layer.layout = Layout(CL)


def _only_dense_consumers(plan: ModelPlan, layer: LayerPlan, output_ids: set[str]) -> bool:
    """True if every path from ``layer`` reaches a Dense through element-wise layers only."""
    if layer.id in output_ids:
        return False
    consumers = plan.consumers(layer.id)
    if not consumers:
        return False
    for consumer in consumers:
        if consumer.kind == "Dense":
            continue
        if consumer.kind in FLAT_PASS_THROUGH_KINDS and len(consumer.inputs) == 1:
            if not _only_dense_consumers(plan, consumer, output_ids):
                return False
            continue
        return False
    return True
