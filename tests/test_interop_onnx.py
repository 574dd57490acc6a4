"""Importing ONNX models: files exported from PyTorch (legacy exporter) and from the studio itself.

The reference outputs come from onnxruntime running the ONNX file.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from studio.analysis import analyze  # noqa: E402
from studio.interop import (  # noqa: E402
    ModelFileError,
    UnsupportedModelError,
    export_model,
    import_model,
    save_imported,
    save_weights,
)
from studio.interop.check import TOLERANCE, reproduction_errors  # noqa: E402
from studio.project import load_project  # noqa: E402
from tests.graph_builders import chain  # noqa: E402
from tests.test_interop_torch import (  # noqa: E402
    RESNET_SOURCE,
    WINDOW_INPUT,
    ZOO,
    ComputedConstants,
    RadixSum,
    SequenceFirstAttention,
    WindowMixer,
)

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "assets", "examples")


def onnx_weight_count(path) -> int:
    """The float weights each operator uses (shape constants are integers).

    An initializer is counted once per operator that uses it: the exporter stores
    equal arrays once and hands out copies through Identity nodes.
    """
    model = onnx.load(str(path))
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    return int(
        sum(
            arrays[name].size
            for node in model.graph.node
            if node.op_type != "Identity"
            for name in node.input
            if name in arrays and arrays[name].dtype.kind == "f"
        )
    )


def export_torch(model, example, path, **options) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.from_numpy(example),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            **options,
        )


def check_onnx_import(path, inputs, tmp_path, computed_weights: int = 0):
    """Import ``path`` with weights; valid, the file's weight count (changed by ``computed_weights``
    where the import computes weights from constants), and both exports match onnxruntime."""
    imported = import_model(path)
    assert analyze(imported.project.graph).is_valid
    assert imported.imported_parameters == onnx_weight_count(path) + computed_weights
    assert imported.imported_parameters == imported.source_parameters
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {info.source_name: array for info, array in zip(imported.inputs, inputs, strict=True)}
    expected = session.run([info.source_name for info in imported.outputs], feeds)
    _, weights_path = save_imported(imported, tmp_path / "imported.layers.json")
    errors = reproduction_errors(imported, weights_path, inputs, expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors
    return imported


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv1(x))))
        x = F.relu(self.conv2(x))
        x = x.view(x.size(0), -1)  # exported as Shape/Gather/Concat/Reshape
        return torch.softmax(self.fc(x), dim=1)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = SmallCNN()
    with torch.no_grad():
        model.bn.running_mean.normal_(0, 0.1)
        model.bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("keep_batch_norm", [False, True], ids=["bn-folded", "bn-kept"])
def test_small_cnn_exported_by_pytorch(keep_batch_norm, tmp_path):
    inputs = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype("float32")
    path = tmp_path / "small_cnn.onnx"
    # The default (eval) export folds BatchNormalization into the Conv; PRESERVE keeps it.
    mode = torch.onnx.TrainingMode.PRESERVE if keep_batch_norm else torch.onnx.TrainingMode.EVAL
    export_torch(small_cnn(), inputs, path, training=mode)
    imported = check_onnx_import(path, [inputs], tmp_path)
    graph = imported.project.graph
    kinds = [node.kind for node in graph.nodes]
    assert ("BatchNormalization" in kinds) == keep_batch_norm
    assert graph.find("conv1").params["padding"] == "same"
    assert graph.find("pool_pad").kind == "ZeroPadding2D"  # MaxPool pads after a Relu: zeros are exact
    assert graph.find("fc").kind == "Dense"
    assert graph.find("input").params["shape"] == (16, 16, 3)
    assert imported.inputs[0].channels_first


@pytest.mark.slow
def test_resnet18_exported_by_pytorch(tmp_path):
    namespace: dict = {}
    exec(compile(RESNET_SOURCE, "resnet.py", "exec"), namespace)  # the test's own source
    model = namespace["resnet18"]().eval()
    inputs = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype("float32")
    path = tmp_path / "resnet18.onnx"
    export_torch(model, inputs, path, training=torch.onnx.TrainingMode.PRESERVE)
    imported = check_onnx_import(path, [inputs], tmp_path)
    graph = imported.project.graph
    add = graph.find("layer2.0.add")
    assert [graph.node(s).name for s in graph.inputs_of(add.id)] == ["layer2.0.bn2", "layer2.0.downsample.1"]
    assert graph.find("avgpool").kind == "GlobalAveragePooling2D"
    assert graph.find("flatten").kind == "Flatten"


class Branchy(nn.Module):
    """Channels-last input made channels-first, concatenated branches, a Linear on tokens (MatMul+Add)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.tokens = nn.Linear(8, 6)
        self.head = nn.Linear(6 * 25, 3)

    def forward(self, image):
        x = image.permute(0, 3, 1, 2)
        y = torch.cat([F.relu(self.a(x)), torch.sigmoid(self.b(x))], dim=1)
        tokens = self.tokens(y.flatten(2).transpose(1, 2))
        return self.head((tokens - 0.5).flatten(1))


