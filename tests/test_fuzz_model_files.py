"""Fuzz tests: malformed model files for ``import_model`` and weights files for ``load_weights``.

Real files are written by Keras (a functional and a Sequential model as ``.keras``,
``.h5`` and JSON config), by the onnx helper (two small graphs) and by
``save_weights``; then they are truncated, byte-flipped, or edited: configs with wrong
types, unknown classes, dangling and cyclic inbound nodes, duplicate names, odd shapes
and out-of-range parameters; ONNX graphs with odd attributes, dims, initializers,
operators, opsets and wiring; weights with missing tags, wrong dtypes, bad keys and
huge declared shapes. Each import gives a valid project or an InteropError naming the
file (WeightsError for weights); a sample goes through ``studio import`` (exit 0, 1 or
2, never a traceback, nothing written unless it succeeds). The file read is never
changed.

The Keras targets load TensorFlow (a few seconds, once) and take a tenth of a second or
more per case, so their share of each profile is small. Profiles:
STUDIO_FUZZ_PROFILE=ci (the default, bounded) or deep (a long local run); see
tests/fuzzing.py.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import event, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from studio.analysis import analyze  # noqa: E402
from studio.interop import (  # noqa: E402
    ImportedModel,
    InteropError,
    ModelFileError,
    UnsupportedModelError,
    WeightsError,
    import_model,
    load_weights,
    save_weights,
)
from studio.project import dumps_project, loads_project  # noqa: E402
from tests.fuzzing import (  # noqa: E402
    ODD_TEXT,
    RawText,
    case,
    damaged_bytes,
    expect,
    fuzz_settings,
    huge_header_member,
    json_paths,
    json_values,
    mutated_json,
    run_cli,
)


def check_imported(result: ImportedModel) -> None:
    """An import that succeeds gives a valid project that saves and reads back, with fitting weights."""
    assert isinstance(result, ImportedModel)
    analysis = analyze(result.project.graph)
    assert analysis.is_valid, [str(problem) for problem in analysis.errors]
    text = dumps_project(result.project)
    assert dumps_project(loads_project(text)) == text
    for arrays in (result.weights or {}).values():
        assert all(np.asarray(array).dtype == np.float32 for array in arrays)


def import_file(raw: bytes, filename: str, target: str):
    """Write ``raw`` as ``filename`` in a new folder and import it: the model, or the checked error."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / filename
        path.write_bytes(raw)
        with case(target, Path(folder)):
            result = expect(lambda: import_model(path), InteropError, names=[path.name])
            if isinstance(result, InteropError):
                event(type(result).__name__)
            else:
                check_imported(result)
                event("imported")
    return result


# ----- Keras ------------------------------------------------------------------------------


@functools.cache
def keras_files() -> dict[str, bytes]:
    """A functional and a Sequential model, each as .keras, .h5 and JSON config."""
    import keras
    from keras import layers

    inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    skip = layers.Conv2D(4, 1, name="skip")(inputs)
    x = layers.Add(name="add")([x, skip])
    x = layers.BatchNormalization(name="norm")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.25, name="drop")(x)
    outputs = layers.Dense(3, activation="softmax", name="dense")(x)
    functional = keras.Model(inputs, outputs, name="small_cnn")
    sequential = keras.Sequential(
        [
            keras.Input((6, 4), name="steps"),
            layers.LSTM(5, return_sequences=True, name="lstm"),
            layers.Conv1D(3, 2, name="conv1d"),
            layers.GlobalAveragePooling1D(name="gap"),
            layers.Dense(2, name="out"),
        ],
        name="small_rnn",
    )
    files = {}
    with tempfile.TemporaryDirectory() as folder:
        for model in (functional, sequential):
            for suffix in (".keras", ".h5"):
                path = Path(folder) / f"{model.name}{suffix}"
                model.save(path)
                files[path.name] = path.read_bytes()
            files[f"{model.name}.json"] = model.to_json().encode("utf-8")
    return files


