"""Fakes of a GPU, its driver's NVML, torch.cuda and torch's TF32 switches, as the real ones behave.

The other ``test_cuda_*`` modules import from here. Unlike a fake that always
finds the process, these reproduce what real drivers do:

- NVML lists processes by their PID in the *host's* namespace: a process in a
  container (``own_pid`` 7) appears as, say, 48213;
- some drivers list a process with 0 bytes, or with no figure (pynvml's None);
- a GPU in MIG mode has instances with ``MIG-`` UUIDs; NVML reports no clocks or
  power for an instance, only for its GPU;
- CUDA's caching allocator keeps what it reserved until ``empty_cache()``, and
  cuBLAS's workspace stays reserved;
- torch's legacy and new (``fp32_precision``) TF32 switches, including the
  ``RuntimeError`` that reading a legacy flag raises in a mixed state.

The tests at the end check the fakes themselves: that every NVML function they
stand in for exists under that name in the installed ``pynvml``, and that the
fake TF32 switches agree with the installed torch's.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

MiB = 2**20
GiB = 2**30


class NVMLError(Exception):
    """Stands in for pynvml.NVMLError (NVML_ERROR_NOT_FOUND, NVML_ERROR_NOT_SUPPORTED...)."""


# -- the hardware -------------------------------------------------------------------------------


class FakeGpu:
    """A GPU (or a MIG instance of one) as its driver sees it."""

    def __init__(
        self,
        uuid: str = "GPU-11111111-2222-3333-4444-555555555555",
        name: str = "Fake H100 80GB",
        total: int = 80 * GiB,
        pci: str = "00000000:1B:00.0",
        parent: FakeGpu | None = None,
    ) -> None:
        self.uuid, self.name, self.total, self.pci, self.parent = uuid, name, total, pci, parent
        #: host PID -> bytes the driver attributes to it
        self.procs: dict[int, int] = {}
        #: memory the driver itself uses on the device (counted in "used", in no process)
        self.driver_used = 500 * MiB
        self.mig_children: list[FakeGpu] = []
        self.mig_enabled = False
        # failure modes
        self.figures = "real"  # "real" | "zero" | "none" (pynvml's None: not available)
        self.list_processes = True  # False: process queries raise NOT_SUPPORTED
        # clocks and throttling: what NVML reports while busy and while idle
        self.busy = False
        self.idle_state = {"sm": 1980, "mem": 2619, "power_mw": 80_000, "temp": 35, "reasons": 0x1}
        self.busy_state = {"sm": 1980, "mem": 2619, "power_mw": 650_000, "temp": 60, "reasons": 0x0}
        self.violation_ns = {0: 0, 1: 0}  # NVML_PERF_POLICY_POWER, _THERMAL
        self.violation_per_busy_call = {0: 0, 1: 0}

    def used(self) -> int:
        return self.driver_used + sum(self.procs.values())

    def add_mig(self, uuid: str, name: str, total: int) -> FakeGpu:
        self.mig_enabled = True
        child = FakeGpu(uuid=uuid, name=name, total=total, pci=self.pci, parent=self)
        child.driver_used = 0
        self.mig_children.append(child)
        return child


class FakePynvml:
    """The subset of pynvml the plugin calls, over a list of :class:`FakeGpu` (NVML's PCI order)."""

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0
    NVML_DEVICE_MIG_ENABLE = 1
    NVML_PERF_POLICY_POWER = 0
    NVML_PERF_POLICY_THERMAL = 1
    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu], driver: str = "575.51.03", init_ok: bool = True) -> None:
        self.gpus = gpus
        self.driver = driver
        self.init_ok = init_ok
        self.calls: list[tuple[Any, ...]] = []

    # -- init and lookup
    def nvmlInit(self) -> None:
        if not self.init_ok:
            raise NVMLError("NVML_ERROR_LIBRARY_NOT_FOUND")

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        self.calls.append(("index", i))
        if not 0 <= i < len(self.gpus):
            raise NVMLError("NVML_ERROR_INVALID_ARGUMENT")
        return self.gpus[i]

    def _everything(self) -> list[FakeGpu]:
        return [d for g in self.gpus for d in [g, *g.mig_children]]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        self.calls.append(("uuid", uuid))
        for d in self._everything():
            if d.uuid == uuid:
                return d
        raise NVMLError("NVML_ERROR_NOT_FOUND")

    def nvmlDeviceGetHandleByPciBusId(self, bus: str) -> FakeGpu:
        self.calls.append(("pci", bus))
        for g in self.gpus:
            if g.pci == bus:
                return g
        raise NVMLError("NVML_ERROR_NOT_FOUND")

    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return h.uuid

    # -- MIG
    def nvmlDeviceIsMigDeviceHandle(self, h: FakeGpu) -> Any:
        import ctypes

        return ctypes.c_uint(1 if h.parent is not None else 0)  # pynvml returns the ctypes value itself

    def nvmlDeviceGetMigMode(self, h: FakeGpu) -> list[int]:
        if h.parent is not None:
            raise NVMLError("NVML_ERROR_NOT_SUPPORTED")
        return [1 if h.mig_enabled else 0, 1 if h.mig_enabled else 0]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: FakeGpu) -> int:
        return 7 if h.mig_enabled else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: FakeGpu, i: int) -> FakeGpu:
        if i >= len(h.mig_children):
            raise NVMLError("NVML_ERROR_NOT_FOUND")
        return h.mig_children[i]

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h: FakeGpu) -> FakeGpu:
        if h.parent is None:
            raise NVMLError("NVML_ERROR_INVALID_ARGUMENT")
        return h.parent

    # -- memory and processes
    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeGpu) -> list[SimpleNamespace]:
        self.calls.append(("procs", h.uuid))
        if not h.list_processes:
            raise NVMLError("NVML_ERROR_NOT_SUPPORTED")
        out = []
        for pid, used in h.procs.items():
            figure: int | None = used
            if h.figures == "zero":
                figure = 0
            elif h.figures == "none":
                figure = None
            out.append(
                SimpleNamespace(pid=pid, usedGpuMemory=figure, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
            )
        return out

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu) -> SimpleNamespace:
        used = h.used()
        return SimpleNamespace(total=h.total, used=used, free=h.total - used)

    # -- clocks, power, throttling: not reported for a MIG instance
    def _physical(self, h: FakeGpu) -> FakeGpu:
        if h.parent is not None:
            raise NVMLError("NVML_ERROR_NOT_SUPPORTED")
        return h

    def _state(self, h: FakeGpu) -> dict[str, int]:
        g = self._physical(h)
        return g.busy_state if g.busy else g.idle_state

    def nvmlDeviceGetClockInfo(self, h: FakeGpu, kind: int) -> int:
        return self._state(h)["sm" if kind == 1 else "mem"]

    def nvmlDeviceGetMaxClockInfo(self, h: FakeGpu, kind: int) -> int:
        self._physical(h)
        return 1980

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        return self._state(h)["power_mw"]

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        self._physical(h)
        return 700_000

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        return self._state(h)["temp"]

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeGpu) -> int:
        return self._state(h)["reasons"]

    def nvmlDeviceGetViolationStatus(self, h: FakeGpu, policy: int) -> SimpleNamespace:
        g = self._physical(h)
        if policy not in g.violation_ns:
            raise NVMLError("NVML_ERROR_NOT_SUPPORTED")
        return SimpleNamespace(referenceTime=0, violationTime=g.violation_ns[policy])


