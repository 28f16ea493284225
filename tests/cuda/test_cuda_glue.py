"""The CUDA corrections that live in the pytest glue, checked end to end on a CPU-only machine:
GPU sharing under pytest-xdist, no device work in the parent under --dnn-isolate=process, the
TF32 option in the record and the baseline platform key, and ONNX Runtime's CUDA provider proven
before any export."""

from __future__ import annotations

import importlib

import pytest
from helpers import FAST, ORT_CUDA_LOAD_FAILURE_LOG, as_record, fake_cuda_sessions, load_json

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


def _one_fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    device = importlib.import_module("pytest_dnnbench.device")
    fake = device.TorchProbe(
        cuda_available=lambda: True, device_count=lambda: 1, torch_version=lambda: "fake", cpu_supports=lambda p: True
    )
    monkeypatch.setattr(device.TorchProbe, "default", classmethod(lambda cls: fake))


ONNXRUNTIME_ON_CUDA = [
    "--dnn-device=cuda",
    "--dnn-models=tiny",
    "--dnn-batch-sizes=1,2",
    "--dnn-modes=eager,onnxruntime",
]


@pytest.fixture
def onnxruntime_falling_back(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, object], list[int], list[object]]:
    """One GPU; an onnxruntime-gpu whose CUDA provider cannot load libcublasLt.so.12 (its sessions start the CPU's
    provider only, and it says why on stderr); the backend and torch's ONNX exporter counted, never run."""
    pytest.importorskip("onnxscript")
    torch = pytest.importorskip("torch")
    _one_fake_gpu(monkeypatch)
    asked = fake_cuda_sessions(monkeypatch, started=["CPUExecutionProvider"], log=ORT_CUDA_LOAD_FAILURE_LOG)
    runner = importlib.import_module("pytest_dnnbench.runner")
    sessions_when_the_backend_was_made: list[int] = []
    monkeypatch.setattr(runner.Runner, "backend", lambda self: sessions_when_the_backend_was_made.append(asked["made"]))
    exports: list[object] = []
    monkeypatch.setattr(torch.onnx, "export", lambda *args, **kwargs: exports.append(args))
    return asked, sessions_when_the_backend_was_made, exports


def test_a_cuda_provider_that_cannot_load_is_a_usage_error_before_any_export(
    tiny_project: pytest.Pytester, onnxruntime_falling_back: tuple[dict[str, object], list[int], list[object]]
) -> None:
    """get_available_providers() lists CUDA's provider (the wheel has it); one session shows it does not start:
    the run stops before its first test, naming the library, instead of exporting each model and skipping."""
    asked, backends, exports = onnxruntime_falling_back
    result = tiny_project.runpytest(*ONNXRUNTIME_ON_CUDA, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --dnn-modes=eager,onnxruntime: onnxruntime-gpu * could not start its CUDA execution provider on "
            "cuda:0: it lacks libcublasLt.so.12 (ONNX Runtime says ?Failed to load library "
            "libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: cannot open shared object file: *; "
            "it requires cuDNN 9.? and CUDA 12.?). * or leave onnxruntime out of --dnn-modes (or run it with "
            "--dnn-device=cpu)"
        ]
    )
    assert exports == [] and asked["made"] == 1  # one session, the proof's
    assert backends == [0]  # the backend's CUDA context first
    assert "passed" not in result.stdout.str() and "skipped" not in result.stdout.str()


def test_only_collecting_proves_nothing(
    tiny_project: pytest.Pytester, onnxruntime_falling_back: tuple[dict[str, object], list[int], list[object]]
) -> None:
    asked, backends, exports = onnxruntime_falling_back
    result = tiny_project.runpytest(*ONNXRUNTIME_ON_CUDA, "-p", "no:cacheprovider", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*test_dnn?tiny-bs2-onnxruntime?", "4 tests collected*"])
    assert asked["made"] == 0 and backends == [] and exports == []
