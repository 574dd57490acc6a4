"""FLOPs and MACs from the catalog's shape rules, checked against torch's FlopCounterMode.

FlopCounterMode counts the FLOPs of matrix products and convolutions (2 per multiply-accumulate)
on the generated PyTorch model, layer by layer (its modules carry the layers' identifiers); our
``2 * macs`` must equal it exactly. It cannot see inside two kernels: scaled_dot_product_attention's
fused CPU kernel (so attention runs on the math backend here, whose matrix products it counts) and
the LSTM kernel (aten::lstm, counted as 0): those layers are unrolled step by step with
the module's own weights, the unrolled outputs checked against the module's, and that counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.analysis import analyze
from studio.project import load_project
from studio.summary import format_flops, format_summary
from tests.graph_builders import chain, make_project

torch = pytest.importorskip("torch")

EXAMPLES = sorted((Path(__file__).parent.parent / "assets" / "examples").glob("*.layers.json"))
RECURRENT = {"SimpleRNN", "LSTM", "GRU"}
BATCH = 3


def _model_and_inputs(project):
    from codegen import generate
    from codegen.deploy import example_inputs
    from codegen.runtime import load_module

    code = generate(project, "pytorch")
    model = load_module(code.source, "flops_model").build_model().eval()
    _, tensors = example_inputs(code.plan, batch=BATCH)
    return code.plan, model, tensors


def _library_counts(project) -> tuple[dict[str, int], dict[str, int]]:
    """FlopCounterMode's FLOPs per layer name, and ours (2 * MACs), for a batch of BATCH."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    plan, model, tensors = _model_and_inputs(project)
    recurrent_inputs = {}
    for layer in plan.layers:
        if layer.kind in RECURRENT:
            module = model.get_submodule(layer.ident)
            module.register_forward_hook(
                lambda m, args, out, name=layer.node.name: recurrent_inputs.update({name: (m, args[0])})
            )
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*tensors)
    per_module = counter.get_flop_counts()
    analysis = analyze(project.graph)
    library, ours = {}, {}
    for layer in plan.layers:
        name = layer.node.name
        counted = sum(per_module.get(f"{type(model).__name__}.{layer.ident}", {}).values())
        if layer.kind in RECURRENT:  # aten::lstm is opaque to FlopCounterMode; the others decompose
            module, inputs = recurrent_inputs[name]
            unrolled = _unrolled_flops(module, inputs)
            assert counted in (0, unrolled)
            counted = unrolled
        library[name] = counted
        ours[name] = 2 * analysis.flops[layer.id].macs * BATCH
    return library, ours


