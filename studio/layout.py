"""Automatic layered layout: longest-path layers, barycenter ordering. No Qt here.

Positions are the top-left corners of the nodes, laid out left to right
(``"LR"``) or top to bottom (``"TB"``).

:func:`fitted_layout` lays a model out to fit a viewport: its layers are cut
into consecutive groups, one row each (left to right) or one column each (top
to bottom); the number of groups and the orientation are the ones that show
the whole model at the largest zoom. Rows are separate bands, so an edge from
the end of one row to the start of the next runs through the free band between
them. The canvas fits the window it opens in; an import fits a typical one.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

LAYER_GAP = 90.0  # free space between two layers
NODE_GAP = 40.0  # free space between two nodes of one layer
SWEEPS = 4


def longest_path_layers(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: 0 for sources, else one more than its deepest predecessor."""
    predecessors: dict[str, list[str]] = defaultdict(list)
    successors: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        predecessors[target].append(source)
        successors[source].append(target)
    pending = {node_id: len(predecessors[node_id]) for node_id in node_ids}
    ready = deque(node_id for node_id in node_ids if pending[node_id] == 0)
    layer = {node_id: 0 for node_id in ready}
    while ready:
        node_id = ready.popleft()
        for target in successors[node_id]:
            layer[target] = max(layer.get(target, 0), layer[node_id] + 1)
            pending[target] -= 1
            if pending[target] == 0:
                ready.append(target)
    last = max(layer.values(), default=-1)
    for node_id in node_ids:  # nodes on a cycle (should not happen): put them last, one layer each
        if node_id not in layer:
            last += 1
            layer[node_id] = last
    return layer


