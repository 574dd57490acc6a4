"""MultiHeadAttention; keras-hub's PositionEmbedding, and its composite layers expanded on import.

Keras calls ``(query, value, key)``, PyTorch ``(query, key, value)``. Keras
keeps per-head projection kernels ``(in, heads, key_dim)``; PyTorch packs
them into ``in_proj_weight`` (or separate ``q/k/v_proj_weight`` when the key
and value widths differ from the query's).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codegen.layers.base import (
    CL,
    SAME,
    Arrays,
    KerasContext,
    KerasLayer,
    KerasPart,
    Lowering,
    Mapped,
    State,
    Tensor,
    TorchCode,
    Unsupported,
    glorot_uniform,
    use_bias_arg,
    zeros,
)
from codegen.layers.core import dense_layer, matmul_layer
from codegen.layers.folded import on_last_axes
from codegen.layers.keras_config import KerasCall, require
from codegen.layers.normalization import affine_layer, is_learned
from codegen.layers.reshaping import (
    GATHERED_TABLE_NOTE,
    Folded,
    crop_layer,
    rescaling_layer,
    roll_layers,
    torch_shape_arithmetic,
    transpose,
)
from codegen.layers.torch_source import Multi, array, describe, resolve
from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan


def query_value_key(inputs: list[str]) -> tuple[str, str, str]:
    """The query, value and key of a call (value defaults to the query, key to the value)."""
    query = inputs[0]
    value = inputs[1] if len(inputs) > 1 else query
    key = inputs[2] if len(inputs) > 2 else value
    return query, value, key


def split_mask(layer: LayerPlan, items: list):
    """A layer's inputs (names or shapes) as (query, value, key items; the padding mask or None)."""
    if layer.params.get("padding_mask"):
        return list(items[:-1]), items[-1]
    return list(items), None


def _attention_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    params = layer.params
    args = [f"num_heads={params['num_heads']}", f"key_dim={params['key_dim']}"]
    if params["dropout"]:
        args.append(f"dropout={py(params['dropout'])}")
    inputs, mask = split_mask(layer, sources)
    query, value, key = query_value_key(inputs)
    call = [query, value] if key == value else [query, value, key]
    if mask is not None:
        # (batch, 1, key steps): the same keys for every query, as keras-hub's padding_mask.
        call.append(f"attention_mask=keras.ops.expand_dims(keras.ops.not_equal({mask}, 0), 1)")
    if params["use_causal_mask"]:
        call.append("use_causal_mask=True")
    return KerasLayer("layers.MultiHeadAttention", args + use_bias_arg(layer), f"({', '.join(call)})")


# Keras 3 masks by replacement, and what a query whose keys are all masked gets depends on
# the path: with dropout its Softmax zeroes the row (the output is out_proj's bias), without
# it dot_product_attention puts -1e9 there (uniform weights). Torch's boolean masks give NaN.
# The PyTorch code adds -1e30, which absorbs any float32 score (masked keys get weight 0, a fully
# masked row is uniform), and with dropout replaces fully masked rows by the bias.
MASK_COMMENT = (
    "# Masked scores + -1e30 (Keras replaces them): weight 0, and a query with no key left "
    "attends uniformly, as Keras without dropout (a boolean torch mask would give NaN)."
)
ZERO_ROWS_COMMENT = (
    "# Keras's Softmax (used with dropout) gives a query with no key left zero weights: the bias."
)


def _attention_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    params = layer.params
    shapes, _ = split_mask(layer, layer.input_shapes)
    embed = shapes[0][-1]
    value_dim = shapes[1][-1] if len(shapes) > 1 else embed
    key_dim = shapes[2][-1] if len(shapes) > 2 else value_dim
    args = [str(embed), str(params["num_heads"])]
    if params["dropout"]:
        args.append(f"dropout={py(params['dropout'])}")
    if not params["use_bias"]:
        args.append("bias=False")
    if key_dim != embed:
        args.append(f"kdim={key_dim}")
    if value_dim != embed:
        args.append(f"vdim={value_dim}")
    args.append("batch_first=True")
    inputs, mask = split_mask(layer, xs)
    query, value, key = query_value_key(inputs)
    masked = _masked(layer, query, mask, (shapes[0][0], shapes[-1][0]))
    # Keras calls (query, value, key); torch takes (query, key, value).
    call = f"self.{layer.ident}({query}, {key}, {value}{{}}, need_weights=False)"
    if masked is None:
        return TorchCode(("nn.MultiheadAttention", args), [("{ident}, _", call.format(""))])
    additive = f"{masked}.to({query}.dtype) * -1e30"
    if not params["use_causal_mask"]:
        argument = ", key_padding_mask={ident}"
    elif mask is None:
        argument = ", attn_mask={ident}"
    else:  # (batch, query steps, key steps): torch takes one per head, heads within each sample
        additive = f"({additive}).repeat_interleave({params['num_heads']}, dim=0)"
        argument = ", attn_mask={ident}"
    steps = [MASK_COMMENT, additive, ("{ident}, _", call.format(argument))]
    if params["dropout"] and mask is not None:
        empty = f"{masked}.all(-1)" + ("[..., None]" if params["use_causal_mask"] else "[:, None, None]")
        bias = f"self.{layer.ident}.out_proj.bias" if params["use_bias"] else "0.0"
        steps += [ZERO_ROWS_COMMENT, f"torch.where({empty}, {bias}, {{ident}})"]
    return TorchCode(("nn.MultiheadAttention", args), steps)


