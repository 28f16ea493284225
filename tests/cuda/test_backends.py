"""Tests of the device backends (:mod:`pytest_dnnbench.measure.backends`).

The CUDA path runs on CPU-only machines against the fakes of ``test_cuda_fakes``
(a GPU whose NVML lists processes by host PID, a ``torch.cuda`` whose caching
allocator keeps what it reserved) and a fake ``pynvml`` module: what is tested is
the protocol (what is called, in which order, and how the figures are put
together). The failure modes of real drivers have their own ``test_cuda_*`` files.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
from test_cuda_fakes import FakeCudaProcess, nvml_for, world

from pytest_dnnbench.measure import cuda
from pytest_dnnbench.measure.backends import (
    METHOD_CONTEXT,
    METHOD_PROCESS,
    METHOD_UNAVAILABLE,
    Backend,
    CpuBackend,
    CudaBackend,
    CudaMemoryProbe,
    cpu_model_name,
    make_backend,
)
from pytest_dnnbench.measure.cuda import CudaApi
from pytest_dnnbench.measure.load import available_cpus
from pytest_dnnbench.measure.memory import CpuMemoryProbe
from pytest_dnnbench.measure.nvml import Nvml

MiB = 2**20
GiB = 2**30


def make_cuda(with_nvml: bool = True, pid: int = 123) -> tuple[CudaBackend, FakeCudaProcess, Any]:
    nv, (gpu,) = world()
    proc = FakeCudaProcess(gpu, host_pid=pid)
    nvml = nvml_for(nv, gpu) if with_nvml else None
    return CudaBackend(0, api=proc, nvml=nvml, pid=pid), proc, nv


# -- CudaBackend and CudaMemoryProbe ---------------------------------------------------------


def test_backends_follow_the_protocol() -> None:
    assert isinstance(CpuBackend(), Backend)
    assert isinstance(make_cuda()[0], Backend)
    assert isinstance(make_backend("cpu"), Backend)


def test_cuda_backend_measures_the_context_once_after_creating_it() -> None:
    backend, proc, nv = make_cuda()
    assert backend.context == 800 * MiB  # context 500 + cuDNN/cuBLAS 300; the 8 MiB workspace is the allocator's
    assert proc.log.count("create_context") == 1
    assert proc.log.index("properties") < proc.log.index("create_context") < proc.log.index("load_libraries")
    assert backend.nvml_pid == 123
    assert backend.device == "cuda:0"
    reads = len([c for c in nv.calls if c[0] == "procs"])
    backend.memory_probe()
    assert len([c for c in nv.calls if c[0] == "procs"]) == reads  # not re-measured per probe


def test_cuda_backend_without_nvml_has_no_context() -> None:
    backend, proc, _ = make_cuda(with_nvml=False)
    assert backend.context is None and backend.nvml_pid is None
    assert "create_context" in proc.log and "load_libraries" in proc.log
    assert backend.snapshot() == {}
    probe = backend.memory_probe()
    probe.start()
    mem, method = probe.stop()
    assert mem["total"] is None and method.startswith(METHOD_UNAVAILABLE)
    assert backend.timed_state() is None


def test_cuda_probe_empties_the_cache_then_resets_peaks_at_start() -> None:
    """After warm-up: what the warm-up freed (autotuner workspaces) is given back before the peaks reset."""
    backend, proc, _ = make_cuda()
    probe = backend.memory_probe()
    proc.log.clear()
    probe.start()
    assert proc.log == ["synchronize", "empty_cache", "reset_peak"]


def test_cuda_probe_total_from_nvml_per_process_figure() -> None:
    backend, proc, _ = make_cuda()
    probe = backend.memory_probe()
    probe.start()
    proc.run_model(300 * MiB)
    proc.log.clear()
    mem, method = probe.stop()
    assert mem == {
        "total": 808 * MiB + 300 * MiB,
        "allocator_peak": 300 * MiB,
        "reserved_peak": 308 * MiB,
        "context": 800 * MiB,
    }
    assert method.startswith(METHOD_PROCESS + ": NVML's figure for this process")
    assert proc.log[0] == "synchronize"  # pending work finishes before the peaks are read


def test_cuda_probe_falls_back_to_context_plus_reserved_peak() -> None:
    backend, proc, nv = make_cuda()
    probe = backend.memory_probe()
    probe.start()
    proc.run_model(400 * MiB)
    proc.gpu.figures = "zero"  # NVML stopped giving per-process figures...
    proc.gpu.procs[999] = 1 * GiB  # ... and another process came: the device's figure is not ours alone
    mem, method = probe.stop()
    assert method.startswith(METHOD_CONTEXT)
    assert mem["total"] == 800 * MiB + 408 * MiB
    assert mem["context"] == 800 * MiB


def test_cuda_probe_without_any_nvml_figure_is_unavailable() -> None:
    _, (gpu,) = world()
    probe = CudaMemoryProbe(FakeCudaProcess(gpu, 1), nvml=None, context=None, pid=1)
    probe.start()
    mem, method = probe.stop()
    assert mem["total"] is None
    assert mem["allocator_peak"] == 0 and mem["reserved_peak"] == 0
    assert method.startswith(METHOD_UNAVAILABLE)


def test_cuda_release_empties_the_cache() -> None:
    backend, proc, _ = make_cuda()
    proc.log.clear()
    backend.release()
    assert proc.log == ["synchronize", "empty_cache"]


def test_cuda_empties_the_cache_before_each_measurement() -> None:
    """A batch must not inherit what a larger batch before it left reserved."""
    backend, proc, _ = make_cuda()
    proc.log.clear()
    backend.before_measure()
    assert proc.log == ["synchronize", "empty_cache"]


def test_cpu_before_measure_leaves_collection_to_the_memory_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc as gc_module

    calls: list = []
    monkeypatch.setattr(gc_module, "collect", lambda *a: calls.append("gc") or 0)
    CpuBackend().before_measure()
    assert calls == []


def test_cuda_timer_uses_events_and_synchronize_delegates() -> None:
    backend, proc, _ = make_cuda(with_nvml=False)
    ran: list[str] = []
    timer = backend.timer(lambda: ran.append("fn"))
    assert timer() == 1.5 and ran == ["fn"]
    proc.log.clear()
    backend.synchronize()
    assert proc.log == ["synchronize"]


def test_cuda_describe() -> None:
    backend, _, _ = make_cuda()
    d = backend.describe()
    assert d == {
        "device_name": "Fake GPU 0",
        "gpu_total_memory": 80 * GiB,
        "gpu_capability": "9.0",
        "cuda_context_bytes": 800 * MiB,
        "cuda_context_method": METHOD_PROCESS,
        "nvml": True,
        "nvml_pid": 123,
        "nvml_pid_method": "its own PID (same PID namespace as the driver)",
        "driver": "575.51.03",
        "mig": False,
    }
    assert backend.device_name() == "Fake GPU 0"
    snap = backend.snapshot()
    assert snap["sm_clock_mhz"] == 1980 and snap["power_limit_w"] == 700.0
    d2 = make_cuda(with_nvml=False)[0].describe()
    assert d2["nvml"] is False and "driver" not in d2 and d2["cuda_context_bytes"] is None


# -- Nvml over a fake pynvml -----------------------------------------------------------------


def _raise(*args: Any) -> Any:
    raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")


def fake_pynvml(**overrides: Any) -> SimpleNamespace:
    calls: list[tuple] = []

    def rec(name: str, value: Any):
        def f(*args: Any) -> Any:
            calls.append((name, *args))
            return value(*args) if callable(value) else value

        return f

    ns = SimpleNamespace(
        NVML_CLOCK_SM=1,
        NVML_CLOCK_MEM=2,
        NVML_TEMPERATURE_GPU=0,
        nvmlDeviceGetComputeRunningProcesses=rec(
            "procs",
            [
                SimpleNamespace(pid=7, usedGpuMemory=100 * MiB),
                SimpleNamespace(pid=123, usedGpuMemory=900 * MiB),
                SimpleNamespace(pid=55, usedGpuMemory=None),
                SimpleNamespace(pid=66, usedGpuMemory=0),  # some drivers in containers: listed, no figure
            ],
        ),
        nvmlDeviceGetClockInfo=rec("clock", lambda h, kind: {1: 1980, 2: 2619}[kind]),
        nvmlDeviceGetMaxClockInfo=rec("maxclock", lambda h, kind: 1980),
        nvmlDeviceGetEnforcedPowerLimit=rec("power", 700000),
        nvmlDeviceGetTemperature=rec("temp", 41),
        nvmlDeviceGetCurrentClocksEventReasons=rec("reasons", 0x1),
        nvmlSystemGetDriverVersion=rec("driver", b"575.51.03"),
    )
    ns.calls = calls
    for k, v in overrides.items():
        if v is None:
            delattr(ns, k)
        else:
            setattr(ns, k, v)
    return ns


def test_nvml_process_used_bytes_finds_the_pid() -> None:
    nv = fake_pynvml()
    nvml = Nvml("HANDLE", nv)
    assert nvml.process_used_bytes(123) == 900 * MiB
    assert nvml.process_used_bytes(7) == 100 * MiB
    assert nv.calls[0] == ("procs", "HANDLE")


def test_nvml_process_used_bytes_none_when_absent_or_unknown() -> None:
    nvml = Nvml("HANDLE", fake_pynvml())
    assert nvml.process_used_bytes(999) is None
    assert nvml.process_used_bytes(55) is None  # usedGpuMemory None (e.g. no per-process accounting)
    assert nvml.process_used_bytes(66) is None  # 0 bytes is no figure, not a real one
    assert Nvml("H", fake_pynvml(nvmlDeviceGetComputeRunningProcesses=_raise)).process_used_bytes(123) is None
    assert Nvml("H", fake_pynvml(nvmlDeviceGetComputeRunningProcesses=None)).process_used_bytes(123) is None


def test_nvml_processes_fall_back_to_the_v2_query() -> None:
    """An older driver lacks the v3 query: pynvml's unversioned call raises, the _v2 one works."""
    nv = fake_pynvml(
        nvmlDeviceGetComputeRunningProcesses=_raise,
        nvmlDeviceGetComputeRunningProcesses_v2=lambda h: [SimpleNamespace(pid=5, usedGpuMemory=MiB)],
    )
    assert Nvml("H", nv).process_used_bytes(5) == MiB


