"""The built-in model catalog: the paper's 44 networks and torchvision's other classifiers.

Pure data (no torch import). Preprocessing values are those of each model's
source library for the weights the paper used (torchvision ``IMAGENET1K_V1``,
timm's pretrained config, Cadene's ``pretrained_settings['imagenet']``);
``tests/unit/test_models.py`` holds them against the installed libraries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .spec import ModelSpec, Preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
DPN_MEAN = (124 / 255, 117 / 255, 104 / 255)
DPN_STD = (1 / (0.0167 * 255),) * 3


def _tv_pre(crop: int = 224, resize: int = 256, interpolation: str = "bilinear") -> Preprocess:
    return Preprocess(
        resize=resize,
        crop=crop,
        interpolation=interpolation,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        source="torchvision weights transforms",
    )


def _timm_pre(
    crop: int, crop_pct: float, interpolation: str, mean: Sequence[float], std: Sequence[float]
) -> Preprocess:
    # timm: scale_size = floor(img_size / crop_pct), then a centre crop of img_size.
    import math

    return Preprocess(
        resize=int(math.floor(crop / crop_pct)),
        crop=crop,
        interpolation=interpolation,
        mean=tuple(mean),
        std=tuple(std),
        source="timm pretrained_cfg",
    )


def _cadene_pre(
    mean: Sequence[float], std: Sequence[float], color: str = "RGB", value_range: float = 1.0, crop: int = 224
) -> Preprocess:
    # pretrainedmodels.utils.TransformImage: Resize(floor(size / 0.875)), CenterCrop(size).
    import math

    return Preprocess(
        resize=int(math.floor(crop / 0.875)),
        crop=crop,
        interpolation="bilinear",
        mean=tuple(mean),
        std=tuple(std),
        color=color,
        value_range=value_range,
        source="pretrainedmodels pretrained_settings",
    )


def _tv(
    name: str,
    paper: str,
    family: str,
    *,
    crop: int = 224,
    resize: int = 256,
    top1: float | None = None,
    kwargs: Iterable[tuple[str, object]] = (),
) -> ModelSpec:
    return ModelSpec(
        name=name,
        paper_name=paper,
        source="torchvision",
        builder=name,
        input_size=(3, crop, crop),
        family=family,
        preprocess=_tv_pre(crop, resize),
        weights="IMAGENET1K_V1",
        paper_top1=top1,
        builder_kwargs=tuple(kwargs),
    )


def _timm(
    name: str,
    paper: str,
    family: str,
    builder: str,
    *,
    crop: int = 224,
    crop_pct: float = 0.875,
    interp: str = "bilinear",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    top1: float | None = None,
) -> ModelSpec:
    return ModelSpec(
        name=name,
        paper_name=paper,
        source="timm",
        builder=builder,
        input_size=(3, crop, crop),
        family=family,
        preprocess=_timm_pre(crop, crop_pct, interp, mean, std),
        weights=None,
        paper_top1=top1,
    )


def _cadene(
    name: str,
    paper: str,
    family: str,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    color: str = "RGB",
    value_range: float = 1.0,
    top1: float | None = None,
) -> ModelSpec:
    return ModelSpec(
        name=name,
        paper_name=paper,
        source="pretrainedmodels",
        builder=name,
        input_size=(3, 224, 224),
        family=family,
        preprocess=_cadene_pre(mean, std, color, value_range),
        weights="imagenet",
        paper_top1=top1,
    )


# torchvision builds GoogLeNet and Inception-v3 with their auxiliary classifiers and
# input transform unless told otherwise; the pretrained builders switch the heads off
# and the transform on. We benchmark what runs in eval, as the released weights do.
_AUX_OFF = (("aux_logits", False), ("transform_input", True), ("init_weights", False))

# Top-1 figures given in the paper's text and Table 3 (None where the transcript gives none).
PAPER_MODELS: tuple[ModelSpec, ...] = (
    _tv("alexnet", "AlexNet", "alexnet"),
    _tv("vgg11", "VGG-11", "vgg"),
    _tv("vgg11_bn", "VGG-11_BN", "vgg"),
    _tv("vgg13", "VGG-13", "vgg"),
    _tv("vgg13_bn", "VGG-13_BN", "vgg"),
    _tv("vgg16", "VGG-16", "vgg"),
    _tv("vgg16_bn", "VGG-16_BN", "vgg"),
    _tv("vgg19", "VGG-19", "vgg"),
    _tv("vgg19_bn", "VGG-19_BN", "vgg"),
    _cadene(
        "bninception",
        "BN-Inception",
        "inception",
        mean=(104, 117, 128),
        std=(1, 1, 1),
        color="BGR",
        value_range=255.0,
        top1=73.48,
    ),
    _tv("googlenet", "GoogLeNet", "inception", top1=66.45, kwargs=_AUX_OFF),
    _tv("squeezenet1_0", "SqueezeNet-v1.0", "squeezenet"),
    _tv("squeezenet1_1", "SqueezeNet-v1.1", "squeezenet", top1=58.18),
    _tv("resnet18", "ResNet-18", "resnet", top1=69.64),
    _tv("resnet34", "ResNet-34", "resnet", top1=73.27),
    _tv("resnet50", "ResNet-50", "resnet", top1=76.01),
    _tv("resnet101", "ResNet-101", "resnet", top1=77.31),
    _tv("resnet152", "ResNet-152", "resnet", top1=78.25),
    _tv("inception_v3", "Inception-v3", "inception", crop=299, resize=342, top1=77.50, kwargs=_AUX_OFF),
    _timm(
        "inception_v4",
        "Inception-v4",
        "inception",
        "inception_v4",
        crop=299,
        interp="bicubic",
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        top1=80.10,
    ),
    _timm(
        "inception_resnet_v2",
        "Inception-ResNet-v2",
        "inception",
        "inception_resnet_v2",
        crop=299,
        crop_pct=0.8975,
        interp="bicubic",
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        top1=80.28,
    ),
    _tv("densenet121", "DenseNet-121 (k=32)", "densenet", top1=74.47),
    _tv("densenet169", "DenseNet-169 (k=32)", "densenet"),
    _tv("densenet201", "DenseNet-201 (k=32)", "densenet"),
    _tv("densenet161", "DenseNet-161 (k=48)", "densenet"),
    _timm("resnext101_32x4d", "ResNeXt-101 (32x4d)", "resnext", "resnext101_32x4d"),
    _timm("resnext101_64x4d", "ResNeXt-101 (64x4d)", "resnext", "resnext101_64x4d", crop_pct=0.95, interp="bicubic"),
    _timm(
        "xception",
        "Xception",
        "xception",
        "legacy_xception",
        crop=299,
        crop_pct=0.8975,
        interp="bicubic",
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        top1=78.79,
    ),
    _timm("dpn68", "DPN-68", "dpn", "dpn68", interp="bicubic", mean=DPN_MEAN, std=DPN_STD, top1=75.95),
    _timm("dpn98", "DPN-98", "dpn", "dpn98", interp="bicubic", mean=DPN_MEAN, std=DPN_STD, top1=79.23),
    _timm("dpn131", "DPN-131", "dpn", "dpn131", interp="bicubic", mean=DPN_MEAN, std=DPN_STD, top1=79.44),
    _timm("se_resnet50", "SE-ResNet-50", "senet", "legacy_seresnet50", top1=77.61),
    _timm("se_resnet101", "SE-ResNet-101", "senet", "legacy_seresnet101", top1=78.42),
    _timm("se_resnet152", "SE-ResNet-152", "senet", "legacy_seresnet152"),
    _timm("senet154", "SENet-154", "senet", "legacy_senet154", top1=81.32),
    _timm("se_resnext50_32x4d", "SE-ResNeXt-50 (32x4d)", "senet", "legacy_seresnext50_32x4d", top1=79.11),
    _timm("se_resnext101_32x4d", "SE-ResNeXt-101 (32x4d)", "senet", "legacy_seresnext101_32x4d", top1=80.28),
    _timm(
        "nasnetalarge",
        "NASNet-A-Large",
        "nasnet",
        "nasnetalarge",
        crop=331,
        crop_pct=0.911,
        interp="bicubic",
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        top1=82.50,
    ),
    _cadene("nasnetamobile", "NASNet-A-Mobile", "nasnet", mean=INCEPTION_MEAN, std=INCEPTION_STD, top1=74.10),
    _timm(
        "mobilenet_v1",
        "MobileNet-v1",
        "mobilenet",
        "mobilenetv1_100",
        interp="bicubic",
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        top1=69.52,
    ),
    _tv("mobilenet_v2", "MobileNet-v2", "mobilenet", top1=71.81),
    ModelSpec(
        name="shufflenet",
        paper_name="ShuffleNet (v1, g=8)",
        source="dnnbench",
        builder="pytest_dnnbench.models.shufflenet:shufflenet_v1",
        input_size=(3, 224, 224),
        family="shufflenet",
        preprocess=_tv_pre(),
        weights=None,
        builder_kwargs=(("groups", 8),),
    ),
    _cadene("fbresnet152", "FBResNet-152", "resnet", mean=IMAGENET_MEAN, std=IMAGENET_STD, top1=77.44),
    _cadene(
        "cafferesnet101",
        "CaffeResNet-101",
        "resnet",
        mean=(102.9801, 115.9465, 122.7717),
        std=(1, 1, 1),
        color="BGR",
        value_range=255.0,
    ),
)

# torchvision's other ImageNet-1k classifiers: (name, crop, resize, interpolation, default weights).
_TV_EXTRA = (
    ("convnext_base", 224, 232, "bilinear", "IMAGENET1K_V1"),
    ("convnext_large", 224, 232, "bilinear", "IMAGENET1K_V1"),
    ("convnext_small", 224, 230, "bilinear", "IMAGENET1K_V1"),
    ("convnext_tiny", 224, 236, "bilinear", "IMAGENET1K_V1"),
    ("efficientnet_b0", 224, 256, "bicubic", "IMAGENET1K_V1"),
    ("efficientnet_b1", 240, 255, "bilinear", "IMAGENET1K_V2"),
    ("efficientnet_b2", 288, 288, "bicubic", "IMAGENET1K_V1"),
    ("efficientnet_b3", 300, 320, "bicubic", "IMAGENET1K_V1"),
    ("efficientnet_b4", 380, 384, "bicubic", "IMAGENET1K_V1"),
    ("efficientnet_b5", 456, 456, "bicubic", "IMAGENET1K_V1"),
    ("efficientnet_b6", 528, 528, "bicubic", "IMAGENET1K_V1"),
    ("efficientnet_b7", 600, 600, "bicubic", "IMAGENET1K_V1"),
    ("efficientnet_v2_l", 480, 480, "bicubic", "IMAGENET1K_V1"),
    ("efficientnet_v2_m", 480, 480, "bilinear", "IMAGENET1K_V1"),
    ("efficientnet_v2_s", 384, 384, "bilinear", "IMAGENET1K_V1"),
    ("maxvit_t", 224, 224, "bicubic", "IMAGENET1K_V1"),
    ("mnasnet0_5", 224, 256, "bilinear", "IMAGENET1K_V1"),
    ("mnasnet0_75", 224, 232, "bilinear", "IMAGENET1K_V1"),
    ("mnasnet1_0", 224, 256, "bilinear", "IMAGENET1K_V1"),
    ("mnasnet1_3", 224, 232, "bilinear", "IMAGENET1K_V1"),
    ("mobilenet_v3_large", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("mobilenet_v3_small", 224, 256, "bilinear", "IMAGENET1K_V1"),
    ("regnet_x_16gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_x_1_6gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_x_32gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_x_3_2gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_x_400mf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_x_800mf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_x_8gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_y_128gf", 384, 384, "bicubic", "IMAGENET1K_SWAG_E2E_V1"),
    ("regnet_y_16gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_y_1_6gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_y_32gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_y_3_2gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_y_400mf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_y_800mf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("regnet_y_8gf", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("resnext101_32x8d", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("resnext101_64x4d", 224, 232, "bilinear", "IMAGENET1K_V1"),
    ("resnext50_32x4d", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("shufflenet_v2_x0_5", 224, 256, "bilinear", "IMAGENET1K_V1"),
    ("shufflenet_v2_x1_0", 224, 256, "bilinear", "IMAGENET1K_V1"),
    ("shufflenet_v2_x1_5", 224, 232, "bilinear", "IMAGENET1K_V1"),
    ("shufflenet_v2_x2_0", 224, 232, "bilinear", "IMAGENET1K_V1"),
    ("swin_b", 224, 238, "bicubic", "IMAGENET1K_V1"),
    ("swin_s", 224, 246, "bicubic", "IMAGENET1K_V1"),
    ("swin_t", 224, 232, "bicubic", "IMAGENET1K_V1"),
    ("swin_v2_b", 256, 272, "bicubic", "IMAGENET1K_V1"),
    ("swin_v2_s", 256, 260, "bicubic", "IMAGENET1K_V1"),
    ("swin_v2_t", 256, 260, "bicubic", "IMAGENET1K_V1"),
    ("vit_b_16", 224, 256, "bilinear", "IMAGENET1K_V1"),
    ("vit_b_32", 224, 256, "bilinear", "IMAGENET1K_V1"),
    ("vit_h_14", 518, 518, "bicubic", "IMAGENET1K_SWAG_E2E_V1"),
    ("vit_l_16", 224, 242, "bilinear", "IMAGENET1K_V1"),
    ("vit_l_32", 224, 256, "bilinear", "IMAGENET1K_V1"),
    ("wide_resnet101_2", 224, 232, "bilinear", "IMAGENET1K_V2"),
    ("wide_resnet50_2", 224, 232, "bilinear", "IMAGENET1K_V2"),
)


def _family(builder: str) -> str:
    for prefix in (
        "convnext",
        "efficientnet",
        "maxvit",
        "mnasnet",
        "mobilenet",
        "regnet",
        "resnext",
        "shufflenet",
        "swin",
        "vit",
        "wide_resnet",
    ):
        if builder.startswith(prefix):
            return prefix
    return builder


# Weights whose transforms normalise with 0.5/0.5 rather than the ImageNet mean/std.
_TV_HALF_NORM = ("efficientnet_v2_l",)


def _extra(builder: str, crop: int, resize: int, interp: str, weights: str) -> ModelSpec:
    # The paper's ResNeXt-101 (64x4d) is timm's port; torchvision's own is kept under a prefixed name.
    name = "tv_" + builder if builder == "resnext101_64x4d" else builder
    pre = _tv_pre(crop, resize, interp)
    if builder in _TV_HALF_NORM:
        pre = Preprocess(
            resize=resize, crop=crop, interpolation=interp, mean=INCEPTION_MEAN, std=INCEPTION_STD, source=pre.source
        )
    return ModelSpec(
        name=name,
        paper_name=None,
        source="torchvision",
        builder=builder,
        input_size=(3, crop, crop),
        family=_family(builder),
        preprocess=pre,
        weights=weights,
    )


TORCHVISION_EXTRA: tuple[ModelSpec, ...] = tuple(_extra(*row) for row in _TV_EXTRA)

#: A small set that runs in a few minutes on a laptop CPU (``--dnn-models=default``).
DEFAULT_MODELS: tuple[str, ...] = ("resnet18", "mobilenet_v2", "squeezenet1_1")
