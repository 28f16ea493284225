"""Each model's evaluation transform, built from its :class:`~pytest_dnnbench.models.spec.Preprocess`.

One single centre crop, as in the paper, done the way the three source libraries do it (all three
resize PIL images through torchvision):

1. convert to RGB (or to L for one-channel models), as ``ImageFolder``'s loader does;
2. resize the *shorter side* to ``resize`` with ``interpolation`` (PIL, antialiased);
3. centre-crop ``crop`` x ``crop``;
4. to a float tensor in 0..1 (``ToTensor``);
5. reorder channels to BGR when ``color == "BGR"`` (Cadene's ``ToSpaceBGR``);
6. multiply by ``value_range`` (255 for Caffe-style inputs; Cadene's ``ToRange255``);
7. subtract ``mean`` and divide by ``std`` (given in the network's channel order and range).

torch, torchvision and PIL are imported when a transform is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..models.spec import Preprocess

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from ..jsontypes import JsonObject

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


def check_preprocess(pre: Preprocess) -> None:
    """Raise ValueError naming what is wrong with ``pre``."""
    if pre.interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {pre.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
    if pre.color not in ("RGB", "BGR"):
        raise ValueError(f"color {pre.color!r} must be 'RGB' or 'BGR'")
    if int(pre.resize) < 1 or int(pre.crop) < 1:
        raise ValueError(f"resize ({pre.resize}) and crop ({pre.crop}) must be positive")
    if len(pre.mean) != len(pre.std) or len(pre.mean) not in (1, 3):
        raise ValueError(f"mean {pre.mean} and std {pre.std} need 1 or 3 values each")
    if any(s == 0 for s in pre.std):
        raise ValueError(f"std {pre.std} has a zero")
    if not pre.value_range > 0:
        raise ValueError(f"value_range {pre.value_range} must be positive (1.0 or 255.0)")


def describe(pre: Preprocess) -> JsonObject:
    """The preprocessing as plain JSON data (for the record)."""
    return {
        "resize": int(pre.resize),
        "crop": int(pre.crop),
        "interpolation": pre.interpolation,
        "mean": [float(v) for v in pre.mean],
        "std": [float(v) for v in pre.std],
        "color": pre.color,
        "value_range": float(pre.value_range),
        "source": pre.source,
    }


def build_transform(pre: Preprocess) -> Callable[[Image.Image], torch.Tensor]:
    """A callable: PIL image -> float32 tensor (channels, crop, crop), as the source library makes it."""
    check_preprocess(pre)
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode

    mode = InterpolationMode(pre.interpolation)
    gray = len(pre.mean) == 1
    mean = [float(v) for v in pre.mean]
    std = [float(v) for v in pre.std]
    bgr = pre.color == "BGR" and not gray
    scale = float(pre.value_range)

    def transform(img: Image.Image) -> torch.Tensor:
        img = img.convert("L" if gray else "RGB")
        # torchvision is untyped: resize and center_crop give a PIL image back, to_tensor and normalize a tensor.
        img = F.resize(img, int(pre.resize), interpolation=mode)
        img = F.center_crop(img, [int(pre.crop), int(pre.crop)])
        tensor: torch.Tensor = F.to_tensor(img)
        if bgr:
            tensor = tensor[[2, 1, 0], :, :]
        if scale != 1.0:
            tensor = tensor.mul(scale)
        normalized: torch.Tensor = F.normalize(tensor, mean=mean, std=std)
        return normalized

    return transform


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file fully (PIL), as torchvision's default loader does."""
    from PIL import Image

    with open(path, "rb") as fh:
        img = Image.open(fh)
        img.load()
        return img
