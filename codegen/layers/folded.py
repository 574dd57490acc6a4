"""A source tensor whose batch is not alone on axis 0: moved elsewhere, or folded into another axis.

Exporters and hand-written attention move the batch: torchvision's Swin folds the
windows into it, ``(N * windows, area, C)``; ``nn.MultiheadAttention`` runs
sequence-first with the batch folded into the heads, ``(L, N * H, d)``; timm
writes ``qkv.permute(2, 0, 3, 1, 4)`` and indexes the new axis 0. Every catalog
layer keeps the batch alone on axis 0, so the importer holds such a value back as
a :class:`Folded`: a catalog tensor ``x`` (batch on axis 0, the source's order,
``SAME`` form) and *groups*, one per source axis, each the axes of ``x`` that the
source flattens into it, in order. The source tensor is ``x`` permuted to the
groups' order and reshaped to their sizes.

Reshapes, transposes, squeezes and items regroup the axes of ``x`` (splitting
one with a Reshape where the source splits it). An operation on the last axes
(a Dense, a softmax, a product of matrices, a per-position constant) runs on a
*view* of ``x``: its leading groups laid out with the batch first, then the
axes it works on. When the batch is alone on axis 0 again, the value becomes an
ordinary tensor: a Permute and a Reshape of ``x``, where needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from codegen.layers.base import CF, SAME, Held, Tensor, Unsupported


@dataclass(frozen=True)
class BatchTimes:
    """A size computed from a dynamic batch size N: ``factor * N`` (``nn.MultiheadAttention``'s
    ``N * heads``). The batch itself is None."""

    factor: int

    def __repr__(self) -> str:
        return f"{self.factor}*N"


def batch_times(factor: int) -> BatchTimes | None:
    return None if factor == 1 else BatchTimes(factor)


def symbolic(dim) -> bool:
    """A size that depends on a dynamic batch size."""
    return dim is None or isinstance(dim, BatchTimes)


# A size that may hold the batch: (c, p) is c times the batch size to the power p. A file with a
# fixed batch B gives the batch the size (B, 0); a dynamic batch is (1, 1).
Size = tuple[int, int]
ONE: Size = (1, 0)


def _times(sizes) -> Size:
    coefficient, power = 1, 0
    for size in sizes:
        coefficient, power = coefficient * size[0], power + size[1]
    return coefficient, power


def _divided(size: Size, by: Size) -> Size | None:
    """``size / by`` where it is a whole size; else None."""
    if by[0] == 0 or size[0] % by[0] or size[1] < by[1]:
        return None
    return size[0] // by[0], size[1] - by[1]


def _text(size: Size) -> str:
    return {0: str(size[0]), 1: "N" if size[0] == 1 else f"{size[0]}*N"}.get(
        size[1], f"{size[0]}*N^{size[1]}"
    )


class Folded(Held):
    """The source tensor ``x`` permuted to ``groups``' order and reshaped to the groups' sizes."""

    def __init__(self, graph, x: Tensor, groups, batch: int | None, name: str, source_kind: str) -> None:
        self.graph, self.x, self.batch = graph, x, batch
        self.groups = tuple(tuple(group) for group in groups)
        self.name, self.source_kind = name, source_kind

    # ----- sizes -----------------------------------------------------------------------

    def axis_sizes(self) -> list[Size]:
        """The sizes of ``x``'s axes, the batch's first."""
        batch = (1, 1) if self.batch is None else (self.batch, 0)
        return [batch, *((int(dim), 0) for dim in self.graph.keras_shape(self.x))]

    def source_sizes(self, symbolic_batch: bool = False) -> list[Size]:
        sizes = self.axis_sizes()
        if symbolic_batch:
            sizes[0] = (1, 1)
        return [_times(sizes[axis] for axis in group) for group in self.groups]

    def source_dims(self) -> list[int | None]:
        """The source's shape as a Shape operator reads it (sizes that hold a dynamic batch symbolic)."""
        dims: list[int | None] = []
        for size in self.source_sizes():
            if size[1] > 1:
                raise Unsupported(f"reads the size {_text(size)} of an axis")
            dims.append(batch_times(size[0]) if size[1] else size[0])
        return dims

    def __repr__(self) -> str:
        return f"a tensor of shape ({self._shape_text()}) whose batch axis is not alone on axis 0 (moved or folded)"

    # ----- regrouping ------------------------------------------------------------------

    def transpose(self, perm: Sequence[int], name: str) -> Tensor | Folded:
        if sorted(perm) != list(range(len(self.groups))):
            raise Unsupported(f"perm={list(perm)} for a tensor of rank {len(self.groups)}")
        return self._with([self.groups[axis] for axis in perm], name)

    def reshape(self, dims: Sequence[int | None], name: str) -> Tensor | Folded:
        """The source's reshape to ``dims`` (None the batch size, or a :class:`BatchTimes`; -1 the
        rest; 0 a copied size)."""
        source, batch = self.source_sizes(), self.axis_sizes()[0]
        targets: list[Size | None] = []
        for position, dim in enumerate(dims):
            if symbolic(dim):
                targets.append((batch[0] * (1 if dim is None else dim.factor), batch[1]))
            elif dim == 0:  # a copied size
                if position >= len(source):
                    raise Unsupported(f"the target shape {list(dims)} copies axis {position}, which it lacks")
                targets.append(source[position])
            elif dim == -1:
                targets.append(None)
            elif dim < -1:
                raise Unsupported(f"the target shape {list(dims)} has a negative size")
            else:
                targets.append((int(dim), 0))
        if targets.count(None) > 1:
            raise Unsupported(f"the target shape {list(dims)} has two -1 entries")
        if None in targets:
            rest = _divided(_times(source), _times(t for t in targets if t is not None))
            if rest is None:
                raise Unsupported(f"cannot reshape ({self._shape_text()}) to {list(dims)}")
            targets[targets.index(None)] = rest
        return self._regroup([t for t in targets if t is not None], list(dims), name)

    def flatten(self, axis: int, name: str) -> Tensor | Folded:
        """ONNX's Flatten: the axes before ``axis`` and those from it, each into one."""
        sizes = self.source_sizes()
        targets = [_times(sizes[:axis]), _times(sizes[axis:])]
        return self._regroup(targets, [f"{_text(size)}" for size in targets], name)

    def squeezed(self, axes: Sequence[int], name: str) -> Tensor | Folded:
        """Without the unit axes ``axes`` (positive)."""
        if any(not 0 <= axis < len(self.groups) for axis in axes):
            raise Unsupported(f"squeezes axes {list(axes)} of a tensor of rank {len(self.groups)}")
        lengths = self.lengths()
        if any(lengths[axis] != 1 for axis in axes):
            raise Unsupported(f"squeezes axes {list(axes)} of ({self._shape_text()}), not all of size 1")
        kept = [list(group) for at, group in enumerate(self.groups) if at not in axes]
        if not kept:
            raise Unsupported(f"squeezes every axis of ({self._shape_text()})")
        for at in axes:  # the unit axes of ``x`` the dropped groups held join a group that stays
            kept[max(0, at - sum(1 for other in axes if other < at) - 1)] += self.groups[at]
        return self._with(kept, name)

    def unsqueezed(self, axes: Sequence[int], name: str) -> Tensor | Folded:
        """With new unit axes at ``axes`` (positive, of the result)."""
        if any(not 0 <= axis < len(self.groups) + len(axes) for axis in axes):
            raise Unsupported(f"adds axes {list(axes)} to a tensor of rank {len(self.groups)}")
        groups = list(self.groups)
        for axis in sorted(axes):
            groups.insert(axis, ())
        return self._with(groups, name)

    def _shape_text(self) -> str:
        return ", ".join(_text(size) for size in self.source_sizes(symbolic_batch=True))

    def _regroup(self, targets: list[Size], dims: list, name: str) -> Tensor | Folded:
        """Walks the axes of ``x`` in the source's order, taking whole axes into each target axis and
        splitting an axis where a target ends inside it; the batch is never split."""
        sizes = self.axis_sizes()
        queue = [[axis, sizes[axis]] for group in self.groups for axis in group]
        pieces: dict[int, list[int]] = {}  # axis of x -> the sizes it splits into
        assigned: list[list[tuple[int, int]]] = []  # per target: (axis of x, its piece)
        problem = f"cannot reshape ({self._shape_text()}) to {list(dims)}"
        for target in targets:
            group, remaining = [], target
            while remaining != ONE:
                if not queue:
                    raise Unsupported(problem)
                axis, size = queue[0]
                rest = _divided(remaining, size)
                if rest is not None:  # the whole (remaining) axis
                    queue.pop(0)
                    remaining = rest
                elif axis != 0 and remaining[1] == 0 and size[1] == 0 and size[0] % remaining[0] == 0:
                    queue[0][1] = (size[0] // remaining[0], 0)  # split: the target ends inside
                    size, remaining = (remaining[0], 0), ONE
                else:
                    raise Unsupported(f"{problem}: it would split the batch axis" if axis == 0 else problem)
                pieces.setdefault(axis, []).append(size[0])
                group.append((axis, len(pieces[axis]) - 1))
            assigned.append(group)
        for axis, size in queue:  # unit axes left over join the last target
            if size != ONE or not assigned:
                raise Unsupported(problem)
            pieces.setdefault(axis, []).append(1)
            assigned[-1].append((axis, len(pieces[axis]) - 1))
        x, first = self.x, {0: 0}
        shape = list(self.graph.keras_shape(x))
        new_shape: list[int] = []
        for axis in range(1, len(shape) + 1):
            first[axis] = len(new_shape) + 1
            new_shape += pieces.get(axis, [shape[axis - 1]])
        if new_shape != shape:
            x = self.graph.add("Reshape", f"{name}_split", [x], {"target_shape": new_shape}, form=SAME)
        groups = [[first[axis] + piece for axis, piece in group] for group in assigned]
        return Folded(self.graph, x, groups, self.batch, name, self.source_kind).settled(name)

    def _with(self, groups, name: str, x: Tensor | None = None) -> Tensor | Folded:
        return Folded(self.graph, x or self.x, groups, self.batch, name, self.source_kind).settled(name)

    def settled(self, name: str) -> Tensor | Folded:
        """An ordinary tensor where the batch is alone on axis 0 again (with unit axes at most,
        which a squeeze left there); else this value."""
        sizes = self.axis_sizes()
        if not self.groups or 0 not in self.groups[0]:
            return self
        units = [axis for axis in self.groups[0] if axis != 0]
        if any(sizes[axis] != ONE for axis in units) or len(self.groups) == 1 and units:
            return self
        layout = [[0], *(list(group) for group in self.groups[1:])]
        layout[1:2] = [units + layout[1]] if units else layout[1:2]
        return self._laid_out(layout, name)

    def _laid_out(self, layout: list[list[int]], name: str) -> Tensor:
        """``x`` with its axes in the order of ``layout`` (``[0]`` first), each entry's axes
        merged into one (an empty entry is a unit axis): a Permute and a Reshape, where needed."""
        sizes = self.axis_sizes()
        order = [axis for entry in layout for axis in entry]
        x = self.x
        if order != sorted(order):
            x = self.graph.add(
                "Permute",
                f"{name}_permute",
                [x],
                {"dims": order[1:]},
                source_kind=self.source_kind,
                form=SAME,
            )
        target = [_times(sizes[axis] for axis in entry)[0] for entry in layout[1:]]
        if target != list(self.graph.keras_shape(x)):
            x = self.graph.add(
                "Reshape",
                f"{name}_reshape",
                [x],
                {"target_shape": target},
                source_kind=self.source_kind,
                form=SAME,
            )
        return x

    def merged(self, position: int, name: str) -> tuple[Folded, int]:
        """This value with the axes of group ``position`` (no batch) merged into one axis of ``x``,
        and that axis."""
        group = self.groups[position]
        if 0 in group:
            raise Unsupported(f"works on axis {position}, which holds the batch")
        if len(group) == 1:
            return self, group[0]
        others = [[axis] for axis in range(len(self.axis_sizes())) if axis not in group]
        x = self._laid_out([*others, list(group)], name)
        renumber = {axis: new for new, (axis,) in enumerate(others)}
        last = len(others)
        groups = [
            [last] if index == position else [renumber[a] for a in g] for index, g in enumerate(self.groups)
        ]
        return Folded(self.graph, x, groups, self.batch, name, self.source_kind), last

    # ----- items and pieces ------------------------------------------------------------

    def item(self, position: int, index: int, name: str) -> Tensor | Folded:
        """``x[..., index, ...]`` on source axis ``position``: a one-long Slice and a Reshape."""
        length = self.source_sizes()[position][0]
        folded, axis = self.merged(position, name)
        index %= length
        x = folded.graph.add(
            "Slice",
            name,
            [folded.x],
            {"axis": axis, "start": index, "stop": index + 1},
            source_kind=self.source_kind,
        )
        shape = list(folded.graph.keras_shape(x))
        del shape[axis - 1]
        x = folded.graph.add("Reshape", f"{name}_item", [x], {"target_shape": shape}, form=SAME)
        groups = [[a - (a > axis) for a in group] for at, group in enumerate(folded.groups) if at != position]
        return folded._with(groups, name, x)

    def piece(self, position: int, start: int, stop: int, name: str) -> Tensor | Folded:
        """``start:stop`` of source axis ``position``: a Slice."""
        folded, axis = self.merged(position, name)
        params = {"axis": axis, "start": start, "stop": stop}
        x = folded.graph.add("Slice", name, [folded.x], params, source_kind=self.source_kind)
        return folded._with(folded.groups, name, x)

    def pieces(self, position: int, sizes: Sequence[int], name: str) -> list[Tensor | Folded]:
        """A Split along source axis ``position`` into pieces of ``sizes``: a Slice each."""
        starts = [sum(sizes[:index]) for index in range(len(sizes))]
        return [
            self.piece(position, start, start + size, name) for start, size in zip(starts, sizes, strict=True)
        ]

    def lengths(self) -> list[int | None]:
        """The source's sizes, None for an axis that holds the batch."""
        return [
            size[0] if size[1] == 0 and 0 not in group else None
            for size, group in zip(self.source_sizes(), self.groups, strict=True)
        ]

    # ----- operations on the last axes ---------------------------------------------------

    def view(self, count: int, name: str) -> tuple[Tensor, list[list[int]]]:
        """``x`` laid out for an operation on the last ``count`` source axes: the batch first, then
        the leading groups (one axis each; the batch's group an axis before it and one after it),
        then the last groups, one axis each. Also the leading groups as axes of that view."""
        lead, last = self.groups[: len(self.groups) - count], self.groups[len(self.groups) - count :]
        if any(0 in group for group in last):
            raise Unsupported(
                f"works on the last {count} axes of ({self._shape_text()}), which hold the batch"
            )
        layout: list[list[int]] = [[0]]
        leading: list[list[int]] = []
        for group in lead:
            if 0 not in group:
                layout.append(list(group))
                leading.append([len(layout) - 1])
                continue
            at = group.index(0)
            entry: list[int] = []
            for part in (group[:at], None, group[at + 1 :]):
                if part is None:
                    entry.append(0)
                elif part:
                    layout.append(list(part))
                    entry.append(len(layout) - 1)
            leading.append(entry)
        layout += [list(group) for group in last]
        return self._laid_out(layout, name), leading

    def signature(self, leading: list[list[int]], view: Tensor) -> list:
        """The leading groups of a view, for checking that two operands line up."""
        shape = self.graph.keras_shape(view)
        return [tuple("N" if axis == 0 else shape[axis - 1] for axis in entry) for entry in leading]


def axis_lengths(graph, value: Tensor | Folded) -> list[int | None]:
    """The source's sizes of an ordinary or a held tensor, the batch's first; None for an axis
    that holds the batch."""
    return value.lengths() if isinstance(value, Folded) else [None, *graph.source_shape(value)]


def from_tensor(graph, x: Tensor, batch: int | None, name: str, source_kind: str) -> Folded:
    """An ordinary tensor as a :class:`Folded` with one axis per group (to move or fold its batch)."""
    x = graph.to_same(x, name)
    rank = len(graph.keras_shape(x)) + 1
    return Folded(graph, x, [[axis] for axis in range(rank)], batch, name, source_kind)


def refold(graph, y: Tensor, leading: list[list[int]], batch: int | None, name: str, kind: str):
    """The result of an operation on a view: its leading axes grouped as the view's were."""
    y = graph.to_same(y, name)
    rank = len(graph.keras_shape(y)) + 1
    used = max((axis for entry in leading for axis in entry), default=0)
    groups = [*leading, *([axis] for axis in range(used + 1, rank))]
    return Folded(graph, y, groups, batch, name, kind).settled(name)


def through_view(
    graph,
    inputs: list,
    count: int,
    call: Callable[[list], object],
    name: str,
    kind: str,
    channels: bool = False,
):
    """Runs an operation on the last ``count`` axes of its tensors on views of its :class:`Folded`
    inputs (constants pass as they are), and folds its result as they were: (result, folded).
    ``channels``: the views go in as channels-first tensors (their last axis the channels)."""
    views, signature, leading, batch = [], None, None, None
    for value in inputs:
        if isinstance(value, Folded):
            view, lead = value.view(count, f"{name}_view")
            view = replace(view, form=CF) if channels else view
            mine = value.signature(lead, view)
            if signature is None:
                signature, leading, batch = mine, lead, value.batch
            elif not _line_up(mine, signature):
                raise Unsupported(
                    f"combines tensors whose batch is folded differently ({mine} and {signature})"
                )
            views.append(view)
        elif isinstance(value, Tensor):
            raise Unsupported(
                "combines a tensor whose batch is folded into another axis with an ordinary one"
            )
        else:
            views.append(value)
    result = call(views)
    if not isinstance(result, Tensor):
        raise Unsupported(f"an operation on a tensor whose batch is folded gave {type(result).__name__}")
    held = replace(result, form=SAME) if channels and result.form == CF else result  # the same array
    return result, refold(graph, held, leading, batch, name, kind)


def concatenate_folded(graph, values: list, axis: int, name: str, kind: str) -> Tensor | Folded:
    """A concatenation of tensors whose batch is folded alike, along an axis that does not hold it:
    on views whose last axes start at that one."""
    rank = len(values[0].groups)
    axis = axis % rank
    count = rank - axis

    def join(views):
        return graph.concatenate(views, -count, name, kind)

    return through_view(graph, values, count, join, name, kind)[1]


# ----- which operations run on a view ------------------------------------------------------
# An importer's handler marked with ``on_last_axes`` computes each position of its tensors' leading
# axes alike, from their last ``count`` axes (a Dense, a softmax, a product of matrices): it also
# runs on a view of a Folded tensor, its leading axes taking the batch's place.


def on_last_axes(count, channels: bool = False):
    """Marks a handler as an operation on the last ``count`` axes: an int, or a function of
    ``(walker, node, values)`` (the node's argument values) that gives it or raises Unsupported.
    ``channels``: the handler reads the last axis as the source's channels (axis 1 of a
    channels-first tensor, as BatchNorm1d does): the view is handed to it in that form."""

    def mark(handler):
        handler.view_axes, handler.view_channels = count, channels
        return handler

    return mark


def view_axes(handler, walker, node, values: list) -> int | None:
    """How many last axes ``handler`` works on; None where it is not marked."""
    count = getattr(handler, "view_axes", None)
    return count(walker, node, values) if callable(count) else count


def constants_axes(walker, node, values: list) -> int:
    """An element-wise operation: the last axes that its constant operands vary along (their shapes
    without leading unit axes)."""
    counts = [0]
    for value in values:
        if isinstance(value, np.ndarray):
            shape = list(value.shape)
            while shape and shape[0] == 1:
                shape.pop(0)
            counts.append(len(shape))
    return max(counts)


def matrix_axes(walker, node, values: list) -> int:
    """A product: of two computed tensors, their last two axes; by a weight matrix, the last one."""
    return 2 if all(isinstance(value, (Tensor, Folded)) for value in values[:2]) else 1


def along_last_axis(axis, values: list) -> int:
    """An operation along ``axis`` (a softmax): 1 where that is the last axis of the folded tensor."""
    folded = next(value for value in values if isinstance(value, Folded))
    if axis is None or int(axis) not in (-1, len(folded.groups) - 1):
        raise Unsupported(f"works along axis {axis} of {folded!r}; the catalog takes the last axis there")
    return 1


def _line_up(ours: list, theirs: list) -> bool:
    """Two views' leading groups line up: the batch in the same places, sizes equal or 1."""
    if [len(entry) for entry in ours] != [len(entry) for entry in theirs]:
        return False
    pairs = [pair for a, b in zip(ours, theirs, strict=True) for pair in zip(a, b, strict=True)]
    return all(a == b or ("N" not in (a, b) and 1 in (a, b)) for a, b in pairs)


def folds_batch(dims: Sequence[int | None], source: Sequence[int], batch: int | None) -> bool:
    """True where a reshape of an ordinary ``(N, *source)`` tensor to ``dims`` moves or folds its
    batch: its first target size is not the batch's (-1 or a fixed batch size that leaves the
    other sizes the source's count, None, or 0 copying it)."""
    if not dims:
        return False
    first, rest = dims[0], list(dims[1:])
    if any(symbolic(dim) for dim in rest):
        return True
    if first is None or first == 0:
        return False
    if first != -1 and (batch is None or first != batch):
        return True
    if None in rest or 0 in rest or -1 in rest:
        return False  # the ordinary reshape resolves them, or says why not
    return math.prod(rest) != math.prod(source)
