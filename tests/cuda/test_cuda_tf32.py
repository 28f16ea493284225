"""TF32 (issue items 4 and 5): fp32 means fp32 by default, and the flags are read without raising.

Against the fake torches of ``test_cuda_fakes`` (2.9+ with ``fp32_precision`` and the
legacy-only API) and against the installed torch, whose TF32 switches work on the CPU
too; its state is put back to torch's defaults after each test.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_cuda_fakes import _apply, _read, fake_torch
from test_cuda_fakes import real_tf32_state as real_tf32_state  # a fixture, used by name

from pytest_dnnbench.measure.backends import CpuBackend
from pytest_dnnbench.measure.bench import (
    TF32_API_LEGACY,
    TF32_API_NEW,
    BenchSettings,
    apply_process_settings,
    read_float32_matmul_precision,
    read_tf32_flags,
    set_tf32,
    tf32_api,
)
from pytest_dnnbench.measure.environment import collect_environment


@pytest.fixture(autouse=True)
def _no_tf32_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The figures below are torch's flags alone, whatever the machine's environment says."""
    monkeypatch.delenv("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", raising=False)
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)


MIXED = [("conv", "ieee")]  # what e.g. transformers' test setup does: new API on top of legacy defaults


class CudaLikeBackend(CpuBackend):
    """The CPU backend under a CUDA device's name: the environment of a CUDA run (its cuDNN and TF32
    entries), read from the installed torch, whose switches work without a GPU."""

    def __init__(self) -> None:
        super().__init__()
        self.device = "cuda:0"

    def describe(self) -> dict[str, Any]:
        return {"device_name": "a CUDA device"}


# -- item 4: fp32 means fp32 ---------------------------------------------------------------------


def test_tf32_is_off_by_default_in_the_settings() -> None:
    assert BenchSettings().tf32 is False


@pytest.mark.parametrize("new_api", [True, False])
def test_set_tf32_off_and_restore_on_fake_torches(new_api: bool) -> None:
    t = fake_torch(new_api=new_api)
    assert read_tf32_flags(t, env={}) == {
        "tf32_matmul": False,
        "tf32_cudnn": True,
        "api": TF32_API_NEW if new_api else TF32_API_LEGACY,
        "env_overrides": {},
    }
    before = _read(t)
    restore = set_tf32(False, t)
    assert read_tf32_flags(t)["tf32_cudnn"] is False and read_tf32_flags(t)["tf32_matmul"] is False
    assert t.backends.cudnn.allow_tf32 is False  # the legacy flags agree: nobody's read raises
    assert t.backends.cuda.matmul.allow_tf32 is False
    restore()
    assert _read(t) == before
    restore = set_tf32(True, t)
    assert read_tf32_flags(t, env={}) == {
        "tf32_matmul": True,
        "tf32_cudnn": True,
        "api": tf32_api(t),
        "env_overrides": {},
    }
    assert t.get_float32_matmul_precision() == "high"
    restore()
    assert _read(t) == before


def test_a_parent_fp32_precision_cannot_turn_tf32_back_on() -> None:
    t = fake_torch()
    t.backends.fp32_precision = "tf32"  # torch.backends.fp32_precision: the root of the tree
    t.backends.cudnn.conv.fp32_precision = "none"
    set_tf32(False, t)
    assert read_tf32_flags(t)["tf32_cudnn"] is False


def test_apply_process_settings_turns_tf32_off_and_restores(real_tf32_state: Any) -> None:
    torch = real_tf32_state
    assert torch.backends.cudnn.allow_tf32 is True  # torch's default: fp32 convolutions in TF32
    restore = apply_process_settings(BenchSettings())
    try:
        flags = read_tf32_flags()
        assert flags["tf32_cudnn"] is False and flags["tf32_matmul"] is False
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    finally:
        restore()
    assert torch.backends.cudnn.allow_tf32 is True
    assert read_tf32_flags()["tf32_cudnn"] is True


def test_apply_process_settings_tf32_on_when_asked(real_tf32_state: Any) -> None:
    restore = apply_process_settings(BenchSettings(tf32=True))
    try:
        assert read_tf32_flags()["tf32_cudnn"] is True and read_tf32_flags()["tf32_matmul"] is True
    finally:
        restore()
    assert read_tf32_flags()["tf32_matmul"] is False


