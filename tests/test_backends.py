"""Tests of the device backends (:mod:`pytest_dnnbench.measure.backends`).

The CUDA path runs on CPU-only machines against a fake ``CudaApi``, a fake
``Nvml`` and a fake ``pynvml`` module: what is tested is the protocol (what
is called, in which order, and how the figures are put together).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any, Optional

import pytest

from pytest_dnnbench.measure import backends
from pytest_dnnbench.measure.backends import (
    CpuBackend,
    CudaApi,
    CudaBackend,
    CudaMemoryProbe,
    Nvml,
    cpu_model_name,
    make_backend,
)
from pytest_dnnbench.measure.memory import CpuMemoryProbe

MiB = 2**20
GiB = 2**30


class FakeCudaApi:
    """Duck-typed ``CudaApi``: logs every call; the context appears on ``create_context``."""

    def __init__(self, nvml: Optional["FakeNvml"] = None, context: int = 500 * MiB):
        self.log: list[str] = []
        self.nvml = nvml
        self.context_bytes = context
        self.allocated = 300 * MiB
        self.reserved_peak = 400 * MiB
        self.timed: list[Any] = []

    def create_context(self) -> None:
        self.log.append("create_context")
        if self.nvml is not None:
            self.nvml.used = self.context_bytes

    def synchronize(self) -> None:
        self.log.append("synchronize")

    def reset_peak(self) -> None:
        self.log.append("reset_peak")

    def max_allocated(self) -> int:
        self.log.append("max_allocated")
        return self.allocated

    def max_reserved(self) -> int:
        self.log.append("max_reserved")
        return self.reserved_peak

    def reserved(self) -> int:
        return self.reserved_peak

    def empty_cache(self) -> None:
        self.log.append("empty_cache")

    def properties(self) -> dict:
        self.log.append("properties")
        return {"name": "Fake GPU 80GB", "total_memory": 80 * GiB, "capability": "9.0",
                "uuid": "1234-abcd", "pci_bus_id": "00000000:1B:00.0"}

    def event_timer(self, fn):
        self.timed.append(fn)
        return lambda: 1.5


class FakeNvml:
    def __init__(self, used: Optional[int] = None, log: Optional[list] = None):
        self.used = used
        self.log = log if log is not None else []
        self.pids: list[int] = []

    def process_used_bytes(self, pid: int) -> Optional[int]:
        self.log.append("nvml.process_used_bytes")
        self.pids.append(pid)
        return self.used

    def snapshot(self) -> dict:
        return {"sm_clock_mhz": 1980, "power_limit_w": 700.0}

    def driver_version(self) -> str:
        return "575.51"


def make_cuda(nvml: Optional[FakeNvml] = None, context: int = 500 * MiB) -> tuple[CudaBackend, FakeCudaApi]:
    api = FakeCudaApi(nvml, context)
    if nvml is not None:
        nvml.log = api.log  # one log for both, to check the order
    return CudaBackend(0, api=api, nvml=nvml, pid=123), api


# -- CudaBackend and CudaMemoryProbe ---------------------------------------------------------

def test_cuda_backend_measures_the_context_once_after_creating_it() -> None:
    nvml = FakeNvml()
    backend, api = make_cuda(nvml, context=512 * MiB)
    assert backend.context == 512 * MiB
    assert api.log.count("create_context") == 1
    assert api.log.count("nvml.process_used_bytes") == 1
    assert api.log.index("create_context") < api.log.index("nvml.process_used_bytes")
    assert nvml.pids == [123]
    assert backend.device == "cuda:0"
    backend.memory_probe()
    assert api.log.count("nvml.process_used_bytes") == 1  # not re-measured per probe


def test_cuda_backend_without_nvml_has_no_context() -> None:
    backend, api = make_cuda(None)
    assert backend.context is None
    assert "create_context" in api.log
    assert backend.snapshot() == {}


def test_cuda_probe_resets_peaks_at_start() -> None:
    backend, api = make_cuda(FakeNvml())
    probe = backend.memory_probe()
    api.log.clear()
    probe.start()
    assert api.log == ["synchronize", "reset_peak"]


def test_cuda_probe_total_from_nvml_per_process_figure() -> None:
    nvml = FakeNvml()
    backend, api = make_cuda(nvml, context=500 * MiB)
    probe = backend.memory_probe()
    probe.start()
    nvml.used = 1100 * MiB  # what NVML sees after the timed calls
    api.log.clear()
    mem, method = probe.stop()
    assert mem == {"total": 1100 * MiB, "allocator_peak": 300 * MiB, "reserved_peak": 400 * MiB,
                   "context": 500 * MiB}
    assert "NVML per-process" in method
    assert api.log[0] == "synchronize"  # pending work finishes before the peaks are read


def test_cuda_probe_falls_back_to_context_plus_reserved_peak() -> None:
    nvml = FakeNvml()
    backend, api = make_cuda(nvml, context=500 * MiB)
    probe = backend.memory_probe()
    probe.start()
    nvml.used = None  # NVML stopped seeing per-process figures
    mem, method = probe.stop()
    assert mem["total"] == 500 * MiB + 400 * MiB
    assert mem["context"] == 500 * MiB
    assert "context" in method and "reserved peak" in method


def test_cuda_probe_without_any_nvml_figure_is_unavailable() -> None:
    probe = CudaMemoryProbe(FakeCudaApi(), nvml=None, context=None, pid=1)
    probe.start()
    mem, method = probe.stop()
    assert mem["total"] is None
    assert mem["allocator_peak"] == 300 * MiB and mem["reserved_peak"] == 400 * MiB
    assert "unavailable" in method


def test_cuda_release_empties_the_cache() -> None:
    backend, api = make_cuda(FakeNvml())
    api.log.clear()
    backend.release()
    assert api.log == ["synchronize", "empty_cache"]


def test_cuda_empties_the_cache_before_each_measurement() -> None:
    """A batch must not inherit what a larger batch before it left reserved."""
    backend, api = make_cuda(FakeNvml())
    api.log.clear()
    backend.before_measure()
    assert api.log == ["synchronize", "empty_cache"]


def test_cpu_before_measure_leaves_collection_to_the_memory_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc as gc_module

    calls: list = []
    monkeypatch.setattr(gc_module, "collect", lambda *a: calls.append("gc") or 0)
    CpuBackend().before_measure()
    assert calls == []


def test_cuda_timer_uses_events_and_synchronize_delegates() -> None:
    backend, api = make_cuda(None)

    def fn() -> None:
        pass

    timer = backend.timer(fn)
    assert api.timed == [fn]
    assert timer() == 1.5
    api.log.clear()
    backend.synchronize()
    assert api.log == ["synchronize"]


def test_cuda_describe() -> None:
    backend, _ = make_cuda(FakeNvml(), context=600 * MiB)
    d = backend.describe()
    assert d == {
        "device_name": "Fake GPU 80GB",
        "gpu_total_memory": 80 * GiB,
        "gpu_capability": "9.0",
        "cuda_context_bytes": 600 * MiB,
        "nvml": True,
        "driver": "575.51",
    }
    assert backend.device_name() == "Fake GPU 80GB"
    assert backend.snapshot() == {"sm_clock_mhz": 1980, "power_limit_w": 700.0}
    d2 = make_cuda(None)[0].describe()
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
        NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, NVML_TEMPERATURE_GPU=0,
        nvmlDeviceGetComputeRunningProcesses=rec("procs", [
            SimpleNamespace(pid=7, usedGpuMemory=100 * MiB),
            SimpleNamespace(pid=123, usedGpuMemory=900 * MiB),
            SimpleNamespace(pid=55, usedGpuMemory=None),
        ]),
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
    assert Nvml("H", fake_pynvml(nvmlDeviceGetComputeRunningProcesses=_raise)).process_used_bytes(123) is None
    assert Nvml("H", fake_pynvml(nvmlDeviceGetComputeRunningProcesses=None)).process_used_bytes(123) is None


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
        nvmlDeviceGetClockInfo=_raise, nvmlDeviceGetEnforcedPowerLimit=_raise, nvmlDeviceGetTemperature=None,
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
    mod = _open_module(uuid_ok=False)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    assert Nvml.open("u", "00000000:1B:00.0", 3).handle == "pci-handle"
    mod = _open_module(uuid_ok=False, pci_ok=False)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    assert Nvml.open("u", "p", 3).handle == "index-handle"
    assert mod.log[-1] == ("index", 3)


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

    def elapsed_time(self, other: "FakeEvent") -> float:
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
            name="Fake H100", total_memory=80 * GiB, major=9, minor=0, uuid="abcd-1234",
            pci_bus_id=0x1B, pci_domain_id=0, pci_device_id=0),
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
    assert api.properties() == {"name": "Fake H100", "total_memory": 80 * GiB, "capability": "9.0",
                                "uuid": "abcd-1234", "pci_bus_id": "00000000:1B:00.0"}


def test_pci_bus_id_absent() -> None:
    assert backends._pci_bus_id(SimpleNamespace()) is None


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
    assert log[k + 1:] == ["forward", "probe.stop"]
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
        prepare_model(tiny_model(), BenchSettings()), 4, (3, 8, 8),
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
    try:
        apply_process_settings(BenchSettings(threads=1, cudnn_benchmark=False))
        assert torch.get_num_threads() == 1
        assert torch.backends.cudnn.benchmark is False
        assert _flush_denormal_on()
        apply_process_settings(BenchSettings(threads=2, cudnn_benchmark=True))
        assert torch.get_num_threads() == 2
        assert torch.backends.cudnn.benchmark is True
        torch.set_num_threads(3)
        apply_process_settings(BenchSettings(threads=None))  # None: torch's own choice stays
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark
        torch.set_flush_denormal(flush)