def _masked(layer: LayerPlan, query: str, mask: str | None, steps: tuple[int, int]) -> str | None:
    """A boolean expression, True where a score is masked: (batch, key steps) for a padding mask,
    (query steps, key steps) for the causal one, (batch, query steps, key steps) for both."""
    causal = layer.params["use_causal_mask"]
    if mask is None and not causal:
        return None
    padding = f"{mask}.eq(0)"
    if not causal:
        return padding
    later = f"torch.ones({steps[0]}, {steps[1]}, dtype=torch.bool, device={query}.device).triu(1)"
    return later if mask is None else f"({padding}[:, None, :] | {later})"


def _attention_keras_init(layer: LayerPlan) -> list[str]:
    """Keras's glorot_uniform over each projection kernel, zero biases. Keras's einsum kernels take
    their fans from the flattened input and output: (width, heads * key_dim), (heads * key_dim, embed)."""
    shapes, _ = split_mask(layer, layer.input_shapes)
    embed, heads = shapes[0][-1], layer.params["num_heads"]
    key_dim = layer.params["key_dim"]
    value_dim = shapes[1][-1] if len(shapes) > 1 else embed
    widths = {"q": embed, "k": shapes[2][-1] if len(shapes) > 2 else value_dim, "v": value_dim}
    packed = widths["k"] == embed and widths["v"] == embed
    lines = []
    for index, (name, width) in enumerate(widths.items()):
        target = (
            f"self.{{ident}}.in_proj_weight[{index * heads * key_dim}:{(index + 1) * heads * key_dim}]"
            if packed
            else f"self.{{ident}}.{name}_proj_weight"
        )
        lines.append(glorot_uniform(target, (width, heads * key_dim)))
    lines.append(glorot_uniform("self.{ident}.out_proj.weight", (heads * key_dim, embed)))
    if layer.params["use_bias"]:
        lines += [zeros("self.{ident}.in_proj_bias"), zeros("self.{ident}.out_proj.bias")]
    return lines


def _attention_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    use_bias = layer.params["use_bias"]
    step = 2 if use_bias else 1
    query, key, value, output = (weights[i * step : (i + 1) * step] for i in range(4))
    embed = output[0].shape[-1]

    def projection(pair: Arrays) -> np.ndarray:
        kernel = pair[0]  # (in, heads, key_dim) -> (heads*key_dim, in)
        return kernel.reshape(kernel.shape[0], -1).T

    state = {}
    if key[0].shape[0] == embed and value[0].shape[0] == embed:
        state["in_proj_weight"] = np.concatenate([projection(query), projection(key), projection(value)])
    else:
        state["q_proj_weight"] = projection(query)
        state["k_proj_weight"] = projection(key)
        state["v_proj_weight"] = projection(value)
    out_kernel = output[0]  # (heads, key_dim, embed) -> (embed, heads*key_dim)
    state["out_proj.weight"] = out_kernel.reshape(-1, embed).T
    if use_bias:
        state["in_proj_bias"] = np.concatenate(
            [query[1].reshape(-1), key[1].reshape(-1), value[1].reshape(-1)]
        )
        state["out_proj.bias"] = output[1]
    return state


# ----- PositionEmbedding -------------------------------------------------------------------
# Keras has no built-in layer for it: the Keras code uses keras-hub's. PyTorch looks the
# positions 0 .. steps-1 up in an nn.Embedding of the same table.


def _position_keras(layer: LayerPlan, sources: list[str]) -> KerasLayer:
    return KerasLayer(
        "keras_hub.layers.PositionEmbedding", [f"sequence_length={layer.params['sequence_length']}"]
    )


def _position_torch(layer: LayerPlan, xs: list[str]) -> TorchCode:
    steps, features = layer.input_shapes[0]
    module = ("nn.Embedding", [str(layer.params["sequence_length"]), str(features)])
    positions = f"torch.arange({steps}, device={xs[0]}.device)"
    comment = "# keras-hub's PositionEmbedding: rows 0 .. steps-1 of the table, the same for every sample."
    return TorchCode(module, [f"self.{layer.ident}({positions}).expand_as({xs[0]})"], init=[comment])


def _position_weights(layer: LayerPlan, weights: Arrays, plan: ModelPlan) -> State:
    return {"weight": weights[0]}  # (sequence_length, features) in both


def _position_keras_init(layer: LayerPlan) -> list[str]:
    """keras-hub initialises the table with glorot_uniform."""
    return [glorot_uniform("self.{ident}.weight", (layer.params["sequence_length"], layer.shape[-1]))]


LOWERINGS = (
    Lowering(
        "MultiHeadAttention",
        _attention_keras,
        _attention_torch,
        CL,
        weights=_attention_weights,
        keras_init=_attention_keras_init,
    ),
    Lowering(
        "PositionEmbedding",
        _position_keras,
        _position_torch,
        CL,
        weights=_position_weights,
        keras_init=_position_keras_init,
    ),
)


# ----- Keras import: class + config -> params ------------------------------------------------


