"""The measurement room without pytest: :class:`pytest_dnnbench.runner.Runner` from a registry model to a record,
the same record an isolated child makes, and its own exceptions for what ends a test."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from helpers import ORT_CUDA_LOAD_FAILURE_LOG, as_record, fake_cuda_sessions

from pytest_dnnbench.constraints import Constraints, check_constraints
from pytest_dnnbench.isolated import IsolatedModel, make_request, run_isolated, timeout_for
from pytest_dnnbench.measure.timing import SamplingPolicy
from pytest_dnnbench.record import Record
from pytest_dnnbench.registry import REGISTRY, Registry
from pytest_dnnbench.runner import BenchCall, MeasurementFailed, OutOfMemory, Runner, Skip, runtime_memory_on_gpu
from pytest_dnnbench.settings import Settings

FAST = SamplingPolicy(min_samples=3, max_time_s=0.3, warmup_min=1)
#: What differs between two measurements of one model by nature: timings, memory (a floor + delta in process,
#: a direct peak in a child), the machine's load, the build's time, and where it ran.
MEASURED = {
    *("latency_ms", "per_image_ms", "fps", "energy"),
    *("memory_bytes", "memory_method", "load", "build_s", "isolation"),
}


@pytest.fixture
def runner() -> Iterator[Runner]:
    settings = Settings(device="cpu", policy=FAST, calm_wait_s=0.0)
    notes: list[str] = []
    made = Runner(settings, REGISTRY, lambda: "cpu", notes, lambda: [])
    try:
        yield made
    finally:
        made.close()


def test_the_runner_and_an_isolated_child_make_the_same_record(runner: Runner) -> None:
    spec = REGISTRY.get("squeezenet1_1")
    with runner.built(spec) as module:
        measured = runner.measure(BenchCall("t::x", module, None, 2, None, None, "eager"))
    assert measured.spec is spec and measured.module is module
    here = measured.record.to_json()
    answer, environment = run_isolated(
        make_request(spec, runner.bench_settings(), 2, "t::x"), timeout_for(runner.bench_settings())
    )
    there = Record.from_json(answer).to_json()
    assert environment is not None and environment["device"] == "cpu"
    assert there["isolation"] == "process" and here.get("isolation") is None
    assert set(here) - {"isolation"} == set(there) - {"isolation"}
    differ = {k for k in here if k not in MEASURED and here[k] != there.get(k)}
    assert differ == set(), {k: (here[k], there.get(k)) for k in differ}
    for record in (here, there):
        assert record["latency_ms"]["median"] > 0 and record["memory_bytes"]["total"] > record["memory_bytes"]["model"]
    assert here["memory_method"].startswith("runtime floor") and there["memory_method"].startswith("direct: ")


def test_a_module_of_ones_own_needs_an_input_size_and_gets_the_custom_source(runner: Runner) -> None:
    import torch

    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    with pytest.raises(TypeError, match=r"needs input_size=\(channels, height, width\)"):
        runner.measure(BenchCall("t::own", module, None, 1, None, None, "eager"))
    measured = runner.measure(BenchCall("t::own", module, (3, 2, 2), 4, "mine", None, "eager"))
    record = measured.record
    assert measured.spec is None and record.model == "mine" and record.source == "custom"
    assert record.batch_size == 4 and record.test == "t::own" and record.macs == 4 * 12 * 3 // 4


def test_a_model_that_cannot_be_built_here_is_a_skip_not_a_pytest_outcome(runner: Runner) -> None:
    from pytest_dnnbench.registry import ModelUnavailable

    def ghost() -> object:
        raise ModelUnavailable("ghost comes from a library that is not installed here: pip install ghost")

    registry = Registry()
    registry.register("ghost", ghost, input_size=(3, 8, 8))
    with pytest.raises(Skip, match="pip install ghost"), runner.built(registry.get("ghost")):
        pass


def test_out_of_memory_while_measuring_is_the_runners_own_skip(runner: Runner) -> None:
    import torch

    class Greedy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(OutOfMemory, match=r"out of memory at batch 8 on cpu.*Tried to allocate 20\.00 GiB"):
        runner.measure(BenchCall("t::g", Greedy(), (3, 4, 4), 8, None, None, "eager"))
    assert issubclass(OutOfMemory, Skip)


def test_a_failed_isolated_measurement_is_the_runners_own_failure(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_dnnbench.isolated as isolated

    def crashed(request: object, timeout_s: float) -> object:
        raise isolated.IsolationError("isolated measurement of squeezenet1_1 at batch 1: the process crashed")

    monkeypatch.setattr(isolated, "run_isolated", crashed)
    call = BenchCall("t::i", IsolatedModel(REGISTRY.get("squeezenet1_1")), None, 1, None, None, "eager")
    with pytest.raises(MeasurementFailed, match="the process crashed"):
        runner.measure(call)


def test_measuring_again_says_why_and_keeps_the_first_median(runner: Runner) -> None:
    import torch

    module = torch.nn.Conv2d(3, 4, 3)
    call = BenchCall("t::a", module, (3, 8, 8), 1, None, None, "eager")
    first = runner.measure(call).record
    first = dataclasses.replace(first, load={"busy": True, "reasons": ["another process used 90 % of a core"]})
    again = runner.measure_again(first, call).record
    retry = (again.load or {})["retry"]
    assert retry["first_median_ms"] == first.latency.median
    assert retry["first_reasons"] == ["another process used 90 % of a core"]
    assert retry["waited_s"] >= 0 and isinstance(retry["calm"], bool)


# -- ONNX Runtime on CUDA ------------------------------------------------------------------------------------

MiB = 2**20


def test_onnxruntime_on_cuda_is_proven_once_after_the_backend_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proof's session comes after the backend (whose CUDA context must be the process's first), once."""
    asked = fake_cuda_sessions(monkeypatch, started=["CPUExecutionProvider"], log=ORT_CUDA_LOAD_FAILURE_LOG)
    sessions_when_the_backend_was_made: list[int] = []
    monkeypatch.setattr(Runner, "backend", lambda self: sessions_when_the_backend_was_made.append(asked["made"]))
    runner = Runner(Settings(device="cuda"), REGISTRY, lambda: "cuda:0", [], lambda: [])
    assert runner.mode_proof("eager") is None and runner.mode_proof("compile") is None
    assert sessions_when_the_backend_was_made == [] and asked["made"] == 0  # nothing to prove for them
    problem = runner.mode_proof("onnxruntime")
    assert problem is not None and "on cuda:0: it lacks libcublasLt.so.12" in problem
    assert sessions_when_the_backend_was_made == [0] and asked["made"] == 1
    assert runner.mode_proof("onnxruntime") == problem and asked["made"] == 1
    on_cpu = Runner(Settings(device="cpu"), REGISTRY, lambda: "cpu", [], lambda: [])
    assert on_cpu.mode_proof("onnxruntime") is None and asked["made"] == 1


