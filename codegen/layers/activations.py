"""The one table of activation functions: each catalog name with its spellings in every framework.

The catalog's activations have the same meaning in both frameworks; where the
defaults differ (leaky_relu's slope, gelu's approximation, softmax's axis) the
PyTorch code always passes the value, so both compute the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen.layers.base import CF
from codegen.writer import py


@dataclass(frozen=True)
class ActivationForms:
    """How one catalog activation is spelled: the PyTorch function, the Keras names, and its range."""

    torch: str | None  # the PyTorch function applied to a tensor; None: written out below
    keras: tuple[str, ...]  # Keras activation names (serialized configs) that mean this function
    nonneg: bool = False  # its output is never negative (zero padding then equals -inf for max pooling)
    torch_modules: tuple[str, ...] = ()  # nn.Module classes that compute it (PyTorch import)
    torch_functions: tuple[str, ...] = ()  # functions of torch.nn.functional or torch that compute it
    onnx: str | None = None  # the ONNX operator that computes it (its attributes are read in core.py)


ACTIVATIONS: dict[str, ActivationForms] = {
    "linear": ActivationForms(None, ("linear",)),
    "relu": ActivationForms(
        "F.relu", ("relu",), True, torch_modules=("ReLU",), torch_functions=("relu", "relu_"), onnx="Relu"
    ),
    "relu6": ActivationForms(
        "F.relu6", ("relu6",), True, torch_modules=("ReLU6",), torch_functions=("relu6",)
    ),
    "leaky_relu": ActivationForms(
        None,
        ("leaky_relu",),
        torch_modules=("LeakyReLU",),
        torch_functions=("leaky_relu", "leaky_relu_"),
        onnx="LeakyRelu",
    ),
    "elu": ActivationForms(None, ("elu",), torch_modules=("ELU",), torch_functions=("elu",), onnx="Elu"),
    "gelu": ActivationForms(
        "F.gelu", ("gelu",), torch_modules=("GELU",), torch_functions=("gelu",), onnx="Gelu"
    ),
    # torch's GELU and gelu with approximate="tanh", ONNX's Gelu with approximate="tanh": read in
    # core.py. Keras has no name for it: the program defines gelu_tanh (GELU_TANH_KERAS); keras-hub
    # registers its own gelu_approximate, the same formula.
    "gelu_tanh": ActivationForms(
        None, ("layer_studio>gelu_tanh", "keras_hub>gelu_approximate", "keras_nlp>gelu_approximate")
    ),
    "silu": ActivationForms("F.silu", ("silu", "swish"), torch_modules=("SiLU",), torch_functions=("silu",)),
    "sigmoid": ActivationForms(
        "torch.sigmoid",
        ("sigmoid",),
        True,
        torch_modules=("Sigmoid",),
        torch_functions=("sigmoid",),
        onnx="Sigmoid",
    ),
    "tanh": ActivationForms(
        "torch.tanh", ("tanh",), torch_modules=("Tanh",), torch_functions=("tanh",), onnx="Tanh"
    ),
    "softmax": ActivationForms(
        None, ("softmax",), True, torch_modules=("Softmax",), torch_functions=("softmax",), onnx="Softmax"
    ),
    "softplus": ActivationForms(
        "F.softplus",
        ("softplus",),
        True,
        torch_modules=("Softplus",),
        torch_functions=("softplus",),
        onnx="Softplus",
    ),
    "hard_sigmoid": ActivationForms(
        "F.hardsigmoid",
        ("hard_sigmoid",),
        True,
        torch_modules=("Hardsigmoid",),
        torch_functions=("hardsigmoid",),
        onnx="HardSigmoid",
    ),
    # Keras hard_silu is x * relu6(x + 3) / 6, torch's hardswish the same.
    "hard_silu": ActivationForms(
        "F.hardswish",
        ("hard_silu", "hard_swish"),
        torch_modules=("Hardswish",),
        torch_functions=("hardswish",),
        onnx="HardSwish",
    ),
    "selu": ActivationForms(
        "F.selu", ("selu",), torch_modules=("SELU",), torch_functions=("selu", "selu_"), onnx="Selu"
    ),
    # Keras's celu string and torch's CELU both default to alpha 1 (the only one catalogued).
    "celu": ActivationForms(
        "F.celu", ("celu",), torch_modules=("CELU",), torch_functions=("celu", "celu_"), onnx="Celu"
    ),
    "mish": ActivationForms(
        "F.mish", ("mish",), torch_modules=("Mish",), torch_functions=("mish",), onnx="Mish"
    ),
    "softsign": ActivationForms(
        "F.softsign",
        ("softsign",),
        torch_modules=("Softsign",),
        torch_functions=("softsign",),
        onnx="Softsign",
    ),
    "log_sigmoid": ActivationForms(
        "F.logsigmoid", ("log_sigmoid",), torch_modules=("LogSigmoid",), torch_functions=("logsigmoid",)
    ),
    # torch's Hardtanh clips to [min_val, max_val]: [-1, 1] is hard_tanh, [0, 6] relu6 (read in core.py).
    "hard_tanh": ActivationForms(
        "F.hardtanh", ("hard_tanh",), torch_modules=("Hardtanh",), torch_functions=("hardtanh", "hardtanh_")
    ),
    "tanh_shrink": ActivationForms(
        "F.tanhshrink", ("tanh_shrink",), torch_modules=("Tanhshrink",), torch_functions=("tanhshrink",)
    ),
    # Keras's threshold and torch's lambd both default to 0.5 (the only one catalogued).
    "hard_shrink": ActivationForms(
        "F.hardshrink", ("hard_shrink",), torch_modules=("Hardshrink",), torch_functions=("hardshrink",)
    ),
    "soft_shrink": ActivationForms(
        "F.softshrink", ("soft_shrink",), torch_modules=("Softshrink",), torch_functions=("softshrink",)
    ),
    "log_softmax": ActivationForms(
        None,
        ("log_softmax",),
        torch_modules=("LogSoftmax",),
        torch_functions=("log_softmax",),
        onnx="LogSoftmax",
    ),
}

# Keras's gelu(approximate=True) and torch's gelu(approximate="tanh") are one formula,
# 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))); Keras has no activation name for it.
GELU_TANH_KERAS = (
    '@keras.saving.register_keras_serializable(package="layer_studio")',
    "def gelu_tanh(x):",
    '    """GELU\'s tanh approximation: torch\'s F.gelu(x, approximate="tanh")."""',
    "    return keras.activations.gelu(x, approximate=True)",
)

