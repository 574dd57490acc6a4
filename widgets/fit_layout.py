"""The canvas's fitted layout: :func:`studio.layout.fitted_layout` with the nodes' drawn sizes.

Long chains wrap into rows (or columns); the number of rows and the
orientation are the ones that show the whole model at the largest zoom in the
canvas (see :mod:`studio.layout`). Rows are separate bands, so an edge from the
end of one row to the start of the next runs through the free band between
them (see :mod:`widgets.edge_item`).
"""

from __future__ import annotations

from studio import layout
from studio.graph import Graph
from studio.layout import FittedLayout
from widgets.node_geometry import LEFT_TO_RIGHT, TOP_TO_BOTTOM, input_port_count, node_size


def fitted_layout(
    graph: Graph,
    viewport: tuple[float, float],
    orientations: tuple[str, ...] = (LEFT_TO_RIGHT, TOP_TO_BOTTOM),
) -> FittedLayout:
    """The layout of ``graph`` that shows it whole in ``viewport`` (pixels), collapsed blocks as
    one node each."""
    return layout.fitted_layout(
        [node.id for node in graph.nodes],
        [(edge.source, edge.target) for edge in graph.edges],
        lambda node_id, orientation: node_size(input_port_count(graph, node_id), orientation),
        viewport,
        orientations,
        [block.members for block in graph.blocks if block.collapsed],
    )


def orientation_of(graph: Graph) -> str:
    """The orientation a project was laid out in: the axis along which its edges mostly run."""
    along_x = along_y = 0.0
    for edge in graph.edges:
        (x0, y0), (x1, y1) = graph.node(edge.source).position, graph.node(edge.target).position
        along_x += abs(x1 - x0)
        along_y += abs(y1 - y0)
    return TOP_TO_BOTTOM if along_y > along_x else LEFT_TO_RIGHT
