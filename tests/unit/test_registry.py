"""Tests of the model registry (pure logic: names, paper table, selection, registration).

Nothing here builds a network; only the torchvision-catalogue test imports torchvision.
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dnnbench.registry import (
    KEYWORDS,
    REGISTRY,
    ModelSpec,
    Registry,
    SelectionError,
    import_object,
)

# The paper's 44 models as docs/measurements.md and the registry define them: (name, paper display name,
# source, builder, input side).
# "this project" / "—" (ShuffleNet v1) is source "dnnbench" with an importable builder.
PAPER_TABLE = [
    ("alexnet", "AlexNet", "torchvision", "alexnet", 224),
    ("vgg11", "VGG-11", "torchvision", "vgg11", 224),
    ("vgg11_bn", "VGG-11_BN", "torchvision", "vgg11_bn", 224),
    ("vgg13", "VGG-13", "torchvision", "vgg13", 224),
    ("vgg13_bn", "VGG-13_BN", "torchvision", "vgg13_bn", 224),
    ("vgg16", "VGG-16", "torchvision", "vgg16", 224),
    ("vgg16_bn", "VGG-16_BN", "torchvision", "vgg16_bn", 224),
    ("vgg19", "VGG-19", "torchvision", "vgg19", 224),
    ("vgg19_bn", "VGG-19_BN", "torchvision", "vgg19_bn", 224),
    ("bninception", "BN-Inception", "pretrainedmodels", "bninception", 224),
    ("googlenet", "GoogLeNet", "torchvision", "googlenet", 224),
    ("squeezenet1_0", "SqueezeNet-v1.0", "torchvision", "squeezenet1_0", 224),
    ("squeezenet1_1", "SqueezeNet-v1.1", "torchvision", "squeezenet1_1", 224),
    ("resnet18", "ResNet-18", "torchvision", "resnet18", 224),
    ("resnet34", "ResNet-34", "torchvision", "resnet34", 224),
    ("resnet50", "ResNet-50", "torchvision", "resnet50", 224),
    ("resnet101", "ResNet-101", "torchvision", "resnet101", 224),
    ("resnet152", "ResNet-152", "torchvision", "resnet152", 224),
    ("inception_v3", "Inception-v3", "torchvision", "inception_v3", 299),
    ("inception_v4", "Inception-v4", "timm", "inception_v4", 299),
    ("inception_resnet_v2", "Inception-ResNet-v2", "timm", "inception_resnet_v2", 299),
    ("densenet121", "DenseNet-121 (k=32)", "torchvision", "densenet121", 224),
    ("densenet169", "DenseNet-169 (k=32)", "torchvision", "densenet169", 224),
    ("densenet201", "DenseNet-201 (k=32)", "torchvision", "densenet201", 224),
    ("densenet161", "DenseNet-161 (k=48)", "torchvision", "densenet161", 224),
    ("resnext101_32x4d", "ResNeXt-101 (32x4d)", "timm", "resnext101_32x4d", 224),
    ("resnext101_64x4d", "ResNeXt-101 (64x4d)", "timm", "resnext101_64x4d", 224),
    ("xception", "Xception", "timm", "legacy_xception", 299),
    ("dpn68", "DPN-68", "timm", "dpn68", 224),
    ("dpn98", "DPN-98", "timm", "dpn98", 224),
    ("dpn131", "DPN-131", "timm", "dpn131", 224),
    ("se_resnet50", "SE-ResNet-50", "timm", "legacy_seresnet50", 224),
    ("se_resnet101", "SE-ResNet-101", "timm", "legacy_seresnet101", 224),
    ("se_resnet152", "SE-ResNet-152", "timm", "legacy_seresnet152", 224),
    ("senet154", "SENet-154", "timm", "legacy_senet154", 224),
    ("se_resnext50_32x4d", "SE-ResNeXt-50 (32x4d)", "timm", "legacy_seresnext50_32x4d", 224),
    ("se_resnext101_32x4d", "SE-ResNeXt-101 (32x4d)", "timm", "legacy_seresnext101_32x4d", 224),
    ("nasnetalarge", "NASNet-A-Large", "timm", "nasnetalarge", 331),
    ("nasnetamobile", "NASNet-A-Mobile", "pretrainedmodels", "nasnetamobile", 224),
    ("mobilenet_v1", "MobileNet-v1", "timm", "mobilenetv1_100", 224),
    ("mobilenet_v2", "MobileNet-v2", "torchvision", "mobilenet_v2", 224),
    ("shufflenet", "ShuffleNet (v1, g=8)", "dnnbench", "pytest_dnnbench.models.shufflenet:shufflenet_v1", 224),
    ("fbresnet152", "FBResNet-152", "pretrainedmodels", "fbresnet152", 224),
    ("cafferesnet101", "CaffeResNet-101", "pretrainedmodels", "cafferesnet101", 224),
]
PAPER_NAMES = [row[0] for row in PAPER_TABLE]
NAMES = REGISTRY.names()


# -- the paper's 44 ------------------------------------------------------------------------------
def test_paper_table_has_44_unique_rows() -> None:
    assert len(PAPER_TABLE) == 44
    assert len(set(PAPER_NAMES)) == 44


def test_registry_paper_names_are_the_papers_44_in_order() -> None:
    assert REGISTRY.paper_names() == PAPER_NAMES


@pytest.mark.parametrize("name, paper, source, builder, side", PAPER_TABLE, ids=PAPER_NAMES)
def test_paper_model_entry(name: str, paper: str, source: str, builder: str, side: int) -> None:
    spec = REGISTRY.get(name)
    assert spec.name == name
    assert spec.paper_name == paper
    assert spec.in_paper
    assert spec.display_name == paper
    assert spec.source == source
    assert spec.builder == builder
    assert spec.input_size == (3, side, side)
    if spec.preprocess is not None:
        assert spec.preprocess.crop == side, "evaluation crop must equal the benchmark input size"


def test_shufflenet_builder_is_importable() -> None:
    from pytest_dnnbench.models.shufflenet import shufflenet_v1

    spec = REGISTRY.get("shufflenet")
    assert spec.importable
    assert import_object(spec.builder) is shufflenet_v1
    assert dict(spec.builder_kwargs) == {"groups": 8}


def test_only_the_44_have_paper_names() -> None:
    extra = [s.name for s in REGISTRY if s.paper_name is not None and s.name not in PAPER_NAMES]
    assert extra == []


# -- torchvision's other classifiers -------------------------------------------------------------
def _registry_name_of_torchvision(builder: str) -> str:
    # The paper's ResNeXt-101 (64x4d) is timm's port; torchvision's own is registered with a prefix.
    return "tv_resnext101_64x4d" if builder == "resnext101_64x4d" else builder


def test_registry_holds_every_torchvision_classifier() -> None:
    import torchvision
    from torchvision.models import get_model_weights, list_models

    tv_names = list_models(module=torchvision.models)
    assert len(tv_names) >= 80  # torchvision 0.29 has 80 ImageNet classifiers

    missing = [n for n in tv_names if _registry_name_of_torchvision(n) not in REGISTRY]
    assert not missing, f"torchvision classifiers missing from the catalog: {', '.join(missing)}"

    wrong = []
    for builder in tv_names:
        spec = REGISTRY.get(_registry_name_of_torchvision(builder))
        weights = get_model_weights(builder)
        crop = weights.DEFAULT.transforms().crop_size
        (side,) = set(crop)
        if spec.source != "torchvision" or spec.builder != builder:
            wrong.append(f"{spec.name}: {spec.source}.{spec.builder}")
        if spec.input_size != (3, side, side):
            wrong.append(f"{spec.name}: input {spec.input_size}, DEFAULT weights crop {tuple(crop)}")
        if spec.weights is not None and spec.weights not in weights.__members__:
            wrong.append(f"{spec.name}: unknown weights {spec.weights!r}")
        if not spec.in_paper and spec.weights != weights.DEFAULT.name:
            wrong.append(f"{spec.name}: weights {spec.weights!r}, DEFAULT is {weights.DEFAULT.name!r}")
    assert not wrong, "\n".join(wrong)

    # And nothing registered as torchvision that torchvision does not have.
    unknown = [s.name for s in REGISTRY if s.source == "torchvision" and s.builder not in tv_names]
    assert unknown == []


def test_torchvision_resnext101_64x4d_is_prefixed_and_papers_is_timm() -> None:
    assert REGISTRY.get("resnext101_64x4d").source == "timm"
    tv = REGISTRY.get("tv_resnext101_64x4d")
    assert (tv.source, tv.builder, tv.in_paper) == ("torchvision", "resnext101_64x4d", False)


# -- selection -----------------------------------------------------------------------------------
def test_select_paper() -> None:
    assert REGISTRY.select("paper") == PAPER_NAMES


def test_select_all() -> None:
    selected = REGISTRY.select("all")
    assert selected == NAMES
    assert len(selected) == len(REGISTRY) == len(set(selected))
    assert selected[:44] == PAPER_NAMES and len(selected) > 44


def test_select_default() -> None:
    assert REGISTRY.default, "the default set must not be empty"
    assert REGISTRY.select("default") == list(REGISTRY.default)
    assert all(name in REGISTRY for name in REGISTRY.default)


def test_select_resnet_glob() -> None:
    assert REGISTRY.select("resnet*") == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def test_select_other_globs() -> None:
    assert REGISTRY.select("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert REGISTRY.select("densenet[12]6*") == ["densenet169", "densenet161"]
    assert "fbresnet152" in REGISTRY.select("*resnet*")


def test_select_comma_list_keeps_order_drops_duplicates() -> None:
    assert REGISTRY.select("mobilenet_v2,resnet18,mobilenet_v2,alexnet,resnet18") == [
        "mobilenet_v2",
        "resnet18",
        "alexnet",
    ]
    # A name already given by a keyword or glob is not repeated; keywords keep their own order.
    assert REGISTRY.select("resnet50,resnet*") == ["resnet50", "resnet18", "resnet34", "resnet101", "resnet152"]
    assert REGISTRY.select("shufflenet,paper")[:2] == ["shufflenet", "alexnet"]
    assert len(REGISTRY.select("shufflenet,paper")) == 44


def test_select_tolerates_whitespace() -> None:
    assert REGISTRY.select("  resnet18 ,\tmobilenet_v2 , ") == ["resnet18", "mobilenet_v2"]
    assert REGISTRY.select(" resnet18\nalexnet ") == ["resnet18", "alexnet"]
    assert REGISTRY.select([" resnet18", "alexnet, vgg11 "]) == ["resnet18", "alexnet", "vgg11"]


def test_select_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(SelectionError, match="resnet5") as info:
        REGISTRY.select("resnet18,resnet5")
    assert "resnet50" in str(info.value)
    assert "did you mean" in str(info.value)

    with pytest.raises(SelectionError) as info:
        REGISTRY.select("mobilenet2")
    assert "mobilenet_v2" in str(info.value)


def test_select_unknown_name_without_close_match() -> None:
    with pytest.raises(SelectionError, match="qqqqqqqq") as info:
        REGISTRY.select("qqqqqqqq")
    assert "did you mean" not in str(info.value)


def test_get_unknown_name_raises_selection_error() -> None:
    with pytest.raises(SelectionError):
        REGISTRY.get("no_such_model")
    assert issubclass(SelectionError, ValueError)


def test_select_glob_matching_nothing_raises() -> None:
    with pytest.raises(SelectionError, match="nonexistent"):
        REGISTRY.select("nonexistent*")
    with pytest.raises(SelectionError):
        REGISTRY.select("resnet18,zz?")


@pytest.mark.parametrize("expression", ["", "   ", ",", " , ,", []])
def test_select_empty_raises(expression) -> None:
    with pytest.raises(SelectionError, match="empty"):
        REGISTRY.select(expression)


# Hypothesis: arbitrary comma lists and globs.
_padding = st.sampled_from(["", " ", "  ", "\t"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_padding, st.sampled_from(NAMES), _padding), min_size=1, max_size=30))
def test_select_comma_list_property(items: list[tuple[str, str, str]]) -> None:
    names = [name for _, name, _ in items]
    expression = ",".join(pre + name + post for pre, name, post in items)
    expected = list(dict.fromkeys(names))
    assert REGISTRY.select(expression) == expected


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NAMES).flatmap(lambda name: st.integers(0, len(name)).map(lambda k: name[:k])))
def test_select_prefix_glob_property(prefix: str) -> None:
    pattern = prefix + "*"
    selected = REGISTRY.select(pattern)
    assert all(fnmatch.fnmatchcase(name, pattern) for name in selected)
    assert set(selected) == {name for name in NAMES if fnmatch.fnmatchcase(name, pattern)}
    assert selected == [name for name in NAMES if name in set(selected)]  # registry order
    assert any(name.startswith(prefix) for name in selected)


# -- registration --------------------------------------------------------------------------------
def _factory(width: int = 8):  # never called: building needs torch
    raise AssertionError("the registry must not call a factory when registering")


def test_register_callable_factory() -> None:
    reg = REGISTRY.copy()
    spec = reg.register("my_net", _factory, input_size=(3, 32, 48), kwargs={"width": 4})
    assert spec is reg.get("my_net")
    assert spec.factory is _factory
    assert not spec.importable
    assert spec.source == "custom"
    assert spec.builder == f"{__name__}:_factory"
    assert spec.input_size == (3, 32, 48)
    assert dict(spec.builder_kwargs) == {"width": 4}
    assert not spec.in_paper
    assert reg.select("my_*") == ["my_net"]
    assert reg.names()[-1] == "my_net"
    assert len(reg) == len(REGISTRY) + 1


def test_register_importable_string_factory() -> None:
    reg = REGISTRY.copy()
    spec = reg.register("od", "collections:OrderedDict", input_size=[1, 8, 8], paper_name="My OD")
    assert spec.factory is None
    assert spec.importable
    assert spec.builder == "collections:OrderedDict"
    assert spec.input_size == (1, 8, 8)
    assert spec.in_paper and reg.paper_names()[-1] == "od"
    import collections

    assert import_object(spec.builder) is collections.OrderedDict


@pytest.mark.parametrize(
    "factory, error", [("collections.OrderedDict", ValueError), (42, TypeError), (None, TypeError)]
)
def test_register_rejects_bad_factory(factory, error) -> None:
    reg = REGISTRY.copy()
    with pytest.raises(error):
        reg.register("bad", factory)
    assert "bad" not in reg


@pytest.mark.parametrize("size", [(3, 224), (3, 224, 224, 1), (0, 224, 224), (3, -1, 224), (3, 224, 0), ()])
def test_register_rejects_bad_input_size(size) -> None:
    reg = REGISTRY.copy()
    with pytest.raises(ValueError, match="input_size"):
        reg.register("bad", _factory, input_size=size)
    assert "bad" not in reg


def test_register_duplicate_needs_replace() -> None:
    reg = REGISTRY.copy()
    with pytest.raises(ValueError, match="already registered"):
        reg.register("resnet18", _factory)
    assert reg.get("resnet18").source == "torchvision"

    reg.register("mine", "collections:OrderedDict")
    with pytest.raises(ValueError, match="replace=True"):
        reg.register("mine", "collections:defaultdict")
    assert reg.get("mine").builder == "collections:OrderedDict"


def test_register_replace() -> None:
    reg = REGISTRY.copy()
    order = reg.names()
    spec = reg.register("resnet18", _factory, input_size=(3, 64, 64), replace=True)
    assert reg.get("resnet18") is spec
    assert reg.get("resnet18").source == "custom"
    assert reg.names() == order  # replaced in place
    assert REGISTRY.get("resnet18").source == "torchvision"


@pytest.mark.parametrize(
    "name", ["a,b", "res*", "res?et", "res[n]et", "", " spaced", "two words", "tab\tname", *KEYWORDS]
)
def test_register_rejects_invalid_names(name: str) -> None:
    reg = REGISTRY.copy()
    before = reg.names()
    with pytest.raises(ValueError, match="invalid model name"):
        reg.register(name, _factory)
    assert reg.names() == before


def test_keywords_are_paper_all_default() -> None:
    assert set(KEYWORDS) == {"paper", "all", "default"}


def test_register_on_copy_does_not_change_registry() -> None:
    names, default = REGISTRY.names(), REGISTRY.default
    specs = {s.name: s for s in REGISTRY}
    reg = REGISTRY.copy()
    reg.register("copy_only", _factory)
    reg.register("alexnet", _factory, replace=True)
    reg.default = ("copy_only",)
    assert "copy_only" in reg and "copy_only" not in REGISTRY
    assert REGISTRY.names() == names
    assert REGISTRY.default == default
    assert REGISTRY.get("alexnet") is specs["alexnet"]
    with pytest.raises(SelectionError):
        REGISTRY.select("copy_only")


def test_fresh_registry_and_add() -> None:
    reg = Registry(default=())
    spec = ModelSpec(name="x", source="custom", builder="collections:OrderedDict", input_size=(3, 8, 8))
    reg.add(spec)
    assert reg.names() == ["x"] and reg.paper_names() == []
    reg.add(spec)  # the identical spec again is harmless
    assert reg.names() == ["x"]
    with pytest.raises(ValueError, match="unknown source"):
        reg.add(ModelSpec(name="y", source="keras", builder="y", input_size=(3, 8, 8)))
    with pytest.raises(SelectionError, match="did you mean paper"):
        Registry(default=()).select("pap")  # close to a keyword: suggested


# -- import hygiene ------------------------------------------------------------------------------
def test_importing_registry_does_not_import_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pytest_dnnbench.registry as r
        assert len(r.REGISTRY.select("paper")) == 44
        heavy = sorted(m for m in ("torch", "torchvision", "timm", "thop", "pretrainedmodels") if m in sys.modules)
        print(",".join(heavy) or "none")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"