def test_environment_records_the_tf32_actually_in_force(real_tf32_state: Any) -> None:
    settings = BenchSettings()
    restore = apply_process_settings(settings)
    try:
        env = collect_environment(CudaLikeBackend(), settings, "test")
        cpu = collect_environment(CpuBackend(), settings, "test")
    finally:
        restore()
    assert env["tf32_cudnn"] is False and env["tf32_matmul"] is False
    assert env["tf32_requested"] is False and env["tf32_api"] == TF32_API_NEW
    assert env["float32_matmul_precision"] == "highest"
    assert "gpu_state_start" not in env  # nothing to snapshot on the CPU
    # A CPU run: TF32 and cuDNN do not apply, and are not recorded; torch's CUDA build always is.
    assert not {k for k in cpu if k.startswith(("tf32", "cudnn"))} and "cuda" not in cpu
    assert cpu["float32_matmul_precision"] == "highest" and "torch_cuda_build" in cpu
    assert env["torch_cuda_build"] == env["cuda"] == cpu["torch_cuda_build"]


# -- item 5: reading never raises ------------------------------------------------------------------


def test_reading_a_mixed_state_never_raises_on_the_fake() -> None:
    t = fake_torch()
    _apply(t, MIXED)
    with pytest.raises(RuntimeError, match="mix of the legacy and new"):
        _ = t.backends.cudnn.allow_tf32  # what the environment used to read
    assert read_tf32_flags(t, env={}) == {
        "tf32_matmul": False,
        "tf32_cudnn": False,
        "api": TF32_API_NEW,
        "env_overrides": {},
    }
    _apply(t, [("matmul", "tf32")])
    assert read_float32_matmul_precision(t) is None  # raises inside torch: None here
    assert read_tf32_flags(t)["tf32_matmul"] is True


def test_mixed_state_in_the_installed_torch_reads_sets_and_restores(real_tf32_state: Any) -> None:
    torch = real_tf32_state
    _apply(torch, MIXED)
    with pytest.raises(RuntimeError):
        _ = torch.backends.cudnn.allow_tf32
    before = _read(torch)
    settings = BenchSettings()
    restore = apply_process_settings(settings)  # used to raise while the backend was built
    try:
        env = collect_environment(CudaLikeBackend(), settings, "test")
        assert env["tf32_cudnn"] is False and env["tf32_matmul"] is False
        assert torch.backends.cudnn.allow_tf32 is False  # consistent while the plugin runs
    finally:
        restore()
    assert _read(torch) == before


def test_environment_survives_a_mixed_matmul_state(real_tf32_state: Any) -> None:
    torch = real_tf32_state
    _apply(torch, [("matmul", "tf32")])
    env = collect_environment(CudaLikeBackend(), BenchSettings(), "test")
    assert env["float32_matmul_precision"] is None
    assert env["tf32_matmul"] is True


def test_no_torch_api_at_all() -> None:
    class Bare:
        backends = object()

    assert read_tf32_flags(Bare(), env={}) == {
        "tf32_matmul": None,
        "tf32_cudnn": None,
        "api": None,
        "env_overrides": {},
    }
    set_tf32(False, Bare())()  # nothing to set, nothing to restore


def test_environment_variables_that_override_the_flags() -> None:
    """NVIDIA's PyTorch containers set TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1: cuBLAS uses TF32 whatever torch says."""
    t = fake_torch()
    set_tf32(False, t)
    flags = read_tf32_flags(t, env={"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1"})
    assert flags["tf32_matmul"] is True and flags["tf32_cudnn"] is False
    assert flags["env_overrides"] == {"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1"}
    assert read_tf32_flags(t, env={"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "0"})["tf32_matmul"] is False
    set_tf32(True, t)
    flags = read_tf32_flags(t, env={"NVIDIA_TF32_OVERRIDE": "0", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1"})
    assert flags["tf32_matmul"] is False and flags["tf32_cudnn"] is False  # the libraries' own kill switch


def test_tf32_switches_tolerate_warnings_as_errors(recwarn: pytest.WarningsRecorder) -> None:
    """A torch that deprecates its legacy flags with a warning must not leave them half set under -W error."""
    import warnings

    t = fake_torch()
    legacy = t.backends.cudnn._props["allow_tf32"]
    real_set = legacy.set

    def warning_set(value: bool) -> None:
        warnings.warn("allow_tf32 is deprecated", DeprecationWarning, stacklevel=2)
        real_set(value)

    legacy.set = warning_set
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_tf32(False, t)
    assert t.backends.cudnn.allow_tf32 is False  # set, and consistent with the new attributes


def test_machine_info_names_torchs_cuda_build_and_cudnn_only_when_a_gpu_may_run() -> None:
    from types import SimpleNamespace

    from pytest_dnnbench.measure.environment import machine_info

    cpu = machine_info(SimpleNamespace(device="cpu", precision="fp32", cudnn_benchmark=True))
    assert "torch_cuda_build" in cpu and not {"cuda", "cudnn", "cudnn_benchmark"} & set(cpu)
    gpu = machine_info(SimpleNamespace(device="auto", precision="fp32", cudnn_benchmark=False))
    assert gpu["cudnn_benchmark"] is False and "cudnn" in gpu and "cuda" not in gpu