#: The pynvml functions the fake stands in for (checked against the installed pynvml below).
PYNVML_NAMES = sorted(n for n in vars(FakePynvml) if n.startswith("nvml")) + [
    n for n in vars(FakePynvml) if n.startswith("NVML_")
]


# -- a process using the GPU through torch.cuda ---------------------------------------------------


class _Marker:
    def __init__(self, proc: FakeCudaProcess, nbytes: int) -> None:
        self.proc, self.nbytes = proc, nbytes
        proc.live += nbytes

    def __del__(self) -> None:
        self.proc.live -= self.nbytes


class FakeCudaProcess:
    """Duck-typed ``CudaApi`` of one process: what it does shows in the GPU's NVML figures.

    ``host_pid`` is how NVML lists it; the process itself knows only its own
    PID (passed to ``CudaBackend(pid=...)``).
    """

    def __init__(
        self,
        gpu: FakeGpu,
        host_pid: int,
        context: int = 500 * MiB,
        libraries: int = 300 * MiB,
        workspace: int = 8 * MiB,
        uuid: str | None = None,
    ) -> None:
        self.gpu, self.host_pid = gpu, host_pid
        self.context_bytes, self.library_bytes, self.workspace_bytes = context, libraries, workspace
        self.uuid = uuid if uuid is not None else gpu.uuid.split("-", 1)[1]  # torch's uuid: no prefix
        self.log: list[str] = []
        self.reserved_now = 0
        self.reserved_max = 0
        self.allocated_max = 0
        self.live = 0
        self.workspace_held = 0
        self.libraries_loaded = False
        self.sibling: Callable[[], None] | None = None  # what another process does meanwhile

    def _grow(self, nbytes: int) -> None:
        self.reserved_now += nbytes
        self.reserved_max = max(self.reserved_max, self.reserved_now)
        self.gpu.procs[self.host_pid] = self.gpu.procs.get(self.host_pid, 0) + nbytes

    # -- CudaApi
    def properties(self) -> dict[str, Any]:
        self.log.append("properties")
        return {
            "name": self.gpu.name,
            "total_memory": self.gpu.total,
            "capability": "9.0",
            "uuid": self.uuid,
            "pci_bus_id": self.gpu.pci,
        }

    def has_context(self) -> bool:
        return self.host_pid in self.gpu.procs

    def create_context(self) -> None:
        self.log.append("create_context")
        if self.host_pid not in self.gpu.procs:
            self.gpu.procs[self.host_pid] = self.context_bytes
        if self.sibling is not None:
            self.sibling()

    def load_libraries(self) -> None:
        self.log.append("load_libraries")
        if self.libraries_loaded:
            return
        self.libraries_loaded = True
        self.gpu.procs[self.host_pid] += self.library_bytes
        self.workspace_held = self.workspace_bytes  # cuBLAS's workspace: from the caching allocator, kept
        self._grow(self.workspace_bytes)

    def allocate(self, nbytes: int) -> _Marker:
        self.log.append("allocate")
        self._grow(nbytes)
        return _Marker(self, nbytes)

    def synchronize(self) -> None:
        self.log.append("synchronize")
        self.gpu.busy = False

    def reset_peak(self) -> None:
        self.log.append("reset_peak")
        self.reserved_max = self.reserved_now
        self.allocated_max = self.live

    def max_allocated(self) -> int:
        return self.allocated_max

    def max_reserved(self) -> int:
        return self.reserved_max

    def reserved(self) -> int:
        return self.reserved_now

    def empty_cache(self) -> None:
        self.log.append("empty_cache")
        free = self.reserved_now - self.live - self.workspace_held
        if free:  # nothing cached (no context yet, even): a no-op, as in torch
            self.reserved_now -= free
            self.gpu.procs[self.host_pid] -= free

    def event_timer(self, fn: Callable[[], object], during: Callable[[], None] | None = None) -> Callable[[], float]:
        def once() -> float:
            fn()
            self.gpu.busy = True  # the queued work runs
            for policy, ns in self.gpu.violation_per_busy_call.items():
                self.gpu.violation_ns[policy] = self.gpu.violation_ns.get(policy, 0) + ns
            if during is not None:
                during()
            self.gpu.busy = False  # end.synchronize()
            return 1.5

        return once

    # -- what a model does between reset_peak and the end of the timed calls
    def run_model(self, activations: int) -> None:
        """Allocate and free ``activations`` bytes the way a forward pass does (cached afterwards).

        The first convolution of a process loads cuDNN and cuBLAS, as the real runtime does.
        """
        if not self.libraries_loaded:
            self.load_libraries()
        self._grow(activations)
        self.allocated_max = max(self.allocated_max, self.live + activations)


