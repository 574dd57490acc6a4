"""Keras models (``.keras``, legacy ``.h5``, JSON config) -> projects.

The model's *config* is walked, not its Python objects: the functional
config lists every layer with its class, its parameters and the tensors it
was called on (``inbound_nodes``), which is the stable, documented form.
Each layer's class and config become catalog params through the layer
families' ``KERAS_CLASSES`` (``codegen.layers.LOWERINGS.keras_classes``).
Files are loaded with ``safe_mode=True``, so a ``Lambda`` layer (Python code
stored in the file) is refused by Keras itself; a JSON config is only
parsed, never deserialized.

Weights are the layers' own ``get_weights()``: Keras layout is the weights
file's layout, so they are stored as they are.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codegen.layers import LOWERINGS
from codegen.layers.base import KerasContext, Mapped
from codegen.layers.reshaping import KERAS_OPERATIONS
from studio.interop.builder import GraphBuilder, ImportedModel, TensorInfo
from studio.interop.errors import (
    InteropError,
    ModelFileError,
    Unsupported,
    UnsupportedLayer,
    UnsupportedModelError,
)
from studio.interop.frameworks import import_keras

MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
MASK_OPS = frozenset({"NotEqual", "ExpandDims"})  # the ops that build a padding mask (``_mask_op``)
TRAINING_ONLY_KEYS = (
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "recurrent_regularizer",
    "depthwise_regularizer",
    "pointwise_regularizer",
    "beta_regularizer",
    "gamma_regularizer",
    "embeddings_regularizer",
    "kernel_constraint",
    "bias_constraint",
    "recurrent_constraint",
    "depthwise_constraint",
    "pointwise_constraint",
    "beta_constraint",
    "gamma_constraint",
    "embeddings_constraint",
)


# ----- loading ------------------------------------------------------------------------


def import_keras_file(
    path: str | Path,
    with_weights: bool = True,
    name: str | None = None,
    input_shapes: Sequence[Sequence[int]] | None = None,
) -> ImportedModel:
    """Import a ``.keras``, ``.h5`` / ``.hdf5`` model or a ``.json`` model config.

    ``input_shapes`` (Keras layout, batch excluded, one per model input in order) give
    the sizes a model leaves unknown (``None``), such as a token sequence's length.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        document = _read_json_config(path)
        return import_keras_config(document, None, source=path.name, name=name, input_shapes=input_shapes)
    model = load_keras_model(path)
    return import_keras_model(
        model, source=path.name, with_weights=with_weights, name=name, input_shapes=input_shapes
    )


def import_keras_model(
    model,
    source: str = "the model",
    with_weights: bool = True,
    name: str | None = None,
    input_shapes: Sequence[Sequence[int]] | None = None,
) -> ImportedModel:
    """Import a ``keras.Model`` already built (loaded from a file, or made by a library)."""
    document = {"class_name": _model_class(model), "config": _model_config(model, source)}
    weights = _layer_weights(model) if with_weights else None
    imported = import_keras_config(document, weights, source=source, name=name, input_shapes=input_shapes)
    imported.source_parameters = int(model.count_params())
    return imported


def _layer_weights(model) -> dict[str, Any]:
    """Each layer's ``get_weights()`` by name; a nested model gives a dict of its own layers, and a
    composite layer (``LOWERINGS.keras_composites``) a dict of its sublayers' weights by their names."""
    keras = import_keras()
    weights: dict[str, Any] = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            weights[layer.name] = _layer_weights(layer)
        elif type(layer).__name__ in LOWERINGS.keras_composites:
            weights[layer.name] = _composite_weights(layer)
        else:
            weights[layer.name] = layer.get_weights()
    return weights


def _composite_weights(layer, prefix: str = "") -> dict[str, Callable[[], list]]:
    """A composite layer's weights, each read when a part asks for it (a sublayer's weights are
    also its parent's: reading every level now would copy them once per level), by the path of
    each sublayer (``transformer_block_1/mha``, nested ones too) and by the name of each variable
    of its own (ViT's ``class_token``)."""
    import numpy as np

    weights: dict[str, Callable[[], list]] = {}
    for variable in [*layer._trainable_variables, *layer._non_trainable_variables]:
        weights[f"{prefix}{variable.name}"] = lambda variable=variable: [np.asarray(variable)]
    for sublayer in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{sublayer.name}"
        weights[path] = sublayer.get_weights
        weights.update(_composite_weights(sublayer, f"{path}/"))
    return weights


