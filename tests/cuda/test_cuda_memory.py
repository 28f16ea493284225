"""GPU memory as real drivers report it (issue items 1-3): containers, zero figures, the context.

Every test runs the real :class:`CudaBackend` and :class:`Nvml` over the fakes of
``test_cuda_fakes``, where NVML lists processes by host PID, as drivers do.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_cuda_fakes import FakeCudaProcess, FakeGpu, FakePynvml, GiB, MiB, nvml_for, world

from pytest_dnnbench.measure.backends import (
    METHOD_CONTEXT,
    METHOD_DEVICE,
    METHOD_PROCESS,
    METHOD_UNAVAILABLE,
    CudaBackend,
)
from pytest_dnnbench.measure.nvml import (
    Nvml,
    NvmlProcess,
    find_nvml_pid,
    identify_by_marker,
    marker_bytes,
    plausible_bytes,
)

CONTAINER_PID = 7  # what os.getpid() says inside the container
HOST_PID = 48213  # what NVML lists for the same process


def backend_in(
    gpu: FakeGpu, nv: FakePynvml, own_pid: int, host_pid: int, proc: FakeCudaProcess | None = None
) -> tuple[CudaBackend, FakeCudaProcess]:
    proc = proc if proc is not None else FakeCudaProcess(gpu, host_pid)
    return CudaBackend(0, api=proc, nvml=nvml_for(nv, gpu), pid=own_pid), proc


def measure_memory(backend: CudaBackend, proc: FakeCudaProcess, activations: int) -> tuple[dict, str]:
    backend.before_measure()
    probe = backend.memory_probe()
    probe.start()
    proc.run_model(activations)
    return probe.stop()


def test_an_autotuner_block_cached_during_warm_up_is_not_the_models_memory() -> None:
    """cuDNN's autotuner tries workspaces during warm-up; freed, they stay reserved and NVML counts them.
    ``total`` and the peaks are the same whether or not such a block was left in the cache."""
    figures = []
    for autotuner_block in (0, 2 * GiB):
        nv, (gpu,) = world()
        backend, proc = backend_in(gpu, nv, own_pid=4242, host_pid=4242)
        backend.before_measure()
        probe = backend.memory_probe()
        if autotuner_block:
            proc.run_model(autotuner_block)  # a warm-up call: the trial workspace is freed, not given back
            assert proc.reserved() >= autotuner_block
        probe.start()
        proc.run_model(100 * MiB)
        mem, method = probe.stop()
        assert method.startswith(METHOD_PROCESS)
        figures.append((mem["total"], mem["reserved_peak"], mem["allocator_peak"]))
    assert figures[0] == figures[1]
    assert figures[0][0] == 500 * MiB + 300 * MiB + 8 * MiB + 100 * MiB


# -- item 1: containers without the host PID namespace ---------------------------------------------


def test_container_host_pid_is_found_when_the_context_appears() -> None:
    nv, (gpu,) = world()
    gpu.procs[9001] = 2 * GiB  # another job on the same GPU, already running
    backend, proc = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID)
    assert backend.nvml_pid == HOST_PID
    assert "appeared" in backend.nvml_pid_how
    # The context: what NVML attributes to the process beyond its allocator (cuDNN, cuBLAS included).
    assert backend.context == 500 * MiB + 300 * MiB
    assert backend.context_method == METHOD_PROCESS
    mem, method = measure_memory(backend, proc, 1 * GiB)
    assert method.startswith(METHOD_PROCESS + ":") and str(HOST_PID) in method
    assert mem["total"] == gpu.procs[HOST_PID] == 500 * MiB + 300 * MiB + 8 * MiB + 1 * GiB
    assert mem["reserved_peak"] == 8 * MiB + 1 * GiB
    assert mem["total"] == mem["context"] + mem["reserved_peak"]  # the two methods agree on this fake


def test_same_pid_namespace_still_uses_the_own_pid() -> None:
    nv, (gpu,) = world()
    backend, proc = backend_in(gpu, nv, own_pid=4242, host_pid=4242)
    assert backend.nvml_pid == 4242 and "own PID" in backend.nvml_pid_how
    mem, method = measure_memory(backend, proc, 100 * MiB)
    assert method.startswith(METHOD_PROCESS) and mem["total"] == gpu.procs[4242]


def test_workers_starting_together_are_told_apart_by_a_marker_allocation() -> None:
    nv, (gpu,) = world()
    proc = FakeCudaProcess(gpu, HOST_PID)
    # A sibling worker creates its context at the same moment: two PIDs appear.
    proc.sibling = lambda: gpu.procs.__setitem__(HOST_PID + 1, 500 * MiB)
    backend, _ = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID, proc=proc)
    assert backend.nvml_pid == HOST_PID
    assert "marker" in backend.nvml_pid_how
    assert "allocate" in proc.log
    assert proc.reserved() == 8 * MiB  # the marker was given back
    assert backend.context == 800 * MiB


def test_a_context_made_before_the_backend_is_found_by_the_marker() -> None:
    nv, (gpu,) = world()
    gpu.procs[9001] = 2 * GiB
    proc = FakeCudaProcess(gpu, HOST_PID)
    proc.create_context()  # e.g. the test session touched CUDA first
    proc.log.clear()
    backend, _ = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID, proc=proc)
    assert backend.nvml_pid == HOST_PID and "marker" in backend.nvml_pid_how
    assert backend.pre_context_used is None  # "before the context" cannot be read any more


class _MarkerRace:
    """Two workers with adjacent PIDs place their markers at the same moment: NVML sees both grow."""

    def __init__(self, own: int, sibling: int) -> None:
        self.own, self.sibling = own, sibling
        self.figures = {own: 800 * MiB, sibling: 800 * MiB}
        self._reserved = 0

    # the NVML side
    def processes(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=p, used_bytes=b) for p, b in self.figures.items()]

    # the CUDA side
    def reserved(self) -> int:
        return self._reserved

    def allocate(self, nbytes: int) -> object:
        self._reserved += nbytes
        self.figures[self.own] += nbytes
        self.figures[self.sibling] += marker_bytes(self.sibling)  # its own marker, placed meanwhile
        return object()

    def synchronize(self) -> None:
        pass

    def empty_cache(self) -> None:
        pass


@pytest.mark.parametrize("sibling", [HOST_PID + 1, HOST_PID - 1, HOST_PID + 15])
def test_a_sibling_with_an_adjacent_pid_placing_its_marker_too_is_told_apart(sibling: int) -> None:
    race = _MarkerRace(HOST_PID, sibling)
    assert abs(marker_bytes(HOST_PID) - marker_bytes(sibling)) >= 4 * MiB
    assert identify_by_marker(race, race, {HOST_PID, sibling}, HOST_PID) == HOST_PID  # type: ignore[arg-type]


def test_no_pid_is_guessed_when_nothing_is_certain() -> None:
    nv, (gpu,) = world()
    proc = FakeCudaProcess(gpu, HOST_PID)
    proc.sibling = lambda: gpu.procs.__setitem__(HOST_PID + 1, 500 * MiB)
    gpu.figures = "none"  # no per-process figures: the marker cannot tell either
    backend, _ = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID, proc=proc)
    assert backend.nvml_pid is None


# -- item 2: zero and missing per-process figures ----------------------------------------------------


@pytest.mark.parametrize("figures", ["zero", "none"])
def test_zero_or_missing_figures_fall_back_to_the_device_level(figures: str) -> None:
    nv, (gpu,) = world()
    gpu.figures = figures
    backend, proc = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID)
    assert backend.nvml_pid == HOST_PID  # found, but its figures are useless
    assert backend.context == 800 * MiB and backend.context_method == METHOD_DEVICE
    mem, method = measure_memory(backend, proc, 1 * GiB)
    assert mem["total"] != 0
    assert method.startswith(METHOD_DEVICE + ":") and "the only process on the GPU" in method
    assert mem["total"] == 500 * MiB + 300 * MiB + 8 * MiB + 1 * GiB


def test_the_device_level_says_that_other_processes_present_all_along_are_counted_too() -> None:
    nv, (gpu,) = world()
    gpu.figures = "zero"
    gpu.procs[9001] = 2 * GiB  # another worker on the GPU from the start: it neither comes nor goes
    backend, proc = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID)
    mem, method = measure_memory(backend, proc, 1 * GiB)
    assert method.startswith(METHOD_DEVICE + ":")
    assert "1 other process on the GPU neither came nor went, but what it allocated meanwhile is counted" in method
    assert "the only process" not in method


def test_device_level_is_refused_when_another_process_came() -> None:
    nv, (gpu,) = world()
    gpu.figures = "zero"
    backend, proc = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID)
    gpu.procs[9001] = 3 * GiB  # another job starts during the run
    mem, method = measure_memory(backend, proc, 1 * GiB)
    assert method.startswith(METHOD_CONTEXT + ":")
    assert mem["total"] == backend.context + mem["reserved_peak"]


def test_device_level_when_nvml_cannot_list_processes() -> None:
    nv, (gpu,) = world()
    gpu.list_processes = False  # e.g. MIG in a container
    backend, proc = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID)
    assert backend.nvml_pid is None and "cannot list" in backend.nvml_pid_how
    mem, method = measure_memory(backend, proc, 256 * MiB)
    assert method.startswith(METHOD_DEVICE) and "unchecked" in method
    assert mem["total"] == 500 * MiB + 300 * MiB + 8 * MiB + 256 * MiB


def test_implausible_per_process_figure_is_not_used() -> None:
    nv, (gpu,) = world()
    backend, proc = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID)
    backend.before_measure()
    probe = backend.memory_probe()
    probe.start()
    proc.run_model(1 * GiB)
    gpu.procs[HOST_PID] = 100 * MiB  # below what the allocator alone reserved: not this process's figure
    mem, method = probe.stop()
    assert not method.startswith(METHOD_PROCESS)


def test_nothing_known_is_unavailable() -> None:
    nv, (gpu,) = world()
    gpu.list_processes = False
    proc = FakeCudaProcess(gpu, HOST_PID)
    proc.create_context()  # existed before: no pre-context figure either
    backend, _ = backend_in(gpu, nv, own_pid=CONTAINER_PID, host_pid=HOST_PID, proc=proc)
    assert backend.context is None
    mem, method = measure_memory(backend, proc, 10 * MiB)
    assert mem["total"] is None and method.startswith(METHOD_UNAVAILABLE)
    assert mem["allocator_peak"] is not None and mem["reserved_peak"] == 8 * MiB + 10 * MiB


def test_nvml_figures_of_zero_or_not_available_count_as_none() -> None:
    nv, (gpu,) = world()
    gpu.procs = {1: 0, 2: 700 * MiB}
    nvml = Nvml(gpu, nv)
    assert nvml.processes() == [NvmlProcess(1, None), NvmlProcess(2, 700 * MiB)]
    assert nvml.process_used_bytes(1) is None
    gpu.figures = "none"
    assert nvml.process_used_bytes(2) is None


@pytest.mark.parametrize(
    ("value", "floor", "ceiling", "expected"),
    [
        (0, 0, None, None),
        (None, 0, None, None),
        (-5, 0, None, None),
        (2**64 - 1, 0, None, None),
        (True, 0, None, None),
        ("12", 0, None, 12),
        (100, 200, None, None),
        (100, 0, 50, None),
        (100, 100, 100, 100),
    ],
)
def test_plausible_bytes(value: object, floor: int, ceiling: int | None, expected: int | None) -> None:
    assert plausible_bytes(value, floor, ceiling) == expected


# -- item 3: the context holds cuDNN and cuBLAS ------------------------------------------------------


def test_context_is_read_after_cudnn_and_cublas_are_loaded() -> None:
    nv, (gpu,) = world()
    backend, proc = backend_in(gpu, nv, own_pid=HOST_PID, host_pid=HOST_PID)
    assert proc.log.index("create_context") < proc.log.index("load_libraries")
    assert backend.context == 500 * MiB + 300 * MiB  # libraries in, the allocator's workspace out
    assert backend.describe()["cuda_context_bytes"] == 800 * MiB


def test_fallback_total_agrees_with_nvml_for_the_first_model_too() -> None:
    """``context + reserved_peak`` counts cuDNN and cuBLAS even when the first model loads them."""
    nv, (gpu,) = world()
    backend, proc = backend_in(gpu, nv, own_pid=HOST_PID, host_pid=HOST_PID)
    backend.before_measure()
    probe = backend.memory_probe()
    probe.start()
    proc.run_model(1 * GiB)
    nvml_total = gpu.procs[HOST_PID]
    gpu.figures = "zero"
    gpu.procs[9001] = 1 * GiB  # and the device-level method is refused: the fallback gives total
    mem, method = probe.stop()
    assert method.startswith(METHOD_CONTEXT)
    assert mem["total"] == nvml_total


def test_find_nvml_pid_without_nvml_or_processes() -> None:
    assert find_nvml_pid(None, object(), 1, None, None, False) == (None, "no NVML device")
    nv, (gpu,) = world()
    nvml = Nvml(gpu, nv)
    pid, how = find_nvml_pid(nvml, object(), 1, [], [], False)
    assert pid is None and "no process" in how