def _attention_from_keras(cfg, context) -> Mapped:
    key_dim = int(cfg["key_dim"])
    value_dim = cfg.get("value_dim")
    if value_dim is not None and int(value_dim) != key_dim:
        raise Unsupported(f"value_dim={value_dim} differs from key_dim={key_dim} (the catalog uses key_dim)")
    if cfg.get("output_shape") is not None:
        raise Unsupported(f"output_shape={cfg['output_shape']!r}: the output has the query's features")
    axes = cfg.get("attention_axes")
    if axes is not None and list(axes) not in ([1], [-2]):
        raise Unsupported(f"attention_axes={axes!r}: the catalog attends over the steps axis only")
    require(cfg, "use_gate", False, "the catalog's MultiHeadAttention has no gate")
    if cfg.get("sliding_window") is not None:
        raise Unsupported(f"sliding_window={cfg['sliding_window']!r}: the catalog attends over all steps")
    return Mapped(
        "MultiHeadAttention",
        {
            "num_heads": int(cfg["num_heads"]),
            "key_dim": key_dim,
            "use_bias": bool(cfg.get("use_bias", True)),
            "dropout": float(cfg.get("dropout", 0.0)),
            "padding_mask": bool(context.call.get("padding_mask", False)),
            "use_causal_mask": bool(context.call.get("use_causal_mask", False)),
        },
    )


def _position_from_keras(cfg, context) -> Mapped:
    return Mapped("PositionEmbedding", {"sequence_length": int(cfg["sequence_length"])})


def _reversible_embedding_from_keras(cfg, context) -> Mapped:
    """keras-hub's ReversibleEmbedding called forwards (token ids -> vectors) is an Embedding."""
    if cfg.get("mask_zero"):
        raise Unsupported("mask_zero=True: masks have no catalog (or PyTorch) equivalent")
    if not cfg.get("tie_weights", True):
        raise Unsupported(
            "tie_weights=False: its reverse_embeddings (used only by reverse=True calls) have no place "
            "in the catalog's Embedding"
        )
    if cfg.get("logit_soft_cap") is not None:
        raise Unsupported(f"logit_soft_cap={cfg['logit_soft_cap']!r}: only reverse calls use it")
    return Mapped("Embedding", {"input_dim": int(cfg["input_dim"]), "output_dim": int(cfg["output_dim"])})


KERAS_CLASSES: dict = {
    "MultiHeadAttention": _attention_from_keras,
    "PositionEmbedding": _position_from_keras,
    "ReversibleEmbedding": _reversible_embedding_from_keras,
}

# The inverse of ``query_value_key``: Keras may pass the inputs by keyword; a key equal to the
# value, or a value equal to the query, is the default and left out. The flags it cannot take.
KERAS_CALLS = {
    "MultiHeadAttention": KerasCall(
        ("query", "value", "key"),
        flags=("return_attention_scores",),
        options=("use_causal_mask",),
        mask="attention_mask",  # the padding mask as the Keras program passes it (the importer's _mask_op)
    ),
    "PositionEmbedding": KerasCall(("inputs",), flags=("start_index",)),  # positions from 0 only
    "ReversibleEmbedding": KerasCall(("inputs",), flags=("reverse",)),  # the forward lookup only
    "TransformerEncoder": KerasCall(("inputs",), flags=("return_attention_scores",), mask="padding_mask"),
    "TokenAndPositionEmbedding": KerasCall(("inputs",), flags=("start_index",)),
    "TransformerDecoder": KerasCall(
        ("decoder_sequence",),
        flags=("return_attention_scores",),
        options=("use_causal_mask",),
        mask="decoder_padding_mask",
    ),
}


# ----- keras-hub composite layers: expanded into their sublayers on import --------------------
# Each part is the sublayer as keras-hub builds it (same name, same config), so that its
# weights are that sublayer's and the families' Keras mappings read it.


def _transformer_encoder(cfg, context: KerasContext) -> list[KerasPart]:
    """keras-hub's TransformerEncoder: self-attention and a feed-forward block, each with a residual
    Add and a LayerNormalization after it (before it with normalize_first)."""
    return _transformer_block(cfg, context, "self_attention_layer", causal=False)


def _transformer_decoder(cfg, context: KerasContext) -> list[KerasPart]:
    """keras-hub's TransformerDecoder without cross-attention (GPT-2's): the encoder's block with a
    causal self-attention (unless called with use_causal_mask=False), its sublayer named self_attention.
    Cross-attention takes ``encoder_sequence``, a call argument the importer refuses by name."""
    if cfg.get("encoder_sequence_shape") is not None:
        raise Unsupported(
            "it has a cross-attention (encoder_sequence_shape is set); the catalog expands "
            "decoders without one"
        )
    return _transformer_block(
        cfg, context, "self_attention", causal=context.call.get("use_causal_mask", True)
    )