KERAS_KEYS = {
    "class_name": ["Foo", "Lambda", "Dense", "Conv2D", "InputLayer", "Sequential", "Functional", "Model", ""],
    "module": ["os", "builtins", "keras.layers", "subprocess", ""],
    "registered_name": ["os>system", "builtins.eval", None],
    "name": ["dense", "conv", "image", "", "a/b", "\x00", "名前"],
    "units": [0, -1, 2**31, 10**100, 2.5, "3"],
    "filters": [0, -4, 2**31, 10**30],
    "kernel_size": [[0, 0], [-1, 3], [10**6, 1], 3, [], [1, 2, 3]],
    "strides": [[0, 0], [10**9, 1], -2],
    "pool_size": [[0, 2], [100, 100], None],
    "padding": ["full", "SAME", 3, "causal"],
    "activation": ["foo", None, {"module": "os", "class_name": "system"}, "swish", "gelu"],
    "rate": [1.0, -0.5, 10**400, float("nan")],
    "axis": [0, 1, -1, 7, [1, 2], None],
    "batch_shape": [[None, 0, 8, 1], [None, -1], [None, 10**30], [], None, "8,8"],
    "shape": [[None, 8, 8, 1], [0], None],
    "keras_history": [["missing", 0, 0], ["dense", 5, 0], ["conv", 0, 3], [], None, "conv"],
    "inbound_nodes": [[], None, [[["missing", 0, 0, {}]]], "x"],
    "dtype": ["float16", "int32", {"config": {"name": "mixed_float16"}}, None],
    "return_sequences": [False, "yes", None],
    "layers": [[], None, [None], {}],
}


def keras_edit(draw, document, raw: RawText):
    """An edit of a Keras config: a known key given an odd value, a layer copied or rewired."""
    paths = [path for path in json_paths(document) if path and path[-1] in KERAS_KEYS]
    layer_lists = [path for path in json_paths(document) if path and path[-1] == "layers"]
    if layer_lists and draw(st.integers(0, 3)) == 0:
        layers = json_paths_value(document, draw(st.sampled_from(layer_lists)))
        if isinstance(layers, list) and layers:
            copy = json.loads(json.dumps(draw(st.sampled_from(layers))))
            layers.insert(draw(st.integers(0, len(layers))), copy)  # a duplicate name, or a cycle
        return document
    if not paths:
        return document
    path = draw(st.sampled_from(paths))
    parent = json_paths_value(document, path[:-1])
    parent[path[-1]] = draw(st.sampled_from(KERAS_KEYS[path[-1]]) | json_values)
    return document


def json_paths_value(document, path):
    for key in path:
        document = document[key]
    return document


def rezip_keras(original: bytes, config: str) -> bytes:
    """A .keras archive with its config.json replaced."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as source, zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = config.encode("utf-8") if item.filename == "config.json" else source.read(item.filename)
            target.writestr(item, data)
    return buffer.getvalue()


def reconfigure_h5(original: bytes, config: str) -> bytes:
    """An .h5 model file with its model_config attribute replaced."""
    import h5py

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.h5"
        path.write_bytes(original)
        with h5py.File(path, "r+") as handle:
            handle.attrs["model_config"] = config
        return path.read_bytes()


@st.composite
def edited_config(draw, document) -> str:
    raw = RawText()
    return raw.dumps(draw(mutated_json(document, raw, extra=keras_edit)))


@fuzz_settings("Keras JSON config")
@given(model=st.sampled_from(["small_cnn", "small_rnn"]), data=st.data())
def test_malformed_keras_json_configs_import_or_say_why(model, data):
    original = keras_files()[f"{model}.json"]
    if data.draw(st.integers(0, 3)) == 0:
        raw = data.draw(damaged_bytes(original))
    else:
        raw = data.draw(edited_config(json.loads(original))).encode("utf-8", "surrogatepass")
    import_file(raw, f"{model}.json", "Keras JSON config")


@pytest.mark.slow
@fuzz_settings("Keras .keras file")
@given(model=st.sampled_from(["small_cnn", "small_rnn"]), data=st.data())
def test_malformed_keras_archives_import_or_say_why(model, data):
    original = keras_files()[f"{model}.keras"]
    if data.draw(st.booleans()):
        raw = data.draw(damaged_bytes(original))
    else:
        with zipfile.ZipFile(io.BytesIO(original)) as archive:
            config = json.loads(archive.read("config.json"))
        raw = rezip_keras(original, data.draw(edited_config(config)))
    import_file(raw, f"{model}.keras", "Keras .keras file")


@pytest.mark.slow
@fuzz_settings("Keras .h5 file")
@given(model=st.sampled_from(["small_cnn", "small_rnn"]), data=st.data())
def test_malformed_keras_h5_files_import_or_say_why(model, data):
    import h5py

    original = keras_files()[f"{model}.h5"]
    if data.draw(st.booleans()):
        raw = data.draw(damaged_bytes(original))
    else:
        with h5py.File(io.BytesIO(original), "r") as handle:
            config = json.loads(handle.attrs["model_config"])
        raw = reconfigure_h5(original, data.draw(edited_config(config)))
    import_file(raw, f"{model}.h5", "Keras .h5 file")


# ----- ONNX -------------------------------------------------------------------------------


@functools.cache
def onnx_models() -> dict[str, bytes]:
    """Two small graphs: a CNN (Conv, Relu, MaxPool, Flatten, Gemm) and a mixer (Add, Concat, BN, MatMul)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def tensor(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    cnn = helper.make_graph(
        [
            helper.make_node(
                "Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
            helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
        ],
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])],
        initializer=[tensor("w", 4, 2, 3, 3), tensor("b", 4), tensor("fc_w", 5, 36), tensor("fc_b", 5)],
    )
    scale = np.abs(rng.standard_normal(6)).astype(np.float32) + 0.5
    mixer = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "m"], ["h"], name="proj"),
            helper.make_node("Add", ["h", "bias"], ["hb"], name="bias_add"),
            helper.make_node("Sigmoid", ["hb"], ["s"], name="gate"),
            helper.make_node("Add", ["s", "hb"], ["sum"], name="residual"),
            helper.make_node("Concat", ["sum", "x"], ["cat"], name="concat", axis=1),
            helper.make_node("Gemm", ["cat", "out_w"], ["y"], name="head"),
        ],
        "mixer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            tensor("m", 4, 6),
            numpy_helper.from_array(scale, "bias"),
            tensor("out_w", 10, 3),
        ],
    )
    return {
        graph.name: helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
        for graph in (cnn, mixer)
    }