def order_layers(
    node_ids: Sequence[str], edges: Sequence[tuple[str, str]], layer: Mapping[str, int]
) -> list[list[str]]:
    """Nodes per layer, reordered by the barycenter of their neighbours to reduce crossings."""
    count = max(layer.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(count)]
    for node_id in node_ids:
        layers[layer[node_id]].append(node_id)
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        up[target].append(source)
        down[source].append(target)
    # Each node's position within its layer, updated as each layer is reordered (linear per sweep).
    rank = {node_id: index for nodes in layers for index, node_id in enumerate(nodes)}
    for sweep in range(SWEEPS):
        indices = range(1, count) if sweep % 2 == 0 else range(count - 2, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        for index in indices:
            layers[index] = _by_barycenter(layers[index], neighbours, rank)
            rank.update((node_id, position) for position, node_id in enumerate(layers[index]))
    return layers


def _by_barycenter(
    nodes: list[str], neighbours: Mapping[str, list[str]], rank: Mapping[str, int]
) -> list[str]:
    def key(node_id: str) -> float:
        linked = [rank[other] for other in neighbours.get(node_id, ()) if other in rank]
        return sum(linked) / len(linked) if linked else rank[node_id]

    return sorted(nodes, key=lambda node_id: (key(node_id), rank[node_id]))


# The size the canvas draws a simple node (the GUI passes each node's real size).
DEFAULT_NODE_SIZE = (168.0, 88.0)
# The size the canvas draws a collapsed block.
BLOCK_SIZE = (216.0, 96.0)


def contract_groups(
    node_ids: Sequence[str], edges: Iterable[tuple[str, str]], groups: Iterable[Sequence[str]]
) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    """The graph with each group (a collapsed block) as one node, its first member.

    Returns the node ids, the edges between them (no loops, no repeats) and each grouped
    node's stand-in."""
    stand_in = {node_id: group[0] for group in groups for node_id in group}
    ids = list(dict.fromkeys(stand_in.get(node_id, node_id) for node_id in node_ids))
    linked = ((stand_in.get(source, source), stand_in.get(target, target)) for source, target in edges)
    return ids, list(dict.fromkeys(pair for pair in linked if pair[0] != pair[1])), stand_in


def place_groups(
    positions: dict[str, tuple[float, float]],
    edges: Sequence[tuple[str, str]],
    groups: Iterable[Sequence[str]],
    direction: str = "LR",
) -> None:
    """Lay each group's members out among themselves from the place of its stand-in (in place)."""
    for group in groups:
        members = set(group)
        inner = [(source, target) for source, target in edges if source in members and target in members]
        local = layered_layout(list(group), inner, direction=direction)
        left = min(x for x, _ in local.values())
        top = min(y for _, y in local.values())
        x0, y0 = positions[group[0]]
        for node_id, (x, y) in local.items():
            positions[node_id] = (round(x0 + x - left, 1), round(y0 + y - top, 1))


def layered_layout(
    node_ids: Sequence[str],
    edges: Sequence[tuple[str, str]],
    sizes: Mapping[str, tuple[float, float]] | None = None,
    direction: str = "LR",
) -> dict[str, tuple[float, float]]:
    """Top-left position of every node; layers are centred on one axis."""
    sizes = sizes or dict.fromkeys(node_ids, DEFAULT_NODE_SIZE)
    if direction not in ("LR", "TB"):
        raise ValueError(f"direction must be 'LR' or 'TB'. Received: {direction!r}")
    layers = order_layers(node_ids, edges, longest_path_layers(node_ids, edges))
    along, across = (0, 1) if direction == "LR" else (1, 0)
    positions: dict[str, tuple[float, float]] = {}
    offset = 0.0
    for nodes in layers:
        depth = max((sizes[node_id][along] for node_id in nodes), default=0.0)
        extent = sum(sizes[node_id][across] for node_id in nodes) + NODE_GAP * (len(nodes) - 1)
        cursor = -extent / 2
        for node_id in nodes:
            size = sizes[node_id]
            along_pos = offset + (depth - size[along]) / 2
            point = [0.0, 0.0]
            point[along], point[across] = along_pos, cursor
            positions[node_id] = (round(point[0], 1), round(point[1], 1))
            cursor += size[across] + NODE_GAP
        offset += depth + LAYER_GAP
    return positions


# ----- fitting a viewport: layers wrapped into rows or columns -----------------------------------

FIT_LAYER_GAP = 60.0  # free space between two layers of a row
BAND_GAP = 80.0  # free space between two rows: room for the edges that wrap
FIT_MARGIN = 40.0  # around the model, in the viewport (as in the canvas's fit)
MAX_ZOOM = 1.0
COMFORTABLE_ZOOM = 0.75  # every detail of a node can be read (the canvas's readable zoom)
# The canvas of a 1400x900 window, for layouts made away from a window (imports).
TYPICAL_VIEWPORT = (1000.0, 700.0)


@dataclass(frozen=True)
class FittedLayout:
    orientation: str
    positions: dict[str, tuple[float, float]]  # top-left corners
    zoom: float  # the zoom at which the whole model fills the viewport (at most MAX_ZOOM)
    bands: int  # rows (LR) or columns (TB)


def fitted_layout(
    node_ids: Sequence[str],
    edges: Sequence[tuple[str, str]],
    size_of: Callable[[str, str], tuple[float, float]],
    viewport: tuple[float, float] = TYPICAL_VIEWPORT,
    orientations: tuple[str, ...] = ("LR", "TB"),
    groups: Sequence[Sequence[str]] = (),
) -> FittedLayout:
    """The layout that shows the model whole in ``viewport`` (pixels): the fewest rows (or
    columns) that show every detail, else the largest zoom. ``size_of(node, orientation)``:
    a node's size. Each group (a collapsed block) is laid out as one node of BLOCK_SIZE, its
    first member standing for it; its members are laid out among themselves at its place."""
    ids, contracted, stand_in = contract_groups(node_ids, edges, groups)
    layers = order_layers(ids, contracted, longest_path_layers(ids, contracted))
    best: FittedLayout | None = None
    for orientation in orientations:
        sizes = {
            node_id: BLOCK_SIZE if node_id in stand_in else size_of(node_id, orientation) for node_id in ids
        }
        widest = 0.0  # this orientation's largest zoom so far
        for bands in range(1, max(1, len(layers)) + 1):
            candidate = _banded(layers, sizes, orientation, bands, viewport)
            if candidate.zoom >= COMFORTABLE_ZOOM:
                best = candidate  # the fewest wraps (left to right first) that read well
                break
            if best is None or candidate.zoom > best.zoom * 1.02:  # fewer bands and LR win near-ties
                best = candidate
            widest = max(widest, candidate.zoom)
            if candidate.zoom < widest / 2:
                break  # past the best: more bands only make the rows' stack taller (linear, not squared)
        if best.zoom >= COMFORTABLE_ZOOM:
            break
    place_groups(best.positions, edges, groups, best.orientation)
    return best


def _banded(
    layers: list[list[str]],
    sizes: dict[str, tuple[float, float]],
    orientation: str,
    bands: int,
    viewport: tuple[float, float],
) -> FittedLayout:
    along, across = (0, 1) if orientation == "LR" else (1, 0)
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
            offset += depth + FIT_LAYER_GAP
        length = max(length, offset - FIT_LAYER_GAP)
        band_start += extent + BAND_GAP
    total = [0.0, 0.0]
    total[along], total[across] = length, max(0.0, band_start - BAND_GAP)
    zoom = min(
        MAX_ZOOM,
        (viewport[0] - 2 * FIT_MARGIN) / max(total[0], 1.0),
        (viewport[1] - 2 * FIT_MARGIN) / max(total[1], 1.0),
    )
    return FittedLayout(orientation, positions, max(zoom, 0.0), len(groups))


def _extent(nodes: list[str], sizes: dict[str, tuple[float, float]], across: int) -> float:
    return sum(sizes[node_id][across] for node_id in nodes) + NODE_GAP * (len(nodes) - 1)
