"""Each model's preprocessing equals its source library's own transform, on real photographs.

The photographs are the two that scikit-learn ships (``load_sample_images``: china.jpg and
flower.jpg, 427x640 RGB). The registry's values are also held against the libraries' own
configuration for every library model in the registry (torchvision weights transforms, timm's
pretrained config, Cadene's ``pretrained_settings``).

Tolerance: all three libraries and ours resize and crop the PIL image with the same torchvision
call, so the pixels are identical; the float steps differ at most in how 0..255 becomes 0..1
(torchvision's weights transforms use ``convert_image_dtype``, timm and Cadene ``ToTensor``) and
in the order of the multiply and subtract steps, i.e. a few float32 ulps. With torchvision 0.29,
timm 1.0.31 and pretrainedmodels 0.7.4 the tensors were bit-identical (largest difference 0.0).
``atol = 1e-5 * value_range`` (1e-5 for 0..1 inputs, 2.55e-3 for 0..255 Caffe inputs) bounds
that with room, while any real difference (a wrong mean, interpolation, crop size or channel
order) is off by 1e-2 or more.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from pytest_dnnbench.accuracy.preprocess import build_transform  # noqa: E402
from pytest_dnnbench.registry import REGISTRY  # noqa: E402


@pytest.fixture(scope="module")
def photos():
    from PIL import Image
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(img) for img in load_sample_images().images]


def _torchvision_transform(spec):
    import torchvision.models

    return torchvision.models.get_model_weights(spec.builder)[spec.weights].transforms()


def _timm_transform(spec):
    import timm
    import timm.data

    model = timm.create_model(spec.builder, pretrained=False)
    return timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))


def _cadene_transform(spec):
    import pretrainedmodels
    import pretrainedmodels.utils

    return pretrainedmodels.utils.TransformImage(pretrainedmodels.pretrained_settings[spec.builder]["imagenet"])


LIBRARY = {"torchvision": _torchvision_transform, "timm": _timm_transform, "pretrainedmodels": _cadene_transform}

# Seven torchvision/timm/Cadene models: bilinear and bicubic, 224/299, ImageNet, Inception and DPN
# means, crop_pct 0.875/0.8975, and both Caffe-style BGR 0..255 models.
SAME_TENSOR = [
    "resnet50",
    "inception_v3",
    "inception_v4",
    "dpn68",
    "xception",
    "se_resnet50",
    "bninception",
    "cafferesnet101",
    "nasnetamobile",
    "fbresnet152",
]


@pytest.mark.parametrize("name", SAME_TENSOR)
def test_same_tensor_as_the_source_library(name: str, photos) -> None:
    spec = REGISTRY.get(name)
    if spec.source == "pretrainedmodels":
        pytest.importorskip("pretrainedmodels")
    ours = build_transform(spec.preprocess)
    theirs = LIBRARY[spec.source](spec)
    for img in photos:
        a, b = ours(img), theirs(img)
        assert a.dtype == b.dtype == torch.float32
        assert a.shape == b.shape == (3, spec.preprocess.crop, spec.preprocess.crop) == spec.input_size
        atol = 1e-5 * spec.preprocess.value_range
        assert (a - b).abs().max().item() <= atol, (name, (a - b).abs().max().item())


def test_bgr_and_range_really_matter(photos) -> None:
    """The Caffe-style settings change the tensor (the equality above is not vacuous)."""
    from dataclasses import replace

    spec = REGISTRY.get("bninception")
    caffe = build_transform(spec.preprocess)(photos[0])
    rgb = build_transform(replace(spec.preprocess, color="RGB"))(photos[0])
    unit = build_transform(replace(spec.preprocess, value_range=1.0))(photos[0])
    assert caffe.max() > 50  # 0..255 minus a mean of about 100-130
    assert (caffe - rgb).abs().max() > 10 and (caffe - unit).abs().max() > 10


# -- the registry's values against each library's configuration, for every library model -----

LIBRARY_MODELS = [s for s in REGISTRY if s.source in LIBRARY]


@pytest.mark.parametrize("spec", LIBRARY_MODELS, ids=[s.name for s in LIBRARY_MODELS])
def test_registry_preprocessing_is_the_libraries(spec) -> None:
    pre = spec.preprocess
    if spec.source == "torchvision":
        t = _torchvision_transform(spec)
        assert (list(t.resize_size), list(t.crop_size)) == ([pre.resize], [pre.crop])
        assert t.interpolation.value == pre.interpolation
        assert tuple(t.mean) == pre.mean and tuple(t.std) == pre.std
        assert (pre.color, pre.value_range) == ("RGB", 1.0)
    elif spec.source == "timm":
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(spec.builder)
        assert cfg.input_size == spec.input_size
        assert pre.crop == cfg.input_size[-1] and pre.resize == math.floor(pre.crop / cfg.crop_pct)
        assert cfg.interpolation == pre.interpolation
        assert tuple(cfg.mean) == pytest.approx(pre.mean) and tuple(cfg.std) == pytest.approx(pre.std)
    else:
        pretrainedmodels = pytest.importorskip("pretrainedmodels")
        s = pretrainedmodels.pretrained_settings[spec.builder]["imagenet"]
        assert tuple(s["input_size"]) == spec.input_size
        assert (s["input_space"], float(max(s["input_range"]))) == (pre.color, pre.value_range)
        assert tuple(s["mean"]) == pytest.approx(pre.mean) and tuple(s["std"]) == pytest.approx(pre.std)
        assert pre.resize == math.floor(pre.crop / 0.875) and pre.interpolation == "bilinear"


def test_bad_preprocessing_is_refused() -> None:
    from pytest_dnnbench.registry import Preprocess

    for bad, match in [
        (Preprocess(resize=8, crop=8, interpolation="cubic"), "interpolation"),
        (Preprocess(resize=8, crop=8, color="GBR"), "color"),
        (Preprocess(resize=8, crop=8, mean=(0.5, 0.5)), "mean"),
        (Preprocess(resize=8, crop=8, std=(1, 0, 1)), "zero"),
    ]:
        with pytest.raises(ValueError, match=match):
            build_transform(bad)