def _transformer_block(cfg, context: KerasContext, attention: str, causal: bool) -> list[KerasPart]:
    shape = context.shapes[0] if context.shapes else None
    if not shape or shape[-1] is None:
        raise Unsupported("its input's features are unknown (the config records no input shape)")
    hidden = int(shape[-1])  # keras-hub takes it from the input
    heads, dropout = int(cfg["num_heads"]), float(cfg.get("dropout", 0.0))
    if heads < 1:
        raise Unsupported(f"num_heads={heads}: expected a positive number of heads")
    norm = {"epsilon": float(cfg.get("layer_norm_epsilon", 1e-5)), "axis": -1}
    first = bool(cfg.get("normalize_first", False))
    parts: list[KerasPart] = []

    def add(name, class_name, config, *inputs):
        parts.append(KerasPart(name, class_name, config, inputs or (parts[-1].name if parts else "",)))
        return name

    if first:
        add("self_attention_layer_norm", "LayerNormalization", norm, "")
    attention_config = {"num_heads": heads, "key_dim": hidden // heads, "dropout": dropout}
    # keras-hub merges the padding mask to (batch, 1, steps), and the causal mask with it, as the catalog's.
    masked = bool(context.call.get("padding_mask"))
    previous = parts[-1].name if parts else ""
    mask_call = {"padding_mask": masked, "use_causal_mask": causal}
    attention_inputs = (previous, "padding_mask") if masked else (previous,)
    parts.append(KerasPart(attention, "MultiHeadAttention", attention_config, attention_inputs, mask_call))
    add("self_attention_dropout", "Dropout", {"rate": dropout})
    residual = add("self_attention_add", "Add", {}, "self_attention_dropout", "")
    if not first:
        residual = add("self_attention_layer_norm", "LayerNormalization", norm)
    if first:
        add("feedforward_layer_norm", "LayerNormalization", norm)
    intermediate = {"units": int(cfg["intermediate_dim"]), "activation": cfg.get("activation", "relu")}
    add("feedforward_intermediate_dense", "Dense", intermediate)
    add("feedforward_output_dense", "Dense", {"units": hidden})
    add("feedforward_dropout", "Dropout", {"rate": dropout})
    add("feedforward_add", "Add", {}, "feedforward_dropout", residual)
    if not first:
        add("feedforward_layer_norm", "LayerNormalization", norm)
    return parts


def _token_and_position_embedding(cfg, context: KerasContext) -> list[KerasPart]:
    """keras-hub's TokenAndPositionEmbedding: token vectors plus position vectors."""
    if cfg.get("mask_zero"):
        raise Unsupported("mask_zero=True: masks have no catalog (or PyTorch) equivalent")
    token = {
        "input_dim": int(cfg["vocabulary_size"]),
        "output_dim": int(cfg["embedding_dim"]),
        "tie_weights": cfg.get("tie_weights", True),
    }
    return [
        KerasPart("token_embedding", "ReversibleEmbedding", token),
        KerasPart(
            "position_embedding",
            "PositionEmbedding",
            {"sequence_length": int(cfg["sequence_length"])},
            ("token_embedding",),
        ),
        KerasPart("add", "Add", {}, ("token_embedding", "position_embedding")),
    ]


def _vit_patching_and_embedding(cfg, context: KerasContext) -> list[KerasPart]:
    """keras-hub's ViTPatchingAndEmbedding: a patch Conv2D, the patches as a sequence, the class
    token before them, then learned position vectors added."""
    if cfg.get("data_format") not in (None, "channels_last"):
        raise Unsupported(f"data_format={cfg['data_format']!r}; the catalog is channels-last")
    image, patch = tuple(int(v) for v in cfg["image_size"]), tuple(int(v) for v in cfg["patch_size"])
    hidden = int(cfg["hidden_dim"])
    patches = (image[0] // patch[0]) * (image[1] // patch[1])
    conv = {
        "filters": hidden,
        "kernel_size": patch,
        "strides": patch,
        "use_bias": cfg.get("use_patch_bias", True),
    }
    parts = [
        KerasPart("patch_embedding", "Conv2D", conv),
        KerasPart("patches", "Reshape", {"target_shape": (patches, hidden)}, ("patch_embedding",)),
    ]
    if cfg.get("use_class_token", True):
        parts.append(KerasPart("class_token", "ClassToken", {}, ("patches",)))
    tokens = parts[-1].name
    positions = {"sequence_length": patches + (tokens == "class_token")}
    return [
        *parts,
        KerasPart("position_embedding", "PositionEmbedding", positions, (tokens,)),
        KerasPart("add", "Add", {}, (tokens, "position_embedding")),
    ]


def _vit_encoder(cfg, context: KerasContext) -> list[KerasPart]:
    """keras-hub's ViTEncoder: pre-norm transformer blocks (attention, then a gelu MLP, each added
    to its input) and a final LayerNormalization, named as its sublayers are."""
    hidden, heads = int(cfg["hidden_dim"]), int(cfg["num_heads"])
    if heads < 1 or hidden % heads:
        raise Unsupported(f"num_heads={heads} does not divide hidden_dim={hidden}")
    rate = {"rate": float(cfg.get("dropout_rate", 0.0))}
    norm = {"epsilon": float(cfg.get("layer_norm_epsilon", 1e-6)), "axis": -1}
    attention = {
        "num_heads": heads,
        "key_dim": hidden // heads,
        "use_bias": cfg.get("use_mha_bias", True),
        "dropout": float(cfg.get("attention_dropout", 0.0)),
    }
    mlp_bias = cfg.get("use_mlp_bias", True)
    parts = [KerasPart("dropout", "Dropout", rate)]
    previous = "dropout"
    for index in range(1, int(cfg["num_layers"]) + 1):
        block = f"transformer_block_{index}"
        parts += [
            KerasPart(f"{block}/ln_1", "LayerNormalization", norm, (previous,)),
            KerasPart(f"{block}/mha", "MultiHeadAttention", attention, (f"{block}/ln_1",)),
            KerasPart(f"{block}/dropout", "Dropout", rate, (f"{block}/mha",)),
            KerasPart(f"{block}/attention_add", "Add", {}, (f"{block}/dropout", previous)),
            KerasPart(f"{block}/ln_2", "LayerNormalization", norm, (f"{block}/attention_add",)),
            KerasPart(
                f"{block}/mlp/dense_1",
                "Dense",
                {"units": int(cfg["mlp_dim"]), "activation": "gelu", "use_bias": mlp_bias},
                (f"{block}/ln_2",),
            ),
            KerasPart(f"{block}/mlp/dropout", "Dropout", rate, (f"{block}/mlp/dense_1",)),
            KerasPart(
                f"{block}/mlp/dense_2",
                "Dense",
                {"units": hidden, "use_bias": mlp_bias},
                (f"{block}/mlp/dropout",),
            ),
            KerasPart(f"{block}/mlp/dropout_out", "Dropout", rate, (f"{block}/mlp/dense_2",)),
            KerasPart(f"{block}/mlp_add", "Add", {}, (f"{block}/attention_add", f"{block}/mlp/dropout_out")),
        ]
        previous = f"{block}/mlp_add"
    return [*parts, KerasPart("ln", "LayerNormalization", norm, (previous,))]


KERAS_COMPOSITES: dict = {
    "ViTPatchingAndEmbedding": _vit_patching_and_embedding,
    "ViTEncoder": _vit_encoder,
    "TransformerEncoder": _transformer_encoder,
    "TransformerDecoder": _transformer_decoder,
    "TokenAndPositionEmbedding": _token_and_position_embedding,
}


# ----- channels-first sources (PyTorch, ONNX): source weights and layout -> layers ------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


# ----- PyTorch import: module, function, tensor method -> layers -------------------------------


def _torch_attention(walker, node, module, name):
    if not module._qkv_same_embed_dim:
        raise Unsupported(
            "kdim or vdim differ from embed_dim; the catalog's projections have the query's size"
        )
    if module.bias_k is not None or module.add_zero_attn:
        raise Unsupported("add_bias_kv or add_zero_attn have no catalog equivalent")
    # forward(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal)
    arguments = dict(zip(_TORCH_ATTENTION_ARGUMENTS, node.args, strict=False)) | dict(node.kwargs)
    attn_mask = arguments.get("attn_mask")
    causal = attn_mask is not None and _is_causal_mask(walker.value(attn_mask))
    if attn_mask is not None and not causal:
        raise Unsupported(
            "is given an attn_mask other than the causal one (-inf or True above the diagonal); the "
            "importer reads that and key_padding_mask (`mask == 0`): another (query, key) mask has no "
            "catalog equivalent"
        )
    moved = {}  # one tensor per distinct argument: self-attention stays one input
    for argument in node.args[:3]:
        if argument not in moved:
            moved[argument] = walker.graph.to_same(_batch_first(walker, argument, module, name), name)
    query, key, value = (moved[argument] for argument in node.args[:3])
    sources = [query, value, key]  # Keras's call order
    if key == value:
        sources = sources[:2]
        if value == query:
            sources = sources[:1]
    padding = arguments.get("key_padding_mask")
    if padding is not None:
        mask = walker.value(padding)
        if not isinstance(mask, ZeroMask):
            raise Unsupported(
                "is given a key_padding_mask that is not `mask == 0` of a computed tensor: the catalog's "
                "padding mask attends where its input is nonzero"
            )
        sources.append(walker.graph.to_same(mask.tensor, name))
    heads = module.num_heads
    weights = _attention_weights(
        module.in_proj_weight, module.in_proj_bias, module.out_proj, heads, module.embed_dim // heads
    )
    params = {
        "num_heads": heads,
        "key_dim": module.embed_dim // heads,
        "use_bias": module.in_proj_bias is not None,
        "dropout": float(module.dropout),
        "padding_mask": padding is not None,
        "use_causal_mask": causal,
    }
    tensor = walker.graph.add(
        "MultiHeadAttention", name, sources, params, weights, source_kind="MultiheadAttention", form=SAME
    )
    if not module.batch_first:  # (N, L, E) back to the source's (L, N, E); no attention weights
        return transpose(
            walker.graph, tensor, (1, 0, 2), f"{name}_sequence_first", "MultiheadAttention"
        ), None
    return Multi(_AttentionOutputs(tensor))


def _is_causal_mask(mask) -> bool:
    """A constant (steps, steps) mask that hides exactly the later keys: True, or a large negative
    number (-inf, -1e30: a softmax weight of exactly 0 in float32, as Keras's causal mask gives),
    above the diagonal, and False or 0 elsewhere."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    later = np.triu(np.ones(mask.shape, dtype=bool), 1)
    if mask.dtype == bool:
        return bool(np.array_equal(mask, later))
    return bool(np.all(mask[later] <= -1e9) and np.all(mask[~later] == 0))


def _batch_first(walker, argument, module, name: str) -> Tensor:
    """An input of the attention, (N, L, E): with ``batch_first=False`` the source passes (L, N, E),
    a tensor whose batch was moved (``x.transpose(0, 1)``), moved back here."""
    if module.batch_first:
        return walker.tensor(argument)
    value = walker.value(argument)
    if isinstance(value, Folded):
        value = transpose(walker.graph, value, (1, 0, 2), f"{name}_batch_first", "MultiheadAttention")
    if not isinstance(value, Tensor):
        raise Unsupported(
            "batch_first=False with (L, N, E) inputs whose batch is not axis 1 of a tensor the model "
            "computed; the catalog's sequences are (batch, steps, features)"
        )
    return value


def _attention_weights(in_weight, in_bias, out_proj, heads: int, head_dim: int) -> list[np.ndarray]:
    """Keras's MultiHeadAttention weights from torch's stacked projection: rows [query; key; value],
    each head after head (nn.MultiheadAttention's in_proj, timm's qkv), then the output projection."""
    w_in, b_in = array(in_weight), array(in_bias)
    size, embed = heads * head_dim, w_in.shape[1]
    weights = []
    for index in range(3):  # query, key, value, in Keras's weight order
        weights.append(w_in[index * size : (index + 1) * size].T.reshape(embed, heads, head_dim))
        if b_in is not None:
            weights.append(b_in[index * size : (index + 1) * size].reshape(heads, head_dim))
    weights.append(array(out_proj.weight).T.reshape(heads, head_dim, out_proj.out_features))
    if out_proj.bias is not None:
        weights.append(array(out_proj.bias))
    return weights


def _timm_attention(walker, node, module, name):
    """timm's ``Attention`` (ViT, DeiT, EVA...): one Linear ``qkv`` split per head, scaled dot-product
    attention, one Linear ``proj``. Taken whole (the tracer keeps it a leaf), it is the catalog's
    MultiHeadAttention with the same weights, where nothing in it differs from plain attention."""
    torch = walker.torch
    arguments = dict(zip(("x", "attn_mask", "is_causal"), node.args, strict=False)) | dict(node.kwargs)
    if arguments.get("attn_mask") is not None or arguments.get("is_causal"):
        raise Unsupported("is given attn_mask or is_causal; the importer reads plain self-attention")
    identity = (torch.nn.Identity, type(None))
    for part in ("q_norm", "k_norm", "norm"):
        if not isinstance(getattr(module, part, None), identity):
            raise Unsupported(
                f"{part} is {type(getattr(module, part)).__name__}; the catalog's attention has none"
            )
    if getattr(module, "gate", None) is not None:
        raise Unsupported("gated=True: the catalog's attention has no output gate")
    heads, head_dim = int(module.num_heads), int(module.head_dim)
    qkv, proj = module.qkv, module.proj
    if abs(float(module.scale) - head_dim**-0.5) > 1e-12 * head_dim**-0.5:
        raise Unsupported(f"scale={module.scale}; the catalog's attention scales by 1/sqrt(head_dim)")
    x = walker.graph.to_same(walker.tensor(arguments["x"]), name)
    embed = walker.graph.source_shape(x)[-1]
    if proj.out_features != embed:
        raise Unsupported(f"projects to {proj.out_features} features; the catalog's attention keeps {embed}")
    if (qkv.bias is None) != (proj.bias is None):
        raise Unsupported("qkv and proj differ in having a bias; the catalog's use_bias sets both")
    params = {
        "num_heads": heads,
        "key_dim": head_dim,
        "use_bias": qkv.bias is not None,
        "dropout": float(module.attn_drop.p),
    }
    weights = _attention_weights(qkv.weight, qkv.bias, proj, heads, head_dim)
    return walker.graph.add(
        "MultiHeadAttention", name, [x], params, weights, source_kind="Attention", form=SAME
    )


@dataclass(frozen=True)
class _AttentionOutputs:
    """``attn_output, attn_weights``: the catalog's layer gives the first."""

    tensor: Tensor

    def resolve(self, path: tuple) -> Tensor:
        if path == (0,):
            return self.tensor
        raise Unsupported("uses the attention weights; the catalog's attention returns its output only")


_TORCH_ATTENTION_ARGUMENTS = (
    "query",
    "key",
    "value",
    "key_padding_mask",
    "need_weights",
    "attn_mask",
    "average_attn_weights",
    "is_causal",
)


@dataclass(frozen=True)
class ZeroMask:
    """``t == 0`` of a computed tensor ``t``: as nn.MultiheadAttention's key_padding_mask (True = masked)
    it is the catalog's padding mask ``t`` (attend where nonzero). Nothing else takes it."""

    tensor: Tensor

    def __repr__(self) -> str:
        return "a boolean `== 0` mask, which only nn.MultiheadAttention's key_padding_mask takes"


_SIZES_EQUAL = torch_shape_arithmetic(operator.eq)


def _torch_zero_mask(walker, node, name):
    """``t == 0`` / ``t.eq(0)`` / ``torch.eq(t, 0)``: a padding mask for attention, nothing more.
    Two sizes that tracing left in the graph (``h == self.image_size``) compare at import."""
    if not any(isinstance(walker.value(arg), Tensor) for arg in node.args):
        return _SIZES_EQUAL(walker, node, name)
    other = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
    if isinstance(other, bool) or not isinstance(other, (int, float)) or other != 0:
        raise Unsupported(
            f"compares with {other!r}: only `mask == 0`, as nn.MultiheadAttention's key_padding_mask, is read"
        )
    return ZeroMask(walker.tensor(node.args[0]))


@on_last_axes(2)  # per position of the leading axes: Swin's and MaxViT's windows folded in the batch
def _torch_scaled_dot_product(walker, node, name):
    """``F.scaled_dot_product_attention(q, k, v)`` written out in catalog layers: a Rescaling of q by
    ``scale`` (1/sqrt(head_dim) by default), q @ k^T as a Permute and a MatMul, the mask added (a
    float mask as it is, a boolean one and ``is_causal`` as -inf where they hide a key), a softmax,
    a Dropout (where ``dropout_p`` > 0) and the MatMul by v. Grouped-query attention is refused."""
    keys = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    arguments = dict(zip(keys, node.args, strict=False)) | dict(node.kwargs)
    if walker.value(arguments.get("enable_gqa", False)):
        raise Unsupported(
            "enable_gqa is given; the importer writes out attention with as many keys as queries"
        )
    graph, kind = walker.graph, walker.source_kind(node)
    query, key, value = (graph.to_same(walker.tensor(arguments[part]), name) for part in keys[:3])
    scale = walker.value(arguments.get("scale"))
    scale = float(graph.source_shape(query)[-1] ** -0.5 if scale is None else scale)
    rate = walker.value(arguments.get("dropout_p"))
    offsets = []
    mask = resolve(walker.value(arguments.get("attn_mask")))
    if isinstance(mask, Tensor):  # a bias the model computes: added to the scores
        offsets.append(mask)
    elif isinstance(mask, np.ndarray):
        hides = mask.dtype == bool
        weight = np.where(mask, 0.0, -np.inf).astype(np.float32) if hides else mask.astype(np.float32)
        offsets.append((weight, not hides and is_learned(walker, arguments["attn_mask"])))
    elif mask is not None:
        raise Unsupported(f"attn_mask is {describe(mask)}; the importer adds a tensor or a constant")
    if walker.value(arguments.get("is_causal", False)):
        queries, keys_length = graph.source_shape(query)[-2], graph.source_shape(key)[-2]
        hidden = np.triu(np.ones((queries, keys_length), dtype=bool), 1)  # torch's: the later keys
        offsets.append((np.where(hidden, -np.inf, 0.0).astype(np.float32), False))
    return _written_attention(graph, (query, key, value), scale, rate, name, kind, offsets)


def _written_attention(
    graph, qkv: tuple[Tensor, Tensor, Tensor], scale: float, rate, name: str, kind: str, offsets=()
) -> Tensor:
    """softmax(q * scale @ k^T + offsets) @ v in catalog layers, over the last two axes: a Rescaling,
    a Permute of k and a MatMul, an Affine per ``(weight, trainable)`` offset and an Add per tensor
    offset, the softmax, a Dropout where ``rate`` > 0, and the MatMul by v."""
    query, key, value = qkv
    rank = len(graph.source_shape(query)) + 1
    query = rescaling_layer(graph, query, name, kind, "Multiply", scale, tensor_first=True)
    swapped = [*range(rank - 2), rank - 1, rank - 2]
    scores = matmul_layer(graph, query, transpose(graph, key, swapped, name, kind), name, kind)
    for offset in offsets:
        if isinstance(offset, Tensor):
            scores = graph.merge("Add", [scores, graph.to_same(offset, name)], name, kind)
        else:
            weight, trainable = offset
            scores = affine_layer(graph, scores, name, kind, "Add", weight, True, trainable=trainable)
    weights = graph.add("Activation", name, [scores], {"activation": "softmax"}, source_kind=kind, form=SAME)
    return matmul_layer(graph, _dropout(graph, weights, rate, name, kind), value, name, kind)


def _dropout(graph, x: Tensor, rate, name: str, kind: str) -> Tensor:
    """A Dropout layer where a written-out attention drops (rate > 0); else ``x``."""
    rate = float(rate or 0.0)
    return graph.add("Dropout", name, [x], {"rate": rate}, source_kind=kind, form=SAME) if rate else x


# ----- torchvision's Swin Transformer, written out in catalog layers -------------------------------
# torchvision wraps its window functions (torch.fx.wrap), so tracing records each as one call. Each
# is rebuilt here from catalog layers that keep the batch apart: the windows become an axis of their
# own, (N, windows, window area, C), where torchvision folds them into the batch.


def _window_mask(height: int, width: int, window: list[int], shift: list[int]) -> np.ndarray:
    """torchvision's shifted-window mask, (windows, 1, area, area): -100 between regions, else 0."""
    regions = np.zeros((height, width), np.float32)
    count = 0
    for top, bottom in ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None)):
        for left, right in ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None)):
            regions[top:bottom, left:right] = count
            count += 1
    rows, columns = height // window[0], width // window[1]
    regions = regions.reshape(rows, window[0], columns, window[1]).transpose(0, 2, 1, 3)
    regions = regions.reshape(rows * columns, window[0] * window[1])
    differences = regions[:, None, :] - regions[:, :, None]
    return np.where(differences != 0, np.float32(-100.0), np.float32(0.0))[:, None]


