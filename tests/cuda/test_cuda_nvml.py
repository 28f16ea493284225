"""Finding the NVML device (issue item 8) and the GPU's state during the timed calls (item 9)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from test_cuda_fakes import FakeCudaProcess, FakePynvml, GiB, MiB, nvml_for, world

from pytest_dnnbench.measure.backends import CudaBackend
from pytest_dnnbench.measure.environment import nvml_inventory
from pytest_dnnbench.measure.nvml import (
    GpuStateSampler,
    Nvml,
    nvml_index_for_cuda_index,
    throttle_reason_names,
    visible_device_entries,
)

MIG_UUID = "MIG-0a1b2c3d-0000-4444-8888-123456789abc"


def open_with(
    monkeypatch: pytest.MonkeyPatch, nv: FakePynvml, uuid: Any, pci: Any, index: int, env: dict[str, str]
) -> Any:
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    return Nvml.open(uuid, pci, index, env=env)


# -- item 8: MIG --------------------------------------------------------------------------------------


def mig_world() -> tuple[FakePynvml, Any, Any]:
    nv, (gpu,) = world()
    gpu.add_mig("MIG-ffffffff-0000-4444-8888-000000000000", "Fake H100 MIG 3g.40gb", 40 * GiB)
    mig = gpu.add_mig(MIG_UUID, "Fake H100 MIG 1g.10gb", 10 * GiB)
    return nv, gpu, mig


def test_mig_instance_is_found_by_its_mig_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    nv, gpu, mig = mig_world()
    nvml = open_with(monkeypatch, nv, MIG_UUID.removeprefix("MIG-"), gpu.pci, 0, {})  # torch's UUID: no prefix
    assert nvml is not None and nvml.handle is mig
    assert nvml.parent is gpu and nvml.is_mig
    assert ("uuid", MIG_UUID) in nv.calls


def test_mig_clocks_and_power_come_from_the_gpu_memory_from_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    nv, gpu, mig = mig_world()
    nvml = open_with(monkeypatch, nv, MIG_UUID[4:], None, 0, {})
    snap = nvml.snapshot()
    assert snap["sm_clock_mhz"] == 1980 and snap["power_limit_w"] == 700.0
    assert nvml.violation_ns() == {"power": 0, "thermal": 0}
    assert nvml.device_memory() == (0, 10 * GiB)


def test_mig_backend_in_a_container(monkeypatch: pytest.MonkeyPatch) -> None:
    nv, gpu, mig = mig_world()
    proc = FakeCudaProcess(mig, host_pid=48213, uuid=MIG_UUID[4:])
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    backend = CudaBackend(0, api=proc, pid=7)
    assert backend.nvml is not None and backend.nvml.handle is mig
    assert backend.nvml_pid == 48213
    assert backend.describe()["mig"] is True
    assert backend.device_total == 10 * GiB


def test_gpu_in_mig_mode_by_pci_is_narrowed_to_the_instance_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    nv, gpu, mig = mig_world()
    monkeypatch.setattr(nv, "nvmlDeviceGetHandleByUUID", _not_found)  # e.g. an old driver's UUID format
    # Found by PCI bus id, the GPU is in MIG mode: its figures are every instance's. Narrowed by UUID...
    assert open_with(monkeypatch, nv, MIG_UUID[4:], gpu.pci, 0, {}).handle is mig
    # ... or refused when no instance has CUDA's UUID.
    assert open_with(monkeypatch, nv, "deadbeef-0000-0000-0000-000000000000", gpu.pci, 0, {}) is None


def _not_found(*args: Any) -> Any:
    raise RuntimeError("NVML_ERROR_NOT_FOUND")


# -- item 8: CUDA's numbering and NVML's -------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "index", "count", "expected"),
    [
        ({}, 1, 2, None),  # CUDA's default order (fastest first) need not be PCI order
        ({"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, 1, 2, 1),
        ({}, 0, 1, 0),  # one GPU: one order
        ({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "3,1"}, 0, 4, 3),
        ({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "3,1"}, 1, 4, 1),
        ({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "3,1"}, 2, 4, None),
        ({"CUDA_VISIBLE_DEVICES": "3,1"}, 0, 4, None),
        ({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "GPU-abc"}, 0, 4, None),  # UUID: looked up
        ({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "7"}, 0, 4, None),  # no such GPU
        ({"CUDA_DEVICE_ORDER": "FASTEST_FIRST"}, 0, 2, None),
    ],
)
def test_nvml_index_for_cuda_index(env: dict[str, str], index: int, count: int, expected: Any) -> None:
    assert nvml_index_for_cuda_index(index, count, env) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("0,1", ["0", "1"]),
        (" 1 , 0 ", ["1", "0"]),
        ("0,-1,1", ["0"]),
        ("GPU-ab12,MIG-cd34", ["GPU-ab12", "MIG-cd34"]),
        ("nvidia0", []),
    ],
)
def test_visible_device_entries(value: Any, expected: Any) -> None:
    assert visible_device_entries(value) == expected


def test_index_fallback_only_when_both_orders_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    nv, gpus = world(2)
    monkeypatch.setattr(nv, "nvmlDeviceGetHandleByUUID", _not_found)
    monkeypatch.setattr(nv, "nvmlDeviceGetHandleByPciBusId", _not_found)
    assert open_with(monkeypatch, nv, "u", "p", 1, {}) is None
    assert open_with(monkeypatch, nv, "u", "p", 1, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}).handle is gpus[1]
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"}
    assert open_with(monkeypatch, nv, "u", "p", 0, env).handle is gpus[1]


def test_inventory_honours_cuda_visible_devices() -> None:
    nv, gpus = world(3)
    gpus[2].name = "Other GPU"
    pci = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert nvml_inventory(nv, {})["gpus"] == ["Fake GPU 0", "Fake GPU 1", "Other GPU"]
    assert nvml_inventory(nv, {**pci, "CUDA_VISIBLE_DEVICES": "2,0"})["gpus"] == ["Other GPU", "Fake GPU 0"]
    # Index entries in CUDA's default order: which GPU is "2" is unknown when names differ.
    assert nvml_inventory(nv, {"CUDA_VISIBLE_DEVICES": "2"})["gpus"] == [None]
    assert nvml_inventory(nv, {"CUDA_VISIBLE_DEVICES": ""})["gpus"] == []
    assert nvml_inventory(nv, {**pci, "CUDA_VISIBLE_DEVICES": "1,-1,2"})["gpus"] == ["Fake GPU 1"]
    assert nvml_inventory(nv, {"CUDA_VISIBLE_DEVICES": gpus[1].uuid[:12]})["gpus"] == ["Fake GPU 1"]
    inv = nvml_inventory(nv, {"CUDA_VISIBLE_DEVICES": "1"})
    assert inv["driver"] == "575.51.03" and inv["cuda_visible_devices"] == "1"


def test_inventory_of_identical_gpus_and_of_mig_instances() -> None:
    nv, gpus = world(2)
    for g in gpus:
        g.name = "Fake H100"
    assert nvml_inventory(nv, {"CUDA_VISIBLE_DEVICES": "1"})["gpus"] == ["Fake H100"]
    nv, gpu, mig = mig_world()
    assert nvml_inventory(nv, {"CUDA_VISIBLE_DEVICES": MIG_UUID})["gpus"] == ["Fake H100 MIG 1g.10gb"]


# -- item 9: the GPU's state while the timed calls run -----------------------------------------------


def throttled_world() -> tuple[FakePynvml, Any]:
    """A GPU that looks fine when idle and is power-capped while it works."""
    nv, (gpu,) = world()
    gpu.busy_state = {"sm": 1410, "mem": 2619, "power_mw": 700_000, "temp": 83, "reasons": 0x4}
    gpu.violation_per_busy_call = {0: 2_000_000, 1: 0}  # 2 ms under the power cap per call
    return nv, gpu


class Ticks:
    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_sampler_sees_throttling_that_idle_snapshots_miss() -> None:
    nv, gpu = throttled_world()
    proc = FakeCudaProcess(gpu, 100)
    backend = CudaBackend(0, api=proc, nvml=nvml_for(nv, gpu), pid=100, clock=Ticks(1.0))
    assert backend.snapshot()["throttle_reasons"] == 0x1  # idle: nothing to see
    timer = backend.timer(lambda: None)
    timer()  # warm-up: not sampled
    probe = backend.memory_probe()
    probe.start()
    for _ in range(5):
        timer()
    probe.stop()
    state = backend.timed_state()
    assert state is not None and state["during_timed_calls"] is True
    assert state["samples"] == 5
    assert state["sm_clock_mhz"] == {"min": 1410.0, "median": 1410.0, "max": 1410.0}
    assert state["power_w"]["max"] == 700.0
    assert state["throttle_reason_names"] == ["sw_power_cap"]
    assert state["violation_ms"] == {"power": 10.0, "thermal": 0.0}
    assert state["throttled"] is True
    assert backend.snapshot()["throttle_reasons"] == 0x1  # and idle again afterwards


def test_sampler_is_rate_limited() -> None:
    nv, gpu = throttled_world()
    sampler = GpuStateSampler(nvml_for(nv, gpu), clock=Ticks(0.01), interval_s=0.05)
    sampler.begin()
    for _ in range(100):
        gpu.busy = True
        sampler.tick()
    state = sampler.end()
    assert state is not None and 15 <= state["samples"] <= 25


def test_sampler_without_ticks_or_nvml() -> None:
    nv, (gpu,) = world()
    sampler = GpuStateSampler(nvml_for(nv, gpu))
    sampler.begin()
    state = sampler.end()
    assert state is not None and state["during_timed_calls"] is False and state["samples"] == 1
    assert state["throttled"] is False  # idle only: gpu_idle is not a slowdown
    assert GpuStateSampler(None).end() is None
    none = GpuStateSampler(None)
    none.begin()
    none.tick()
    assert none.end() is None


def test_measure_returns_the_gpu_state_per_measurement() -> None:
    torch = pytest.importorskip("torch")
    from pytest_dnnbench.measure.bench import BenchSettings, measure, prepare_model
    from pytest_dnnbench.measure.timing import SamplingPolicy

    nv, gpu = throttled_world()
    proc = FakeCudaProcess(gpu, 100)
    backend = CudaBackend(0, api=proc, nvml=nvml_for(nv, gpu), pid=100, clock=Ticks(1.0))
    settings = BenchSettings(policy=SamplingPolicy(min_samples=3, max_samples=3, warmup_min=1, warmup_max=1))
    model = prepare_model(torch.nn.Conv2d(3, 4, 3), settings)  # runs on the CPU; the fake GPU is timed
    m = measure(model, 1, (3, 8, 8), settings, backend)
    assert m.gpu_state is not None and m.gpu_state["samples"] == 3
    assert m.gpu_state["throttle_reason_names"] == ["sw_power_cap"]
    assert m.memory["total"] is not None and m.memory_method.startswith("nvml-process")
    assert m.memory["context"] == 800 * MiB


def test_throttle_reason_names() -> None:
    assert throttle_reason_names(None) == []
    assert throttle_reason_names(0) == []
    assert throttle_reason_names(0x1 | 0x40) == ["gpu_idle", "hw_thermal_slowdown"]
    assert throttle_reason_names(0x1000) == ["other(0x1000)"]
