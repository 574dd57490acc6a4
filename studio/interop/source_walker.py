"""The generic part of an importer that walks a channels-first source graph (ONNX, torch.fx).

A walker converts the source's nodes in order. Each node's value goes into
:attr:`SourceWalker.values` under the source's key for it: a
:class:`~codegen.layers.base.Tensor` for a computed tensor, anything else the
source-specific code needs (constants, shapes), or :data:`BROKEN` when the node
could not be converted. :meth:`SourceWalker.convert_node` runs one node's
conversion and turns its failures into entries of ``builder.unsupported``, so an
import reports every unsupported node at once and never raises a traceback;
:meth:`add_input` and :meth:`add_output` map the source's inputs and outputs
onto the project's. :attr:`SourceWalker.shapes` holds the shapes the source
itself knows (traced or inferred, batch included).

A subclass (one per source) walks its nodes, names them (the project layer
name, the source kind of messages) and says which node kinds have no catalog
equivalent at all (:meth:`kind_problem`): those are reported even downstream
of another unsupported node, so the user sees the whole list at once, while a
node that merely consumes a failed value is not reported again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codegen.layers.base import CF, FLAT_CF, SQUEEZED, AlreadyReported, Held, Tensor, Unsupported
from studio.interop.builder import GraphBuilder, TensorInfo
from studio.interop.channels_first import ChannelsFirstGraph

BROKEN = object()  # the value of a node whose conversion failed (reported once, where it failed)


class Broken(Exception):
    """An input of this node is BROKEN: its problem was already reported."""


class SourceWalker:
    """The values table, per-node error handling, inputs and outputs of a source import."""

    # Why a node that raised an unexpected error is unsupported: the source's words for its inputs.
    unreadable = "its inputs could not be read"

    def __init__(self, builder: GraphBuilder) -> None:
        self.builder = builder
        self.graph = ChannelsFirstGraph(builder)
        self.values: dict[Any, Any] = {}
        self.shapes: dict[Any, tuple] = {}  # source key -> the source's own shape of it, batch included
        self.input_infos: list[TensorInfo] = []
        self.output_infos: list[TensorInfo] = []

    # ----- what each source defines ---------------------------------------------------

    def source_kind(self, node) -> str:
        """How the node is named in messages and as a layer's source (``Conv2d``, ``Conv``)."""
        raise NotImplementedError

    def kind_problem(self, node) -> str | None:
        """Why the node's kind alone has no catalog equivalent; None where it may have one."""
        return None

    # ----- converting -----------------------------------------------------------------

    def value(self, key) -> Any:
        """The converted value under ``key``; Broken where its producer failed (or is unknown)."""
        value = self.values.get(key, BROKEN)
        if value is BROKEN:
            raise Broken()
        return value

    def convert_node(self, node, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` for ``node``, reported as layer ``name`` where it fails (the value is then BROKEN).

        A node whose kind has no catalog equivalent is reported even when one of
        its inputs failed; otherwise such a node is only skipped (``Broken``).
        """

        def checked():
            problem = self.kind_problem(node)
            if problem is not None:
                raise Unsupported(problem)
            return compute()

        return self.convert(name, self.source_kind(node), checked)

    def convert(self, name: str, source_kind: str, compute: Callable[[], Any]) -> Any:
        """``compute()``; on failure BROKEN, with the problem reported as layer ``name`` of ``source_kind``."""
        try:
            return compute()
        except (AlreadyReported, Broken):
            return BROKEN
        except Unsupported as error:
            # claimed: two nodes of one kind (fx's cumsum and cumsum_1) are listed by distinct names
            self.builder.unsupported(self.builder.claim_name(name), source_kind, str(error))
            return BROKEN
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            # A malformed or unexpected node: reported like an unsupported one, never a traceback.
            self.builder.unsupported(
                self.builder.claim_name(name),
                source_kind,
                f"{self.unreadable} ({type(error).__name__}: {error})",
            )
            return BROKEN

    # ----- inputs and outputs ---------------------------------------------------------

    def add_input(self, key, name: str, shape: list[int], dtype: str, form: str) -> None:
        """A project Input for a source input of Keras ``shape`` (batch excluded), held in ``form``."""
        layer = self.builder.add("Input", name, {"shape": shape, "dtype": dtype}, source_kind="input")
        if layer is None:
            self.values[key] = BROKEN
            return
        self.values[key] = Tensor(layer, form)
        self.input_infos.append(TensorInfo(name, layer, channels_first=form == CF))

    def add_output(self, label: str, key) -> None:
        """A model output, the value under ``key``: its layer, in the form a consumer of the project
        expects (unit axes kept). Nothing is reported where that value is BROKEN."""
        tensor = self.convert(label, "output", lambda: self._output_form(self.output_tensor(key), label))
        if tensor is not BROKEN:
            self.output_infos.append(TensorInfo(label, tensor.layer, channels_first=tensor.form == CF))

    def output_tensor(self, key) -> Tensor:
        """The tensor under ``key`` that a model output is; Unsupported for anything else."""
        value = self.value(key)
        if isinstance(value, Held):
            raise Unsupported(f"the output is {value!r}; the catalog's outputs keep the batch first")
        if not isinstance(value, Tensor):
            raise Unsupported("the output is a constant, not computed from the inputs")
        return value

    def _output_form(self, tensor: Tensor, label: str) -> Tensor:
        if tensor.form == SQUEEZED and tensor.ones:
            return self.graph.to_cf(tensor, label)
        if tensor.form == FLAT_CF:
            return self.graph.to_same(tensor, label)
        return tensor