# Keras activation names -> catalog names.
KERAS_NAMES = {keras: name for name, forms in ACTIVATIONS.items() for keras in forms.keras}
# ONNX operators -> catalog names.
ONNX_NAMES = {forms.onnx: name for name, forms in ACTIVATIONS.items() if forms.onnx}


def is_nonneg(name: str) -> bool:
    return ACTIVATIONS[name].nonneg


def torch_activation(name: str, expr: str, layout: str, params: dict | None = None) -> str:
    """``F.relu(x)`` and friends; softmax runs over the channel axis of the tensor's layout."""
    params = params or {}
    if name == "linear":
        return expr
    if name == "leaky_relu":
        # PyTorch's default slope is 0.01, Keras's 0.2: always pass it.
        return f"F.leaky_relu({expr}, {py(params.get('negative_slope', 0.2))})"
    if name == "elu":
        alpha = params.get("alpha", 1.0)
        return f"F.elu({expr})" if alpha == 1.0 else f"F.elu({expr}, alpha={py(alpha)})"
    if name == "gelu_tanh":
        return f'F.gelu({expr}, approximate="tanh")'
    if name in ("softmax", "log_softmax"):
        # Keras's softmax is over the last (channel) axis; PyTorch needs the dim named.
        return f"torch.{name}({expr}, dim={1 if layout == CF else -1})"
    return f"{ACTIVATIONS[name].torch}({expr})"