def load_keras_model(path: Path):
    """``keras.saving.load_model`` in safe mode; errors become ModelFileError or UnsupportedModelError."""
    keras = import_keras()
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelFileError(f"{path}: expected a .keras, .h5 or .json Keras model. Received: {suffix!r}")
    if suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a .keras file (a zip archive); it is truncated or corrupt")
    if suffix != ".keras" and not _is_hdf5(path):
        raise ModelFileError(f"{path}: not an HDF5 file; it is truncated or corrupt")
    problem = hdf5_problem(path)
    if problem is not None:
        raise ModelFileError(f"{path}: cannot read the Keras model ({problem})")
    if _names_keras_hub(read_stored_config(path)):
        _import_keras_hub()  # registers its layer classes, which the file names
    try:
        return keras.saving.load_model(
            str(path), safe_mode=True, compile=False, custom_objects=studio_layer_classes()
        )
    except Exception as error:  # Keras raises many types for bad files; all become one clear error.
        stored = read_stored_config(path)
        problems = _refused_layers(stored) if stored is not None else []
        if "Lambda" in str(error) and "safe_mode" in str(error) and not problems:
            problems = [UnsupportedLayer("?", "Lambda", _LAMBDA_REASON)]
        if problems:
            raise UnsupportedModelError(problems, path.name) from None
        raise ModelFileError(f"{path}: cannot read the Keras model ({_first_line(error)})") from None


def _names_keras_hub(config: dict | None) -> bool:
    try:
        return '"keras_hub.' in json.dumps(config)
    except (TypeError, ValueError, RecursionError):
        return False


def _import_keras_hub() -> None:
    try:
        import keras_hub  # noqa: F401
    except ImportError:
        pass  # Keras then reports the classes as unknown


def _custom_class(layer: Mapping[str, Any]) -> str | None:
    """Why a layer entry's class is not one the catalog knows: it comes from a module other than
    Keras's or keras-hub's (a user's class may share a name with theirs). None when it does not."""
    module = layer.get("module")
    if module is None or str(module).split(".")[0] in ("keras", "keras_hub"):
        return None
    if str(layer.get("registered_name", "")).startswith("LayerStudio>") and layer.get("class_name") in (
        studio_layer_classes()
    ):
        return None  # a class the generated programs define (ClassToken, Affine), whatever their module
    return f"a custom layer class from the module {module!r}, unknown to the catalog"


@functools.cache
def studio_layer_classes() -> dict[str, Any]:
    """The layer classes generated Keras programs define (ClassToken), so that their models load.

    Built from the lowerings' own source, never from text in the file being loaded.
    """
    from codegen.runtime import keras_layer_classes

    import_keras()
    return keras_layer_classes()


_LAMBDA_REASON = (
    "a Lambda layer runs Python code stored in the file; it is refused (models load in Keras safe mode) "
    "and has no catalog equivalent"
)


# The HDF5 library can loop forever, or crash, on a damaged file; so every HDF5 file a model
# load would read (the .h5 itself, or the .h5 members of a .keras zip) is first read through,
# every group, attribute and dataset, by a child process that may take this long, plus a
# second per 10 MB.
HDF5_CHECK_SECONDS = 30.0
_HDF5_CHECK = """
import io, sys, zipfile
import h5py

def visit(name, obj):
    for key in obj.attrs:
        obj.attrs[key]
    if isinstance(obj, h5py.Dataset):
        obj[()]

path = sys.argv[1]
if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
        sources = [io.BytesIO(archive.read(n)) for n in archive.namelist() if n.endswith(".h5")]
else:
    sources = [path]
for source in sources:
    with h5py.File(source, "r") as handle:
        visit("/", handle)
        handle.visititems(visit)
"""


def hdf5_problem(path: Path) -> str | None:
    """Why the HDF5 content of ``path`` cannot be read safely, or None when it reads through."""
    seconds = HDF5_CHECK_SECONDS + path.stat().st_size / 10e6
    try:
        result = subprocess.run(
            [sys.executable, "-c", _HDF5_CHECK, str(path)], capture_output=True, text=True, timeout=seconds
        )
    except subprocess.TimeoutExpired:
        return f"reading its HDF5 data did not finish within {seconds:.0f} s; the file is damaged"
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    if result.returncode < 0 or not lines:
        return f"the HDF5 library failed on it (exit status {result.returncode}); the file is damaged"
    return f"its HDF5 data is damaged: {lines[-1][:300]}"


def _is_hdf5(path: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(str(path)))
    except OSError:
        return False