def world(n_gpus: int = 1) -> tuple[FakePynvml, list[FakeGpu]]:
    gpus = [
        FakeGpu(
            uuid=f"GPU-{i}{i}{i}{i}aaaa-0000-0000-0000-00000000000{i}",
            pci=f"00000000:{0x1B + i:02X}:00.0",
            name=f"Fake GPU {i}",
        )
        for i in range(n_gpus)
    ]
    return FakePynvml(gpus), gpus


def nvml_for(nv: FakePynvml, handle: FakeGpu) -> Any:
    from pytest_dnnbench.measure.nvml import Nvml

    parent = handle.parent if handle.parent is not None else None
    return Nvml(handle, nv, parent)


# -- torch's TF32 switches ----------------------------------------------------------------------


class FakeTf32Context:
    """torch 2.9+'s at::Context TF32 state: legacy flags, the fp32_precision table, and their checks."""

    def __init__(self) -> None:
        self.allow_tf32_cudnn = True
        self.matmul_precision = "highest"  # float32_matmul_precision
        self.table = {
            ("generic", "all"): "none",
            ("cuda", "all"): "none",
            ("cuda", "matmul"): "none",
            ("cuda", "conv"): "tf32",
            ("cuda", "rnn"): "tf32",
            ("mkldnn", "all"): "none",
            ("mkldnn", "matmul"): "none",
            ("mkldnn", "conv"): "none",
            ("mkldnn", "rnn"): "none",
        }

    def precision(self, backend: str, op: str) -> str:
        p = self.table[(backend, op)]
        if p == "none":
            p = self.table[(backend, "all")]
        if p == "none":
            p = self.table[("generic", "all")]
        return p

    def set_precision(self, backend: str, op: str, p: str) -> None:
        if p not in ("none", "ieee", "tf32", "bf16"):
            raise RuntimeError(f"Unknown precision: {p}")
        if backend == "cuda" and p == "bf16":
            raise RuntimeError("backend 'cuda' does not support precision 'bf16'")
        self.table[(backend, op)] = p

    def get_allow_tf32_cudnn(self) -> bool:
        rnn, conv = self.precision("cuda", "rnn") == "tf32", self.precision("cuda", "conv") == "tf32"
        if not (rnn == conv == self.allow_tf32_cudnn):
            raise RuntimeError(
                "PyTorch is checking whether allow_tf32 is enabled for cuDNN without a specific "
                "operator name, ... you have used a mix of the legacy and new APIs ..."
            )
        return self.allow_tf32_cudnn

    def set_allow_tf32_cudnn(self, b: bool) -> None:
        self.set_precision("cuda", "rnn", "tf32" if b else "none")
        self.set_precision("cuda", "conv", "tf32" if b else "none")
        self.allow_tf32_cudnn = b

    def get_allow_tf32_cublas(self) -> bool:
        legacy = self.matmul_precision != "highest"
        new = self.precision("cuda", "matmul") == "tf32"
        if legacy != new:
            raise RuntimeError(
                "PyTorch is checking whether allow_tf32_new is enabled for cuBlas matmul, ... "
                "mix of the legacy and new APIs ..."
            )
        return new

    def set_allow_tf32_cublas(self, b: bool) -> None:
        self.matmul_precision = "high" if b else "highest"
        self.set_precision("cuda", "matmul", "tf32" if b else "ieee")

    def get_float32_matmul_precision(self) -> str:
        invalid = self.precision("cuda", "matmul") == "tf32" and self.matmul_precision == "highest"
        invalid = invalid or (self.precision("mkldnn", "matmul") == "bf16" and self.matmul_precision != "medium")
        if invalid:
            raise RuntimeError(
                "PyTorch is checking the matmul precision without a specific backend name, ... "
                "mix of the legacy and new APIs ..."
            )
        return self.matmul_precision

    def set_float32_matmul_precision(self, s: str) -> None:
        self.matmul_precision = s
        cuda, mkldnn = {"highest": ("ieee", "ieee"), "high": ("tf32", "tf32"), "medium": ("tf32", "bf16")}[s]
        self.set_precision("cuda", "matmul", cuda)
        self.set_precision("mkldnn", "matmul", mkldnn)