def test_nvml_snapshot_converts_power_to_watts() -> None:
    snap = Nvml("H", fake_pynvml()).snapshot()
    assert snap == {
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": 2619,
        "max_sm_clock_mhz": 1980,
        "power_limit_w": 700.0,
        "temperature_c": 41,
        "throttle_reasons": 0x1,
    }


def test_nvml_snapshot_tolerates_failing_queries() -> None:
    nv = fake_pynvml(
        nvmlDeviceGetClockInfo=_raise,
        nvmlDeviceGetEnforcedPowerLimit=_raise,
        nvmlDeviceGetTemperature=None,
        nvmlDeviceGetCurrentClocksEventReasons=None,  # older pynvml: only the "throttle" name
        nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x4,
    )
    snap = Nvml("H", nv).snapshot()
    assert snap["sm_clock_mhz"] is None and snap["mem_clock_mhz"] is None
    assert snap["power_limit_w"] is None and snap["temperature_c"] is None
    assert snap["max_sm_clock_mhz"] == 1980
    assert snap["throttle_reasons"] == 0x4


def test_nvml_driver_version() -> None:
    assert Nvml("H", fake_pynvml()).driver_version() == "575.51.03"
    assert Nvml("H", fake_pynvml(nvmlSystemGetDriverVersion=lambda: "560.1")).driver_version() == "560.1"
    assert Nvml("H", fake_pynvml(nvmlSystemGetDriverVersion=_raise)).driver_version() is None