def read_stored_config(path: Path) -> dict | None:
    """The model config stored in a ``.keras`` zip or an HDF5 file, read as JSON only (no objects built)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(path, "r") as handle:
            text = handle.attrs.get("model_config")
            if text is None:
                return None
            return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except Exception:  # any failure here means: no readable config
        return None


def _refused_layers(document: dict) -> list[UnsupportedLayer]:
    """Layers that keep the model from loading: Lambda (code) and classes Keras does not know."""
    keras = import_keras()
    problems = []
    for layer in _config_layers(document):
        class_name = str(layer.get("class_name"))
        name, _ = _layer_label(layer)
        if class_name == "Lambda":
            problems.append(UnsupportedLayer(name, class_name, _LAMBDA_REASON))
        elif (
            class_name not in MODEL_CLASSES | {"InputLayer"}
            and not hasattr(keras.layers, class_name)
            and class_name not in KERAS_OPERATIONS
            and class_name not in studio_layer_classes()
        ):
            problems.append(
                UnsupportedLayer(
                    name, class_name, "a custom layer class, unknown to Keras and to the catalog"
                )
            )
    return problems


def _config_layers(document: dict) -> list[dict]:
    config = document.get("config", document) if isinstance(document, dict) else {}
    layers = config.get("layers", []) if isinstance(config, dict) else []
    return [layer for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []


def _read_json_config(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(f"{path}: not a readable JSON model config ({_first_line(error)})") from None
    except ValueError:  # Python refuses to convert integers of more than sys.get_int_max_str_digits()
        raise ModelFileError(
            f"{path}: not a readable JSON model config (a number has more than "
            f"{sys.get_int_max_str_digits()} digits)"
        ) from None
    if not isinstance(document, dict):
        raise ModelFileError(f"{path}: expected a Keras model config (a JSON object)")
    return document


def _model_class(model) -> str:
    name = type(model).__name__
    if name in MODEL_CLASSES:
        return name
    return "Functional" if _is_functional_subclass(model) else "Subclassed"


def _is_functional_subclass(layer) -> bool:
    """A subclass of Functional (keras-hub's backbones): built from inputs and outputs, so it has a
    layer graph, but its config holds its constructor's arguments, not that graph."""
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # another Keras layout: such models are then refused as subclassed
        return False
    return isinstance(layer, Functional) and type(layer).__name__ not in MODEL_CLASSES


def _graph_config(model) -> dict:
    """The model's functional config; a functional subclass, here or nested, gives its layer graph."""
    keras = import_keras()
    if _is_functional_subclass(model):
        model = keras.Model(model.inputs, model.outputs, name=model.name)  # the same layers
    config = model.get_config()
    nested = {layer.name: layer for layer in model.layers if _is_functional_subclass(layer)}
    for entry in config.get("layers", []):
        layer = nested.get(entry.get("name"))
        if layer is not None:  # now a plain graph of layers, whatever module its class came from
            entry.pop("module", None)
            entry["class_name"], entry["config"] = "Functional", _graph_config(layer)
    return config


def _model_config(model, source: str) -> dict:
    try:
        return _graph_config(model)
    except Exception as error:
        raise UnsupportedModelError(
            [UnsupportedLayer(model.name, type(model).__name__, f"its config cannot be read ({error})")],
            source,
        ) from None


# ----- walking the config -------------------------------------------------------------


def import_keras_config(
    document: Mapping[str, Any],
    weights: Mapping[str, list[np.ndarray]] | None,
    source: str = "the model",
    name: str | None = None,
    input_shapes: Sequence[Sequence[int]] | None = None,
) -> ImportedModel:
    """Map a serialized Keras model (``{"class_name": ..., "config": ...}``) to a project."""
    class_name = document.get("class_name")
    config = document.get("config", document)
    if not isinstance(config, Mapping) or not isinstance(config.get("layers"), list):
        raise UnsupportedModelError(
            [
                UnsupportedLayer(
                    str(config.get("name", "model")) if isinstance(config, Mapping) else "model",
                    str(class_name or "Model"),
                    "only functional and Sequential models can be imported (a subclassed model has no "
                    "layer graph in its config)",
                )
            ],
            source,
        )
    walker = _Walker(GraphBuilder(source), weights)
    if input_shapes:
        names = _input_names(config)
        if len(names) != len(input_shapes):
            raise InteropError(
                f"the model has {len(names)} input(s) ({', '.join(map(str, names))}) "
                f"but {len(input_shapes)} input shape(s) were given"
            )
        walker.given_shapes = {
            name: tuple(int(d) for d in shape) for name, shape in zip(names, input_shapes, strict=True)
        }
    try:
        if class_name == "Sequential" or "input_layers" not in config:
            outputs = walker.sequential(config)
        else:
            outputs = walker.functional(config)
    except MALFORMED as error:  # the model's own structure (not one layer's) is not what Keras writes
        raise ModelFileError(
            f"{source}: the model config is malformed ({type(error).__name__}: {_first_line(error)})"
        ) from None
    builder = walker.builder
    builder.check()
    walker.finish_notes()
    model_name = name or str(config.get("name") or Path(source).stem)
    project, built_weights = builder.build(
        model_name,
        outputs,
        description=f"Imported from the Keras model {source}.",
        with_weights=weights is not None,
    )
    return ImportedModel(
        project=project,
        weights=built_weights,
        source_format="keras",
        source_parameters=None,
        parameter_rule="keras",
        inputs=[TensorInfo(name, name) for name in walker.input_names],
        outputs=[TensorInfo(name, name) for name in outputs],
        notes=builder.notes,
    )


class _Walker:
    def __init__(self, builder: GraphBuilder, weights: Mapping[str, list[np.ndarray]] | None) -> None:
        self.builder = builder
        self.weights = weights
        self.output_of: dict[str, str] = {}  # Keras layer name -> node name holding its output
        self.input_names: list[str] = []
        self.training_only: list[str] = []
        self.frozen: list[str] = []
        self.given_shapes: dict[str, tuple[int, ...]] = {}  # input name -> its shape, batch excluded
        # Keras op layers that build an attention mask: name -> (the node masked where zero, expanded).
        self.mask_of: dict[str, tuple[str | None, bool]] = {}

    # ----- functional -------------------------------------------------------------

    def functional(self, config: Mapping[str, Any], feeds: Sequence[str] | None = None) -> list[str]:
        """Walk a functional config; ``feeds``: for a nested model, the nodes its inputs take."""
        if feeds is not None:
            names = [ref[0] for ref in _history_list(config.get("input_layers", []))]
            if len(names) != len(feeds):
                raise Unsupported(f"a nested model with {len(names)} inputs called on {len(feeds)} tensors")
            self.output_of.update(zip(names, feeds, strict=True))
        for layer in config["layers"]:
            try:
                if layer.get("class_name") == "InputLayer" and feeds is not None:
                    continue  # fed by the outer model
                self._functional_layer(layer)
            except MALFORMED as error:
                self.builder.unsupported(*_layer_label(layer), _malformed(error))
        outputs = _history_list(config.get("output_layers", []))
        for ref in outputs:
            if ref[0] in self.mask_of:
                self.builder.unsupported(
                    ref[0], "(mask)", "a model output; the catalog keeps masks as inputs"
                )
        return [self.output_of[ref[0]] for ref in outputs if ref[0] in self.output_of]

    def _functional_layer(self, layer: Mapping[str, Any]) -> None:
        class_name = str(layer.get("class_name"))
        cfg = layer.get("config") or {}
        keras_name = str(layer.get("name") or cfg.get("name") or class_name.lower())
        if class_name == "InputLayer":
            self._input(keras_name, cfg)
            return
        custom = _custom_class(layer)
        if custom is not None:
            self.builder.unsupported(keras_name, class_name, custom)
            return
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            self.builder.unsupported(
                keras_name,
                class_name,
                f"the layer is called {len(nodes)} times (shared weights); the catalog has no shared layers",
            )
            return
        if not nodes:
            return  # not connected to the model's graph
        if class_name in MASK_OPS and self._mask_op(keras_name, class_name, cfg, nodes[0]):
            return
        try:
            refs, shapes, call = _inbound(nodes[0], class_name)
            mask_call = LOWERINGS.keras_calls.get(class_name)
            takes_mask = call.get("padding_mask") and mask_call.mask == "attention_mask"
            stray = [ref[0] for ref in refs[: -1 if takes_mask else None] if ref[0] in self.mask_of]
            if stray:
                raise Unsupported(
                    f"takes the mask '{stray[0]}' (NotEqual / ExpandDims), which the catalog keeps only as "
                    "MultiHeadAttention's attention_mask"
                )
        except Unsupported as error:
            self.builder.unsupported(keras_name, class_name, str(error))
            return
        except MALFORMED as error:
            self.builder.unsupported(keras_name, class_name, _malformed(error))
            return
        if class_name in MODEL_CLASSES:
            self._nested(keras_name, class_name, cfg, refs)
            return
        args = nodes[0].get("args") if isinstance(nodes[0], Mapping) else None
        arguments = list(args[1:]) if isinstance(args, (list, tuple)) else []  # an operation's key
        self._add(keras_name, class_name, cfg, refs, shapes, call, arguments)

    def _nested(self, keras_name: str, class_name: str, cfg: Mapping[str, Any], refs: list) -> None:
        """A model used as a layer (a pretrained base, say): its layers are inlined."""
        if not isinstance(cfg.get("layers"), list):
            self.builder.unsupported(keras_name, class_name, "a nested model without a layer graph")
            return
        sources = [self.output_of.get(ref[0]) for ref in refs]
        if any(source is None for source in sources):
            return  # an input was unsupported: already reported
        weights = self.weights.get(keras_name) if self.weights is not None else None
        inner = _Walker(self.builder, weights if isinstance(weights, Mapping) else None)
        try:
            if class_name == "Sequential" or "input_layers" not in cfg:
                outputs = inner.sequential(cfg, feed=sources[0])
            else:
                outputs = inner.functional(cfg, feeds=sources)
        except Unsupported as error:
            self.builder.unsupported(keras_name, class_name, str(error))
            return
        self.training_only += inner.training_only
        self.frozen += inner.frozen
        if len(outputs) == 1:
            self.output_of[keras_name] = outputs[0]
        elif outputs:
            self.builder.unsupported(keras_name, class_name, "a nested model with several outputs")

    def _add(
        self,
        keras_name: str,
        class_name: str,
        cfg: Mapping,
        refs: list,
        shapes: list,
        call: Mapping,
        arguments=(),
    ) -> None:
        if class_name in LOWERINGS.keras_composites:
            self._composite(keras_name, class_name, cfg, refs, shapes, call)
            return
        try:
            mapped = map_keras_layer(class_name, cfg, KerasContext(shapes, list(arguments), call))
        except Unsupported as error:
            self.builder.unsupported(keras_name, class_name, str(error))
            return
        except MALFORMED as error:
            self.builder.unsupported(keras_name, class_name, _malformed(error))
            return
        for ref in refs:
            if ref[2] != 0:
                self.builder.unsupported(
                    keras_name, class_name, f"uses output {ref[2]} of layer '{ref[0]}' (multi-output layers)"
                )
                return
        sources = [self.output_of.get(ref[0]) for ref in refs]
        if call.get("padding_mask") and LOWERINGS.keras_calls[class_name].mask == "attention_mask":
            try:
                sources[-1] = self._padding_mask(refs[-1][0])
            except Unsupported as error:
                self.builder.unsupported(keras_name, class_name, str(error))
                return
        if any(source is None for source in sources):
            # An input layer was unsupported (already reported): still check this layer's own parameters.
            if mapped.kind is not None:
                self.builder.validate(mapped.kind, keras_name, mapped.params, class_name)
            return
        self._note_training_only(keras_name, cfg)
        if mapped.kind is None:
            self.output_of[keras_name] = sources[0]
            return
        if class_name in LOWERINGS.keras_calls:
            mask = sources[-1:] if call.get("padding_mask") else []
            sources = _without_defaults(sources[: len(sources) - len(mask)]) + mask
        weights = None
        if self.weights is not None:
            weights = list(self.weights.get(keras_name, []) if mapped.weights is None else mapped.weights)
        chain = [mapped, *mapped.then]
        names = [f"{keras_name}/{layer.kind.lower()}_{index}" for index, layer in enumerate(chain[:-1])]
        node = None
        for layer, name in zip(chain, [*names, keras_name], strict=True):
            node = self.builder.add(layer.kind, name, layer.params, sources, weights, source_kind=class_name)
            if node is None:
                return
            sources, weights = [node], None if weights is None else []
        self.output_of[keras_name] = node

    def _composite(
        self, keras_name: str, class_name: str, cfg: Mapping, refs: list, shapes: list, call: Mapping
    ) -> None:
        """A layer made of sublayers (keras-hub's TransformerEncoder): each sublayer becomes a layer,
        named ``composite/sublayer``, with that sublayer's weights."""
        # The composite's inputs as its parts name them: "" the first, then "padding_mask" (a
        # mask the call passes) or "input_1", "input_2"... (the tensors of a list it is called on).
        names = (
            ("", "padding_mask")
            if call.get("padding_mask")
            else ("", *(f"input_{i}" for i in range(1, len(refs))))
        )
        try:
            _check_dtype(cfg)
            parts = LOWERINGS.keras_composites[class_name](cfg, KerasContext(shapes, call=call))
            wanted = {name for part in parts for name in part.inputs} - {part.name for part in parts}
            if not wanted <= set(names) or any(ref[2] != 0 for ref in refs):
                raise Unsupported(
                    f"takes {len(refs)} input tensor(s); the catalog expands it for {len(wanted)}"
                )
            mapped = [
                map_keras_layer(part.class_name, part.config, KerasContext([None], call=part.call))
                for part in parts
            ]
        except Unsupported as error:
            self.builder.unsupported(keras_name, class_name, str(error))
            return
        except MALFORMED as error:
            self.builder.unsupported(keras_name, class_name, _malformed(error))
            return
        outputs = dict(zip(names, (self.output_of.get(ref[0]) for ref in refs), strict=False))
        if None in outputs.values():
            return  # an input was unsupported: already reported
        self._note_training_only(keras_name, cfg)
        weights = self.weights.get(keras_name, {}) if self.weights is not None else None
        for part, layer in zip(parts, mapped, strict=True):
            sources = [outputs[name] for name in part.inputs]
            if layer.kind is None:
                outputs[part.name] = sources[0]
                continue
            part_weights = None if weights is None else list(weights.get(part.name, list)())
            node = self.builder.add(
                layer.kind, f"{keras_name}/{part.name}", layer.params, sources, part_weights, class_name
            )
            if node is None:
                return
            outputs[part.name] = node
        self.output_of[keras_name] = outputs[parts[-1].name]

    def _mask_op(self, keras_name: str, class_name: str, cfg: Mapping, node: Any) -> bool:
        """Record ``keras.ops.not_equal(mask, 0)`` and its ``expand_dims(..., 1)``: the padding mask the
        Keras program passes as MultiHeadAttention's attention_mask. False for anything else."""
        args = node.get("args") if isinstance(node, Mapping) else None
        if not isinstance(args, (list, tuple)) or not args or not _is_tensor(args[0]) or node.get("kwargs"):
            return False
        args = list(args)
        source = str(args[0]["config"]["keras_history"][0])
        if class_name == "NotEqual" and args[1:] == [0] and source not in self.mask_of:
            self.mask_of[keras_name] = (self.output_of.get(source), False)
        elif class_name == "ExpandDims" and cfg.get("axis") in (1, -2) and source in self.mask_of:
            if self.mask_of[source][1]:
                return False
            self.mask_of[keras_name] = (self.mask_of[source][0], True)
        else:
            return False
        return True

    def _padding_mask(self, keras_name: str) -> str | None:
        """The node of a padding mask passed as ``attention_mask``, or Unsupported for another mask."""
        source, expanded = self.mask_of.get(keras_name, (None, False))
        if not expanded:
            raise Unsupported(
                "is called with attention_mask=... that is not keras.ops.expand_dims(keras.ops.not_equal("
                "mask, 0), 1) of a (batch, key steps) mask: a (batch, query, key) mask has no catalog equivalent"
            )
        return source

    def _input(self, keras_name: str, cfg: Mapping[str, Any]) -> None:
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        if shape is None and cfg.get("shape") is not None:
            shape = [None, *cfg["shape"]]
        self._add_input(keras_name, shape, cfg.get("dtype"))

    def _add_input(self, keras_name: str, batch_shape, dtype) -> None:
        given = self.given_shapes.get(keras_name)
        if given is not None and batch_shape:
            batch_shape = _fill_unknown(keras_name, list(batch_shape), given)
        if not batch_shape or any(dim is None for dim in list(batch_shape)[1:]):
            self.builder.unsupported(
                keras_name,
                "InputLayer",
                f"input shape {_shape_text(batch_shape)} has an unknown size; the catalog needs fixed sizes "
                "(give the input shapes, e.g. --input-shape 128 for token ids, or rebuild the model with a "
                "fixed input shape)",
            )
            return
        dtype_name = dtype.get("config", {}).get("name") if isinstance(dtype, Mapping) else dtype
        dtype_name = str(dtype_name or "float32")
        params = {"shape": [int(dim) for dim in list(batch_shape)[1:]]}
        params["dtype"] = "int32" if dtype_name.startswith(("int", "uint")) else "float32"
        node = self.builder.add("Input", keras_name, params, source_kind="InputLayer")
        if node is not None:
            self.output_of[keras_name] = node
            self.input_names.append(node)

    # ----- sequential -------------------------------------------------------------

    def sequential(self, config: Mapping[str, Any], feed: str | None = None) -> list[str]:
        """Walk a Sequential config; ``feed``: for a nested model, the node its input takes."""
        layers = [layer for layer in config["layers"] if isinstance(layer, Mapping)]
        previous = None  # the Keras name whose output feeds the next layer
        if feed is not None:
            layers = [layer for layer in layers if layer.get("class_name") != "InputLayer"]
            previous = "\x00feed"
            self.output_of[previous] = feed
        elif not layers or layers[0].get("class_name") != "InputLayer":
            shape = config.get("build_input_shape")
            if shape is None and layers:
                first = layers[0]
                shape = (first.get("config") or {}).get("batch_input_shape") or (
                    first.get("build_config") or {}
                ).get("input_shape")
            self._add_input("input", shape, "float32")
            if self.input_names:
                previous = self.input_names[-1]
                self.output_of[previous] = previous
        for layer in layers:
            try:
                class_name = str(layer.get("class_name"))
                cfg = layer.get("config") or {}
                keras_name = str(layer.get("name") or cfg.get("name") or class_name.lower())
                if class_name == "InputLayer":
                    self._input(keras_name, cfg)
                    previous = keras_name
                    continue
                if previous is None or previous not in self.output_of:
                    break
                custom = _custom_class(layer)
                if custom is not None:
                    self.builder.unsupported(keras_name, class_name, custom)
                    break
                input_shape = (layer.get("build_config") or {}).get("input_shape")
                shapes = [tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None]
                if class_name in MODEL_CLASSES:
                    self._nested(keras_name, class_name, cfg, [(previous, 0, 0)])
                else:
                    self._add(keras_name, class_name, cfg, [(previous, 0, 0)], shapes, {})
                previous = keras_name
            except MALFORMED as error:
                self.builder.unsupported(*_layer_label(layer), _malformed(error))
                break  # the layers after it have no input
        return [self.output_of[previous]] if previous in self.output_of else []

    # ----- notes ------------------------------------------------------------------

    def _note_training_only(self, keras_name: str, cfg: Mapping[str, Any]) -> None:
        if any(cfg.get(key) for key in TRAINING_ONLY_KEYS):
            self.training_only.append(keras_name)
        if cfg.get("trainable") is False:
            self.frozen.append(keras_name)

    def finish_notes(self) -> None:
        if self.training_only:
            self.builder.note(
                f"regularizers and constraints are training settings the catalog does not have; dropped on "
                f"{_name_list(self.training_only)}"
            )
        if self.frozen:
            self.builder.note(f"frozen layers (trainable=False) become trainable: {_name_list(self.frozen)}")


# A config that is not what Keras writes (hand-edited JSON, another version): reported per layer.
MALFORMED = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError)


