"""Copy and paste of layers: a small JSON fragment on the system clipboard."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QMimeData

from studio.graph import Graph

MIME_NODES = "application/x-layer-studio-nodes"
MIME_KIND = "application/x-layer-studio-kind"  # a layer kind dragged from the palette
CLIP_FORMAT = "layer-studio-fragment"


def fragment(graph: Graph, node_ids: Iterable[str]) -> dict[str, Any]:
    """The selected nodes and the edges between them, as JSON-ready data."""
    chosen = [node_id for node_id in node_ids if node_id in graph]
    inside = set(chosen)
    nodes = []
    for node_id in chosen:
        node = graph.node(node_id)
        nodes.append(
            {
                "id": node.id,
                "kind": node.kind,
                "name": node.name,
                "params": graph.spec(node_id).params_to_json(node.params),
                "position": list(node.position),
            }
        )
    edges = [
        {"from": edge.source, "to": edge.target, "port": edge.port}
        for edge in graph.edges
        if edge.source in inside and edge.target in inside
    ]
    return {"format": CLIP_FORMAT, "nodes": nodes, "edges": edges}


def to_mime(data: dict[str, Any]) -> QMimeData:
    mime = QMimeData()
    text = json.dumps(data, indent=1)
    mime.setData(MIME_NODES, text.encode("utf-8"))
    mime.setText(text)
    return mime


def from_mime(mime: QMimeData | None) -> dict[str, Any] | None:
    """The fragment held by ``mime``, or None if it holds none (plain JSON text is accepted)."""
    if mime is None:
        return None
    if mime.hasFormat(MIME_NODES):
        raw = bytes(mime.data(MIME_NODES).data()).decode("utf-8", errors="replace")
    elif mime.hasText():
        raw = mime.text()
    else:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if (
        not isinstance(data, dict)
        or data.get("format") != CLIP_FORMAT
        or not isinstance(data.get("nodes"), list)
    ):
        return None
    return data