def _open_module(**kw: Any) -> SimpleNamespace:
    log: list[tuple] = []

    def handle_by(kind: str, ok: bool):
        def f(key: Any) -> Any:
            log.append((kind, key))
            if not ok:
                raise RuntimeError("not found")
            return f"{kind}-handle"

        return f

    return SimpleNamespace(
        nvmlInit=kw.get("init", lambda: None),
        nvmlDeviceGetHandleByUUID=handle_by("uuid", kw.get("uuid_ok", True)),
        nvmlDeviceGetHandleByPciBusId=handle_by("pci", kw.get("pci_ok", True)),
        nvmlDeviceGetHandleByIndex=handle_by("index", kw.get("index_ok", True)),
        nvmlDeviceGetCount=lambda: kw.get("count", 4),
        log=log,
    )


def test_nvml_open_by_uuid_adds_the_gpu_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _open_module()
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    nvml = Nvml.open("1234-abcd", "00000000:1B:00.0", 0)
    assert nvml is not None and nvml.handle == "uuid-handle"
    assert mod.log == [("uuid", "GPU-1234-abcd")]
    Nvml.open("GPU-1234-abcd", None, 0)
    assert mod.log[-1] == ("uuid", "GPU-1234-abcd")


def test_nvml_open_falls_back_to_pci_then_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA numbers GPUs as NVML does
    mod = _open_module(uuid_ok=False)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    assert Nvml.open("u", "00000000:1B:00.0", 3).handle == "pci-handle"
    assert mod.log[:2] == [("uuid", "GPU-u"), ("uuid", "MIG-u")]  # a MIG instance's UUID is tried too
    mod = _open_module(uuid_ok=False, pci_ok=False)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    assert Nvml.open("u", "p", 3).handle == "index-handle"
    assert mod.log[-1] == ("index", 3)