def test_layout_changes_concat_and_matmul(tmp_path):
    torch.manual_seed(0)
    model = Branchy().eval()
    inputs = np.random.default_rng(2).standard_normal((2, 5, 5, 3)).astype("float32")
    path = tmp_path / "branchy.onnx"
    export_torch(model, inputs, path)
    imported = check_onnx_import(path, [inputs], tmp_path)
    graph = imported.project.graph
    assert not imported.inputs[0].channels_first  # the ONNX input is NHWC: the same as Keras
    assert graph.find("input").params["shape"] == (5, 5, 3)
    assert graph.find("concat").params["axis"] == -1  # ONNX axis 1 of NCHW: the channels
    assert graph.find("tokens").kind == "Dense"  # MatMul + Add
    # and the same model imported from PyTorch directly
    from studio.interop.torch_import import import_torch_model

    direct = import_torch_model(model, [(5, 5, 3)])
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs)).numpy()
    _, weights_path = save_imported(direct, tmp_path / "direct.layers.json")
    errors = reproduction_errors(direct, weights_path, [inputs], [expected], tmp_path)
    assert max(errors.values()) <= TOLERANCE, errors


def strided_same_convolutions():
    """Keras 'same' with strides pads the odd pixel at the end: an explicit pad in PyTorch and ONNX,
    which comes back as ZeroPadding2D + 'valid' and must compute exactly the same."""
    return chain(
        (9, 10, 4),
        ("Conv2D", {"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same"}),
        ("Conv2D", {"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same", "groups": 2}),
        ("DepthwiseConv2D", {"kernel_size": 2, "strides": 2, "padding": "same", "depth_multiplier": 2}),
    )


@pytest.mark.parametrize(
    "example",
    [
        "resnet_digits",
        "lenet_digits",
        "conv_autoencoder",
        "mlp_iris",
        pytest.param("strided_same_convolutions", marks=pytest.mark.slow),
    ],
)
def test_studio_export_imports_back(example, tmp_path):
    from codegen import generate
    from codegen.runtime import load_module

    if example == "strided_same_convolutions":
        project = strided_same_convolutions()
    else:
        project = load_project(os.path.join(EXAMPLES, f"{example}.layers.json"))
    code = generate(project, "keras")
    keras_model = load_module(code.source, "example").build_model()
    weights = {
        layer.node.name: keras_model.get_layer(layer.ident).get_weights()
        for layer in code.plan.layers
        if not layer.spec.is_source
    }
    weights_path = save_weights(weights, tmp_path / "example.weights.npz")
    path = tmp_path / f"{example}.onnx"
    assert export_model(project, "onnx", weights_path, path).difference <= TOLERANCE
    rng = np.random.default_rng(3)
    inputs = []
    for info in onnx.load(str(path)).graph.input:
        dims = [dim.dim_value or 2 for dim in info.type.tensor_type.shape.dim]  # batch 2
        inputs.append(rng.standard_normal(dims).astype("float32"))
    imported = check_onnx_import(path, inputs, tmp_path)
    names = {node.name: node.kind for node in imported.project.graph.nodes}
    for node in project.graph.nodes:  # layers with modules keep their names (the exporter's scopes)
        if node.kind in ("Conv2D", "Dense", "Conv2DTranspose"):
            assert names.get(node.name) == node.kind, node.name


