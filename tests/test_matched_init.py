"""training.init = "matched": the PyTorch program starts its weights as Keras initialises them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")

from codegen import generate  # noqa: E402
from codegen.runtime import load_module  # noqa: E402
from studio.project import ProjectError, load_project, save_project  # noqa: E402
from tests.graph_builders import make_project  # noqa: E402


def project(init: str):
    return make_project(
        ("tokens", "Input", {"shape": [12], "dtype": "int32"}),
        ("embed", "Embedding", {"input_dim": 500, "output_dim": 64}),
        ("lstm", "LSTM", {"units": 64, "return_sequences": True, "bidirectional": True}),
        ("attend", "MultiHeadAttention", {"num_heads": 4, "key_dim": 32}, "lstm", "lstm"),
        ("pool", "GlobalAveragePooling1D", {}),
        ("dense", "Dense", {"units": 256}),
        ("image", "Input", {"shape": [16, 16, 8]}),
        ("conv", "Conv2D", {"filters": 64, "kernel_size": [3, 3]}, "image"),
        ("depthwise", "DepthwiseConv2D", {"kernel_size": [3, 3], "depth_multiplier": 4}),
        dataset="digits",
        init=init,
    )


def weights(framework: str, init: str) -> dict[str, np.ndarray]:
    """Each layer's main kernel in Keras layout terms (flattened values), from the program itself."""
    code = generate(project(init), framework)
    model = load_module(code.source, f"init_{framework}").build_model()
    if framework == "keras":
        return {layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()}
    return {name: value.detach().numpy() for name, value in model.state_dict().items()}


def test_matched_weights_have_kerass_distributions():
    keras, torch = weights("keras", "matched"), weights("pytorch", "matched")
    default = weights("pytorch", "framework")
    pairs = {
        "dense.weight": keras["dense"][0],
        "conv.weight": keras["conv"][0],
        "depthwise.weight": keras["depthwise"][0],
        "embed.weight": keras["embed"][0],
        "lstm.weight_ih_l0": keras["lstm"][0],
        "attend.out_proj.weight": keras["attend"][6],
        "attend.in_proj_weight": keras["attend"][0],  # the query block's spread is each block's
    }
    for key, keras_kernel in pairs.items():
        ours = torch[key]
        # glorot/uniform draws: the same bound and spread (std within 6%) as Keras's kernel
        assert abs(ours.std() / keras_kernel.std() - 1) < 0.06, key
        assert np.abs(ours).max() <= np.abs(keras_kernel).max() * 1.02, key
        if key not in ("embed.weight", "lstm.weight_ih_l0"):  # where PyTorch's own spread differs clearly
            assert abs(default[key].std() / keras_kernel.std() - 1) > 0.1, key
    for key in (
        "dense.bias",
        "conv.bias",
        "attend.in_proj_bias",
        "lstm.bias_hh_l0",
        "lstm.bias_hh_l0_reverse",
    ):
        assert not torch[key].any(), key
    for suffix in ("", "_reverse"):  # Keras's unit_forget_bias: the f gate starts at 1, the others at 0
        bias = torch[f"lstm.bias_ih_l0{suffix}"].reshape(4, 64)
        assert (bias[1] == 1).all() and not bias[[0, 2, 3]].any()
        recurrent = torch[f"lstm.weight_hh_l0{suffix}"]
        assert np.allclose(recurrent.T @ recurrent, np.eye(64), atol=1e-5)  # orthogonal


def test_the_setting_is_saved_checked_and_left_out_at_its_default(tmp_path):
    path = tmp_path / "p.layers.json"
    save_project(project("framework"), path)
    assert '"init"' not in path.read_text(encoding="utf-8")
    save_project(project("matched"), path)
    assert load_project(path).training.init == "matched"
    assert 'training.init is "matched"' in generate(load_project(path), "pytorch").source
    with pytest.raises(ProjectError, match="training.init: expected one of framework, matched"):
        path.write_text(path.read_text(encoding="utf-8").replace('"matched"', '"keras"'), encoding="utf-8")
        load_project(path)
