"""Python identifiers for generated code, made from user-chosen layer names.

Like torch.fx's namespace: invalid characters become ``_``, a leading digit
gets a prefix, reserved names get a trailing ``_``, and clashes get ``_1``,
``_2``... One :class:`Namespace` hands out every identifier of one program
(the model class, then one per layer), so that a layer's variable never
shadows a name the program needs.

Reserved: Python keywords, soft keywords and builtins; every name the
generated programs define or import, or use beside the layers (:data:`PROGRAM_NAMES`);
every attribute of ``torch.nn.Module`` (a layer is ``self.<ident>`` in the
PyTorch module, and ``self.training = nn.Linear(...)`` breaks ``train()``);
and the public attributes of Keras models and layers (a layer's ident is its
Keras ``name=``). Codegen never imports the frameworks, so their attribute
names are written out here; tests/test_reserved_names.py checks them against
the installed torch and keras.
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata

BUILTINS = frozenset(dir(builtins))
KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)

# The names a layer's identifier could clash with (codegen/program.py): every module-level name of
# the generated programs (imports, functions, classes), and the names that the functions whose
# locals are the layers (``build_model``, ``forward``) use besides them. Locals of other functions
# (``main``'s ``x``, ``model``, ``loss``) live in other scopes and are free for layers.
PROGRAM_NAMES = frozenset(
    """
    DistributedDataParallel F Path ProbabilityCrossEntropy
    argparse contextlib datasets dist gc json keras layers math nn np os sys tf time torch
    build_model distribution evaluate load_data main model_outputs setup_device take_batch
    make_optimizer make_loss train_step KerasAdam KerasRMSprop KerasSGD
    schedule_options learning_rate_factor make_scheduler PerBatchLearningRate gelu_tanh
    EpochCallback EpochReport GlobalBatches Progress clip_gradients epoch_metrics epoch_order
    is_split load_split resume right_predictions save_atomically save_checkpoint train_batches
    train_epoch class_ids csv gzip read_csv read_data read_idx read_idx_array read_image_folder
    struct FP32 Precision set_precision tensorboard_scalars mean_right
    self probabilities target
    """.split()
)

# dir(torch.nn.Module()): a submodule assigned to any of these breaks the module.
TORCH_MODULE_ATTRIBUTES = frozenset(
    """
    T_destination __annotations__ __call__ __class__ __delattr__ __dict__ __dir__ __doc__ __eq__
    __format__ __ge__ __getattr__ __getattribute__ __getstate__ __gt__ __hash__ __init__
    __init_subclass__ __le__ __lt__ __module__ __ne__ __new__ __reduce__ __reduce_ex__ __repr__
    __setattr__ __setstate__ __sizeof__ __str__ __subclasshook__ __weakref__ _apply
    _backward_hooks _backward_pre_hooks _buffers _call_impl _compiled_call_impl _forward_hooks
    _forward_hooks_always_called _forward_hooks_with_kwargs _forward_pre_hooks
    _forward_pre_hooks_with_kwargs _get_backward_hooks _get_backward_pre_hooks _get_name
    _is_full_backward_hook _load_from_state_dict _load_state_dict_post_hooks
    _load_state_dict_pre_hooks _maybe_warn_non_full_backward_hook _modules _named_members
    _non_persistent_buffers_set _parameters _register_load_state_dict_pre_hook
    _register_state_dict_hook _replicate_for_data_parallel _save_to_state_dict _slow_forward
    _state_dict_hooks _state_dict_pre_hooks _version _wrapped_call_impl add_module apply
    bfloat16 buffers call_super_init children compile cpu cuda double dump_patches eval
    extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters
    parameters register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu
    zero_grad
    """.split()
)

# The public attributes of keras.Model, keras.layers.Layer and a functional model.
KERAS_MODEL_ATTRIBUTES = frozenset(
    """
    activity_regularizer add_loss add_metric add_variable add_weight autocast build
    build_from_config built call call_signature_parameters compile compile_from_config compiled
    compiled_loss compiled_metrics compute_dtype compute_loss compute_mask compute_metrics
    compute_output_shape compute_output_spec count_params distribute_reduction_method
    distribute_strategy dtype dtype_policy evaluate export fit from_config get_build_config
    get_compile_config get_config get_layer get_metrics_result get_quantization_layer_structure
    get_state_tree get_weights input input_dtype input_shape input_spec inputs jit_compile
    layers load_own_variables load_weights loss losses make_predict_function make_test_function
    make_train_function metrics metrics_names metrics_variables name non_trainable_variables
    non_trainable_weights operations output output_names output_shape outputs path predict
    predict_function predict_on_batch predict_step quantization_mode quantize quantized_build
    quantized_call rematerialized_call reset_metrics run_eagerly save save_own_variables
    save_weights set_state_tree set_weights stateless_call stateless_compute_loss
    steps_per_execution summary supports_jit supports_masking symbolic_call test_function
    test_on_batch test_step to_json train_function train_on_batch train_step trainable
    trainable_variables trainable_weights unrolled_steps_per_execution variable_dtype variables
    weights
    """.split()
)

RESERVED = PROGRAM_NAMES | TORCH_MODULE_ATTRIBUTES | KERAS_MODEL_ATTRIBUTES


def is_reserved(text: str, reserved: frozenset[str] = RESERVED) -> bool:
    return text in KEYWORDS or text in BUILTINS or text in reserved


def to_identifier(name: str, reserved: frozenset[str] = RESERVED) -> str:
    """A valid, lower-case-friendly Python identifier for ``name`` (not yet unique)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"\W+", "_", text).strip("_")
    if not text:
        text = "layer"
    if text[0].isdigit():
        text = f"layer_{text}"
    while is_reserved(text, reserved):
        text = f"{text}_"
    return text


def to_class_name(name: str) -> str:
    """``"LeNet on digits"`` -> ``"LenetOnDigits"``; ``"Data Loader"`` -> ``"DataLoaderModel"``."""
    words = re.findall(r"[A-Za-z0-9]+", unicodedata.normalize("NFKD", name))
    text = "".join(word[:1].upper() + word[1:].lower() for word in words) or "Model"
    if text[0].isdigit():
        text = f"Model{text}"
    if is_reserved(text):
        text = f"{text}Model"
    return text


class Namespace:
    """Hands out unique identifiers, none of them reserved."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self._taken: set[str] = set(taken or ())

    def claim(self, name: str) -> str:
        base = to_identifier(name)
        candidate, index = base, 1
        while candidate in self._taken or is_reserved(candidate):
            candidate = f"{base}_{index}"
            index += 1
        self._taken.add(candidate)
        return candidate