def test_malformed_onnx_files_give_a_clear_error(tmp_path, capsys):
    from studio.interop.commands import cmd_import, parse_import_args

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        import_model(garbage)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError):
        import_model(empty)
    assert cmd_import(parse_import_args([str(garbage), "-o", str(tmp_path / "g.layers.json")])) == 2
    err = capsys.readouterr().err
    assert "not a valid ONNX model" in err and "Traceback" not in err
    assert not (tmp_path / "g.layers.json").exists()


def handmade_model(nodes, initializers, input_shape=(1, 4, 8, 8), output="y") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "handmade",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *input_shape[1:]])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", *input_shape[1:]])],
        initializer=[numpy_helper.from_array(array, name) for name, array in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_unsupported_operators_are_all_listed(tmp_path):
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w"], ["c"], name="grouped", group=2, kernel_shape=[3, 3]),
        helper.make_node("LRN", ["x"], ["l"], name="lrn", size=3),
        helper.make_node(
            "MaxPool", ["x"], ["p"], name="pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1], dilations=[2, 2]
        ),
        helper.make_node("Add", ["p", "l"], ["y"], name="sum"),
    ]
    model = handmade_model(nodes, {"w": rng.standard_normal((4, 2, 3, 3)).astype("float32")})
    path = tmp_path / "unsupported.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    problems = {problem.name: problem for problem in caught.value.problems}
    assert set(problems) == {"grouped", "lrn", "pool"}
    assert "group=2" in problems["grouped"].reason or "groups=2" in problems["grouped"].reason
    assert problems["lrn"].source_kind == "LRN"
    assert "dilations=[2, 2]" in problems["pool"].reason


def test_every_unsupported_kind_is_listed_with_counts_even_downstream(tmp_path, capsys):
    from studio.interop.commands import cmd_import, parse_import_args

    nodes = [
        helper.make_node("LRN", ["x"], ["a"], name="lrn_a", size=3),
        helper.make_node("Erf", ["a"], ["b"], name="erf"),
        helper.make_node("LRN", ["b"], ["c"], name="lrn_b", size=3),
        helper.make_node("Sign", ["c"], ["d"], name="sign"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),  # supported: it only consumes a failure
    ]
    path = tmp_path / "chain.onnx"
    onnx.save(handmade_model(nodes, {}), str(path))
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    problems = [(p.source_kind, p.name) for p in caught.value.problems]
    assert problems == [("LRN", "lrn_a"), ("Erf", "erf"), ("LRN", "lrn_b"), ("Sign", "sign")]
    lines = [
        "chain.onnx cannot be imported: 4 unsupported layers",
        "  - LRN (2): lrn_a, lrn_b: this ONNX operator has no catalog equivalent",
        "  - Erf (1): erf: this ONNX operator has no catalog equivalent",
        "  - Sign (1): sign: this ONNX operator has no catalog equivalent",
    ]
    assert str(caught.value).splitlines() == lines
    output = tmp_path / "chain.layers.json"
    assert cmd_import(parse_import_args([str(path), "-o", str(output)])) != 0
    err = capsys.readouterr().err
    assert "\n".join(lines) in err and "nothing was written" in err
    assert [item.name for item in tmp_path.iterdir()] == ["chain.onnx"]  # nothing written


@pytest.mark.parametrize("key", list(ZOO))
def test_layer_zoo_exported_by_pytorch(key, tmp_path):
    net, shape = ZOO[key]
    torch.manual_seed(0)
    inputs = np.random.default_rng(4).standard_normal((2, *shape)).astype("float32")
    path = tmp_path / f"{key}.onnx"
    export_torch(net().eval(), inputs, path)
    check_onnx_import(path, [inputs], tmp_path)


