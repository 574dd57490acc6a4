"""Automatic layered layout: longest-path layers, barycenter ordering. No Qt here.

Positions are the top-left corners of the nodes, laid out left to right
(``"LR"``) or top to bottom (``"TB"``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence

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
