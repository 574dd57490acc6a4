"""A text table of the model, laid out like Keras ``model.summary()``."""

from __future__ import annotations

from studio.analysis import Analysis, analyze
from studio.catalog import FlopCount, format_shape
from studio.graph import Graph

_PREFIXES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))


def format_flops(count: int) -> str:
    """``1_234_567`` -> ``"1.2 MFLOPs"``: a FLOP count at a glance (SI prefixes)."""
    for scale, prefix in _PREFIXES:
        if count >= scale:
            return f"{count / scale:.3g} {prefix}FLOPs"
    return f"{count} FLOPs"


def flops_text(flops: FlopCount) -> str:
    """A layer's or a model's work in one line: FLOPs with their MACs, per sample."""
    return f"{flops.flops:,} FLOPs ({flops.macs:,} MACs) per sample"


def summary_rows(graph: Graph, analysis: Analysis) -> list[tuple[str, str, str, str, str]]:
    """(layer (kind), output shape, param count, FLOPs, connected to) for every node, in model order."""
    rows = []
    for node_id in analysis.order:
        node = graph.node(node_id)
        shape = analysis.shapes.get(node_id)
        sources = [graph.node(source).name for source in graph.inputs_of(node_id) if source]
        rows.append(
            (
                f"{node.name} ({node.kind})",
                format_shape(shape),
                f"{analysis.params[node_id].total:,}",
                f"{analysis.flops.get(node_id, FlopCount()).flops:,}",
                ", ".join(sources) or "-",
            )
        )
    return rows


def format_summary(graph: Graph, title: str = "model", analysis: Analysis | None = None) -> str:
    analysis = analysis or analyze(graph)
    headers = ("Layer (type)", "Output Shape", "Param #", "FLOPs", "Connected to")
    rows = summary_rows(graph, analysis)
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
    rule = "-" * (sum(widths) + 3 * (len(widths) - 1))

    def line(cells: tuple[str, ...]) -> str:
        padded = [
            cell.rjust(width) if i in (2, 3) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "   ".join(padded).rstrip()

    total = analysis.total_params
    torch_total = analysis.total_torch_params
    flops = analysis.total_flops
    out = [f'Model: "{title}"', rule.replace("-", "="), line(headers), rule.replace("-", "=")]
    out += [line(row) for row in rows]
    out += [
        rule.replace("-", "="),
        f" Total FLOPs: {flops.flops:,} per sample ({format_flops(flops.flops)}; {flops.macs:,} MACs, "
        "1 MAC = 2 FLOPs)",
        f" Total params: {total.total:,}",
        f" Trainable params: {total.trainable:,}",
        f" Non-trainable params: {total.non_trainable:,}",
    ]
    if torch_total != total:
        out.append(
            f" PyTorch parameters() + buffers: {torch_total.total:,} "
            "(torch RNNs keep two bias vectors where Keras keeps one)"
        )
    if analysis.errors:
        out.append(f" The model has {len(analysis.errors)} error(s); run `studio check` for details.")
    return "\n".join(out)