def _torch_shifted_window_attention(walker, node, name):
    """``shifted_window_attention``: pad to whole windows, roll, windows apart, attention per window
    (with the relative position bias and, when shifted, the region mask), windows back, roll back,
    crop. Swin V2's cosine attention (``logit_scale``) is refused by name."""
    keys = (
        "input",
        "qkv_weight",
        "proj_weight",
        "relative_position_bias",
        "window_size",
        "num_heads",
        "shift_size",
        "attention_dropout",
        "dropout",
        "qkv_bias",
        "proj_bias",
        "logit_scale",
        "training",
    )
    arguments = {key: walker.value(value) for key, value in zip(keys, node.args, strict=False)}
    arguments |= {key: walker.value(value) for key, value in node.kwargs.items()}
    if arguments.get("logit_scale") is not None:
        raise Unsupported("logit_scale is given (Swin V2's cosine attention); the importer writes Swin V1's")
    graph, kind = walker.graph, "shifted_window_attention"
    x = graph.to_same(walker.tensor(node.args[0]), name)
    height, width, channels = graph.source_shape(x)
    window, heads = [int(size) for size in arguments["window_size"]], int(arguments["num_heads"])
    pad_bottom, pad_right = (-height) % window[0], (-width) % window[1]
    if pad_bottom or pad_right:  # zeros, as F.pad: the padded positions take part in the attention
        padding = {"padding": [0, pad_bottom, 0, pad_right]}
        x = graph.add("ZeroPadding2D", name, [x], padding, source_kind=kind, form=SAME)
    full_height, full_width = height + pad_bottom, width + pad_right
    shift = [
        0 if size >= full else int(step)
        for size, full, step in zip(window, (full_height, full_width), arguments["shift_size"], strict=True)
    ]
    if any(shift):
        x = roll_layers(graph, x, (-shift[0], -shift[1]), (1, 2), name, kind)
    rows, columns, area = full_height // window[0], full_width // window[1], window[0] * window[1]
    x = graph.reshape(x, [rows, window[0], columns, window[1], channels], name, kind, False)
    x = transpose(graph, x, [0, 1, 3, 2, 4, 5], name, kind)
    x = graph.reshape(x, [rows * columns, area, channels], name, kind, False)
    qkv_weight, qkv_bias = arguments["qkv_weight"], arguments.get("qkv_bias")
    parts = []
    for index in range(3):  # q, k, v: one Dense each, (windows, heads, area, head_dim)
        rows_of = slice(index * channels, (index + 1) * channels)
        bias = None if qkv_bias is None else qkv_bias[rows_of]
        part = dense_layer(graph, x, name, kind, qkv_weight[rows_of].T.astype(np.float32), bias)
        part = graph.reshape(part, [rows * columns, area, heads, channels // heads], name, kind, False)
        parts.append(transpose(graph, part, [0, 1, 3, 2, 4], name, kind))
    offsets = [(np.asarray(arguments["relative_position_bias"], np.float32), True)]
    if any(shift):
        offsets.append((_window_mask(full_height, full_width, window, shift), False))
    scale, rate = (channels // heads) ** -0.5, arguments.get("attention_dropout")
    x = _written_attention(graph, tuple(parts), scale, rate, name, kind, offsets)
    x = transpose(graph, x, [0, 1, 3, 2, 4], name, kind)
    x = graph.reshape(x, [rows * columns, area, channels], name, kind, False)
    proj_weight = arguments["proj_weight"].T.astype(np.float32)
    x = dense_layer(graph, x, name, kind, proj_weight, arguments.get("proj_bias"))
    x = _dropout(graph, x, arguments.get("dropout"), name, kind)
    x = graph.reshape(x, [rows, columns, window[0], window[1], channels], name, kind, False)
    x = transpose(graph, x, [0, 1, 3, 2, 4, 5], name, kind)
    x = graph.reshape(x, [full_height, full_width, channels], name, kind, False)
    if any(shift):
        x = roll_layers(graph, x, (shift[0], shift[1]), (1, 2), name, kind)
    return crop_layer(graph, x, name, kind, {1: (0, height), 2: (0, width)})


def _torch_relative_position_bias(walker, node, name):
    """``_get_relative_position_bias(table, index, window_size)``: the table read at the index buffer,
    as a (1, heads, area, area) weight (its repeated entries train separately)."""
    table, index = (np.asarray(walker.value(arg)) for arg in node.args[:2])
    area = int(np.prod(walker.value(node.args[2])))
    walker.builder.note(GATHERED_TABLE_NOTE)
    return table[index.reshape(-1)].reshape(area, area, -1).transpose(2, 0, 1)[None]


def _torch_patch_merging(walker, node, name):
    """``_patch_merging_pad``: (N, H, W, C) padded to even sides, then each 2x2 patch's four pixels
    side by side, (N, H/2, W/2, 4C), in torchvision's order x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2],
    x[1::2, 1::2]: a Reshape, a Permute and a Reshape."""
    graph, kind = walker.graph, "_patch_merging_pad"
    x = graph.to_same(walker.tensor(node.args[0]), name)
    height, width, channels = graph.source_shape(x)
    if height % 2 or width % 2:
        padding = {"padding": [0, height % 2, 0, width % 2]}
        x = graph.add("ZeroPadding2D", name, [x], padding, source_kind=kind, form=SAME)
        height, width = height + height % 2, width + width % 2
    x = graph.reshape(x, [height // 2, 2, width // 2, 2, channels], name, kind, False)
    x = transpose(graph, x, [0, 1, 3, 4, 2, 5], name, kind)  # (H/2, W/2, column, row, C)
    return graph.reshape(x, [height // 2, width // 2, 4 * channels], name, kind, False)


TORCH_MODULES: dict = {"MultiheadAttention": _torch_attention}
# Library modules that tracing keeps whole (a leaf), by qualified class name.
TORCH_LEAVES: dict = {"timm.layers.attention.Attention": _timm_attention}
TORCH_FUNCTIONS: dict = {
    "operator.eq": _torch_zero_mask,
    "torch.eq": _torch_zero_mask,
    "torch.nn.functional.scaled_dot_product_attention": _torch_scaled_dot_product,
    # Found by their own module and name (torchvision is imported only by the model's code).
    "torchvision.models.swin_transformer.shifted_window_attention": _torch_shifted_window_attention,
    "torchvision.models.swin_transformer._get_relative_position_bias": _torch_relative_position_bias,
    "torchvision.models.swin_transformer._patch_merging_pad": _torch_patch_merging,
}
TORCH_METHODS: dict = {"eq": _torch_zero_mask}


# ----- ONNX import: op -> layers ---------------------------------------------------------------
# None: torch.onnx writes attention out as MatMul, Softmax and Reshape nodes, each imported on its
# own (with the batch folded into the heads or the windows held apart: codegen.layers.folded).
