"""Memory figures do not depend on what ran before (within 10 % on the CPU: docs/measurements.md)."""

from __future__ import annotations

import pytest
from helpers import load_json

pytest.importorskip("torch")


def _resnet18_bs8(pytester: pytest.Pytester, models: str) -> dict:
    out = pytester.path / f"{models.replace(',', '_')}.json"
    result = pytester.runpytest_subprocess(
        "--dnn-device=cpu",
        f"--dnn-models={models}",
        "--dnn-batch-sizes=8",
        "--dnn-max-time=1",
        "--dnn-min-samples=3",
        "--dnn-warmup=2",
        f"--dnn-json={out}",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=len(models.split(",")))
    (rec,) = [r for r in load_json(out)["records"] if r["model"] == "resnet18"]
    return rec["memory_bytes"]


def test_resnet18_after_vgg16_gets_the_figure_it_gets_alone(pytester: pytest.Pytester) -> None:
    """VGG-16 (528 MiB of weights, large activations) runs first; resnet18 at batch 8 must
    then read the same working memory (delta) and process total as in a run of its own."""
    alone = _resnet18_bs8(pytester, "resnet18")
    after = _resnet18_bs8(pytester, "vgg16,resnet18")
    assert after["delta"] == pytest.approx(alone["delta"], rel=0.10), (alone, after)
    assert after["total"] == pytest.approx(alone["total"], rel=0.10), (alone, after)
    # The delta is the model's working memory: resnet18's live activations at batch 8 peak at
    # about 51 MB (two 8x64x112x112 fp32 maps of 25.7 MB each, after the first convolution).
    assert 40e6 < alone["delta"] < 80e6, alone