def _malformed(error: Exception) -> str:
    return f"its config could not be read ({type(error).__name__}: {_first_line(error)})"


def _layer_label(layer: Any) -> tuple[str, str]:
    """(name, class name) of a layer entry, for messages, whatever form the entry has."""
    if not isinstance(layer, Mapping):
        return "?", f"(a {type(layer).__name__}, not a layer object)"
    config = layer.get("config")
    name = layer.get("name") or (config.get("name") if isinstance(config, Mapping) else None) or "?"
    return str(name), str(layer.get("class_name") or "?")


def _input_names(config: Mapping[str, Any]) -> list[str]:
    """The model's inputs in order; a Sequential model's InputLayer, or the input the walker adds."""
    names = [ref[0] for ref in _history_list(config.get("input_layers", []))]
    if not names:
        names = [
            _layer_label(layer)[0] for layer in config["layers"] if _layer_label(layer)[1] == "InputLayer"
        ]
    return names or ["input"]


def _fill_unknown(name: str, batch_shape: list, given: tuple[int, ...]) -> list:
    """The input's batch shape with its unknown sizes taken from ``given``, which must agree with the known."""
    known = batch_shape[1:]
    if len(given) != len(known) or any(k is not None and k != g for k, g in zip(known, given, strict=True)):
        raise InteropError(
            f"the input shape {given} given for '{name}' does not fit its shape {_shape_text(batch_shape)}"
        )
    if min(given, default=1) < 1:
        raise InteropError(f"the input shape {given} given for '{name}' has a size below 1")
    return [batch_shape[0], *given]