@pytest.mark.parametrize(
    ("nodes", "initializers"),
    [
        # ConstantOfShape declares 10^12 values: refused before anything is allocated
        ([helper.make_node("ConstantOfShape", ["big"], ["k"], name="huge")], {"big": np.array([10**6] * 2)}),
        # two constants that broadcast to 2^40 values
        (
            [helper.make_node("Add", ["col", "row"], ["k"], name="huge")],
            {"col": np.zeros((2**20, 1), np.float32), "row": np.zeros((1, 2**20), np.float32)},
        ),
    ],
    ids=["constant-of-shape", "broadcast"],
)
def test_constants_too_large_to_compute_are_refused_before_allocating(nodes, initializers, tmp_path):
    nodes = [*nodes, helper.make_node("Add", ["x", "k"], ["y"], name="use")]
    path = tmp_path / "model.onnx"
    onnx.save(handmade_model(nodes, initializers), str(path))
    with pytest.raises(UnsupportedModelError, match=r"huge.*larger than the 268,435,456 values"):
        import_model(path)


# ----- ACT slice (issue 13): activations, PRelu, broadcasting merges --------------------------------


@pytest.mark.slow
def test_activations_prelu_and_broadcasting_merges(tmp_path):
    """ONNX's spellings, checked against onnxruntime: HardSigmoid with tf.keras 2's alpha 0.2 (a
    Rescaling before hard_sigmoid), Celu's alpha, HardSwish, Selu, PRelu with a slope
    per channel, Mul of an (N, C, 1, 1) gate by the image, Min of two computed tensors."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("HardSigmoid", ["x"], ["a"], name="tf_hard_sigmoid", alpha=0.2, beta=0.5),
        helper.make_node("Celu", ["x"], ["b"], name="celu", alpha=2.0),
        helper.make_node("HardSwish", ["b"], ["c"], name="hard_swish"),
        helper.make_node("PRelu", ["c", "slope"], ["d"], name="prelu"),
        helper.make_node("ReduceMean", ["d"], ["pooled"], name="pool", axes=[2, 3], keepdims=1),
        helper.make_node("Mul", ["d", "pooled"], ["e"], name="excite"),
        helper.make_node("Selu", ["e"], ["f"], name="selu"),
        helper.make_node("Min", ["f", "a"], ["y"], name="least"),
    ]
    initializers = {"slope": rng.uniform(-0.5, 0.5, (4, 1, 1)).astype("float32")}
    path = tmp_path / "activations.onnx"
    model = handmade_model(nodes, initializers)
    model.ir_version = 8  # opset 17's, which onnxruntime reads
    onnx.save(model, path)
    inputs = [(3 * rng.standard_normal((2, 4, 8, 8))).astype("float32")]
    imported = check_onnx_import(path, inputs, tmp_path)
    graph = imported.project.graph
    assert graph.find("tf_hard_sigmoid_scale_in").kind == "Rescaling"
    assert graph.find("tf_hard_sigmoid").params["activation"] == "hard_sigmoid"
    assert graph.find("prelu").kind == "PReLU" and graph.find("least").kind == "Minimum"


@pytest.mark.slow
@pytest.mark.parametrize(
    "key", ["pieces", "channel_shuffle", "tiny_vit_fused", "tiny_vit_by_hand", "relative_attention"]
)
def test_tensor_zoo_exported_by_pytorch(key, tmp_path):
    """Split, Slice, Gather of one item, Transpose and shape arithmetic feeding Reshape; attention
    written out (a Transpose that moves the batch, Split or Gather on axis 0, MatMul, Softmax, the
    scale folded from Sqrt of a shape) and a class token Expanded over the batch."""
    from tests.test_interop_torch import TENSOR_ZOO, RelativeAttention

    net, shape = {**TENSOR_ZOO, "relative_attention": (RelativeAttention, (3, 4, 8))}[key]
    torch.manual_seed(0)
    inputs = np.random.default_rng(4).standard_normal((2, *shape)).astype("float32")
    path = tmp_path / f"{key}.onnx"
    model = net().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = ["output", "item"] if key == "pieces" else ["output"]
        torch.onnx.export(
            model,
            (torch.from_numpy(inputs),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in ["input", *outputs]},
        )
    check_onnx_import(path, [inputs], tmp_path)


def test_splits_that_do_not_cover_the_axis_are_refused_by_name(tmp_path):
    """Split's sizes must add up to the axis (opset 17 takes them as an input); a Gather of two
    indices is not one item."""
    nodes = [
        helper.make_node("Split", ["x", "sizes"], ["a", "b"], name="short", axis=1),
        helper.make_node("Split", ["x", "many"], ["c", "d"], name="three", axis=1),
        helper.make_node("Gather", ["x", "two"], ["g"], name="pair", axis=1),
        helper.make_node("Concat", ["a", "b", "c", "d"], ["y"], name="join", axis=1),
    ]
    initializers = {
        "sizes": np.array([1, 2], np.int64),
        "many": np.array([1, 1, 2], np.int64),
        "two": np.array([0, 1], np.int64),
    }
    path = tmp_path / "splits.onnx"
    onnx.save(handmade_model(nodes, initializers), str(path))
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    reasons = {problem.name: problem.reason for problem in caught.value.problems}
    assert "splits an axis of 4 into [1, 2]" in reasons["short"]
    assert "splits an axis of 4 into [1, 1, 2]" in reasons["three"]
    assert "several indices" in reasons["pair"]


def test_a_concat_of_one_tensor_is_that_tensor(tmp_path):
    nodes = [
        helper.make_node("Concat", ["x"], ["c"], name="alone", axis=1),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    path = tmp_path / "alone.onnx"
    onnx.save(handmade_model(nodes, {}), str(path))
    imported = import_model(path)
    assert [node.kind for node in imported.project.graph.nodes] == ["Input", "Activation"]


def test_a_file_with_a_fixed_batch_reshapes_with_that_batch(tmp_path):
    """Exported without a dynamic batch axis, ShuffleNet's channel shuffle reshapes to
    [2, groups, channels / groups, h, w]: the 2 there is the file's fixed batch, axis 0 as always."""
    from tests.test_interop_torch import check_reproduces

    class Shuffle(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            b, c, h, w = y.shape
            y = y.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous()
            return y.view(b, c, h, w)

    model = Shuffle().eval()
    x = np.random.default_rng(6).normal(size=(2, 3, 5, 5)).astype("float32")
    path = tmp_path / "shuffle.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x),), str(path), dynamo=False, opset_version=17)
    reshapes = [node for node in onnx.load(str(path)).graph.node if node.op_type == "Reshape"]
    assert reshapes  # the shuffle is there, written with the batch of 2
    imported = import_model(path)
    check_reproduces(imported, model, [x], tmp_path)


def export_with_batch(model, example, path, dynamic: bool) -> None:
    """Exported with a dynamic batch axis, or with the example's batch fixed in every shape."""
    if dynamic:
        export_torch(model, example, path)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(example),), str(path), dynamo=False, opset_version=17)


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic-batch", "fixed-batch"])
def test_multihead_attention_folds_the_batch_into_the_heads(dynamic, tmp_path):
    """The exporter's (L, N * H, d) reshapes and (L * N, E) projection: the importer holds the folded
    batch apart, runs the products and the softmax on the heads, and brings the batch home."""
    torch.manual_seed(0)
    model = SequenceFirstAttention().eval()
    inputs = np.random.default_rng(7).standard_normal((2, 5, 16)).astype("float32")
    path = tmp_path / "attention.onnx"
    export_with_batch(model, inputs, path, dynamic)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"Transpose", "Reshape", "MatMul", "Softmax"} <= ops
    imported = check_onnx_import(path, [inputs], tmp_path)
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert kinds.count("MatMul") == 2 and kinds.count("Dense") == 3, kinds


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic-batch", "fixed-batch"])
def test_windows_folded_into_the_batch_reproduce(dynamic, tmp_path):
    torch.manual_seed(0)
    model = WindowMixer().eval()
    inputs = np.random.default_rng(8).standard_normal((2, *WINDOW_INPUT)).astype("float32")
    path = tmp_path / "windows.onnx"
    export_with_batch(model, inputs, path, dynamic)
    check_onnx_import(path, [inputs], tmp_path)


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic-batch", "fixed-batch"])
def test_batch_norm_of_steps_folded_into_the_batch_and_a_token_added(dynamic, tmp_path):
    """LeViT's BatchNorm1d over (N * L, C) and CaiT's class token added to a tensor, as exported."""
    torch.manual_seed(0)
    model = ComputedConstants().eval()
    inputs = np.random.default_rng(5).standard_normal((2, 5, 6)).astype("float32")
    path = tmp_path / "constants.onnx"
    export_with_batch(model, inputs, path, dynamic)
    check_onnx_import(path, [inputs], tmp_path, computed_weights=5 * 6)  # the sinusoidal table


