"""Where a node's ports are, for both orientations. Pure arithmetic on sizes."""

from __future__ import annotations

from dataclasses import dataclass

from studio.graph import Graph

NODE_WIDTH = 168.0
NODE_HEIGHT = 88.0
HEADER_HEIGHT = 28.0
PORT_RADIUS = 5.5
PORT_HIT_RADIUS = 11.0
MIN_PORT_SPACING = 22.0

LEFT_TO_RIGHT = "LR"
TOP_TO_BOTTOM = "TB"


@dataclass(frozen=True)
class PortRef:
    node_id: str
    is_input: bool
    index: int = 0


def input_port_count(graph: Graph, node_id: str) -> int:
    """Fixed-arity kinds show all their ports; merges show the connected ones plus one free."""
    spec = graph.spec(node_id)
    ports = spec.input_ports(graph.node(node_id).params)
    if ports is not None:
        return ports
    used = [edge.port for edge in graph.input_edges(node_id)]
    return max(spec.min_inputs, max(used) + 2 if used else 0)


def node_size(port_count: int, orientation: str) -> tuple[float, float]:
    if orientation == LEFT_TO_RIGHT:
        return NODE_WIDTH, max(NODE_HEIGHT, HEADER_HEIGHT + MIN_PORT_SPACING * (port_count + 1))
    return max(NODE_WIDTH, MIN_PORT_SPACING * 1.5 * (port_count + 1)), NODE_HEIGHT


def input_port_position(
    index: int, count: int, size: tuple[float, float], orientation: str
) -> tuple[float, float]:
    width, height = size
    if orientation == LEFT_TO_RIGHT:  # spread over the body, below the header
        return 0.0, HEADER_HEIGHT + (height - HEADER_HEIGHT) * (index + 1) / (count + 1)
    return width * (index + 1) / (count + 1), 0.0


def output_port_position(size: tuple[float, float], orientation: str) -> tuple[float, float]:
    width, height = size
    if orientation == LEFT_TO_RIGHT:
        return width, HEADER_HEIGHT + (height - HEADER_HEIGHT) / 2
    return width / 2, height