def test_onnxruntime_on_cuda_records_no_memory_and_gates_nothing_on_the_process_figure() -> None:
    """The process's NVML figure (torch's context + the eager model + ONNX Runtime) is kept as process_total;
    total and the allocator's figures are null with the reason, which the memory checks repeat."""
    record = as_record(
        {
            "model": "tiny",
            "batch_size": 1,
            "device": "cuda:0",
            "mode": "onnxruntime",
            "memory_bytes": {
                "total": 3000 * MiB,
                "allocator_peak": 2 * MiB,
                "reserved_peak": 20 * MiB,
                "context": 500 * MiB,
            },
            "memory_method": "nvml-process: NVML's figure for this process after the timed calls (NVML PID 48213: new)",
        }
    )
    out = runtime_memory_on_gpu(record)
    assert out.memory == {
        "total": None,
        "allocator_peak": None,
        "reserved_peak": None,
        "context": 500 * MiB,
        "process_total": 3000 * MiB,
    }
    why = (
        "onnxruntime on CUDA allocates its GPU memory itself, outside torch's allocator, and this process's GPU "
        "figure (process_total; nvml-process: NVML's figure for this process after the timed calls (NVML PID "
        "48213: new)) also holds torch's CUDA context and the eager model kept for the output check"
    )
    assert out.memory_method == f"not measured: {why}"
    limits = Constraints(
        max_memory=1000 * MiB,
        max_memory_source="--dnn-max-memory=1000MiB",
        max_model_memory=1 * MiB,
        max_model_memory_source="--dnn-max-model-memory=1MiB",
    )
    memory, model_memory = check_constraints(out, limits)
    assert memory.metric == "memory" and memory.measured is None
    assert memory.message == (
        f"memory of tiny at batch 1: no total memory figure was measured ({why}), so the limit 1.05 GB (0.977 GiB) "
        "(--dnn-max-memory=1000MiB) cannot be verified"
    )
    assert model_memory.metric == "model_memory" and model_memory.measured is None
    assert model_memory.message.startswith(f"model memory of tiny at batch 1: not measured ({why}), so the limit")
    # the eager rows keep their measured figure, checked as before
    (eager,) = check_constraints(as_record({**record.to_json(), "mode": "eager"}), Constraints(max_memory=1000 * MiB))
    assert eager.measured == 3000 * MiB and "> limit" in eager.message
