"""The model zoo: today's classification architectures, built by their own library, imported as projects.

    studio import zoo:                      # the names available on this machine
    studio import zoo:torchvision/resnet18 [-o resnet18.layers.json] [--weights] [--pretrained]

A name is ``LIBRARY/MODEL``: ``torchvision/resnet18``, ``timm/resnet18`` (any
name ``timm.create_model`` knows), ``keras/ResNet50`` (``keras.applications``)
or ``keras-hub/resnet_18`` (a keras-hub backbone built from the architecture
of a preset, here in :data:`KERAS_HUB_CONFIGS`; nothing is downloaded).

The weights are random (each library's own initialisation) unless
``pretrained``: then the library's own loader fetches them (torchvision
``weights="DEFAULT"``, timm ``pretrained=True``, Keras ``weights="imagenet"``,
keras-hub ``from_preset``), which needs a network connection the first time.

Which libraries are installed is found with :func:`importlib.util.find_spec`,
so listing the zoo imports no framework; a model is built, and its framework
imported, only when it is imported.

torchvision: the registry's torchvision wheel links a CUDA build of libtorch,
so its compiled extension cannot load next to a CPU-only torch; torchvision's
Python side then still registers fake kernels for the ``nms`` and ``qnms`` ops
it could not define, and its import fails. Classification models never call
those ops, so :func:`import_torchvision` defines their schemas (with no kernel)
first; calling one of them still fails loudly.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from studio.interop.errors import InteropError, ModelFileError
from studio.interop.frameworks import import_keras, import_torch

if TYPE_CHECKING:
    from studio.interop.builder import ImportedModel

PREFIX = "zoo:"

# ----- torchvision on a CPU-only torch ----------------------------------------------------

# The schemas that torchvision/_meta_registrations.py attaches fake kernels to
# without checking whether its extension loaded.
_TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_torchvision_library = None


def import_torchvision() -> ModuleType:
    """The torchvision module, its missing op schemas defined first when its extension cannot load."""
    global _torchvision_library
    torch = import_torch()
    if _torchvision_library is None and not hasattr(torch.ops.torchvision, "nms"):
        _torchvision_library = torch.library.Library("torchvision", "DEF")
        for schema in _TORCHVISION_SCHEMAS:
            _torchvision_library.define(schema)
    return importlib.import_module("torchvision")


# ----- the catalogue ---------------------------------------------------------------------


@dataclass(frozen=True)
class ZooModel:
    """One architecture: ``library/builder``, built with ``options``, fed ``input_shape`` (no batch).

    ``input_shape`` is channels-first for the PyTorch libraries, channels-last for Keras.
    """

    library: str  # "torchvision", "timm", "keras", "keras-hub"
    builder: str  # the builder's name in its library (function, application, or keras-hub preset)
    input_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.library}/{self.builder}"

    @property
    def framework(self) -> str:
        return "keras" if self.library in ("keras", "keras-hub") else "pytorch"


#: The Python package each library is imported as.
PACKAGES = {"torchvision": "torchvision", "timm": "timm", "keras": "keras", "keras-hub": "keras_hub"}

_CHW_224, _HWC_224 = (3, 224, 224), (224, 224, 3)

# Every torchvision classification builder; Inception v3 takes 299 x 299 images.
_TORCHVISION = (
    "alexnet convnext_tiny convnext_small convnext_base convnext_large densenet121 densenet161 "
    "densenet169 densenet201 efficientnet_b0 efficientnet_b1 efficientnet_b2 efficientnet_b3 "
    "efficientnet_b4 efficientnet_b5 efficientnet_b6 efficientnet_b7 efficientnet_v2_s efficientnet_v2_m "
    "efficientnet_v2_l googlenet inception_v3 maxvit_t mnasnet0_5 mnasnet0_75 mnasnet1_0 mnasnet1_3 "
    "mobilenet_v2 mobilenet_v3_large mobilenet_v3_small regnet_x_400mf regnet_x_800mf regnet_x_1_6gf "
    "regnet_x_3_2gf regnet_x_8gf regnet_x_16gf regnet_x_32gf regnet_y_400mf regnet_y_800mf regnet_y_1_6gf "
    "regnet_y_3_2gf regnet_y_8gf regnet_y_16gf regnet_y_32gf regnet_y_128gf resnet18 resnet34 resnet50 "
    "resnet101 resnet152 resnext50_32x4d resnext101_32x8d resnext101_64x4d shufflenet_v2_x0_5 "
    "shufflenet_v2_x1_0 shufflenet_v2_x1_5 shufflenet_v2_x2_0 squeezenet1_0 squeezenet1_1 swin_t swin_s "
    "swin_b swin_v2_t swin_v2_s swin_v2_b vgg11 vgg11_bn vgg13 vgg13_bn vgg16 vgg16_bn vgg19 vgg19_bn "
    "vit_b_16 vit_b_32 vit_l_16 vit_l_32 vit_h_14 wide_resnet50_2 wide_resnet101_2"
).split()
# The auxiliary classifiers only run in training mode; leaving them out keeps the graph one output.
_TORCHVISION_OPTIONS = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}

# A few timm models; any other name timm knows is accepted too (see find_model).
_TIMM = (
    "resnet18 resnet50 resnet10t efficientnet_b0 mobilenetv3_small_100 mobilenetv3_large_100 "
    "convnext_atto regnetx_002 lcnet_050 vit_tiny_patch16_224 deit_tiny_patch16_224"
).split()

# Every keras.applications model of Keras 3.15, at its default input size.
_KERAS_299 = ("InceptionResNetV2", "InceptionV3", "Xception")
_KERAS = (
    "ConvNeXtTiny ConvNeXtSmall ConvNeXtBase ConvNeXtLarge ConvNeXtXLarge DenseNet121 DenseNet169 "
    "DenseNet201 EfficientNetB0 EfficientNetB1 EfficientNetB2 EfficientNetB3 EfficientNetB4 EfficientNetB5 "
    "EfficientNetB6 EfficientNetB7 EfficientNetV2B0 EfficientNetV2B1 EfficientNetV2B2 EfficientNetV2B3 "
    "EfficientNetV2S EfficientNetV2M EfficientNetV2L InceptionResNetV2 InceptionV3 MobileNet MobileNetV2 "
    "MobileNetV3Small MobileNetV3Large NASNetMobile NASNetLarge ResNet50 ResNet101 ResNet152 ResNet50V2 "
    "ResNet101V2 ResNet152V2 VGG16 VGG19 Xception"
).split()
_KERAS_SIZES = {"NASNetLarge": 331, **dict.fromkeys(_KERAS_299, 299)}

#: keras-hub backbones: the architecture of a preset (named by its key), built from this config.
KERAS_HUB_CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "resnet_18": (
        "ResNetBackbone",
        "resnet_18_imagenet",
        {
            "input_conv_filters": [64],
            "input_conv_kernel_sizes": [7],
            "stackwise_num_filters": [64, 128, 256, 512],
            "stackwise_num_blocks": [2, 2, 2, 2],
            "stackwise_num_strides": [1, 2, 2, 2],
            "block_type": "basic_block",
        },
    ),
    "resnet_50": (
        "ResNetBackbone",
        "resnet_50_imagenet",
        {
            "input_conv_filters": [64],
            "input_conv_kernel_sizes": [7],
            "stackwise_num_filters": [64, 128, 256, 512],
            "stackwise_num_blocks": [3, 4, 6, 3],
            "stackwise_num_strides": [1, 2, 2, 2],
            "block_type": "bottleneck_block",
        },
    ),
    "vgg_11": (
        "VGGBackbone",
        "vgg_11_imagenet",
        {"stackwise_num_repeats": [1, 1, 2, 2, 2], "stackwise_num_filters": [64, 128, 256, 512, 512]},
    ),
    "densenet_121": ("DenseNetBackbone", "densenet_121_imagenet", {"stackwise_num_repeats": [6, 12, 24, 16]}),
    "vit_base_patch16_224": (
        "ViTBackbone",
        "vit_base_patch16_224_imagenet",
        {
            "image_shape": _HWC_224,
            "patch_size": 16,
            "num_layers": 12,
            "num_heads": 12,
            "hidden_dim": 768,
            "mlp_dim": 3072,
        },
    ),
}

ZOO: tuple[ZooModel, ...] = (
    *(
        ZooModel(
            "torchvision",
            name,
            (3, 299, 299) if name == "inception_v3" else _CHW_224,
            _TORCHVISION_OPTIONS.get(name, {}),
        )
        for name in _TORCHVISION
    ),
    *(ZooModel("timm", name, _CHW_224) for name in _TIMM),
    *(ZooModel("keras", name, (_KERAS_SIZES.get(name, 224),) * 2 + (3,)) for name in _KERAS),
    *(ZooModel("keras-hub", name, _HWC_224) for name in KERAS_HUB_CONFIGS),
)


def installed(library: str) -> bool:
    """Whether ``library``'s package can be imported here (found without importing it)."""
    try:
        return importlib.util.find_spec(PACKAGES[library]) is not None
    except (ImportError, ValueError):
        return False