def _unrolled_flops(module, inputs) -> int:
    """FlopCounterMode's count of ``module`` (nn.RNN, LSTM or GRU, batch_first) run step by step."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        expected, _ = module(inputs)
        with FlopCounterMode(display=False) as counter:
            directions = [_unroll(module, inputs, "")]
            if module.bidirectional:
                directions.append(_unroll(module, inputs.flip(1), "_reverse").flip(1))
        torch.testing.assert_close(torch.cat(directions, dim=-1), expected, rtol=1e-5, atol=1e-5)
    return counter.get_total_flops()


def _unroll(module, inputs, suffix: str):
    w_ih, w_hh = getattr(module, f"weight_ih_l0{suffix}"), getattr(module, f"weight_hh_l0{suffix}")
    b_ih, b_hh = getattr(module, f"bias_ih_l0{suffix}"), getattr(module, f"bias_hh_l0{suffix}")
    units = module.hidden_size
    h = inputs.new_zeros(inputs.shape[0], units)
    c = torch.zeros_like(h)
    outputs = []
    for step in range(inputs.shape[1]):
        x_part = torch.mm(inputs[:, step], w_ih.t()) + b_ih
        h_part = torch.mm(h, w_hh.t()) + b_hh
        if isinstance(module, torch.nn.LSTM):
            i, f, g, o = (x_part + h_part).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        elif isinstance(module, torch.nn.GRU):
            x_r, x_z, x_n = x_part.chunk(3, dim=1)
            h_r, h_z, h_n = h_part.chunk(3, dim=1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            h = (1 - z) * torch.tanh(x_n + r * h_n) + z * h
        else:
            h = torch.tanh(x_part + h_part) if module.nonlinearity == "tanh" else torch.relu(x_part + h_part)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize(
    "path",
    # the Transformer and the LSTM classifier in the fast tier; the convolutional ones are slow
    [
        path
        if "transformer" in path.name or "sequence" in path.name
        else pytest.param(path, marks=pytest.mark.slow)
        for path in EXAMPLES
    ],
    ids=lambda path: path.name.split(".")[0],
)
def test_every_example_matches_flop_counter(path):
    library, ours = _library_counts(load_project(path))
    assert ours == library
    assert sum(ours.values()) > 0


HAND_BUILT = {
    "conv_strided_same_dilated": chain(
        (11, 9, 3),
        ("Conv2D", {"filters": 5, "kernel_size": [3, 2], "strides": [2, 2], "padding": "same"}),
        ("Conv2D", {"filters": 4, "kernel_size": [3, 3], "dilation_rate": [2, 1], "activation": "relu"}),
    ),
    "depthwise_and_separable": chain(
        (9, 9, 4),
        ("DepthwiseConv2D", {"kernel_size": [3, 3], "depth_multiplier": 3, "strides": [2, 2]}),
        ("SeparableConv2D", {"filters": 7, "kernel_size": [2, 2], "depth_multiplier": 2, "padding": "same"}),
    ),
    "transposed": chain(
        (5, 4, 3),
        ("Conv2DTranspose", {"filters": 6, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same"}),
        ("Conv2DTranspose", {"filters": 2, "kernel_size": [2, 2], "strides": [3, 3], "padding": "valid"}),
    ),
    "conv1d_causal_and_dense_on_sequences": chain(
        (10, 3),
        ("Conv1D", {"filters": 6, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}),
        ("Dense", {"units": 5, "use_bias": False}),
        ("Flatten", {}),
        ("Dense", {"units": 4, "activation": "softmax"}),
    ),
    "cross_attention_other_widths": make_project(
        ("query", "Input", {"shape": [5, 8]}),
        ("memory", "Input", {"shape": [7, 6]}),
        ("keys", "Input", {"shape": [7, 3]}),
        ("attention", "MultiHeadAttention", {"num_heads": 2, "key_dim": 4}, "query", "memory", "keys"),
    ),
    "recurrent": chain(
        (6, 3),
        ("LSTM", {"units": 5, "return_sequences": True, "bidirectional": True}),
        ("GRU", {"units": 4, "return_sequences": True}),
        ("SimpleRNN", {"units": 3, "bidirectional": True}),
    ),
}


@pytest.mark.parametrize("name", HAND_BUILT)
def test_hand_built_models_match_flop_counter(name):
    library, ours = _library_counts(HAND_BUILT[name])
    assert ours == library
    assert all(
        ours[layer] > 0 for layer in ours if layer not in ("input", "query", "memory", "keys", "flatten_2")
    )


def test_elementwise_work_follows_the_documented_convention():
    project = chain(
        (4, 4, 2),
        ("Conv2D", {"filters": 3, "kernel_size": [1, 1], "activation": "softmax"}),
        ("BatchNormalization", {}),
        ("MaxPooling2D", {"pool_size": [2, 2]}),
        ("GlobalAveragePooling2D", {}),
    )
    analysis = analyze(project.graph)
    flops = {project.graph.node(node_id).name: analysis.flops[node_id] for node_id in analysis.order}
    conv = flops["conv2d_0"]
    assert (conv.macs, conv.elementwise) == (16 * 3 * 2, 16 * 3 * (1 + 3))  # bias, softmax 3 per value
    assert flops["batchnormalization_1"].elementwise == 2 * 48  # one scale, one shift
    assert flops["maxpooling2d_2"].elementwise == 2 * 2 * 3 * 3  # 3 comparisons per window of 4
    assert flops["globalaveragepooling2d_3"].elementwise == 3 * 4  # 3 additions and a division
    assert analysis.total_flops.flops == sum(2 * count.macs + count.elementwise for count in flops.values())


def test_summary_shows_flops_per_layer_and_in_total():
    project = chain((8,), ("Dense", {"units": 4}))
    text = format_summary(project.graph, title="t")
    assert "FLOPs" in text.splitlines()[2]
    assert " Total FLOPs: 68 per sample (68 FLOPs; 32 MACs, 1 MAC = 2 FLOPs)" in text
    assert format_flops(1_234_567) == "1.23 MFLOPs" and format_flops(999) == "999 FLOPs"