class _Prop:
    """A torch.backends attribute backed by a getter and a setter."""

    def __init__(self, get: Callable[[], Any], set_: Callable[[Any], None]) -> None:
        self.get, self.set = get, set_


class _Namespace:
    def __init__(self, **props: Any) -> None:
        object.__setattr__(self, "_props", props)

    def __getattr__(self, name: str) -> Any:
        props = object.__getattribute__(self, "_props")
        if name not in props:
            raise AttributeError(name)
        v = props[name]
        return v.get() if isinstance(v, _Prop) else v

    def __setattr__(self, name: str, value: Any) -> None:
        props = object.__getattribute__(self, "_props")
        if name not in props or not isinstance(props[name], _Prop):
            raise AttributeError(f"Unknown attribute {name}")
        props[name].set(value)


def fake_torch(new_api: bool = True) -> SimpleNamespace:
    """A torch module with only its TF32 switches: 2.9+ (``new_api``) or older (legacy flags only)."""
    ctx = FakeTf32Context()

    def fp32(backend: str, op: str) -> _Prop:
        return _Prop(lambda: ctx.precision(backend, op), lambda v: ctx.set_precision(backend, op, v))

    matmul: dict[str, Any] = {"allow_tf32": _Prop(ctx.get_allow_tf32_cublas, ctx.set_allow_tf32_cublas)}
    cudnn: dict[str, Any] = {
        "allow_tf32": _Prop(ctx.get_allow_tf32_cudnn, ctx.set_allow_tf32_cudnn),
        "benchmark": False,
    }
    backends: dict[str, Any] = {}
    if new_api:
        matmul["fp32_precision"] = fp32("cuda", "matmul")
        cudnn["fp32_precision"] = fp32("cuda", "all")
        cudnn["conv"] = _Namespace(fp32_precision=fp32("cuda", "conv"))
        cudnn["rnn"] = _Namespace(fp32_precision=fp32("cuda", "rnn"))
        backends["fp32_precision"] = fp32("generic", "all")
        backends["mkldnn"] = _Namespace(matmul=_Namespace(fp32_precision=fp32("mkldnn", "matmul")))
    else:
        # Before 2.9 the legacy flags are plain and never disagree with anything.
        state = {"cudnn": True, "cublas": False}

        def set_cublas(v: bool) -> None:  # at::Context::setAllowTF32CuBLAS: also the matmul precision
            state["cublas"] = bool(v)
            ctx.matmul_precision = "high" if v else "highest"

        matmul["allow_tf32"] = _Prop(lambda: state["cublas"], set_cublas)
        cudnn["allow_tf32"] = _Prop(lambda: state["cudnn"], lambda v: state.__setitem__("cudnn", bool(v)))

        def set_precision(s: str) -> None:
            ctx.matmul_precision = s
            state["cublas"] = s != "highest"

        ctx.set_float32_matmul_precision = set_precision  # type: ignore[method-assign]
        ctx.get_float32_matmul_precision = lambda: ctx.matmul_precision  # type: ignore[method-assign]
    backends["cuda"] = _Namespace(matmul=_Namespace(**matmul))
    backends["cudnn"] = _Namespace(**cudnn)
    return SimpleNamespace(
        backends=_Namespace(**backends),
        get_float32_matmul_precision=lambda: ctx.get_float32_matmul_precision(),
        set_float32_matmul_precision=lambda s: ctx.set_float32_matmul_precision(s),
        ctx=ctx,
    )