def available_models() -> list[ZooModel]:
    """The zoo's models whose library is installed, in catalogue order."""
    present = {library: installed(library) for library in PACKAGES}
    return [model for model in ZOO if present[model.library]]


_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def find_model(name: str) -> ZooModel:
    """The zoo entry called ``name`` (``zoo:`` optional); InteropError naming the near matches if none."""
    name = name.removeprefix(PREFIX).strip()
    library, _, builder = name.partition("/")
    by_name = {model.name.lower(): model for model in ZOO}
    model = by_name.get(name.lower())
    if model is None and library == "timm" and _NAME.match(builder):
        model = ZooModel("timm", builder, _CHW_224)  # any timm model; timm checks the name
    if model is None:
        term = (builder or library).lower()
        near = [entry.name for entry in ZOO if term and term in entry.name.lower()][:8]
        hint = f"; did you mean {', '.join(near)}?" if near else "; `studio import zoo:` lists them"
        raise InteropError(f"the model zoo has no {name[:80]!r}{hint}")
    if not installed(model.library):
        raise InteropError(
            f"zoo:{model.name} needs {PACKAGES[model.library]}, which is not installed "
            f"(pip install {model.library})"
        )
    return model


# ----- building --------------------------------------------------------------------------


def build_model(
    model: ZooModel, pretrained: bool = False, input_shape: Sequence[int] | None = None, **options
):
    """The architecture built by its own library: an ``nn.Module`` in eval mode, or a ``keras.Model``.

    ``options`` override the builder's keyword arguments (e.g. ``num_classes=10``).
    ``input_shape`` (Keras only; no batch) sets the Keras model's input size.
    """
    options = {**model.options, **options}
    try:
        if model.library == "torchvision":
            builder = getattr(import_torchvision().models, model.builder)
            return builder(weights="DEFAULT" if pretrained else None, **options).eval()
        if model.library == "timm":
            if installed("torchvision"):
                import_torchvision()  # timm imports torchvision when it is there: through the shim
            timm = importlib.import_module("timm")
            return timm.create_model(model.builder, pretrained=pretrained, **options).eval()
        if model.library == "keras":
            return _keras_application(model, pretrained, input_shape, options)
        return _keras_hub_backbone(model, pretrained, input_shape, options)
    except InteropError:
        raise
    except Exception as error:
        raise _build_error(model, pretrained, error) from None


