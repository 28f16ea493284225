"""Published Top-1/Top-5 (percent, ImageNet-1k val, single centre crop) for the weights the paper used.

* torchvision models: read at run time from the ``meta`` of the weights the registry names
  (``IMAGENET1K_V1`` for the paper's models: ResNet-50 is 76.13, not the default V2's 80.86).
* Cadene's models (pretrainedmodels, and the timm ports of them the registry builds): the
  "Our porting" rows of the table "Accuracy on validation set (single model)" in
  Cadene/pretrained-models.pytorch's README: those are the weights the paper evaluated.
* MobileNet-v1 (the paper's weights are not those of timm's ``mobilenetv1_100``) and ShuffleNet
  (implemented here, no weights): no published figure, ``None``.

The paper's own Top-1 (``ModelSpec.paper_top1``) is carried beside, never in place of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models.spec import ModelSpec

if TYPE_CHECKING:
    from ..jsontypes import JsonObject

CADENE_SOURCE = (
    "Cadene/pretrained-models.pytorch README, 'Accuracy on validation set (single model)', 'Our porting' row"
)

#: short name -> (Top-1, Top-5, what the row is called in Cadene's README)
CADENE_TABLE: dict[str, tuple[float, float, str]] = {
    "nasnetalarge": (82.566, 96.086, "NASNet-A-Large"),
    "senet154": (81.304, 95.498, "SENet154"),
    "se_resnext101_32x4d": (80.236, 95.028, "SE-ResNeXt101_32x4d"),
    "inception_resnet_v2": (80.170, 95.234, "InceptionResNetV2"),
    "inception_v4": (80.062, 94.926, "InceptionV4"),
    "dpn131": (79.432, 94.574, "DualPathNet131"),
    "dpn98": (79.224, 94.488, "DualPathNet98"),
    "se_resnext50_32x4d": (79.076, 94.434, "SE-ResNeXt50_32x4d"),
    "resnext101_64x4d": (78.956, 94.252, "ResNeXt101_64x4d"),
    "xception": (78.888, 94.292, "Xception"),
    "se_resnet152": (78.658, 94.374, "SE-ResNet152"),
    "se_resnet101": (78.396, 94.258, "SE-ResNet101"),
    "resnext101_32x4d": (78.188, 93.886, "ResNeXt101_32x4d"),
    "se_resnet50": (77.636, 93.752, "SE-ResNet50"),
    "fbresnet152": (77.386, 93.594, "FBResNet152"),
    "cafferesnet101": (76.200, 92.766, "CaffeResnet101"),
    "dpn68": (75.868, 92.774, "DualPathNet68"),
    "nasnetamobile": (74.080, 91.740, "NASNet-A-Mobile"),
    "bninception": (73.522, 91.560, "BNInception"),
}


def torchvision_reference(builder: str, weights: str) -> JsonObject | None:
    """Top-1/Top-5 from torchvision's weights meta (imports torchvision)."""
    try:
        import torchvision.models

        enum = torchvision.models.get_model_weights(builder)[weights]
        metrics = enum.meta["_metrics"]["ImageNet-1K"]
    except (ImportError, KeyError, ValueError, AttributeError):
        return None
    return {
        "top1": float(metrics["acc@1"]),
        "top5": float(metrics["acc@5"]),
        "source": f"torchvision weights meta: {type(enum).__name__}.{enum.name}",
        "weights": f"{type(enum).__name__}.{enum.name}",
    }


def reference_for(spec: ModelSpec) -> JsonObject | None:
    """The published figure for ``spec``'s paper weights, or None where none is known."""
    if spec.source == "torchvision" and spec.weights:
        return torchvision_reference(spec.builder, spec.weights)
    if spec.source in ("timm", "pretrainedmodels") and spec.name in CADENE_TABLE:
        top1, top5, row = CADENE_TABLE[spec.name]
        return {"top1": top1, "top5": top5, "source": f"{CADENE_SOURCE} {row!r}", "weights": f"Cadene {row}"}
    return None