def _without_defaults(sources: list[str]) -> list[str]:
    """A keyword-called layer's inputs, less the trailing ones that repeat the one before (Keras's defaults).

    For (query, value, key): a key equal to the value is left out, then a value equal to the
    query; one input means self-attention.
    """
    sources = list(sources)
    while len(sources) > 1 and sources[-1] == sources[-2]:
        sources.pop()
    return sources


def _inbound(node: Any, class_name: str) -> tuple[list[tuple[str, int, int]], list[tuple | None], dict]:
    """The (layer, node index, tensor index) of each input tensor, in call order, their shapes, and the
    call's arguments that set parameters (``KerasContext.call``)."""
    if isinstance(node, list):  # tf.keras 2 format: [[name, node_index, tensor_index, kwargs], ...]
        refs = []
        for entry in node:
            if not (isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[0], str)):
                raise Unsupported(f"cannot read its inbound node {entry!r}")
            if len(entry) > 3 and entry[3]:
                raise Unsupported(
                    f"is called with arguments {sorted(entry[3])}, which the catalog has no place for"
                )
            refs.append((entry[0], int(entry[1]), int(entry[2])))
        return refs, [None] * len(refs), {}
    if not isinstance(node, Mapping):
        raise Unsupported(f"cannot read its inbound node {node!r}")
    tensors: list[dict] = []
    _collect_tensors(node.get("args", []), tensors)
    kwargs = dict(node.get("kwargs") or {})
    call = LOWERINGS.keras_calls.get(class_name)
    options: dict[str, Any] = {}
    if call is not None:  # input tensors passed by keyword take their place in the call's order
        if len(tensors) > len(call.inputs):  # a mask passed by position too: refused, not guessed
            keyword = f" ({call.mask}= is read by keyword)" if call.mask else ""
            raise Unsupported(
                f"is called with {len(tensors)} tensors by position, more than {', '.join(call.inputs)}{keyword}"
            )
        named = {key: kwargs.pop(key) for key in call.inputs if _is_tensor(kwargs.get(key))}
        slots = list(tensors) + [None] * len(call.inputs)
        for index, key in enumerate(call.inputs):
            if key in named:
                slots[index] = named[key]
        tensors = [slot for slot in slots[: len(call.inputs)] if slot is not None]
        for key in call.flags:
            if kwargs.pop(key, False):
                raise Unsupported(f"is called with {key}=True, which the catalog's {class_name} lacks")
        options.update({key: kwargs.pop(key) for key in call.options if isinstance(kwargs.get(key), bool)})
        if call.mask is not None and _is_tensor(kwargs.get(call.mask)):
            tensors.append(kwargs.pop(call.mask))  # the catalog's mask input comes last
            options["padding_mask"] = True
        elif call.mask is not None and kwargs.get(call.mask) is None:
            kwargs.pop(call.mask, None)
    if kwargs.pop("training", None):
        raise Unsupported("is called with training=True (always in training mode)")
    for key, value in kwargs.items():
        if _is_tensor(value) or (key in ("mask", "attention_mask", "initial_state") and value is not None):
            raise Unsupported(f"is called with {key}=..., which the catalog has no place for")
    refs, shapes = [], []
    for tensor in tensors:
        config = tensor.get("config", {})
        history = config.get("keras_history")
        refs.append((str(history[0]), int(history[1]), int(history[2])))
        shape = config.get("shape")
        shapes.append(tuple(shape) if shape is not None else None)
    return refs, shapes, options


