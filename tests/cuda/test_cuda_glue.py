"""The CUDA corrections that live in the pytest glue, checked end to end on a CPU-only machine:
GPU sharing under pytest-xdist, no device work in the parent under --dnn-isolate=process, and the
TF32 option in the record and the baseline platform key."""

from __future__ import annotations

import importlib

import pytest
from helpers import FAST, as_record, load_json

from pytest_dnnbench.baseline_store import platform_from_record, platform_key


def test_xdist_workers_on_one_named_gpu_are_refused(tiny_project: pytest.Pytester) -> None:
    result = tiny_project.runpytest(*FAST, "-n", "2", "--dnn-models=tiny", "--dnn-device=cuda:0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--dnn-device=cuda:0 with 2 pytest-xdist workers: every worker would run on the "
            "same GPU*--dnn-allow-shared-gpu*"
        ]
    )


def test_more_xdist_workers_than_gpus_are_refused(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = importlib.import_module("pytest_dnnbench.device")
    fake = device.TorchProbe(
        cuda_available=lambda: True, device_count=lambda: 2, torch_version=lambda: "fake", cpu_supports=lambda p: True
    )
    monkeypatch.setattr(device.TorchProbe, "default", classmethod(lambda cls: fake))
    result = tiny_project.runpytest(*FAST, "-n", "3", "--dnn-models=tiny", "--dnn-device=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*3 pytest-xdist workers but 2 visible GPU(s)*Use -n 2*--dnn-allow-shared-gpu*"])


def test_allow_shared_gpu_lets_the_run_go_on(tiny_project: pytest.Pytester) -> None:
    """With the flag the sharing check is passed; here the workers then find no GPU at all."""
    result = tiny_project.runpytest(
        *FAST, "-n", "2", "--dnn-models=tiny", "--dnn-device=cuda:0", "--dnn-allow-shared-gpu"
    )
    assert "--dnn-allow-shared-gpu" not in result.stderr.str()
    assert "would run on the same GPU" not in result.stdout.str() + result.stderr.str()


def test_isolated_runs_make_no_backend_in_the_parent(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under --dnn-isolate=process only the child touches the device (on a GPU: only it holds a context)."""
    backends = importlib.import_module("pytest_dnnbench.measure.backends")

    def refuse(device: str) -> None:
        raise AssertionError(f"a backend for {device} was made in the parent")

    monkeypatch.setattr(backends, "make_backend", refuse)
    out = tiny_project.path / "r.json"
    result = tiny_project.runpytest(
        *FAST, "--dnn-isolate=process", "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-json={out}"
    )
    result.assert_outcomes(passed=1)
    doc = load_json(out)
    assert doc["records"][0]["isolation"] == "process"
    assert doc["environment"]["device"] == "cpu" and doc["environment"]["torch"]  # the child's environment


def test_tf32_and_cudnn_are_not_recorded_on_a_cpu_run(tiny_project: pytest.Pytester) -> None:
    out = tiny_project.path / "r.json"
    tiny_project.runpytest(
        *FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-tf32", f"--dnn-json={out}"
    ).assert_outcomes(passed=1)
    doc = load_json(out)
    env, rec = doc["environment"], doc["records"][0]
    # A CPU run: TF32 and cuDNN do not apply (recorded on CUDA runs: test_cuda_tf32.py, test_gpu_acceptance.py).
    assert not {k for k in env if k.startswith(("tf32", "cudnn"))} and "cuda" not in env
    assert "torch_cuda_build" in env  # the CUDA torch was built with (None for a CPU-only build)
    assert "tf32" not in rec and "cudnn_benchmark" not in rec


def test_tf32_is_part_of_the_cuda_platform_key() -> None:
    plain = platform_key("cuda:0", "NVIDIA H200", None, "fp32", "eager")
    assert platform_key("cuda:0", "NVIDIA H200", None, "fp32", "eager", tf32=True) == plain + "-tf32"
    assert platform_key("cpu", "Xeon", 2, "fp32", "eager", tf32=True) == "cpu-xeon-2t-fp32-eager"
    assert platform_key("cuda:0", "NVIDIA H200", None, "fp16", "eager", tf32=True).endswith("fp16-eager")
    rec = {"model": "m", "batch_size": 1, "device": "cuda:0", "device_name": "NVIDIA H200", "precision": "fp32"}
    rec |= {"mode": "eager", "tf32": True}
    assert platform_from_record(as_record(rec))["key"] == plain + "-tf32"
