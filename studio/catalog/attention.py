"""Attention layers: MultiHeadAttention, and PositionEmbedding (keras-hub's) for transformer inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from studio.catalog.base import (
    FlopCount,
    LayerSpec,
    ParamCount,
    Shape,
    ShapeError,
    check_size,
    format_shape,
    use_bias_param,
)
from studio.catalog.params import BoolParam, FloatParam, IntParam


class MultiHeadAttention(LayerSpec):
    key = "MultiHeadAttention"
    category = "Attention"
    doc = (
        "Scaled dot-product attention with num_heads heads; one input is self-attention. "
        "value_dim is always key_dim, and num_heads * key_dim must equal the query's features. "
        "Optional masks: a padding mask input (attend where nonzero) and a causal mask."
    )
    params = (
        IntParam("num_heads", 4, "Number of attention heads.", minimum=1),
        IntParam(
            "key_dim",
            16,
            "Size of each head for query, key and value (torch: embed_dim / num_heads).",
            minimum=1,
        ),
        use_bias_param(),
        FloatParam(
            "dropout",
            0.0,
            "Dropout rate on the attention weights, in [0, 1).",
            minimum=0.0,
            maximum=1.0,
            exclusive_maximum=True,
        ),
        BoolParam(
            "padding_mask",
            False,
            "The last input is a (batch, key steps) mask, int or float: each query attends only to "
            "the keys where it is nonzero (keras-hub's padding_mask).",
        ),
        BoolParam(
            "use_causal_mask",
            False,
            "Query step i attends only to key steps 0 .. i (a decoder's self-attention).",
        ),
    )
    min_inputs = 1
    max_inputs = 4
    # The Keras call order: call(query, value, key); key defaults to value,
    # and value to query when there is a single input. With padding_mask, the mask comes last
    # (on the canvas's fourth port when all four are connected).
    input_names = ("query", "value", "key", "mask")

    def input_ports(self, params: Mapping[str, Any]) -> int | None:
        return 4 if params.get("padding_mask") else 3

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        inputs = self._check_mask(params, inputs)
        query, value, key = self._query_value_key(inputs)
        if value[0] != key[0]:
            raise ShapeError(
                f"value has shape {format_shape(value)} but key has {format_shape(key)}: "
                "value and key must have the same number of steps"
            )
        heads, key_dim = params["num_heads"], params["key_dim"]
        if heads * key_dim != query[-1]:
            raise ShapeError(
                f"num_heads * key_dim = {heads} * {key_dim} = {heads * key_dim} must equal the query's "
                f"feature size {query[-1]} (PyTorch's nn.MultiheadAttention needs "
                "embed_dim = num_heads * head_dim)"
            )
        scores = (heads, query[0], key[0])  # the attention weights, one matrix per head
        try:
            check_size(scores)
        except ShapeError as error:
            raise ShapeError(
                f"attention weights of {heads} heads x {query[0]:,} x {key[0]:,} steps {error}"
            ) from None
        return query

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        # Keras: query, key and value kernels (E, H, Dk) plus bias (H, Dk), and
        # an output kernel (H, Dk, Eq) plus bias (Eq). torch's in_proj and
        # out_proj hold the same numbers of weights when H * Dk == Eq.
        query, value, key = self._query_value_key(self._check_mask(params, inputs))
        inner = params["num_heads"] * params["key_dim"]
        bias = params["use_bias"]
        projections = sum(shape[-1] * inner + (inner if bias else 0) for shape in (query, key, value))
        output = inner * query[-1] + (query[-1] if bias else 0)
        return ParamCount(projections + output)

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # The query, key and value projections; each head's scores (q k^T) and weighted sum of the
        # values; the output projection. Element-wise: the query's 1/sqrt(key_dim) scaling, the
        # softmax over the scores (3 per score) and the bias adds.
        query, value, key = self._query_value_key(self._check_mask(params, inputs))
        heads, inner = params["num_heads"], params["num_heads"] * params["key_dim"]
        steps, sources = query[0], key[0]
        projections = (steps * query[-1] + sources * key[-1] + sources * value[-1]) * inner
        attention = 2 * steps * sources * inner
        macs = projections + attention + steps * inner * query[-1]
        biases = (steps + 2 * sources) * inner + steps * query[-1] if params["use_bias"] else 0
        return FlopCount(macs, steps * inner + 3 * heads * steps * sources + biases)

    def mask_input(self, params: Mapping[str, Any], count: int) -> int | None:
        return count - 1 if params.get("padding_mask") and count > 1 else None

    def _check_mask(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Sequence[Shape]:
        """The query, value and key inputs, after checking the padding mask (the last input) if any."""
        if not params["padding_mask"]:
            if len(inputs) > 3:
                raise ShapeError(
                    f"takes query, value and key: {len(inputs)} inputs need padding_mask=True for the last"
                )
            return inputs
        if len(inputs) < 2:
            raise ShapeError("padding_mask=True needs a mask as its last input, after the query")
        *inputs, mask = inputs
        key = inputs[2] if len(inputs) > 2 else inputs[-1]
        if len(mask) != 1 or len(key) != 2 or mask[0] != key[0]:
            raise ShapeError(
                f"the padding mask must be (None, key steps) = (None, {key[0] if len(key) == 2 else '?'}), "
                f"but received {format_shape(mask)}"
            )
        return inputs

    def _query_value_key(self, inputs: Sequence[Shape]) -> tuple[Shape, Shape, Shape]:
        for name, shape in zip(self.input_names, inputs, strict=False):
            if len(shape) != 2:
                raise ShapeError(
                    f"expects a {name} of rank 3 (batch included), (None, steps, features), "
                    f"but received {format_shape(shape)}"
                )
        query = inputs[0]
        value = inputs[1] if len(inputs) > 1 else query
        key = inputs[2] if len(inputs) > 2 else value
        return query, value, key


class PositionEmbedding(LayerSpec):
    """keras-hub's PositionEmbedding: the first ``steps`` rows of a learned (sequence_length, features) table.

    Its input only gives the shape: the output is the table's rows for positions
    0 .. steps-1, the same for every sample, to be added to the input.
    """

    key = "PositionEmbedding"
    category = "Attention"
    doc = (
        "A learned vector per position 0 .. steps-1, of the input's features; add it to the input "
        "(keras-hub's PositionEmbedding: the Keras code needs keras_hub)."
    )
    params = (
        IntParam(
            "sequence_length", 512, "Positions it has a vector for: the input's steps at most.", minimum=1
        ),
    )

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        (shape,) = inputs
        if len(shape) != 2:
            raise ShapeError(
                f"expects a (None, steps, features) sequence, but received {format_shape(shape)}"
            )
        if shape[0] > params["sequence_length"]:
            raise ShapeError(
                f"the input has {shape[0]} steps, more than sequence_length={params['sequence_length']}; "
                f"received {format_shape(shape)}"
            )
        return shape

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        return ParamCount(params["sequence_length"] * inputs[0][-1])


SPECS = (MultiHeadAttention(), PositionEmbedding())