def _keras_application(model: ZooModel, pretrained: bool, input_shape, options: dict):
    keras = import_keras()
    builder = getattr(keras.applications, model.builder)
    shape = tuple(input_shape or model.input_shape)
    return builder(weights="imagenet" if pretrained else None, input_shape=shape, **options)


def _keras_hub_backbone(model: ZooModel, pretrained: bool, input_shape, options: dict):
    import_keras()
    keras_hub = importlib.import_module("keras_hub")
    class_name, preset, config = KERAS_HUB_CONFIGS[model.builder]
    backbone = getattr(keras_hub.models, class_name)
    if pretrained:
        return backbone.from_preset(preset, **options)
    config = {**config, "image_shape": tuple(input_shape or model.input_shape), **options}
    return backbone(**config)


def _build_error(model: ZooModel, pretrained: bool, error: Exception) -> InteropError:
    detail = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    if pretrained:
        return ModelFileError(
            f"zoo:{model.name}: the pretrained weights cannot be loaded ({detail[:300]}); they are "
            "downloaded on first use, which needs a network connection; without one, leave out --pretrained"
        )
    return ModelFileError(f"zoo:{model.name}: building the model failed ({detail[:300]})")


def import_zoo_model(
    name: str,
    *,
    pretrained: bool = False,
    with_weights: bool = True,
    input_shape: Sequence[int] | None = None,
    project_name: str | None = None,
) -> ImportedModel:
    """Build zoo model ``name`` and import it as a project.

    ``input_shape`` (no batch) overrides the entry's: channels-first for the PyTorch
    libraries, channels-last for Keras, as each framework takes its images.
    """
    model = find_model(name)
    shape = tuple(int(d) for d in input_shape) if input_shape else model.input_shape
    title = project_name or re.sub(r"\W+", "_", model.builder)
    source = f"{PREFIX}{model.name}"
    if model.framework == "pytorch":
        from studio.interop.torch_import import import_torch_model

        built = build_model(model, pretrained)
        return import_torch_model(built, [shape], source=source, with_weights=with_weights, name=title)
    from studio.interop.keras_import import import_keras_model

    built = build_model(model, pretrained, input_shape=shape if input_shape else None)
    return import_keras_model(built, source=source, with_weights=with_weights, name=title)