PROTOBUF_TEXT = [text for text in ODD_TEXT if not any(0xD800 <= ord(char) <= 0xDFFF for char in text)]
ONNX_OPS = ["Relu", "Conv", "Gemm", "Add", "Concat", "Reshape", "Softmax", "LRN", "Foo", "", "Loop", "If"]


@st.composite
def edited_onnx(draw, original: bytes) -> bytes:
    """The model after 1-3 edits of its proto: attributes, op types, wiring, dims, initializers, opset."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(original)
    graph = model.graph
    ints = st.sampled_from([0, 1, -1, 2, 3, 2**31, -(2**31), 2**62, 10**6]) | st.integers(-5, 9)
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(
            st.sampled_from(
                ["attribute", "op", "wire", "cycle", "dims", "initializer", "opset", "name", "drop", "copy"]
            )
        )
        nodes = list(graph.node)
        node = graph.node[draw(st.integers(0, len(nodes) - 1))] if nodes else None
        if edit == "attribute" and node is not None:
            name = draw(
                st.sampled_from(
                    [a.name for a in node.attribute] + ["axis", "kernel_shape", "group", "pads", "x"]
                )
            )
            kept = [a for a in node.attribute if a.name != name]
            del node.attribute[:]
            node.attribute.extend(kept)
            value = draw(
                st.lists(ints, max_size=5)
                | ints
                | st.floats(allow_nan=True)
                | st.text(max_size=5)
                | st.none()
            )
            if value is not None and not (isinstance(value, list) and not value):
                node.attribute.append(helper.make_attribute(name, value))
        elif edit == "op" and node is not None:
            node.op_type = draw(st.sampled_from(ONNX_OPS))
        elif edit == "wire" and node is not None and node.input:
            names = [name for other in nodes for name in other.output] + ["missing", ""]
            node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(names))
        elif edit == "cycle" and node is not None and node.input:
            node.input[0] = node.output[0] if draw(st.booleans()) else nodes[-1].output[0]
        elif edit == "dims":
            values = [*graph.input, *graph.output]
            info = values[draw(st.integers(0, len(values) - 1))]
            dims = info.type.tensor_type.shape.dim
            if dims:
                dim = dims[draw(st.integers(0, len(dims) - 1))]
                value = draw(st.sampled_from([0, -1, 1, 10**9, 2**62]) | st.text(max_size=3))
                if isinstance(value, str):
                    dim.dim_param = value
                else:
                    dim.dim_value = value
            if draw(st.booleans()):
                info.type.tensor_type.elem_type = draw(st.sampled_from([0, 2, 6, 7, 8, 9, 10, 11, 16, 999]))
        elif edit == "initializer" and graph.initializer:
            initializer = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
            what = draw(st.sampled_from(["dims", "type", "truncate", "external"]))
            if what == "dims":
                del initializer.dims[:]
                initializer.dims.extend(draw(st.lists(ints.filter(lambda d: abs(d) < 2**62), max_size=4)))
            elif what == "type":
                initializer.data_type = draw(st.sampled_from([0, 2, 6, 7, 8, 9, 10, 11, 16, 999]))
            elif what == "truncate":
                initializer.raw_data = initializer.raw_data[: draw(st.integers(0, len(initializer.raw_data)))]
            else:
                initializer.data_location = onnx.TensorProto.EXTERNAL
                location = draw(
                    st.sampled_from(["missing.bin", "../outside.bin", "/etc/hostname", "x" * 300])
                )
                del initializer.external_data[:]
                entry = initializer.external_data.add()
                entry.key, entry.value = "location", location
        elif edit == "opset":
            model.opset_import[0].version = draw(st.sampled_from([1, 6, 11, 13, 18, 21, 99, 10**6]))
        elif edit == "name" and node is not None:
            node.name = draw(st.sampled_from(PROTOBUF_TEXT) | st.text(max_size=10))
        elif edit == "drop" and len(nodes) > 1:
            del graph.node[draw(st.integers(0, len(nodes) - 1))]
        elif edit == "copy" and node is not None:
            graph.node.append(node)  # the same outputs produced twice
    return model.SerializeToString()


@fuzz_settings("ONNX")
@given(model=st.sampled_from(["cnn", "mixer"]), data=st.data())
def test_malformed_onnx_files_import_or_say_why(model, data):
    original = onnx_models()[model]
    roll = data.draw(st.integers(0, 3))
    raw = data.draw(damaged_bytes(original)) if roll == 0 else data.draw(edited_onnx(original))
    if roll == 1:
        raw = data.draw(damaged_bytes(raw, max_edits=1))
    import_file(raw, f"{model}.onnx", "ONNX")


# ----- weights files ------------------------------------------------------------------------


def weights_archive(members: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


@functools.cache
def good_weights() -> bytes:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.weights.npz"
        save_weights(
            {
                "dense": [rng.standard_normal((4, 32)), rng.standard_normal(32)],
                "dense_1": [rng.standard_normal((32, 3)), rng.standard_normal(3)],
                "block/conv": [rng.standard_normal((3, 3, 1, 2))],
            },
            path,
        )
        return path.read_bytes()


@st.composite
def weights_files(draw) -> bytes:
    roll = draw(st.integers(0, 3))
    if roll == 0:
        return draw(damaged_bytes(good_weights()))
    with np.load(io.BytesIO(good_weights())) as archive:
        members = {key: archive[key] for key in archive.files}
    for _ in range(draw(st.integers(1, 3))):
        key = draw(
            st.sampled_from(sorted(members)) | st.text(max_size=8) | st.sampled_from(["a/", "/0", "x/-1"])
        )
        edit = draw(st.sampled_from(["delete", "dtype", "value", "rename", "tag"]))
        if edit == "delete":
            members.pop(key, None)
        elif edit == "dtype" and key in members and members[key].dtype.kind == "f":
            dtype = draw(
                st.sampled_from(["int32", "float16", "float64", "complex64", "bool", "<U2", "object"])
            )
            with np.errstate(all="ignore"):
                members[key] = (
                    members[key].astype(dtype) if dtype != "object" else np.array([{}, 1], dtype=object)
                )
        elif edit == "value":
            members[key] = np.asarray(
                draw(st.sampled_from([np.nan, np.inf, 1e39, 0.0]) | st.just([1.0, 2.0]))
            )
        elif edit == "rename" and key in members:
            members[
                draw(st.text(max_size=6) | st.sampled_from(["dense/1", "dense/99999999999999999999"]))
            ] = members.pop(key)
        elif edit == "tag":
            members["__format__"] = np.array(draw(st.sampled_from(["layer-studio-weights 2", "", "x"])))
    if roll == 1:  # a member whose header declares a huge shape
        buffer = io.BytesIO(weights_archive(members))
        with zipfile.ZipFile(buffer, "a") as archive:
            shape = draw(st.sampled_from([(10**6, 10**6), (2**62,), (10**5, 10**4)]))
            archive.writestr("huge/0.npy", huge_header_member(shape))
        return buffer.getvalue()
    return weights_archive(members)


@fuzz_settings("weights .npz")
@given(raw=weights_files())
def test_malformed_weights_files_load_or_say_why(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.weights.npz"
        path.write_bytes(raw)
        with case("weights .npz", Path(folder)):
            result = expect(lambda: load_weights(path), WeightsError, names=[str(path)])
            if isinstance(result, WeightsError):
                event("refused")
            else:
                event("loaded")
                for name, arrays in result.items():
                    assert isinstance(name, str) and name
                    assert all(array.dtype == np.float32 for array in arrays)


# ----- through the command line -----------------------------------------------------------


@fuzz_settings("model via CLI")
@given(
    filename=st.sampled_from(["small_cnn.keras", "small_cnn.h5", "small_rnn.json", "cnn.onnx"]),
    data=st.data(),
)
def test_studio_import_of_malformed_models_exits_cleanly(filename, data):
    original = onnx_models()["cnn"] if filename.endswith(".onnx") else keras_files()[filename]
    raw = data.draw(damaged_bytes(original))
    if filename.endswith(".json") and data.draw(st.booleans()):
        raw = data.draw(edited_config(json.loads(original))).encode("utf-8", "surrogatepass")
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as out:
        path = Path(folder) / filename
        path.write_bytes(raw)
        output = Path(out) / "imported.layers.json"
        with case("model via CLI", Path(folder)):
            code, _, stderr = run_cli(["import", str(path), "-o", str(output), "--weights"])
            event(f"exit {code}")
            if code == 0:
                check_imported_files(output)
            else:
                assert path.name in stderr
                assert not any(Path(out).iterdir()), "a failed import wrote files"


def check_imported_files(project_path: Path) -> None:
    from studio.project import load_project

    project = load_project(project_path)
    assert analyze(project.graph).is_valid


# ----- regressions: what the fuzz tests found --------------------------------------------------


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_a_keras_config_with_an_overlong_number_is_a_model_file_error(tmp_path):
    path = _write(tmp_path, "model.json", '{"class_name": "Sequential", "config": {"n": ' + "7" * 4301 + "}}")
    with pytest.raises(
        ModelFileError, match=r"model.json: not a readable JSON model config \(a number has more"
    ):
        import_model(path)


def test_malformed_keras_layer_entries_are_reported_per_layer(tmp_path):
    document = json.loads(keras_files()["small_rnn.json"])
    layers = document["config"]["layers"]
    layers[0]["config"]["batch_shape"] = [None, ":", 4]  # int(":") fails
    layers.insert(1, ["not", "a", "layer"])
    path = _write(tmp_path, "small_rnn.json", json.dumps(document))
    with pytest.raises(UnsupportedModelError) as caught:
        import_model(path)
    message = str(caught.value)
    assert message.startswith("small_rnn.json cannot be imported")
    assert (
        "  - InputLayer (1): steps: its config could not be read (ValueError: invalid literal for int()"
        in message
    )
    document = json.loads(keras_files()["small_cnn.json"])
    document["config"]["output_layers"] = 5  # the model's own structure, not one layer's
    path = _write(tmp_path, "small_cnn.json", json.dumps(document))
    with pytest.raises(ModelFileError, match=r"small_cnn.json: the model config is malformed \(TypeError"):
        import_model(path)


def test_odd_stored_configs_do_not_break_the_refused_layer_scan():
    from studio.interop.keras_import import _refused_layers

    assert _refused_layers({"config": {"layers": None}}) == []
    lambda_layer = {"class_name": "Lambda", "config": ["odd"], "name": "double"}
    assert [(p.name, p.source_kind) for p in _refused_layers({"config": {"layers": [lambda_layer, 3]}})] == [
        ("double", "Lambda")
    ]


def test_unnamed_onnx_nodes_get_a_name_from_their_operator():
    from onnx import helper

    from studio.interop.onnx_import import layer_name

    assert layer_name(helper.make_node("Relu", ["x"], ["y"]), 3) == "relu_3"


def test_onnx_initializers_that_do_not_fit_their_dims_are_a_model_file_error(tmp_path):
    import onnx

    model = onnx.load_from_string(onnx_models()["mixer"])
    model.graph.initializer[0].dims[:] = [2, 2]  # fewer values than the data holds
    path = _write(tmp_path, "mixer.onnx", model.SerializeToString())
    with pytest.raises(
        ModelFileError, match=r"mixer.onnx: not a valid ONNX model \(the initializer 'm' cannot"
    ):
        import_model(path)


def test_onnx_names_that_are_not_utf8_are_a_model_file_error(tmp_path):
    import onnx

    model = onnx.load_from_string(onnx_models()["mixer"])
    model.graph.node[2].name = "@@@@"
    raw = model.SerializeToString().replace(b"@@@@", b"\xff\xfe\xfd\xfc")
    path = _write(tmp_path, "mixer.onnx", raw)
    with pytest.raises(ModelFileError, match="a name is not UTF-8 text"):
        import_model(path)


@pytest.mark.parametrize("elem_type", [0, 8, 9])  # undefined, string, bool
def test_onnx_inputs_of_odd_element_types_are_unsupported(tmp_path, elem_type):
    import onnx

    model = onnx.load_from_string(onnx_models()["mixer"])
    model.graph.input[0].type.tensor_type.elem_type = elem_type
    path = _write(tmp_path, "mixer.onnx", model.SerializeToString())
    with pytest.raises(InteropError, match="mixer.onnx") as caught:
        import_model(path)
    assert isinstance(caught.value, ModelFileError) or "element type" in str(caught.value)


def test_weights_entries_too_large_or_beyond_float32_are_weights_errors(tmp_path):
    path = tmp_path / "model.weights.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__format__.npy", _npy(np.array("layer-studio-weights 1")))
        archive.writestr("dense/0.npy", huge_header_member((10**6, 10**6)))
    with pytest.raises(WeightsError, match="an entry is too large to load"):
        load_weights(path)
    np.savez(path, __format__=np.array("layer-studio-weights 1"), **{"dense/0": np.array([1e39])})
    with pytest.raises(WeightsError, match=r"entry 'dense/0' holds values beyond the float32 range"):
        load_weights(path)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("child", "expected"),
    [
        (
            "import time; time.sleep(30)",
            "reading its HDF5 data did not finish within 1 s; the file is damaged",
        ),
        ("import os; os.abort()", "the HDF5 library failed on it (exit status -6)"),
        ("raise RuntimeError('Error iterating over attributes')", "its HDF5 data is damaged: RuntimeError"),
    ],
)
def test_hdf5_files_that_hang_or_crash_the_library_are_refused(tmp_path, monkeypatch, child, expected):
    """The fuzz tests found .h5 files on which HDF5 loops forever: they are read in a child first."""
    from studio.interop import keras_import

    monkeypatch.setattr(keras_import, "_HDF5_CHECK", child)
    monkeypatch.setattr(keras_import, "HDF5_CHECK_SECONDS", 1.0)
    path = _write(tmp_path, "small_cnn.h5", keras_files()["small_cnn.h5"])
    with pytest.raises(ModelFileError) as caught:
        import_model(path)
    assert str(caught.value).startswith(f"{path}: cannot read the Keras model ({expected}")


def test_the_hdf5_check_reads_real_keras_files_through(tmp_path):
    from studio.interop.keras_import import hdf5_problem

    for name in ("small_cnn.h5", "small_rnn.keras"):
        assert hdf5_problem(_write(tmp_path, name, keras_files()[name])) is None


def test_weights_archives_of_an_unknown_zip_version_are_weights_errors(tmp_path):
    raw = bytearray(good_weights())
    raw[raw.index(b"PK\x01\x02") + 6] = 99  # "version needed to extract" of the first member: 9.9
    path = _write(tmp_path, "model.weights.npz", bytes(raw))
    with pytest.raises(WeightsError, match=r"not a Layer Studio weights file \(zip file version 9.9\)"):
        load_weights(path)


def test_a_keras_layer_called_on_more_inputs_than_its_kind_takes_is_unsupported(tmp_path):
    document = json.loads(keras_files()["small_cnn.json"])
    conv = next(layer for layer in document["config"]["layers"] if layer["name"] == "conv")
    args = conv["inbound_nodes"][0]["args"]
    args.append(args[0])  # Conv2D called on the image twice
    path = _write(tmp_path, "small_cnn.json", json.dumps(document))
    with pytest.raises(UnsupportedModelError, match="it receives 2 inputs; the catalog's Conv2D takes 1"):
        import_model(path)