# -- the fakes against the real libraries -----------------------------------------------------------


def test_every_faked_nvml_name_exists_in_the_installed_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    missing = [n for n in PYNVML_NAMES if not hasattr(pynvml, n)]
    assert missing == []
    for n in PYNVML_NAMES:
        if n.startswith("NVML_"):
            assert getattr(pynvml, n) == getattr(FakePynvml, n), n


def test_fake_nvml_lists_host_pids_and_failure_modes() -> None:
    nv, (gpu,) = world()
    proc = FakeCudaProcess(gpu, host_pid=48213)
    proc.create_context()
    assert [p.pid for p in nv.nvmlDeviceGetComputeRunningProcesses(gpu)] == [48213]
    gpu.figures = "zero"
    assert nv.nvmlDeviceGetComputeRunningProcesses(gpu)[0].usedGpuMemory == 0
    gpu.figures = "none"
    assert nv.nvmlDeviceGetComputeRunningProcesses(gpu)[0].usedGpuMemory is None
    mig = gpu.add_mig("MIG-99999999-0000-0000-0000-000000000000", "Fake H100 MIG 1g.10gb", 10 * GiB)
    with pytest.raises(NVMLError):
        nv.nvmlDeviceGetClockInfo(mig, 1)
    assert nv.nvmlDeviceGetHandleByUUID("MIG-99999999-0000-0000-0000-000000000000") is mig


