"""A tiny synchronous event system, so that views can follow the model without Qt.

    graph.events.node_added.connect(callback)   # callback(event)

Each emitter passes a :class:`GraphEvent`. Callbacks run in connection order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GraphEvent:
    type: str
    node_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class EventEmitter:
    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[[GraphEvent], None]] = []

    def connect(self, callback: Callable[[GraphEvent], None]) -> Callable[[GraphEvent], None]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[GraphEvent], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def __call__(self, event: GraphEvent) -> None:
        for callback in list(self._callbacks):
            callback(event)


class GraphEvents:
    """One emitter per kind of change, plus ``changed`` after every edit.

    ``changed`` fires once per edit, or once per :meth:`Graph.batch` block,
    so views that redraw everything (code view, problems) redraw once.
    """

    NAMES = (
        "node_added",
        "node_removed",
        "node_renamed",
        "node_moved",
        "params_changed",
        "edge_added",
        "edge_removed",
        "outputs_changed",
        "blocks_changed",  # a block was made, removed, renamed, collapsed or expanded: no model change
        "changed",
    )

    def __init__(self) -> None:
        for name in self.NAMES:
            setattr(self, name, EventEmitter(name))

    def emitter(self, name: str) -> EventEmitter:
        return getattr(self, name)