def test_nvml_open_does_not_guess_by_index_in_cudas_default_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # CUDA's default order puts the fastest GPU first; NVML's is the PCI bus order.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    mod = _open_module(uuid_ok=False, pci_ok=False)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    assert Nvml.open("u", "p", 1) is None
    assert all(kind != "index" for kind, _ in mod.log)
    mod = _open_module(uuid_ok=False, pci_ok=False, count=1)  # one GPU: one order
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    assert Nvml.open("u", "p", 0).handle == "index-handle"


def test_nvml_open_does_not_guess_by_index_under_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    # CUDA index 0 is not NVML index 0 when CUDA_VISIBLE_DEVICES remaps devices.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    mod = _open_module(uuid_ok=False, pci_ok=False)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    assert Nvml.open("u", "p", 0) is None
    assert all(kind != "index" for kind, _ in mod.log)


def test_nvml_open_without_driver_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _open_module(init=_raise))
    assert Nvml.open("u", "p", 0) is None


# -- CudaApi over a fake torch ---------------------------------------------------------------


class FakeEvent:
    def __init__(self, log: list, name: str, enable_timing: bool = False):
        self.log, self.name, self.enable_timing = log, name, enable_timing

    def record(self) -> None:
        self.log.append(f"{self.name}.record")

    def synchronize(self) -> None:
        self.log.append(f"{self.name}.synchronize")

    def elapsed_time(self, other: FakeEvent) -> float:
        self.log.append(f"{self.name}.elapsed_time({other.name})")
        return 2.75


def fake_cuda_api(log: list) -> CudaApi:
    names = iter(["start", "end"])
    events: list[FakeEvent] = []

    def Event(enable_timing: bool = False) -> FakeEvent:
        ev = FakeEvent(log, next(names), enable_timing)
        events.append(ev)
        return ev

    cuda = SimpleNamespace(
        Event=Event,
        set_device=lambda i: log.append(f"set_device({i})"),
        synchronize=lambda i=None: log.append(f"synchronize({i})"),
        reset_peak_memory_stats=lambda i: log.append(f"reset_peak({i})"),
        max_memory_allocated=lambda i: 11,
        max_memory_reserved=lambda i: 22,
        memory_reserved=lambda i: 33,
        empty_cache=lambda: log.append("empty_cache"),
        get_device_properties=lambda i: SimpleNamespace(
            name="Fake H100",
            total_memory=80 * GiB,
            major=9,
            minor=0,
            uuid="abcd-1234",
            pci_bus_id=0x1B,
            pci_domain_id=0,
            pci_device_id=0,
        ),
    )
    api = CudaApi.__new__(CudaApi)
    api.torch = SimpleNamespace(cuda=cuda)
    api.index = 2
    api.events = events  # type: ignore[attr-defined]
    return api