def _is_tensor(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("class_name") == "__keras_tensor__"


def _collect_tensors(value: Any, found: list[dict]) -> None:
    if _is_tensor(value):
        found.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_tensors(item, found)


def _history_list(value: Any) -> list[tuple]:
    """``["dense", 0, 0]`` or ``[["a", 0, 0], ["b", 0, 0]]`` -> list of tuples."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        return [tuple(value)]
    return [tuple(item) for item in value or [] if isinstance(item, (list, tuple)) and item]


def _shape_text(shape) -> str:
    if shape is None:
        return "(unknown)"
    return "(" + ", ".join("None" if dim is None else str(dim) for dim in shape) + ")"


def _name_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


# ----- layer mappings -----------------------------------------------------------------


def map_keras_layer(class_name: str, cfg: Mapping[str, Any], context: KerasContext) -> Mapped:
    if class_name == "Lambda":
        raise Unsupported(_LAMBDA_REASON)
    if class_name in MODEL_CLASSES:
        raise Unsupported("a nested model; import it on its own, or rebuild the model without nesting")
    mapping = LOWERINGS.keras_classes.get(class_name)
    if mapping is None:
        raise Unsupported("this layer class has no catalog equivalent")
    _check_dtype(cfg)
    return mapping(cfg, context)


def _check_dtype(cfg: Mapping[str, Any]) -> None:
    dtype = cfg.get("dtype")
    name = dtype.get("config", {}).get("name") if isinstance(dtype, Mapping) else dtype
    if name not in (None, "float32"):
        raise Unsupported(f"dtype policy {name!r}; the catalog computes in float32")
