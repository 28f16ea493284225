"""Without data or weights: the published figure, as ``accuracy.reference``, never as measured."""

from __future__ import annotations

import re

import pytest
from helpers import FAST, load_json

from pytest_dnnbench.accuracy.evaluate import not_measured
from pytest_dnnbench.accuracy.reference import CADENE_TABLE, reference_for
from pytest_dnnbench.registry import REGISTRY
from pytest_dnnbench.report.terminal import REFERENCE_MARK, accuracy_cell, format_table

PAPER = [REGISTRY.get(n) for n in REGISTRY.paper_names()]
#: Paper models with no published figure for the paper's weights.
NO_FIGURE = {"mobilenet_v1", "shufflenet"}


@pytest.mark.parametrize("spec", PAPER, ids=[s.name for s in PAPER])
def test_every_paper_model_with_a_figure_carries_it_as_reference(spec) -> None:
    acc = not_measured(spec, "no validation data (pass --dnn-imagenet=DIR)")
    assert acc["paper_top1"] == spec.paper_top1 and acc["unit"] == "%"
    assert acc["reason"] == "no validation data (pass --dnn-imagenet=DIR)" and acc["measured"] is None
    assert "top1" not in acc and "status" not in acc  # no figure outside measured and reference
    if spec.name in NO_FIGURE:
        assert acc["reference"] is None
        return
    ref = acc["reference"]
    assert 50 < ref["top1"] < ref["top5"] < 100
    assert "torchvision weights meta" in ref["source"] or "Cadene" in ref["source"]
    if spec.paper_top1 is not None:  # the paper's own figure is close to the published one
        assert abs(spec.paper_top1 - ref["top1"]) < 3.5


def test_the_paper_weights_not_todays_defaults() -> None:
    import torchvision.models

    ref = reference_for(REGISTRY.get("resnet50"))
    assert ref["top1"] == 76.13 and ref["top5"] == 92.862
    assert ref["source"] == "torchvision weights meta: ResNet50_Weights.IMAGENET1K_V1"
    assert torchvision.models.ResNet50_Weights.DEFAULT.meta["_metrics"]["ImageNet-1K"]["acc@1"] != 76.13


def test_cadene_figures_cover_exactly_the_cadene_weights() -> None:
    ported = {s.name for s in PAPER if s.source in ("timm", "pretrainedmodels")}
    assert set(CADENE_TABLE) == ported - NO_FIGURE
    assert CADENE_TABLE["bninception"][:2] == (73.522, 91.560)
    assert CADENE_TABLE["cafferesnet101"][:2] == (76.200, 92.766)


def measured(top1: float) -> dict:
    return {"measured": {"top1": top1, "top5": None, "n_images": 10}, "reference": None, "reason": None}


def reference(top1: float) -> dict:
    return {"measured": None, "reference": {"top1": top1, "top5": None, "source": "x"}, "reason": "no data"}


def test_table_cells() -> None:
    assert accuracy_cell({"accuracy": measured(76.13)}) == "76.13"
    assert accuracy_cell({"accuracy": reference(76.13)}) == f"76.13 {REFERENCE_MARK}"
    assert accuracy_cell({"accuracy": {"measured": None, "reference": None, "reason": "no data"}}) == "-"
    both = {**measured(70.5), "reference": {"top1": 76.13, "top5": None, "source": "x"}}
    assert accuracy_cell({"accuracy": both}) == "70.50"  # the measured figure, never the published one
    # Records of version 1 (flat, with a status) show as they did.
    assert accuracy_cell({"accuracy": {"top1": 76.13, "status": "measured"}}) == "76.13"
    assert accuracy_cell({"accuracy": {"top1": 76.13, "status": "reference"}}) == f"76.13 {REFERENCE_MARK}"
    assert accuracy_cell({"accuracy": {"top1": None, "status": "unavailable"}}) == "-"
    lines = format_table(
        [
            {"model": "a", "batch_size": 1, "accuracy": measured(70.0)},
            {"model": "b", "batch_size": 1, "accuracy": reference(71.0)},
        ]
    )
    assert "Top-1(%)" in lines[0]
    assert lines[2].split()[7] == "70.00" and lines[3].split()[7:9] == ["71.00", "(ref)"]
    assert lines[-2] == "" and "published reference figure" in lines[-1]


def test_run_without_data_or_weights(tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A paper model's records carry the reference figure; the table marks it; a custom model shows '-'."""
    monkeypatch.setenv("TORCH_HOME", str(tiny_project.path / "empty_torch_home"))
    out = tiny_project.path / "r.json"
    result = tiny_project.runpytest(
        *FAST, "--dnn-models=squeezenet1_1,tiny", "--dnn-batch-sizes=1", "--dnn-weights=pretrained", f"--dnn-json={out}"
    )
    result.assert_outcomes(passed=2)
    squeeze, tiny = load_json(out)["records"]
    acc = squeeze["accuracy"]
    assert acc["measured"] is None
    assert (acc["reference"]["top1"], acc["reference"]["top5"]) == (58.178, 80.624)
    assert acc["reference"]["source"] == "torchvision weights meta: SqueezeNet1_1_Weights.IMAGENET1K_V1"
    assert acc["paper_top1"] == 58.18
    assert "no validation data" in acc["reason"]
    assert re.search(r"no cached checkpoint at .*empty_torch_home.*squeezenet1_1-b8a52dc0\.pth", acc["reason"])
    assert tiny["accuracy"]["measured"] is None and tiny["accuracy"]["reference"] is None
    assert tiny["accuracy"]["reason"]
    text = result.stdout.str()
    assert re.search(r"^squeezenet1_1\s+1\s.*\s58\.18 \(ref\)\s", text, re.M), text
    assert re.search(r"^tiny\s+1\s.*\s-\s+\d+(\s+[a-z, ]+)?\s*$", text, re.M)  # a note (capped) may follow
    assert "(ref) = published reference figure, not measured here" in text