def test_a_reduce_sum_over_the_radix_and_a_mean_of_an_image_in_its_order(tmp_path):
    torch.manual_seed(0)
    model = RadixSum().eval()
    inputs = np.random.default_rng(9).standard_normal((2, 3, 5, 5)).astype("float32")
    path = tmp_path / "radix.onnx"
    export_with_batch(model, inputs, path, dynamic=True)
    assert "ReduceSum" in {node.op_type for node in onnx.load(str(path)).graph.node}
    check_onnx_import(path, [inputs], tmp_path)


def folded_model(nodes, initializers, input_shape, output_shape) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "folded",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        initializer=[numpy_helper.from_array(array, name) for name, array in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_strided_slices_scatter_and_channels_last_padding_reproduce(tmp_path):
    """Pad of the middle axes of a channels-last (N, H, W, C) tensor, a Slice with a step from an
    offset (rows 1, 3, 5, 7), and a ScatterND of constants (folded at import) added to it."""
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axis_2"], ["image"], name="image"),  # (N, H, W, C)
        helper.make_node("Pad", ["image", "pads"], ["padded"], name="pad"),
        helper.make_node("Slice", ["padded", "starts", "ends", "axes", "steps"], ["rows"], name="rows"),
        helper.make_node("Constant", [], ["updates"], value=numpy_helper.from_array(np.float32([1, -2, 3]))),
        helper.make_node("ScatterND", ["zeros", "where", "updates"], ["marks"], name="marks"),
        helper.make_node("Reshape", ["marks", "marks_shape"], ["marks_4d"], name="marks_4d"),
        helper.make_node("Add", ["rows", "marks_4d"], ["y"], name="add"),
    ]
    initializers = {
        "axis_2": np.array([2], np.int64),
        "pads": np.array([0, 1, 0, 0, 0, 2, 3, 0], np.int64),  # (N, 5, 1, 2) -> (N, 8, 4, 2)
        "starts": np.array([1], np.int64),
        "ends": np.array([100], np.int64),
        "axes": np.array([1], np.int64),
        "steps": np.array([2], np.int64),
        "zeros": np.zeros((4, 4), np.float32),
        "where": np.array([[0, 1], [3, 2], [2, 0]], np.int64),
        "marks_shape": np.array([1, 4, 4, 1], np.int64),
    }
    path = tmp_path / "strided.onnx"
    onnx.save(folded_model(nodes, initializers, (5, 2), ["batch", 4, 4, 2]), str(path))
    inputs = np.random.default_rng(9).standard_normal((2, 5, 2)).astype("float32")
    imported = check_onnx_import(path, [inputs], tmp_path)
    kinds = [node.kind for node in imported.project.graph.nodes]
    assert "ZeroPadding2D" in kinds and "Permute" not in kinds, kinds  # padded in its own layout