def test_event_timer_records_around_fn_and_waits_for_the_end() -> None:
    log: list[str] = []
    api = fake_cuda_api(log)
    timer = api.event_timer(lambda: log.append("fn"))
    assert all(ev.enable_timing for ev in api.events)  # type: ignore[attr-defined]
    assert timer() == 2.75
    assert log == ["start.record", "fn", "end.record", "end.synchronize", "start.elapsed_time(end)"]


def test_cuda_api_calls_target_its_device() -> None:
    log: list[str] = []
    api = fake_cuda_api(log)
    api.create_context()
    api.reset_peak()
    api.synchronize()
    assert log == ["set_device(2)", "synchronize(2)", "reset_peak(2)", "synchronize(2)"]
    assert (api.max_allocated(), api.max_reserved(), api.reserved()) == (11, 22, 33)
    api.empty_cache()
    assert log[-1] == "empty_cache"
    assert api.properties() == {
        "name": "Fake H100",
        "total_memory": 80 * GiB,
        "capability": "9.0",
        "uuid": "abcd-1234",
        "pci_bus_id": "00000000:1B:00.0",
    }


def test_event_timer_samples_after_queueing_and_before_the_wait() -> None:
    log: list[str] = []
    api = fake_cuda_api(log)
    timer = api.event_timer(lambda: log.append("fn"), during=lambda: log.append("sample"))
    timer()
    assert log == ["start.record", "fn", "end.record", "sample", "end.synchronize", "start.elapsed_time(end)"]


def test_cuda_api_has_context_through_torch() -> None:
    api = fake_cuda_api([])
    api.torch._C = SimpleNamespace(_cuda_hasPrimaryContext=lambda i: i == 2)
    assert api.has_context() is True
    api.index = 1
    assert api.has_context() is False
    api.torch._C = SimpleNamespace()  # a torch without that private function: unknown
    assert api.has_context() is None


def test_cuda_api_loads_cudnn_and_cublas_then_gives_the_memory_back() -> None:
    torch = pytest.importorskip("torch")
    log: list[str] = []
    api = fake_cuda_api(log)

    def conv2d(x: Any, w: Any) -> Any:
        log.append("conv2d")
        return torch.nn.functional.conv2d(x, w)

    def mm(a: Any, b: Any) -> Any:
        log.append("mm")
        return torch.mm(a, b)

    api.torch.device = lambda kind, index: log.append(f"device({kind},{index})") or torch.device("cpu")
    api.torch.randn, api.torch.inference_mode, api.torch.mm = torch.randn, torch.inference_mode, mm
    api.torch.nn = SimpleNamespace(functional=SimpleNamespace(conv2d=conv2d))
    api.load_libraries()
    assert log == ["device(cuda,2)", "conv2d", "mm", "synchronize(2)", "empty_cache"]
    api.torch.empty, api.torch.uint8 = torch.empty, torch.uint8
    marker = api.allocate(1000)
    assert marker.numel() == 1000 and marker.dtype == torch.uint8


def test_pci_bus_id_absent() -> None:
    assert cuda._pci_bus_id(SimpleNamespace()) is None


# -- CpuBackend ------------------------------------------------------------------------------


def test_cpu_backend_timer_returns_positive_ms() -> None:
    backend = CpuBackend()
    box: list[int] = []
    timer = backend.timer(lambda: box.append(sum(range(20000))))
    t = timer()
    assert isinstance(t, float) and 0 < t < 60_000
    assert box == [sum(range(20000))]


def test_cpu_backend_probe_and_describe() -> None:
    made: list[CpuMemoryProbe] = []

    def factory() -> CpuMemoryProbe:
        made.append(CpuMemoryProbe())
        return made[-1]

    backend = CpuBackend(probe_factory=factory)
    assert backend.memory_probe() is made[0]
    assert isinstance(CpuBackend().memory_probe(), CpuMemoryProbe)
    d = backend.describe()
    assert d["device_name"] == cpu_model_name() and d["device_name"]
    backend.synchronize()
    backend.release()


