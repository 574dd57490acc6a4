"""timm's Attention module (ViT, DeiT): kept whole by the tracer and lowered to MultiHeadAttention.

Also: a forward's optional arguments (timm's ``attn_mask=None, is_causal=False``) are traced as
their defaults, so that the model's inputs are the tensors it was given shapes for.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from torch import nn  # noqa: E402

from studio.interop import UnsupportedModelError  # noqa: E402
from studio.interop.torch_import import import_torch_model  # noqa: E402
from studio.interop.zoo import import_torchvision  # noqa: E402
from tests.test_interop_torch import check_reproduces  # noqa: E402

import_torchvision()  # timm imports torchvision when it is there: through the CPU shim
from timm.layers.attention import Attention  # noqa: E402


class Encoder(nn.Module):
    """A pre-norm transformer block around timm's Attention, with an optional mask argument."""

    def __init__(self, **options) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(16)
        self.attn = Attention(16, num_heads=4, **options)
        self.head = nn.Linear(16, 3)

    def forward(self, x, attn_mask=None):
        x = x + self.attn(self.norm(x), attn_mask=attn_mask)
        return self.head(x.mean(dim=1))


def test_timm_attention_is_one_multi_head_attention_that_reproduces(tmp_path):
    model = Encoder(qkv_bias=True).eval()
    imported = import_torch_model(model, [(7, 16)])
    attention = [node for node in imported.project.graph.nodes if node.kind == "MultiHeadAttention"]
    assert len(attention) == 1
    assert attention[0].params["num_heads"] == 4 and attention[0].params["key_dim"] == 4
    assert [info.source_name for info in imported.inputs] == ["x"]  # attn_mask traced as None
    inputs = [np.random.default_rng(0).normal(size=(2, 7, 16)).astype("float32")]
    check_reproduces(imported, model, inputs, tmp_path)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"qkv_bias": True, "qk_norm": True, "norm_layer": nn.LayerNorm}, "q_norm is LayerNorm"),
        ({"qkv_bias": False}, "qkv and proj differ in having a bias"),
        ({"qkv_bias": True, "gated": True}, "gated=True"),
    ],
)
def test_timm_attention_options_the_catalog_lacks_are_refused_by_name(options, reason):
    with pytest.raises(UnsupportedModelError) as caught:
        import_torch_model(Encoder(**options).eval(), [(7, 16)])
    assert any(reason in problem.reason for problem in caught.value.problems), caught.value.problems


def test_f_linear_of_a_modules_parameters_is_a_dense_layer(tmp_path):
    """timm's classifier heads call ``F.linear(x, self.weight, self.bias)``."""

    class Head(nn.Linear):
        def forward(self, x):
            return nn.functional.linear(x.flatten(1), self.weight, self.bias)

    model = Head(12, 5).eval()
    imported = import_torch_model(model, [(3, 4)])
    assert [node.kind for node in imported.project.graph.nodes][-1] == "Dense"
    check_reproduces(
        imported, model, [np.random.default_rng(5).normal(size=(2, 3, 4)).astype("float32")], tmp_path
    )