def test_fake_allocator_caches_until_empty_cache() -> None:
    _, (gpu,) = world()
    proc = FakeCudaProcess(gpu, host_pid=1)
    proc.create_context()
    proc.load_libraries()
    marker = proc.allocate(64 * MiB)
    assert gpu.procs[1] == 500 * MiB + 300 * MiB + 8 * MiB + 64 * MiB
    del marker
    assert gpu.procs[1] == 500 * MiB + 300 * MiB + 8 * MiB + 64 * MiB  # cached
    proc.empty_cache()
    assert gpu.procs[1] == 500 * MiB + 300 * MiB + 8 * MiB  # the cuBLAS workspace stays
    assert proc.reserved() == 8 * MiB


SITES = [("matmul", ("cuda", "matmul")), ("conv", ("cudnn", "conv")), ("rnn", ("cudnn", "rnn"))]


def _read(t: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, get in [
        ("cudnn.allow_tf32", lambda: t.backends.cudnn.allow_tf32),
        ("matmul.allow_tf32", lambda: t.backends.cuda.matmul.allow_tf32),
        ("matmul_precision", lambda: t.get_float32_matmul_precision()),
        ("matmul.fp32", lambda: t.backends.cuda.matmul.fp32_precision),
        ("conv.fp32", lambda: t.backends.cudnn.conv.fp32_precision),
        ("rnn.fp32", lambda: t.backends.cudnn.rnn.fp32_precision),
    ]:
        try:
            out[name] = get()
        except RuntimeError:
            out[name] = "raises"
        except AttributeError:
            out[name] = "absent"
    return out


SCRIPTS: list[list[tuple[str, Any]]] = [
    [],
    [("conv", "ieee")],
    [("matmul", "tf32")],
    [("cudnn_all", "ieee"), ("conv", "none")],
    [("legacy_cudnn", False)],
    [("legacy_matmul", True)],
    [("legacy_matmul", True), ("matmul", "ieee")],
    [("precision", "medium")],
    [("generic", "tf32"), ("conv", "none"), ("rnn", "none")],
]


def _apply(t: Any, script: list[tuple[str, Any]]) -> None:
    for what, value in script:
        if what == "legacy_cudnn":
            t.backends.cudnn.allow_tf32 = value
        elif what == "legacy_matmul":
            t.backends.cuda.matmul.allow_tf32 = value
        elif what == "precision":
            t.set_float32_matmul_precision(value)
        elif what == "cudnn_all":
            t.backends.cudnn.fp32_precision = value
        elif what == "generic":
            t.backends.fp32_precision = value
        else:
            site = {"matmul": t.backends.cuda.matmul, "conv": t.backends.cudnn.conv, "rnn": t.backends.cudnn.rnn}
            site[what].fp32_precision = value


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: "+".join(f"{a}={b}" for a, b in s) or "default")
def test_fake_tf32_switches_agree_with_the_installed_torch(script: list[tuple[str, Any]], real_tf32_state: Any) -> None:
    torch = real_tf32_state
    if not hasattr(torch.backends.cudnn, "conv"):
        pytest.skip("this torch has no fp32_precision API")
    fake = fake_torch(new_api=True)
    _apply(fake, script)
    _apply(torch, script)
    assert _read(fake) == _read(torch)


# -- shared fixture: the real torch's TF32 state, put back as torch starts ----------------------------


def reset_real_tf32(torch: Any) -> None:
    """Back to torch's defaults (legacy flags first: their setters touch the new table)."""
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    if hasattr(torch.backends.cudnn, "conv"):
        torch.backends.fp32_precision = "none"
        torch.backends.cudnn.fp32_precision = "none"
        torch.backends.cuda.matmul.fp32_precision = "none"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
        torch.backends.cudnn.rnn.fp32_precision = "tf32"
        torch.backends.mkldnn.matmul.fp32_precision = "none"


@pytest.fixture
def real_tf32_state() -> Any:
    """The installed torch, its TF32 state at defaults before and after the test."""
    torch = pytest.importorskip("torch")
    reset_real_tf32(torch)
    before = _read(torch)
    yield torch
    reset_real_tf32(torch)
    assert _read(torch) == before
