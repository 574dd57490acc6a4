"""Attention masks (issue 13, MASK slice): MultiHeadAttention's padding mask input and causal mask.

The spec's rules; both programs on masks where some queries have no key left (Keras's two
paths give uniform weights without dropout, zero weights with it); keras-hub text backbones
whose TransformerEncoders take the backbone's padding_mask, imported from Keras and reproduced
by the generated PyTorch program.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from codegen.verify import _Models  # noqa: E402
from studio.analysis import analyze  # noqa: E402
from studio.catalog import CATALOG  # noqa: E402
from studio.catalog.base import ShapeError  # noqa: E402
from tests.graph_builders import make_project  # noqa: E402

SPEC = CATALOG.get("MultiHeadAttention")


def params(**values):
    return SPEC.validate_params({"num_heads": 2, "key_dim": 4, **values})


def test_padding_mask_shape_rules():
    masked = params(padding_mask=True)
    assert SPEC.output_shape(masked, [(5, 8), (5,)]) == (5, 8)
    assert SPEC.output_shape(masked, [(3, 8), (6, 5), (6,)]) == (3, 8)  # the key's steps
    assert SPEC.count_params(masked, [(5, 8), (5,)]) == SPEC.count_params(params(), [(5, 8)])
    with pytest.raises(ShapeError, match=r"\(None, 6\).*received \(None, 3\)"):
        SPEC.output_shape(masked, [(3, 8), (6, 5), (3,)])
    with pytest.raises(ShapeError, match="needs a mask"):
        SPEC.output_shape(masked, [(5, 8)])
    with pytest.raises(ShapeError, match="padding_mask=True"):
        SPEC.output_shape(params(), [(5, 8), (5, 8), (5, 8), (5,)])
    assert SPEC.mask_input(masked, 3) == 2 and SPEC.mask_input(params(), 3) is None


def test_analysis_takes_an_int_mask_but_not_int_queries():
    def graph(padding_mask):
        return make_project(
            ("x", "Input", {"shape": [5, 8]}),
            ("mask", "Input", {"shape": [5], "dtype": "int32"}),
            ("mha", "MultiHeadAttention", params(padding_mask=padding_mask), "x", "mask"),
        ).graph

    assert analyze(graph(True)).is_valid
    problems = analyze(graph(False)).problems
    assert any("int32 token ids" in problem.message for problem in problems)


def _masked_model(dropout: float, causal: bool):
    return make_project(
        ("query", "Input", {"shape": [4, 8]}),
        ("context", "Input", {"shape": [6, 8]}),
        ("mask", "Input", {"shape": [6], "dtype": "int32"}),
        (
            "mha",
            "MultiHeadAttention",
            params(dropout=dropout, padding_mask=True, use_causal_mask=causal),
            "query",
            "context",
            "mask",
        ),
    )


@pytest.mark.parametrize("dropout", [0.0, 0.25])
@pytest.mark.parametrize("causal", [False, True])
def test_queries_without_keys_match_keras(dropout, causal):
    """Sample 0 masks every key, sample 1 key 0 only (so its first causal query has none left)."""
    rng = np.random.default_rng(0)
    models = _Models(_masked_model(dropout, causal), rng, None)
    mask = np.ones((3, 6), np.int32)
    mask[0] = 0
    mask[1, 0] = 0
    mask[2, 3:] = 0
    inputs = [rng.standard_normal((3, n, 8)).astype(np.float32) for n in (4, 6)] + [mask]
    (keras_out,) = [np.asarray(out) for out in _as_list(models.run_keras(inputs))]
    (torch_out,) = [np.asarray(out) for out in _as_list(models.run_torch(inputs))]
    assert np.isfinite(torch_out).all()
    assert np.abs(keras_out - torch_out).max() < 1e-5
    bias = models.keras_model.get_layer("mha").get_weights()[-1]
    # Keras itself: with dropout its Softmax zeroes a row with no key (the output is the bias).
    assert np.allclose(keras_out[0], bias, atol=1e-6) == (dropout > 0)


def _as_list(value):
    return value if isinstance(value, (list, tuple)) else [value]


# ----- keras-hub text backbones ------------------------------------------------------------------


def _check_backbone(name, tmp_path, steps=16):
    import keras
    import keras_hub

    from studio.interop import import_model, save_imported
    from studio.interop.check import TOLERANCE, reproduction_errors
    from tests.test_interop_keras import randomize_weights

    keras.utils.set_random_seed(0)
    backbone = getattr(keras_hub.models, name)(
        vocabulary_size=100,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=steps,
    )
    randomize_weights(backbone)
    path = tmp_path / f"{name}.keras"
    backbone.save(path)
    imported = import_model(path, input_shapes=[(steps,)] * len(backbone.inputs))
    _, weights_path = save_imported(imported, tmp_path / f"{name}.layers.json")
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 100, (3, steps)).astype(np.int32)
    mask = np.ones((3, steps), np.int32)
    mask[0, steps // 2 :] = 0  # padded sequences, as keras-hub's preprocessors build them
    mask[1, 3:] = 0
    ids[mask == 0] = 0
    by_name = {"token_ids": ids, "padding_mask": mask}
    if "segment_ids" in backbone.input:  # BERT's sentence A and B
        by_name["segment_ids"] = (np.arange(steps) >= steps // 3).astype(np.int32)[None].repeat(3, 0)
    outputs = backbone(by_name, training=False)
    if isinstance(outputs, dict):  # BERT: the sequence and the pooled output, in the model's order
        outputs = keras.Model(backbone.input, backbone.outputs)(by_name, training=False)
    expected = [np.asarray(output) for output in (outputs if isinstance(outputs, list) else [outputs])]
    inputs = [by_name[info.layer] for info in imported.inputs]
    errors = reproduction_errors(imported, weights_path, inputs, expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors
    return imported


@pytest.mark.slow
@pytest.mark.parametrize("name", ["RobertaBackbone", "DistilBertBackbone", "GPT2Backbone", "BertBackbone"])
def test_keras_hub_text_backbone_with_padding_mask(name, tmp_path):
    imported = _check_backbone(name, tmp_path)
    attention = [node for node in imported.project.graph.nodes if node.kind == "MultiHeadAttention"]
    assert len(attention) == 2 and all(node.params["padding_mask"] for node in attention)


# ----- torch.fx import: key_padding_mask = (ids == 0) ------------------------------------------------


def _torch_encoder(spelling):
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, ids):
            x = self.embed(ids)
            return self.attention(x, x, x, key_padding_mask=spelling(ids), need_weights=False)[0]

    torch.manual_seed(0)
    return Encoder().eval()


@pytest.mark.slow
def test_torch_key_padding_mask_reproduces_in_keras(tmp_path):
    import torch

    from studio.interop.torch_import import import_torch_model
    from tests.test_interop_torch import check_reproduces

    model = _torch_encoder(lambda ids: torch.eq(ids, 0))
    imported = import_torch_model(model, [(6,)])
    (attention,) = [node for node in imported.project.graph.nodes if node.kind == "MultiHeadAttention"]
    assert attention.params["padding_mask"]
    ids = np.random.default_rng(0).integers(0, 20, (3, 6))
    ids[:, 2:4] = 0  # padded keys; every query keeps some (torch gives NaN where none is left)
    check_reproduces(imported, model, [ids], tmp_path)


@pytest.mark.parametrize(
    ("spelling", "reason"),
    [
        (lambda ids: ids == 1, "only `mask == 0`"),
        (lambda ids: ids > 0, "no catalog equivalent"),
    ],
)
def test_other_torch_masks_are_refused_by_name(spelling, reason):
    from studio.interop import UnsupportedModelError
    from studio.interop.torch_import import import_torch_model

    with pytest.raises(UnsupportedModelError, match=reason):
        import_torch_model(_torch_encoder(spelling), [(6,)])


def test_torch_masks_other_than_key_padding_are_refused_by_name():
    import torch
    from torch import nn

    from studio.interop import UnsupportedModelError
    from studio.interop.torch_import import import_torch_model

    class Banded(nn.Module):  # hides only the keys two or more steps later: not the causal mask
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(4, 2, batch_first=True)
            self.register_buffer("band", torch.ones(3, 3, dtype=torch.bool).triu(2))

        def forward(self, x):
            return self.attention(x, x, x, attn_mask=self.band)[0]

    class Stray(nn.Module):
        def forward(self, x):
            return x + (x == 0)

    for model, reason in (
        (Banded(), "attn_mask other than the causal one"),
        (Stray(), "only nn.MultiheadAttention's"),
    ):
        with pytest.raises(UnsupportedModelError, match=reason):
            import_torch_model(model.eval(), [(3, 4)])


@pytest.mark.slow
def test_keras_hub_transformer_decoder_with_padding_mask(tmp_path):
    """GPT-2's block: keras-hub's TransformerDecoder without cross-attention, causal, with the padding
    mask; post-norm with dropout (Keras's Softmax path) and pre-norm without (dot_product_attention)."""
    import keras
    import keras_hub

    from studio.interop import import_model, save_imported
    from studio.interop.check import TOLERANCE, reproduction_errors
    from tests.test_interop_keras import randomize_weights

    keras.utils.set_random_seed(0)
    ids = keras.Input((8,), dtype="int32", name="token_ids")
    mask = keras.Input((8,), dtype="int32", name="padding_mask")
    x = keras_hub.layers.TokenAndPositionEmbedding(50, 8, 16, name="embed")(ids)
    x = keras_hub.layers.TransformerDecoder(32, 2, dropout=0.1, name="post")(x, decoder_padding_mask=mask)
    x = keras_hub.layers.TransformerDecoder(32, 4, normalize_first=True, activation="gelu", name="pre")(
        x, decoder_padding_mask=mask
    )
    model = keras.Model([ids, mask], x, name="decoder")
    randomize_weights(model)
    rng = np.random.default_rng(1)
    mask_values = np.ones((3, 8), np.int32)
    mask_values[0, 5:] = 0
    mask_values[1, :2] = 0  # the first queries of sample 1 have no key left: Keras's two paths differ
    inputs = [rng.integers(1, 50, (3, 8)).astype(np.int32), mask_values]
    model.save(tmp_path / "decoder.keras")
    imported = import_model(tmp_path / "decoder.keras")
    _, weights_path = save_imported(imported, tmp_path / "decoder.layers.json")
    expected = [np.asarray(model(inputs, training=False))]
    errors = reproduction_errors(imported, weights_path, inputs, expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors
    attention = imported.project.graph.find("pre/self_attention")
    assert attention.params["use_causal_mask"] and attention.params["padding_mask"]
    # Called without the causal mask, or with an encoder sequence (cross-attention): what is imported.
    x = keras_hub.layers.TransformerDecoder(32, 2, name="plain")(model.outputs[0], use_causal_mask=False)
    plain = keras.Model(model.inputs, x, name="plain")
    plain.save(tmp_path / "plain.keras")
    imported = import_model(tmp_path / "plain.keras", with_weights=False)
    assert not imported.project.graph.find("plain/self_attention").params["use_causal_mask"]


@pytest.mark.slow
def test_masks_passed_by_position_are_refused_by_name(tmp_path):
    """TransformerEncoder's second argument is its padding mask, TransformerDecoder's the encoder sequence."""
    import keras
    import keras_hub

    from studio.interop import UnsupportedModelError, import_model

    x, mask = keras.Input((6, 8)), keras.Input((6,), dtype="int32")
    y = keras_hub.layers.TransformerEncoder(16, 2, name="encoder")(x, mask)
    z = keras_hub.layers.TransformerDecoder(16, 2, name="decoder")(y, x)
    keras.Model([x, mask], z).save(tmp_path / "positional.keras")
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(tmp_path / "positional.keras", with_weights=False)
    problems = {problem.name: problem.reason for problem in caught.value.problems}
    assert "padding_mask= is read by keyword" in problems["encoder"]
    assert "decoder_padding_mask= is read by keyword" in problems["decoder"]
