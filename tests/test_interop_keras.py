"""Importing Keras models: real architectures built by Keras itself, with random weights.

For each: the import succeeds, names and topology are kept, the project is
valid, its parameter count equals Keras's, and the exported PyTorch and
Keras programs, loaded with the exported weight files, reproduce the
original model's outputs within 1e-4 (see studio.interop.check.difference).
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402

from studio.analysis import analyze  # noqa: E402
from studio.interop import (  # noqa: E402
    InteropError,
    ModelFileError,
    UnsupportedModelError,
    import_model,
    save_imported,
)
from studio.interop.check import TOLERANCE, reproduction_errors  # noqa: E402
from studio.layout import BLOCK_SIZE, DEFAULT_NODE_SIZE  # noqa: E402
from studio.project import load_project  # noqa: E402


def randomize_batch_norm(model, seed: int = 0) -> None:
    """Moving statistics and affine weights away from their identity initial values."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 1.5, variance.shape),
                ]
            )


def import_and_check(model, tmp_path, inputs, suffix: str = ".keras"):
    """Save ``model``, import it with weights, and check names, validity, counts and outputs."""
    path = tmp_path / f"{model.name}{suffix}"
    model.save(path)
    started = time.perf_counter()
    imported = import_model(path)
    seconds = time.perf_counter() - started
    project_path, weights_path = save_imported(imported, tmp_path / f"{model.name}.layers.json")
    project = load_project(project_path)
    assert analyze(project.graph).is_valid
    assert imported.imported_parameters == model.count_params() == imported.source_parameters
    names = {node.name for node in project.graph.nodes}
    names |= {name.split("/")[0] for name in names}  # a composite layer's parts: "composite/sublayer"
    assert {layer.name for layer in _all_layers(model)} - names <= _identity_layers(model)
    expected = model(inputs, training=False)
    expected = [np.asarray(e) for e in (expected if isinstance(expected, list) else [expected])]
    errors = reproduction_errors(imported, weights_path, [inputs], expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors
    return imported, project, seconds


def _all_layers(model) -> list:
    """The layers of ``model``, those of nested models in their place (the import inlines them)."""
    result = []
    for layer in model.layers:
        result += _all_layers(layer) if isinstance(layer, keras.Model) else [layer]
    return result


def _identity_layers(model) -> set[str]:
    """Layers the import leaves out: Activation('linear') computes the identity; a nested model's
    InputLayer is its caller's tensor."""
    nested_inputs = {
        layer.name
        for nested in model.layers
        if isinstance(nested, keras.Model)
        for layer in nested.layers
        if isinstance(layer, layers.InputLayer)
    }
    return nested_inputs | {
        layer.name
        for layer in _all_layers(model)
        if isinstance(layer, layers.Activation) and layer.get_config()["activation"] == "linear"
    }


@pytest.mark.slow
def test_resnet50(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(
        weights=None, input_shape=(64, 64, 3), classes=10, classifier_activation=None
    )
    randomize_batch_norm(model)
    inputs = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype("float32")
    imported, project, seconds = import_and_check(model, tmp_path, inputs)
    print(f"\nResNet50 import: {seconds:.2f} s for {len(project.graph)} layers")  # measured, not asserted
    graph = project.graph
    kinds = [node.kind for node in graph.nodes]
    assert kinds.count("Conv2D") == 53 and kinds.count("Add") == 16
    add = graph.find("conv2_block1_add")
    assert [graph.node(source).name for source in graph.inputs_of(add.id)] == [
        "conv2_block1_0_bn",
        "conv2_block1_3_bn",
    ]
    assert graph.find("conv1_pad").params["padding"] == (3, 3, 3, 3)
    # The layout of what the canvas shows: the 16 residual blocks import collapsed, each drawn as one
    # item at its first member's place, in rows that a typical window shows whole. Along every edge
    # between two shown items: left to right within a row, or down to a later row; none overlap.
    assert len(graph.blocks) == 16 and all(block.collapsed for block in graph.blocks)
    shown = {}
    for node in graph.nodes:
        block = graph.block_of(node.id)
        shown[node.id] = block.members[0] if block is not None and block.collapsed else node.id

    def body(node_id):
        x, y = graph.node(node_id).position
        width, height = BLOCK_SIZE if graph.block_of(node_id) else DEFAULT_NODE_SIZE
        return x, y, x + width, y + height

    for edge in graph.edges:
        source, target = shown[edge.source], shown[edge.target]
        if source != target:
            (left, _, _, bottom), (next_left, next_top, _, _) = body(source), body(target)
            assert next_left > left or next_top > bottom, edge  # to the right, or in a row below
    bodies = [body(node_id) for node_id in set(shown.values())]
    for index, (left, top, right, bottom) in enumerate(bodies):
        for other_left, other_top, other_right, other_bottom in bodies[index + 1 :]:
            overlap = left < other_right and other_left < right and top < other_bottom and other_top < bottom
            assert not overlap
    rows = {top for _, top, _, _ in bodies}
    assert len(rows) > 1  # wrapped, not one line 7,000 px long


@pytest.mark.slow
def test_mobilenet_v2(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10, classifier_activation=None
    )
    randomize_batch_norm(model)
    inputs = np.random.default_rng(2).standard_normal((2, 96, 96, 3)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    graph = project.graph
    relu6 = graph.find("Conv1_relu")
    assert relu6.kind == "Activation" and relu6.params["activation"] == "relu6"
    depthwise = graph.find("block_1_depthwise")
    assert depthwise.kind == "DepthwiseConv2D" and depthwise.params["strides"] == (2, 2)
    assert graph.find("block_1_pad").params["padding"] == (0, 1, 0, 1)


@pytest.mark.slow
def test_vgg16_nested_as_a_base_with_a_sequential_head(tmp_path):
    """Transfer learning as users write it: the application and the head are models used as layers."""
    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    head = keras.Sequential(
        [
            layers.Flatten(name="flatten"),  # of (2, 2, 512): the Dense rows follow Keras's order
            layers.Dense(32, activation="relu", name="fc1"),
            layers.Dropout(0.5, name="drop"),
            layers.Dense(10, name="logits"),
        ],
        name="head",
    )
    images = keras.Input((64, 64, 3), name="images")
    model = keras.Model(images, head(base(images)), name="vgg16_transfer")
    inputs = np.random.default_rng(3).standard_normal((2, 64, 64, 3)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    graph = project.graph
    assert [node.kind for node in graph.nodes].count("MaxPooling2D") == 5
    assert graph.find("block5_conv3").params["activation"] == "relu"
    assert [graph.node(s).name for s in graph.inputs_of(graph.find("block1_conv1").id)] == ["images"]
    assert [graph.node(s).name for s in graph.inputs_of(graph.find("flatten").id)] == ["block5_pool"]


def test_lstm_text_classifier(tmp_path):
    keras.utils.set_random_seed(0)
    tokens = keras.Input((20,), dtype="int32", name="tokens")
    x = layers.Embedding(500, 16, name="embedding")(tokens)
    x = layers.Bidirectional(layers.LSTM(12, return_sequences=True), name="bilstm")(x)
    x = layers.LSTM(10, name="lstm")(x)
    model = keras.Model(tokens, layers.Dense(3, name="logits")(x), name="text_classifier")
    inputs = np.random.default_rng(4).integers(0, 500, (3, 20)).astype("int32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    graph = project.graph
    assert graph.find("tokens").params["dtype"] == "int32"
    bilstm = graph.find("bilstm")
    assert bilstm.kind == "LSTM" and bilstm.params["bidirectional"] and bilstm.params["return_sequences"]
    assert graph.find("lstm").params == {"units": 10, "return_sequences": False, "bidirectional": False}


def transformer_block(name: str = "encoder") -> keras.Model:
    sequence = keras.Input((12, 32), name="sequence")
    attended = layers.MultiHeadAttention(num_heads=4, key_dim=8, name="attention")(sequence, sequence)
    x = layers.Add(name="residual_1")([sequence, layers.Dropout(0.1, name="attention_dropout")(attended)])
    x = layers.LayerNormalization(epsilon=1e-6, name="norm_1")(x)
    ffn = layers.Dense(64, activation="gelu", name="ffn_1")(x)
    ffn = layers.Dense(32, name="ffn_2")(ffn)
    x = layers.LayerNormalization(epsilon=1e-6, name="norm_2")(layers.Add(name="residual_2")([x, ffn]))
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(sequence, layers.Dense(5, name="logits")(x), name=name)


def test_transformer_encoder_block(tmp_path):
    keras.utils.set_random_seed(0)
    model = transformer_block()
    inputs = np.random.default_rng(5).standard_normal((3, 12, 32)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    graph = project.graph
    attention = graph.find("attention")
    assert attention.params["num_heads"] == 4 and attention.params["key_dim"] == 8
    assert [graph.node(s).name for s in graph.inputs_of(attention.id)] == ["sequence"]  # self-attention
    assert [graph.node(s).name for s in graph.inputs_of(graph.find("residual_2").id)] == ["norm_1", "ffn_2"]


@pytest.mark.slow
def test_grouped_convolutions(tmp_path):
    """Conv2D and Conv1D with groups, a depthwise multiplier: torch's groups take the same channel order."""
    keras.utils.set_random_seed(0)
    images = keras.Input((10, 9, 8), name="images")
    x = layers.Conv2D(12, 3, groups=4, padding="same", activation="relu", name="grouped")(images)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="depthwise")(x)
    x = layers.Conv2D(8, 1, groups=8, use_bias=False, name="per_channel")(layers.ReLU()(x))
    x = layers.Reshape((25, 8))(x)
    x = layers.Conv1D(4, 3, strides=2, padding="same", groups=2, name="grouped_1d")(x)
    model = keras.Model(images, layers.GlobalAveragePooling1D()(x), name="grouped")
    inputs = np.random.default_rng(3).standard_normal((2, 10, 9, 8)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    groups = {
        name: project.graph.find(name).params["groups"] for name in ("grouped", "per_channel", "grouped_1d")
    }
    assert groups == {"grouped": 4, "per_channel": 8, "grouped_1d": 2}


def test_legacy_h5_and_sequential(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(4, 3, activation="relu", name="conv"),
            layers.MaxPooling2D(name="pool"),
            layers.Flatten(name="flatten"),
            layers.Dense(3, activation="softmax", name="out"),
        ],
        name="small_sequential",
    )
    inputs = np.random.default_rng(6).standard_normal((2, 8, 8, 1)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, inputs, suffix=".h5")
    assert [node.name for node in project.graph.nodes][1:] == ["conv", "pool", "flatten", "out"]


def test_json_config_imports_the_architecture_without_weights(tmp_path):
    model = transformer_block("from_json")
    path = tmp_path / "model.json"
    path.write_text(model.to_json(), encoding="utf-8")
    imported = import_model(path)
    assert imported.weights is None
    assert imported.imported_parameters == model.count_params()
    assert len(imported.project.graph) == len(model.layers)


def test_unsupported_layers_are_all_listed_and_nothing_is_written(tmp_path):
    from studio.interop.commands import cmd_import

    images = keras.Input((16, 16, 4), name="images")
    x = layers.Conv2D(8, 3, groups=2, name="grouped_conv")(images)  # imported: grouped convolution
    x = layers.GroupNormalization(groups=4, name="group_norm")(x)
    x = layers.BatchNormalization(center=True, scale=False, name="half_bn")(x)

    x = layers.Conv2D(8, 3, groups=2, name="grouped_conv")(images)
    x = layers.GroupNormalization(groups=2, axis=1, name="group_norm")(x)
    x = layers.BatchNormalization(renorm=True, name="half_bn")(x)
    x = layers.Conv2D(8, 3, padding="same", name="fine_conv")(x)
    model = keras.Model(images, layers.GlobalAveragePooling2D()(x), name="unsupported")
    path = tmp_path / "unsupported.keras"
    model.save(path)
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    problems = {problem.name: problem for problem in caught.value.problems}
    assert set(problems) == {"group_norm", "half_bn"}
    assert problems["group_norm"].source_kind == "GroupNormalization"
    assert "axis=1" in problems["group_norm"].reason
    assert "renorm=True" in problems["half_bn"].reason
    args = _import_args(str(path), tmp_path / "out.layers.json", weights=True)
    assert cmd_import(args) == 1
    assert not list(tmp_path.glob("out*"))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layers_are_refused_by_safe_mode(suffix, tmp_path, capsys):
    from studio.interop.commands import cmd_import

    values = keras.Input((4,), name="values")
    doubled = layers.Lambda(lambda t: t * 2, name="double")(values)
    path = tmp_path / f"lambda{suffix}"
    keras.Model(values, layers.Dense(2)(doubled)).save(path)
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    assert [(p.name, p.source_kind) for p in caught.value.problems] == [("double", "Lambda")]
    assert "safe mode" in str(caught.value)
    assert cmd_import(_import_args(str(path), tmp_path / "lambda.layers.json")) == 1
    assert "  - Lambda (1): double: " in capsys.readouterr().err
    assert not (tmp_path / "lambda.layers.json").exists()


def test_malformed_keras_files_give_a_clear_error(tmp_path, capsys):
    from studio.interop.commands import cmd_import

    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    good = tmp_path / "good.keras"
    model.save(good)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        import_model(truncated)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ModelFileError, match="not an HDF5 file"):
        import_model(garbage)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFileError, match="JSON"):
        import_model(bad_json)
    assert cmd_import(_import_args(str(truncated), tmp_path / "t.layers.json")) == 2
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and "Traceback" not in err
    assert not (tmp_path / "t.layers.json").exists()


def test_a_hand_edited_json_config_reports_the_bad_layer(tmp_path):
    config = json.loads(transformer_block("edited").to_json())
    for layer in config["config"]["layers"]:
        if layer["name"] == "ffn_1":
            del layer["config"]["units"]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    assert [problem.name for problem in caught.value.problems] == ["ffn_1"]
    assert "could not be read" in caught.value.problems[0].reason


def _import_args(model: str, output, weights: bool = False):
    from studio.interop.commands import parse_import_args

    return parse_import_args([model, "-o", str(output)] + (["--weights"] if weights else []))


@keras.saving.register_keras_serializable(package="studio_tests")
class TextClassifier(keras.Model):
    """A subclassed model built functionally, as keras-hub's backbones are: keras-hub's token and
    position embedding and two TransformerEncoders (post- and pre-norm), then a Dense head."""

    def __init__(self, steps=12, vocabulary_size=50, **kwargs):
        import keras_hub

        ids = keras.Input((steps,), dtype="int32", name="ids")
        x = keras_hub.layers.TokenAndPositionEmbedding(vocabulary_size, 16, 16, name="embed")(ids)
        x = keras_hub.layers.TransformerEncoder(32, 2, dropout=0.1, name="encoder_post")(x)
        x = keras_hub.layers.TransformerEncoder(
            32, 4, activation="gelu", normalize_first=True, name="encoder_pre"
        )(x)
        outputs = layers.Dense(3, name="head")(layers.GlobalAveragePooling1D(name="pool")(x))
        super().__init__(ids, outputs, **kwargs)
        self.steps, self.vocabulary_size = steps, vocabulary_size

    def get_config(self):
        return {"steps": self.steps, "vocabulary_size": self.vocabulary_size, "name": self.name}


def randomize_weights(model, seed: int = 0) -> None:
    """Every weight random, LayerNormalization's gamma and beta included."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0.3, 0.3, weight.shape).astype("float32"))


@pytest.mark.slow
def test_keras_hub_transformer_text_classifier(tmp_path):
    """A subclassed model's layer graph; keras-hub's composite layers become catalog layers."""
    keras.utils.set_random_seed(0)
    model = TextClassifier(name="text_classifier")
    randomize_weights(model)
    inputs = np.random.default_rng(1).integers(0, 50, (2, 12)).astype("int32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    graph = project.graph
    assert graph.find("embed/position_embedding").kind == "PositionEmbedding"
    assert graph.find("encoder_post/self_attention_layer").params["num_heads"] == 2
    kinds = [node.kind for node in graph.nodes if node.name.startswith("encoder_pre/")]
    assert kinds[:2] == ["LayerNormalization", "MultiHeadAttention"]  # normalize_first


@pytest.mark.slow
def test_keras_hub_bert_backbone_needs_its_lengths_then_imports(tmp_path):
    """keras-hub's backbones are functional inside: without its sequence length BERT is refused,
    naming the inputs; given it, the graph is read, not the constructor's arguments."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=16,
    )
    path = tmp_path / "bert.keras"
    backbone.save(path)
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    problems = {problem.name: problem.reason for problem in caught.value.problems}
    assert "unknown size" in problems["token_ids"]
    # Given its lengths: tanh GELU is gelu_tanh, the pooled output's x[:, 0, :] a Slice and a Reshape
    # (tests/test_attention_masks.py checks that it reproduces in PyTorch).
    graph = import_model(path, input_shapes=[(16,)] * 3).project.graph
    activations = {node.params.get("activation") for node in graph.nodes if node.kind == "Dense"}
    assert "gelu_tanh" in activations
    pooled = [node for node in graph.nodes if node.name.startswith("get_item")]
    assert [node.kind for node in pooled] == ["Slice", "Reshape"]
    assert graph.find("token_embedding") is not None and graph.find("position_embedding") is not None


def variable_length_model(tmp_path):
    """Token ids of unknown length (None,) -> Embedding -> grouped Conv1D -> pooling, saved."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = layers.Embedding(20, 8, name="embed")(ids)
    x = layers.Conv1D(4, 3, padding="same", groups=2, name="grouped")(x)
    model = keras.Model(ids, layers.GlobalMaxPooling1D(name="pool")(x), name="variable_length")
    path = tmp_path / "variable_length.keras"
    model.save(path)
    return model, path


def test_unknown_sequence_length_is_refused_naming_the_way_out(tmp_path):
    _, path = variable_length_model(tmp_path)
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path, with_weights=False)
    reason = caught.value.problems[0].reason
    assert "unknown size" in reason and "--input-shape" in reason
    with pytest.raises(InteropError, match="does not fit"):
        import_model(path, input_shapes=[(6, 2)], with_weights=False)
    with pytest.raises(InteropError, match="1 input"):
        import_model(path, input_shapes=[(6,), (6,)], with_weights=False)
    sequential = keras.Sequential([keras.Input((None, 3)), layers.Conv1D(4, 3, groups=1)], name="seq")
    sequential.save(tmp_path / "seq.keras")
    imported = import_model(tmp_path / "seq.keras", input_shapes=[(9, 3)], with_weights=False)
    assert imported.project.graph.nodes[0].params["shape"] == (9, 3)


@pytest.mark.slow
def test_unknown_sequence_length_given_at_import(tmp_path):
    """With its length given, the model imports and reproduces at that length."""
    model, path = variable_length_model(tmp_path)
    imported = import_model(path, input_shapes=[(7,)])
    assert imported.project.graph.find("ids").params["shape"] == (7,)
    _, weights_path = save_imported(imported, tmp_path / "variable_length.layers.json")
    inputs = np.random.default_rng(0).integers(0, 20, (2, 7)).astype("int32")
    expected = [np.asarray(model(inputs, training=False))]
    errors = reproduction_errors(imported, weights_path, [inputs], expected, tmp_path)
    assert errors["keras"] <= TOLERANCE and errors["pytorch"] <= TOLERANCE, errors


@pytest.mark.slow
def test_keras_hub_style_subclass_nested_in_a_functional_model(tmp_path):
    """A Functional subclass used as a layer: its graph is inlined like a nested functional model."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((10,), dtype="int32", name="token_ids")
    inner = TextClassifier(steps=10, name="classifier")
    model = keras.Model(ids, layers.Softmax(name="probabilities")(inner(ids)), name="wrapped")
    randomize_weights(model, seed=2)
    inputs = np.random.default_rng(3).integers(0, 50, (2, 10)).astype("int32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    assert project.graph.find("encoder_pre/feedforward_add").kind == "Add"


# ----- ACT slice (issue 13): activations, structured dropout, broadcasting merges ------------------


@pytest.mark.slow
def test_squeeze_excitation_activations_and_structured_dropout(tmp_path):
    """MobileNetV3's squeeze-and-excitation and activations, ConvNeXt's StochasticDepth, PReLU,
    SpatialDropout and noise_shape, and merges that broadcast a pooled vector against the image."""
    from keras.src.applications.convnext import StochasticDepth

    keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 3))
    y = layers.Conv2D(8, 3, padding="same")(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("hard_swish")(y)
    y = layers.PReLU(shared_axes=[1, 2], alpha_initializer="random_uniform", name="prelu")(y)
    scale = layers.GlobalAveragePooling2D()(y)
    scale = layers.Reshape((1, 1, 8))(scale)
    scale = layers.Conv2D(4, 1, activation="relu")(scale)
    scale = layers.Conv2D(8, 1, activation="hard_sigmoid")(scale)
    y = layers.Multiply(name="excite")([y, scale])
    y = layers.SpatialDropout2D(0.2, name="spatial")(y)
    y = StochasticDepth(0.1, name="depth")(y)
    y = layers.Dropout(0.3, noise_shape=(None, 1, 1, 8), name="channels")(y)
    y = layers.Subtract(name="centre")([y, layers.GlobalMaxPooling2D()(y)])  # (H, W, C) - (C,)
    y = layers.Minimum()([y, layers.Activation("mish")(y)])
    y = layers.Activation("selu")(y)
    model = keras.Model(x, layers.Conv2D(2, 1)(y), name="squeeze_excite")
    randomize_batch_norm(model)
    inputs = np.random.default_rng(2).standard_normal((2, 16, 16, 3)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, inputs)
    graph = project.graph
    assert graph.find("prelu").params == {"per_channel": True}
    assert graph.find("excite").kind == "Multiply"
    masks = {name: graph.find(name).params["mask"] for name in ("spatial", "depth", "channels")}
    assert masks == {"spatial": "channel", "depth": "sample", "channels": "channel"}
    assert graph.find("centre").kind == "Subtract"


def test_slices_in_a_functional_model_import_or_are_refused_by_name():
    """``x[:, 1:3]`` is a Keras operation (GetItem): ranges are Slices, an item a Slice and a Reshape
    that drops its axis; steps and damaged keys are refused, naming the reason."""
    from studio.interop.keras_import import import_keras_config

    inputs = keras.Input((6, 4))
    kept = layers.Dense(2, name="dense")(inputs[:, 1:3])
    stepped = inputs[:, ::2]
    batch = inputs[0]
    model = keras.Model(inputs, [kept, stepped, batch])
    document = {"class_name": "Functional", "config": model.get_config()}
    with pytest.raises(UnsupportedModelError) as caught:
        import_keras_config(document, None, source="slices")
    reasons = sorted(problem.reason for problem in caught.value.problems)
    assert len(reasons) == 2
    assert "indexes the batch axis" in reasons[0] and "step 2" in reasons[1]

    model = keras.Model(inputs, kept)
    imported = import_keras_config({"class_name": "Functional", "config": model.get_config()}, None)
    sliced = next(node for node in imported.project.graph.nodes if node.kind == "Slice")
    assert sliced.params == {"axis": 1, "start": 1, "stop": 3}

    config = json.loads(json.dumps(model.get_config()).replace('"start": 1', '"start": "one"'))
    with pytest.raises(UnsupportedModelError, match="get_item"):
        import_keras_config({"class_name": "Functional", "config": config}, None)


def test_items_and_ranges_of_several_axes_reproduce_in_pytorch(tmp_path):
    """BERT's pooled output reads ``x[:, 0, :]``: an item is a one-long Slice, then a Reshape."""
    inputs = keras.Input((6, 5, 4))
    first_token = inputs[:, 0, :, :]
    last_channel = inputs[..., -1]
    window = inputs[:, 1:4, 2, 1:3]
    outputs = [
        layers.Dense(3, name="pooled")(layers.Flatten()(first_token)),
        layers.Flatten()(last_channel),
        layers.Flatten()(window),
    ]
    model = keras.Model(inputs, outputs, name="items")
    x = np.random.default_rng(3).normal(size=(2, 6, 5, 4)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, x)
    kinds = [node.kind for node in project.graph.nodes]
    assert kinds.count("Slice") == 5 and kinds.count("Reshape") == 3


def test_inception_resnets_custom_scale_layer_expands_to_rescaling_and_add(tmp_path):
    """keras.applications' InceptionResNetV2 merges each block as x + branch * scale."""
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    inputs = keras.Input((6,))
    branch = layers.Dense(6, name="branch")(inputs)
    merged = CustomScaleLayer(0.17, name="block_scale")([inputs, branch])
    model = keras.Model(inputs, layers.Dense(2, name="head")(merged), name="scaled")
    x = np.random.default_rng(7).normal(size=(3, 6)).astype("float32")
    imported, project, _ = import_and_check(model, tmp_path, x)
    graph = project.graph
    assert graph.find("block_scale/scaled").params == {"scale": 0.17, "offset": 0.0}
    assert graph.find("block_scale/add").kind == "Add"


def test_arithmetic_with_a_number_is_a_rescaling(tmp_path):
    """MobileNetV3 writes hard sigmoid as relu6(x + 3.0) * (1.0 / 6.0): Keras operations on a tensor
    and a number, which a Rescaling (x * scale + offset) computes exactly."""
    inputs = keras.Input((5,))
    hidden = layers.Dense(5, name="dense")(inputs)
    gated = layers.ReLU(6.0)(hidden + 3.0) * (1.0 / 6.0)
    model = keras.Model(inputs, layers.Dense(2, name="head")(gated - 0.5), name="arithmetic")
    x = np.random.default_rng(8).normal(size=(4, 5)).astype("float32") * 4
    _, project, _ = import_and_check(model, tmp_path, x)
    rescalings = [node.params for node in project.graph.nodes if node.kind == "Rescaling"]
    assert rescalings == [
        {"scale": 1.0, "offset": 3.0},
        {"scale": 1.0 / 6.0, "offset": 0.0},
        {"scale": 1.0, "offset": -0.5},
    ]


def test_keras_ops_matmul_is_a_matmul_layer(tmp_path):
    """Attention scores written with ``keras.ops.matmul`` of two computed tensors reproduce in PyTorch."""
    inputs = keras.Input((5, 8))
    query, key = layers.Dense(8, name="query")(inputs), layers.Dense(8, name="key")(inputs)
    scores = keras.ops.matmul(query, layers.Permute((2, 1), name="key_t")(key))
    weights = layers.Softmax(name="weights")(scores)
    model = keras.Model(inputs, layers.Dense(2, name="head")(weights), name="scores")
    x = np.random.default_rng(9).normal(size=(3, 5, 8)).astype("float32")
    _, project, _ = import_and_check(model, tmp_path, x)
    product = next(node for node in project.graph.nodes if node.kind == "MatMul")
    assert [project.graph.node(source).name for source in project.graph.inputs_of(product.id)] == [
        "query",
        "key_t",
    ]