def test_make_backend_cpu() -> None:
    b = make_backend("cpu")
    assert isinstance(b, CpuBackend) and b.device == "cpu" and b.kind == "cpu"


@pytest.mark.parametrize("device", ["gpu", "cuda", "CPU", "", "tpu:0", "cuda:x"])
def test_make_backend_rejects_bad_devices(device: str) -> None:
    with pytest.raises(ValueError):
        make_backend(device)


# -- bench: one (model, batch) on the CPU with real torch -------------------------------------

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from pytest_dnnbench.measure import bench  # noqa: E402
from pytest_dnnbench.measure.bench import (  # noqa: E402
    BenchSettings,
    Measurement,
    apply_process_settings,
    make_input,
    measure,
    prepare_model,
)
from pytest_dnnbench.measure.timing import SamplingPolicy  # noqa: E402

TIGHT = SamplingPolicy(min_samples=5, max_time_s=2.0, warmup_max=10, ci_target=0.5)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def test_make_input_is_seeded_normal_and_shaped() -> None:
    s0, s1 = BenchSettings(seed=0), BenchSettings(seed=1)
    a, b, c = make_input(4, (3, 16, 16), s0), make_input(4, (3, 16, 16), s0), make_input(4, (3, 16, 16), s1)
    assert a.shape == (4, 3, 16, 16) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert bool((a != 0).all())  # never zeros
    assert abs(float(a.mean())) < 0.2 and 0.8 < float(a.std()) < 1.2  # standard normal, wide margins


def test_make_input_precision_and_channels_last() -> None:
    x = make_input(2, (3, 8, 8), BenchSettings(precision="bf16", channels_last=True))
    assert x.dtype == torch.bfloat16
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert not make_input(2, (3, 8, 8), BenchSettings()).is_contiguous(memory_format=torch.channels_last)


def test_prepare_model_sets_eval_dtype_and_memory_format() -> None:
    model = tiny_model().train()
    out = prepare_model(model, BenchSettings(precision="bf16", channels_last=True))
    assert all(not m.training for m in out.modules())
    assert all(p.dtype == torch.bfloat16 for p in out.parameters())
    assert out[0].weight.is_contiguous(memory_format=torch.channels_last)
    fp32 = prepare_model(tiny_model().train(), BenchSettings())
    assert all(p.dtype == torch.float32 for p in fp32.parameters()) and not fp32.training


def test_measure_on_cpu_returns_a_consistent_measurement() -> None:
    model = prepare_model(tiny_model(), BenchSettings())
    m = measure(model, 2, (3, 16, 16), BenchSettings(policy=TIGHT), CpuBackend())
    assert isinstance(m, Measurement)
    st = m.timing.stats
    assert st.n >= 5 or m.timing.stop_reason == "budget"
    assert m.batch_size == 2 and m.input_size == (3, 16, 16)
    assert m.per_image_ms == st.median / 2
    assert m.fps == pytest.approx(1000.0 * 2 / st.median)
    assert isinstance(m.memory["total"], int) and isinstance(m.memory["delta"], int)
    assert m.memory["total"] > 0 and m.memory["delta"] >= 0
    assert m.memory_method


class RecordingBackend(CpuBackend):
    """A CpuBackend whose memory probe (inside the real CpuMemoryPass) logs when it starts and stops."""

    def __init__(self, log: list):
        self.log = log
        super().__init__(probe_factory=self._probe)

    def _probe(self) -> Any:
        log = self.log

        class Probe:
            def start(self) -> None:
                log.append("probe.start")

            def stop(self) -> tuple[dict, str]:
                log.append("probe.stop")
                return {"total": 1, "delta": 0}, "fake"

            def trim(self) -> bool:
                return True

        return Probe()