def test_a_folded_batch_used_otherwise_is_refused_by_name(tmp_path):
    """A reshape that would split the batch, an operator that does not run on a view of the last axes
    (a mean), and a tensor whose batch is moved as the model's output: each named."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="sequence_first", perm=[1, 0, 2]),
        helper.make_node("Reshape", ["t", "split_batch"], ["s"], name="split_batch"),
        helper.make_node("ReduceMean", ["t"], ["m"], name="mean", axes=[1], keepdims=1),
        helper.make_node("Relu", ["t"], ["y"], name="relu"),
    ]
    initializers = {"split_batch": np.array([3, 2, -1, 4], np.int64)}
    path = tmp_path / "folded.onnx"
    onnx.save(folded_model(nodes, initializers, (3, 4), [3, "batch", 4]), str(path))
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    reasons = {problem.name: problem.reason for problem in caught.value.problems}
    assert "cannot reshape (3, N, 4) to [3, 2, -1, 4]" in reasons["split_batch"], reasons
    assert "a tensor of shape (3, N, 4) whose batch axis is not alone on axis 0" in reasons["mean"], reasons
    assert "the output is a tensor of shape (3, N, 4) whose batch" in reasons["y"], reasons


@pytest.mark.parametrize(
    ("nodes", "initializers"),
    [
        # a reshape of a moved batch to a negative, a zero and a huge size
        ([("Reshape", ["t", "c"], {})], {"c": np.array([3, -4, -1], np.int64)}),
        ([("Reshape", ["t", "c"], {})], {"c": np.array([0, 0, 0, 0], np.int64)}),
        ([("Reshape", ["t", "c"], {})], {"c": np.array([2**40, -1], np.int64)}),
        # the batch size times infinity, or divided by a size that does not divide it
        (
            [("Shape", ["x"], {}), ("Gather", ["o0", "z"], {"axis": 0}), ("Mul", ["o1", "inf"], {})],
            {"z": np.array(0, np.int64), "inf": np.array(np.inf)},
        ),
        (
            [("Shape", ["x"], {}), ("Gather", ["o0", "z"], {"axis": 0}), ("Div", ["o1", "three"], {})],
            {"z": np.array(0, np.int64), "three": np.array(3, np.int64)},
        ),
        # ScatterND of constants at indices out of range
        (
            [("ScatterND", ["d", "i", "u"], {})],
            {
                "d": np.zeros((2, 2), np.float32),
                "i": np.array([[5, 0]], np.int64),
                "u": np.ones(1, np.float32),
            },
        ),
        # a transpose, squeeze or gather of a moved batch on axes that do not exist
        ([("Transpose", ["t"], {"perm": [0, 0, 1]})], {}),
        ([("Squeeze", ["t", "c"], {})], {"c": np.array([7], np.int64)}),
        ([("Gather", ["t", "c"], {"axis": 1})], {"c": np.array(0, np.int64)}),
    ],
)
def test_hostile_operations_on_a_moved_batch_are_refused_cleanly(nodes, initializers, tmp_path):
    """Every one is one clear problem per node, never a traceback; nothing is written."""
    made = [helper.make_node("Transpose", ["x"], ["t"], name="moves", perm=[1, 0, 2])]
    for index, (op, inputs, attrs) in enumerate(nodes):
        made.append(helper.make_node(op, inputs, [f"o{index}"], name=f"op{index}", **attrs))
    made.append(helper.make_node("Relu", ["x"], ["y"], name="relu"))
    graph = helper.make_graph(
        made,
        "hostile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 4])]
        + [helper.make_tensor_value_info(f"o{len(nodes) - 1}", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(array, name) for name, array in initializers.items()],
    )
    path = tmp_path / "hostile.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    problems = [problem for problem in caught.value.problems if problem.name.startswith("op")]
    assert problems and all("\n" not in problem.reason for problem in problems), caught.value


def test_constants_computed_in_the_file_fold_and_a_float_cast_is_the_tensor(tmp_path):
    """A table projected by MatMul and gated by Sigmoid, all constants, folds into the weight that
    is added to the input; a Cast of the input to float is the input itself."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("MatMul", ["table", "projection"], ["projected"], name="project"),
        helper.make_node("Sigmoid", ["projected"], ["gated"], name="gate"),
        helper.make_node("Cast", ["x"], ["as_float"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Add", ["as_float", "gated"], ["y"], name="add"),
    ]
    initializers = {
        "table": rng.standard_normal((3, 2)).astype("float32"),
        "projection": rng.standard_normal((2, 4)).astype("float32"),
    }
    path = tmp_path / "computed.onnx"
    onnx.save(folded_model(nodes, initializers, (3, 4), ["batch", 3, 4]), str(path))
    inputs = rng.standard_normal((2, 3, 4)).astype("float32")
    # the gated table, 3 x 4, is the one weight: it replaces the 3 x 2 and 2 x 4 it is made from
    imported = check_onnx_import(path, [inputs], tmp_path, computed_weights=3 * 4 - (3 * 2 + 2 * 4))
    assert [node.kind for node in imported.project.graph.nodes] == ["Input", "Affine"]
