"""The graph model: layers as nodes, tensors as edges.

Every edit goes through a method here. Each method validates its request,
raises :class:`GraphError` (or :class:`ParamError`) with a clear message when
the request is invalid, and otherwise changes the graph and emits events
(see :mod:`studio.events`). Views subscribe to ``graph.events``.

An edge runs from a node's single output to one *input port* of another node.
Ports are numbered from 0 and their order matters (Concatenate, Subtract,
MultiHeadAttention's query/value/key).

The storage is two plain adjacency maps (no graph library: the studio starts
without loading one), and the few graph algorithms the analysis needs are
here: a path search, Kahn's topological order and Tarjan's strongly connected
components, each linear in the graph.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.catalog import CATALOG, LayerSpec, ParamError, Registry
from studio.events import GraphEvent, GraphEvents

MAX_NAME_LENGTH = 100
# The most inputs a merge with no fixed count (Add, Concatenate...) may take: ports are
# numbered 0 to MAX_PORTS - 1. It bounds every list sized by a port number.
MAX_PORTS = 1024
# The most layers and connections one graph may hold: far beyond any model drawn by hand,
# and what loads and analyses in seconds within a few hundred MiB.
MAX_NODES = 100_000
MAX_EDGES = 4 * MAX_NODES


class GraphError(ValueError):
    """An invalid edit: unknown node, cycle, occupied port, duplicate name..."""


@dataclass
class Node:
    id: str
    kind: str
    name: str
    params: dict[str, Any]
    position: tuple[float, float] = (0.0, 0.0)


@dataclass
class Block:
    """A named group of layers, drawn as one item when collapsed. It never changes the model."""

    name: str
    members: list[str]  # node ids; a node belongs to at most one block
    collapsed: bool = False


@dataclass(frozen=True, order=True)
class Edge:
    source: str
    target: str
    port: int


@dataclass
class _BatchState:
    depth: int = 0
    dirty: bool = False
    reasons: list[str] = field(default_factory=list)


class Graph:
    """A directed acyclic graph of layers, with ordered input ports."""

    def __init__(self, registry: Registry = CATALOG) -> None:
        self.registry = registry
        self.events = GraphEvents()
        self._nodes: dict[str, Node] = {}  # in insertion order
        # The edges twice: port -> source per target, and (target, port) per source in the order made.
        self._ports: dict[str, dict[int, str]] = {}
        self._targets: dict[str, dict[tuple[str, int], None]] = {}
        self._outputs: list[str] = []
        # Name -> node id, so that checking a name is one lookup, not a scan of the graph.
        self._names: dict[str, str] = {}
        self._edge_count = 0
        # Named blocks, and each member's block: a view's grouping, kept consistent with the nodes.
        self._blocks: dict[str, Block] = {}
        self._block_of: dict[str, str] = {}
        self._next_id = 1
        self._batch = _BatchState()

    # ----- reading -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    @property
    def nodes(self) -> list[Node]:
        """Nodes in insertion order."""
        return list(self._nodes.values())

    @property
    def edges(self) -> list[Edge]:
        return sorted(
            Edge(source, target, port)
            for target, ports in self._ports.items()
            for port, source in ports.items()
        )

    def node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except (KeyError, TypeError):
            raise GraphError(f"there is no node with id {node_id!r}") from None

    def spec(self, node_id: str) -> LayerSpec:
        return self.registry.get(self.node(node_id).kind)

    def find(self, name: str) -> Node | None:
        """The node called ``name``, if any."""
        node_id = self._names.get(name)
        return None if node_id is None else self.node(node_id)

    def label(self, node_id: str) -> str:
        """``Dense 'dense_1'``: how messages name a node."""
        node = self.node(node_id)
        return f"{node.kind} '{node.name}'"

    def input_edges(self, node_id: str) -> list[Edge]:
        """Incoming edges, ordered by port."""
        self.node(node_id)
        ports = self._ports[node_id]
        return [Edge(ports[port], node_id, port) for port in sorted(ports)]

    def output_edges(self, node_id: str) -> list[Edge]:
        self.node(node_id)
        return sorted(Edge(node_id, target, port) for target, port in self._targets[node_id])

    def inputs_of(self, node_id: str) -> list[str | None]:
        """Source node per input port, from port 0 to the highest connected port.

        A port in between that has no edge appears as ``None``.
        """
        self.node(node_id)
        ports = self._ports[node_id]
        return [ports.get(port) for port in range(max(ports) + 1)] if ports else []

    def successors(self, node_id: str) -> list[str]:
        """The nodes ``node_id`` feeds, each once, in the order they were connected."""
        return list(dict.fromkeys(target for target, _ in self._targets[node_id]))

    def has_path(self, source: str, target: str) -> bool:
        """Whether a chain of edges leads from ``source`` to ``target`` (a node reaches itself)."""
        seen, stack = {source}, [source]
        while stack:
            node_id = stack.pop()
            if node_id == target:
                return True
            for successor in self.successors(node_id):
                if successor not in seen:
                    seen.add(successor)
                    stack.append(successor)
        return False

    def ancestors(self, node_ids: Iterable[str]) -> set[str]:
        """``node_ids`` and every node with a path to one of them: one walk for all."""
        seen = set(node_ids)
        stack = list(seen)
        while stack:
            for source in self._ports[stack.pop()].values():
                if source not in seen:
                    seen.add(source)
                    stack.append(source)
        return seen

    def topological_order(self, leave_out: Iterable[str] = ()) -> list[str]:
        """Every node but ``leave_out``, each after its inputs; among the ready nodes the one added
        first comes first, so that the order is stable as the graph is edited. Nodes downstream of
        a cycle that is not left out never become ready, and are missing."""
        skipped = set(leave_out)
        rank = {node_id: index for index, node_id in enumerate(self._nodes)}
        waiting = {
            node_id: sum(source not in skipped for source in ports.values())
            for node_id, ports in self._ports.items()
            if node_id not in skipped
        }
        ready = [(rank[node_id], node_id) for node_id, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, node_id = heapq.heappop(ready)
            order.append(node_id)
            for target, _ in self._targets[node_id]:
                if target in waiting:
                    waiting[target] -= 1
                    if waiting[target] == 0:
                        heapq.heappush(ready, (rank[target], target))
        return order

    def cycles(self) -> list[list[str]]:
        """The strongly connected components that hold a cycle, each in insertion order (Tarjan's
        algorithm, iterative, so that a long chain cannot exhaust Python's stack)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        found: list[list[str]] = []
        for root in self._nodes:
            if root in index:
                continue
            index[root] = low[root] = len(index)
            stack.append(root)
            on_stack.add(root)
            work = [(root, iter(self.successors(root)))]
            while work:
                node_id, successors = work[-1]
                for successor in successors:
                    if successor not in index:
                        index[successor] = low[successor] = len(index)
                        stack.append(successor)
                        on_stack.add(successor)
                        work.append((successor, iter(self.successors(successor))))
                        break
                    if successor in on_stack:
                        low[node_id] = min(low[node_id], index[successor])
                else:
                    work.pop()
                    if work:
                        parent = work[-1][0]
                        low[parent] = min(low[parent], low[node_id])
                    if low[node_id] == index[node_id]:
                        component = []
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            component.append(member)
                            if member == node_id:
                                break
                        if len(component) > 1 or node_id in self.successors(node_id):
                            found.append(sorted(component, key=index.__getitem__))
        return found

    @property
    def input_nodes(self) -> list[str]:
        return [node.id for node in self.nodes if self.registry.get(node.kind).is_source]

    @property
    def declared_outputs(self) -> list[str]:
        """Outputs the user chose explicitly, in order (may be empty)."""
        return list(self._outputs)

    def effective_outputs(self) -> list[str]:
        """The model's outputs: the declared ones, or else every non-Input node without successors."""
        if self._outputs:
            return list(self._outputs)
        return [
            node.id
            for node in self.nodes
            if not self._targets[node.id] and not self.registry.get(node.kind).is_source
        ]

    @property
    def blocks(self) -> list[Block]:
        """The blocks in the order they were made. Read them; change them through the methods below."""
        return list(self._blocks.values())

    def block(self, name: str) -> Block:
        try:
            return self._blocks[name]
        except KeyError:
            raise GraphError(f"there is no block named {name!r}") from None

    def block_of(self, node_id: str) -> Block | None:
        """The block ``node_id`` belongs to, if any."""
        name = self._block_of.get(node_id)
        return None if name is None else self._blocks[name]

    # ----- editing ------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group several edits so that ``changed`` fires once at the end."""
        self._batch.depth += 1
        try:
            yield
        finally:
            self._batch.depth -= 1
            if self._batch.depth == 0 and self._batch.dirty:
                self._batch.dirty = False
                reasons, self._batch.reasons = self._batch.reasons, []
                self.events.changed(GraphEvent("changed", data={"reasons": reasons}))

    def add_node(
        self,
        kind: str,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        position: tuple[float, float] = (0.0, 0.0),
        node_id: str | None = None,
    ) -> Node:
        spec = self.registry.get(kind)
        if len(self._nodes) >= MAX_NODES:
            raise GraphError(f"a model may have at most {MAX_NODES:,} layers")
        name = self.unique_name(spec.default_name) if name is None else name
        self._check_name(name)
        if node_id is None:
            node_id = self._new_id()
        elif node_id in self._nodes:
            raise GraphError(f"a node with id {node_id!r} already exists")
        elif not node_id or not isinstance(node_id, str):
            raise GraphError(f"node ids must be non-empty strings. Received: {node_id!r}")
        try:
            clean = spec.validate_params(params or {})
        except ParamError as error:
            raise ParamError(f"{kind} '{name}': {error}") from None
        node = Node(node_id, kind, name, clean, _position(position))
        self._nodes[node_id] = node
        self._ports[node_id] = {}
        self._targets[node_id] = {}
        self._names[name] = node_id
        self._bump_id(node_id)
        self._emit("node_added", node_id)
        return node

    def remove_node(self, node_id: str) -> None:
        self.node(node_id)
        with self.batch():
            for edge in self.input_edges(node_id) + self.output_edges(node_id):
                self.disconnect(edge.target, edge.port)
            if node_id in self._outputs:
                self.set_outputs([out for out in self._outputs if out != node_id])
            del self._names[self.node(node_id).name]
            del self._nodes[node_id], self._ports[node_id], self._targets[node_id]
            self._emit("node_removed", node_id)
            if node_id in self._block_of:
                self._leave_block(node_id)

    def rename_node(self, node_id: str, name: str) -> None:
        node = self.node(node_id)
        if name == node.name:
            return
        self._check_name(name)
        old = node.name
        node.name = name
        del self._names[old]
        self._names[name] = node_id
        self._emit("node_renamed", node_id, old=old, new=name)

    def move_node(self, node_id: str, position: tuple[float, float]) -> None:
        node = self.node(node_id)
        node.position = _position(position)
        self._emit("node_moved", node_id, position=node.position)

    def set_param(self, node_id: str, name: str, value: Any) -> None:
        self.set_params(node_id, {name: value})

    def set_params(self, node_id: str, values: Mapping[str, Any]) -> None:
        """Change some parameters; all are validated together before any changes."""
        node = self.node(node_id)
        spec = self.registry.get(node.kind)
        try:
            clean = spec.validate_params({**node.params, **values})
        except ParamError as error:
            raise ParamError(f"{node.kind} '{node.name}': {error}") from None
        if clean == node.params:
            return
        old = node.params
        node.params = clean
        self._emit("params_changed", node_id, old=old, new=dict(clean))

    def connect(self, source: str, target: str, port: int | None = None, *, check_cycle: bool = True) -> Edge:
        """Connect ``source``'s output to ``target``'s input ``port`` (the first free one by default).

        ``check_cycle=False`` skips the search for a path back (linear in the graph) for a loader
        that adds many edges and then checks the whole graph once (see :func:`first_cycle_edge`).
        """
        self.check_connection(source, target, port, check_cycle=check_cycle)
        if self._edge_count >= MAX_EDGES:
            raise GraphError(f"a model may have at most {MAX_EDGES:,} connections")
        if port is None:
            port = self.free_port(target)
        self._ports[target][port] = source
        self._targets[source][(target, port)] = None
        self._edge_count += 1
        self._emit("edge_added", target, source=source, port=port)
        return Edge(source, target, port)

    def check_connection(
        self, source: str, target: str, port: int | None = None, *, check_cycle: bool = True
    ) -> None:
        """Raise GraphError if connecting ``source`` to ``target`` is not allowed."""
        self.node(source)
        target_node = self.node(target)
        spec = self.registry.get(target_node.kind)
        if source == target:
            raise GraphError(f"cannot connect {self.label(source)} to itself")
        if spec.is_source:
            raise GraphError(f"{self.label(target)} is a model input and takes no inputs")
        if port is None:
            port = self.free_port(target)
        if not isinstance(port, int) or isinstance(port, bool) or port < 0:
            raise GraphError(f"input ports are numbered from 0. Received: port={port!r}")
        if spec.max_inputs is None and port >= MAX_PORTS:
            raise GraphError(
                f"{self.label(target)} takes at most {MAX_PORTS} inputs; input {port + 1:,} does not exist"
            )
        if spec.max_inputs is not None and port >= spec.max_inputs:
            count = spec.max_inputs
            raise GraphError(
                f"{self.label(target)} takes {count} input{'s' if count != 1 else ''}; "
                f"input {port + 1} does not exist"
            )
        if self._ports[target].get(port) == source:
            raise GraphError(
                f"{self.label(source)} is already connected to input {port + 1} of {self.label(target)}"
            )
        occupant = self._ports[target].get(port)
        if occupant is not None:
            raise GraphError(
                f"input {port + 1} of {self.label(target)} is already connected to {self.label(occupant)}"
            )
        if check_cycle and self.has_path(target, source):
            raise GraphError(f"connecting {self.label(source)} to {self.label(target)} would create a cycle")

    def free_port(self, target: str) -> int:
        """The lowest input port of ``target`` with no edge."""
        used = self._ports[target]
        port = 0
        while port in used:
            port += 1
        return port

    def disconnect(self, target: str, port: int) -> Edge:
        """Remove the edge into ``target``'s input ``port``."""
        self.node(target)
        source = self._ports[target].pop(port, None)
        if source is None:
            raise GraphError(f"input {port + 1} of {self.label(target)} is not connected")
        del self._targets[source][(target, port)]
        self._edge_count -= 1
        self._emit("edge_removed", target, source=source, port=port)
        return Edge(source, target, port)

    def set_outputs(self, node_ids: Iterable[str]) -> None:
        """Declare the model's outputs, in order. An empty list means: every sink."""
        node_ids = list(node_ids)
        for node_id in node_ids:
            self.node(node_id)
        if len(set(node_ids)) != len(node_ids):
            raise GraphError("a node can be listed as an output only once")
        if node_ids == self._outputs:
            return
        old, self._outputs = self._outputs, node_ids
        self._emit("outputs_changed", None, old=old, new=list(node_ids))

    # ----- blocks: named groups of layers (they never change the model) ---------------

    def add_block(self, name: str, members: Iterable[str], collapsed: bool = False) -> Block:
        """Group ``members`` (node ids, each in no other block) under ``name``."""
        members = list(members)
        self._check_block_name(name)
        if not members:
            raise GraphError(f"block {name!r}: a block holds at least one layer")
        if len(members) > MAX_NODES:
            raise GraphError(f"block {name!r}: a block may hold at most {MAX_NODES:,} layers")
        if len(set(members)) != len(members):
            raise GraphError(f"block {name!r}: a layer can be listed only once")
        for node_id in members:
            self.node(node_id)
            other = self._block_of.get(node_id)
            if other is not None:
                raise GraphError(f"{self.label(node_id)} is already in block {other!r}")
        block = Block(name, members, bool(collapsed))
        self._blocks[name] = block
        self._block_of.update(dict.fromkeys(members, name))
        self._emit("blocks_changed", None, block=name)
        return block

    def remove_block(self, name: str) -> Block:
        """Ungroup: the layers stay, the block goes."""
        block = self._blocks.pop(self.block(name).name)
        for node_id in block.members:
            del self._block_of[node_id]
        self._emit("blocks_changed", None, block=name)
        return block

    def rename_block(self, name: str, new_name: str) -> None:
        block = self.block(name)
        if new_name == name:
            return
        self._check_block_name(new_name)
        # Rebuild the dict so that the block keeps its place in the order.
        self._blocks = {(new_name if key == name else key): value for key, value in self._blocks.items()}
        block.name = new_name
        self._block_of.update(dict.fromkeys(block.members, new_name))
        self._emit("blocks_changed", None, block=new_name, old=name)

    def set_block_collapsed(self, name: str, collapsed: bool) -> None:
        block = self.block(name)
        if block.collapsed != bool(collapsed):
            block.collapsed = bool(collapsed)
            self._emit("blocks_changed", None, block=name)

    def add_to_block(self, name: str, node_id: str) -> None:
        """Put a layer back into a block (undoing its deletion)."""
        block = self.block(name)
        self.node(node_id)
        if node_id in self._block_of:
            raise GraphError(f"{self.label(node_id)} is already in block {self._block_of[node_id]!r}")
        block.members.append(node_id)
        self._block_of[node_id] = name
        self._emit("blocks_changed", None, block=name)

    def _leave_block(self, node_id: str) -> None:
        """A deleted layer leaves its block; a block left empty goes."""
        block = self._blocks[self._block_of.pop(node_id)]
        block.members.remove(node_id)
        if not block.members:
            del self._blocks[block.name]
        self._emit("blocks_changed", None, block=block.name)

    def unique_block_name(self, base: str) -> str:
        """``block``, then ``block_1``, ``block_2``... among the block names."""
        index, name = 1, base
        while name in self._blocks:
            name = f"{base}_{index}"
            index += 1
        return name

    def unique_name(self, base: str) -> str:
        """Keras-style unique name: ``dense``, then ``dense_1``, ``dense_2``..."""
        taken = self._names
        if base not in taken:
            return base
        index = 1
        while f"{base}_{index}" in taken:
            index += 1
        return f"{base}_{index}"

    # ----- internals ----------------------------------------------------------------

    def _check_name(self, name: str, what: str = "a layer") -> None:
        if not isinstance(name, str) or not name.strip():
            raise GraphError(f"{what} name must be a non-empty string. Received: {name!r}")
        if len(name) > MAX_NAME_LENGTH:
            raise GraphError(
                f"{what} name may have at most {MAX_NAME_LENGTH} characters; {name[:20]!r}... has {len(name)}"
            )
        if any(ord(char) < 32 for char in name):
            raise GraphError(f"{what} name may not contain control characters. Received: {name!r}")
        if any(0xD800 <= ord(char) <= 0xDFFF for char in name):
            # A lone surrogate cannot be encoded as UTF-8, so the project could not be saved.
            raise GraphError(f"{what} name may not contain lone surrogate characters. Received: {name!r}")
        if what != "a layer":
            return
        if self.find(name) is not None:
            raise GraphError(f"the name {name!r} is already used by {self.label(self.find(name).id)}")

    def _check_block_name(self, name: str) -> None:
        self._check_name(name, "a block")
        if name in self._blocks:
            raise GraphError(f"there is already a block named {name!r}")

    def _new_id(self) -> str:
        # _next_id stays one past the highest "n<digits>" id (see _bump_id), so this loop is short.
        while f"n{self._next_id}" in self._nodes:
            self._next_id += 1
        return f"n{self._next_id}"

    def _bump_id(self, node_id: str) -> None:
        match = re.fullmatch(r"n([0-9]{1,18})", node_id)  # a longer number can never collide
        if match:
            self._next_id = max(self._next_id, int(match.group(1)) + 1)

    def _emit(self, event_type: str, node_id: str | None, **data: Any) -> None:
        self.events.emitter(event_type)(GraphEvent(event_type, node_id, data))
        if self._batch.depth:
            self._batch.dirty = True
            self._batch.reasons.append(event_type)
        else:
            self.events.changed(GraphEvent("changed", node_id, {"reasons": [event_type]}))


def first_cycle_edge(edges: list[tuple[str, str]]) -> int | None:
    """The index of the first edge that closes a cycle when ``edges`` are added in order, or None.

    One acyclicity test of the whole list, then a binary search over prefixes: O(m log m),
    where checking each edge as it is added would be O(m^2).
    """

    def has_cycle(count: int) -> bool:
        """Whether the first ``count`` edges hold a cycle: Kahn's algorithm leaves a node over."""
        targets: dict[str, list[str]] = {}
        waiting: dict[str, int] = {}
        for source, target in edges[:count]:
            targets.setdefault(source, []).append(target)
            waiting.setdefault(source, 0)
            waiting[target] = waiting.get(target, 0) + 1
        ready = [node for node, count in waiting.items() if count == 0]
        done = 0
        while ready:
            node = ready.pop()
            done += 1
            for target in targets.get(node, ()):
                waiting[target] -= 1
                if waiting[target] == 0:
                    ready.append(target)
        return done < len(waiting)

    if not has_cycle(len(edges)):
        return None
    low, high = 1, len(edges)  # the shortest cycling prefix has length in [low, high]
    while low < high:
        middle = (low + high) // 2
        if has_cycle(middle):
            high = middle
        else:
            low = middle + 1
    return low - 1


def _position(position: Any) -> tuple[float, float]:
    """``position`` as a pair of finite floats (NaN and infinity could not be saved and read back)."""
    try:
        x, y = position
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (x, y)):
            raise TypeError
        point = (float(x), float(y))
    except (TypeError, ValueError, OverflowError):
        point = (math.nan, math.nan)
    if not all(math.isfinite(v) for v in point):
        raise GraphError(f"a position is a pair of finite numbers [x, y]. Received: {position!r}")
    return point