def test_measure_runs_under_inference_mode_with_one_untimed_input(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list = []
    seen: list = []
    real_make_input = bench.make_input

    def logged_make_input(*args: Any, **kw: Any) -> Any:
        log.append("make_input")
        return real_make_input(*args, **kw)

    monkeypatch.setattr(bench, "make_input", logged_make_input)
    model = prepare_model(tiny_model(), BenchSettings())

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        assert torch.is_inference_mode_enabled()
        seen.append(inputs[0])
        log.append("forward")

    model.register_forward_hook(hook)
    m = measure(model, 3, (3, 12, 12), BenchSettings(policy=TIGHT), RecordingBackend(log))
    assert not torch.is_inference_mode_enabled()  # restored afterwards
    # One input, drawn before anything is timed; every call sees the very same tensor.
    assert log.count("make_input") == 1 and log[0] == "make_input"
    # warm-up, timed calls, then one dedicated memory call (CpuMemoryPass)
    assert len(seen) == m.timing.warmup + m.timing.stats.n + 1
    assert all(x is seen[0] for x in seen)
    assert seen[0].shape == (3, 3, 12, 12)
    # Memory is read at steady state, after the timed calls: the probe brackets one extra call.
    k = log.index("probe.start")
    assert log[1:k].count("forward") == m.timing.warmup + m.timing.stats.n
    assert log[k + 1 :] == ["forward", "probe.stop"]
    assert m.memory == {"total": 1, "delta": 0} and m.memory_method.startswith("fake; over 1 dedicated call")


def test_measure_uses_forward_when_given() -> None:
    model = prepare_model(tiny_model(), BenchSettings())
    calls: list = []

    def forward(x: Any) -> Any:
        calls.append(x)
        return model(x)

    m = measure(model, 1, (3, 8, 8), BenchSettings(policy=TIGHT), CpuBackend(), forward=forward)
    assert len(calls) == m.timing.warmup + m.timing.stats.n + 1  # + the memory call
    assert calls[0].shape == (1, 3, 8, 8)
    assert all(x is calls[0] for x in calls)  # the input is made once, outside the timed calls


def test_measurement_fps_is_none_for_a_zero_median() -> None:
    m = measure(
        prepare_model(tiny_model(), BenchSettings()),
        4,
        (3, 8, 8),
        BenchSettings(policy=SamplingPolicy(min_samples=3, max_samples=20, warmup_min=0, warmup_max=0)),
        _ZeroTimeBackend(),
    )
    assert m.timing.stats.median == 0.0
    assert m.fps is None
    assert m.per_image_ms == 0.0


class _ZeroTimeBackend(CpuBackend):
    def timer(self, fn: Any) -> Any:
        def once() -> float:
            fn()
            return 0.0

        return once


def _flush_denormal_on() -> bool:
    return torch.tensor([1e-323], dtype=torch.float64).item() == 0.0


def test_apply_process_settings_sets_threads_and_cudnn_benchmark() -> None:
    threads, benchmark, flush = torch.get_num_threads(), torch.backends.cudnn.benchmark, _flush_denormal_on()
    restores = []
    try:
        restores.append(apply_process_settings(BenchSettings(threads=1, cudnn_benchmark=False)))
        assert torch.get_num_threads() == 1
        assert torch.backends.cudnn.benchmark is False
        assert _flush_denormal_on()
        restores.append(apply_process_settings(BenchSettings(threads=2, cudnn_benchmark=True)))
        assert torch.get_num_threads() == 2
        assert torch.backends.cudnn.benchmark is True
        torch.set_num_threads(3)
        # None: torch's own choice, never more than the CPUs this process may run on.
        restores.append(apply_process_settings(BenchSettings(threads=None)))
        assert torch.get_num_threads() == min(3, available_cpus())
    finally:
        for restore in reversed(restores):  # TF32 included
            restore()
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark
        torch.set_flush_denormal(flush)


def test_default_threads_never_exceed_the_available_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_dnnbench.measure import bench, load

    monkeypatch.setattr(load, "available_cpus", lambda: 2)
    assert bench.default_threads(16) == 2
    assert bench.default_threads(1) == 1
    monkeypatch.setattr(load, "available_cpus", lambda: 8)
    assert bench.default_threads(4) == 4
