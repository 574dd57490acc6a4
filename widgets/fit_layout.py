"""A layered layout that fits the window: long chains wrap into rows (or columns).

The layers come from :mod:`studio.layout` (longest path, barycenter order).
They are cut into consecutive groups, one row each (left to right) or one
column each (top to bottom); the number of groups and the orientation are
the ones that show the whole model at the largest zoom in the given viewport.
Rows are separate bands, so an edge from the end of one row to the start of
the next runs through the free band between them (see :mod:`widgets.edge_item`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from studio.graph import Graph
from studio.layout import BLOCK_SIZE, contract_groups, longest_path_layers, order_layers, place_groups
from widgets.node_geometry import LEFT_TO_RIGHT, TOP_TO_BOTTOM, input_port_count, node_size

LAYER_GAP = 60.0  # free space between two layers of a row
NODE_GAP = 40.0  # free space between two nodes of one layer
BAND_GAP = 80.0  # free space between two rows: room for the edges that wrap
MARGIN = 40.0  # around the model, in the viewport (as in GraphView.fit_rect)
MAX_ZOOM = 1.0
COMFORTABLE_ZOOM = 0.75  # every detail of a node can be read (GraphView.READABLE_ZOOM)


@dataclass(frozen=True)
class FittedLayout:
    orientation: str
    positions: dict[str, tuple[float, float]]  # top-left corners
    zoom: float  # the zoom at which the whole model fills the viewport (at most MAX_ZOOM)
    bands: int  # rows (LR) or columns (TB)


def fitted_layout(
    graph: Graph,
    viewport: tuple[float, float],
    orientations: tuple[str, ...] = (LEFT_TO_RIGHT, TOP_TO_BOTTOM),
) -> FittedLayout:
    """The layout of ``graph`` that shows it whole in ``viewport`` (pixels): the fewest rows (or
    columns) that show every detail, else the largest zoom.

    A collapsed block is laid out as one node (its first member stands for it); its members
    are laid out among themselves at its place, ready for when it is expanded."""
    groups = [block.members for block in graph.blocks if block.collapsed]
    all_edges = [(edge.source, edge.target) for edge in graph.edges]
    ids, edges, stand_in = contract_groups([node.id for node in graph.nodes], all_edges, groups)
    layers = order_layers(ids, edges, longest_path_layers(ids, edges))
    best: FittedLayout | None = None
    for orientation in orientations:
        sizes = {
            node_id: BLOCK_SIZE
            if node_id in stand_in
            else node_size(input_port_count(graph, node_id), orientation)
            for node_id in ids
        }
        for bands in range(1, max(1, len(layers)) + 1):
            candidate = _banded(layers, sizes, orientation, bands, viewport)
            if candidate.zoom >= COMFORTABLE_ZOOM:
                best = candidate  # the fewest wraps (left to right first) that read well
                break
            if best is None or candidate.zoom > best.zoom * 1.02:  # fewer bands and LR win near-ties
                best = candidate
        if best.zoom >= COMFORTABLE_ZOOM:
            break
    place_groups(best.positions, all_edges, groups, best.orientation)
    return best


def _banded(
    layers: list[list[str]],
    sizes: dict[str, tuple[float, float]],
    orientation: str,
    bands: int,
    viewport: tuple[float, float],
) -> FittedLayout:
    along, across = (0, 1) if orientation == LEFT_TO_RIGHT else (1, 0)
    per_band = math.ceil(len(layers) / bands) if layers else 1
    groups = [layers[start : start + per_band] for start in range(0, len(layers), per_band)]
    positions: dict[str, tuple[float, float]] = {}
    band_start = 0.0
    length = 0.0
    for group in groups:
        extent = max((_extent(nodes, sizes, across) for nodes in group), default=0.0)
        offset = 0.0
        for nodes in group:
            depth = max(sizes[node_id][along] for node_id in nodes)
            cursor = band_start + (extent - _extent(nodes, sizes, across)) / 2
            for node_id in nodes:
                point = [0.0, 0.0]
                point[along] = offset + (depth - sizes[node_id][along]) / 2
                point[across] = cursor
                positions[node_id] = (round(point[0], 1), round(point[1], 1))
                cursor += sizes[node_id][across] + NODE_GAP
            offset += depth + LAYER_GAP
        length = max(length, offset - LAYER_GAP)
        band_start += extent + BAND_GAP
    total = [0.0, 0.0]
    total[along], total[across] = length, max(0.0, band_start - BAND_GAP)
    zoom = min(
        MAX_ZOOM,
        (viewport[0] - 2 * MARGIN) / max(total[0], 1.0),
        (viewport[1] - 2 * MARGIN) / max(total[1], 1.0),
    )
    return FittedLayout(orientation, positions, max(zoom, 0.0), len(groups))


def _extent(nodes: list[str], sizes: dict[str, tuple[float, float]], across: int) -> float:
    return sum(sizes[node_id][across] for node_id in nodes) + NODE_GAP * (len(nodes) - 1)


def orientation_of(graph: Graph) -> str:
    """The orientation a project was laid out in: the axis along which its edges mostly run."""
    along_x = along_y = 0.0
    for edge in graph.edges:
        (x0, y0), (x1, y1) = graph.node(edge.source).position, graph.node(edge.target).position
        along_x += abs(x1 - x0)
        along_y += abs(y1 - y0)
    return TOP_TO_BOTTOM if along_y > along_x else LEFT_TO_RIGHT
