"""Memory figures do not depend on what ran before (within 10 % on the CPU: docs/measurements.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_json, reap

pytest.importorskip("torch")


def _start(pytester: pytest.Pytester, models: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A pytest process (as ``runpytest_subprocess`` starts it) measuring ``models`` at batch 8."""
    out = pytester.path / f"{models.replace(',', '_')}.json"
    proc = pytester.popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--dnn-device=cpu",
            f"--dnn-models={models}",
            "--dnn-batch-sizes=8",
            "--dnn-max-time=1",
            "--dnn-min-samples=3",
            "--dnn-warmup=2",
            f"--dnn-json={out}",
            "-p",
            "no:cacheprovider",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, out


def _resnet18_bs8(proc: subprocess.Popen[bytes], out: Path, models: str) -> dict:
    stdout, stderr = proc.communicate(timeout=600)
    result = pytest.RunResult(proc.returncode, stdout.decode().splitlines(), stderr.decode().splitlines(), 0.0)
    result.assert_outcomes(passed=len(models.split(",")))
    (rec,) = [r for r in load_json(out)["records"] if r["model"] == "resnet18"]
    return rec["memory_bytes"]


def test_resnet18_after_vgg16_gets_the_figure_it_gets_alone(pytester: pytest.Pytester) -> None:
    """VGG-16 (528 MiB of weights, large activations) runs first; resnet18 at batch 8 must
    then read the same working memory (delta) and process total as in a run of its own.

    The two runs are separate processes, started side by side (each is mostly a Python process
    importing torch, and a process's memory figures are its own)."""
    runs = {models: _start(pytester, models) for models in ("resnet18", "vgg16,resnet18")}
    try:
        alone = _resnet18_bs8(*runs["resnet18"], "resnet18")
        after = _resnet18_bs8(*runs["vgg16,resnet18"], "vgg16,resnet18")
    finally:
        reap(proc for proc, _ in runs.values())
    assert after["delta"] == pytest.approx(alone["delta"], rel=0.10), (alone, after)
    assert after["total"] == pytest.approx(alone["total"], rel=0.10), (alone, after)
    # The delta is the model's working memory: resnet18's live activations at batch 8 peak at
    # about 51 MB (two 8x64x112x112 fp32 maps of 25.7 MB each, after the first convolution).
    assert 40e6 < alone["delta"] < 80e6, alone
