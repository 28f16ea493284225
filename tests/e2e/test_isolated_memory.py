"""--dnn-isolate=process on the CPU: the child's memory figure is its own peak RSS, measured directly in a
process that holds torch, the model's library, the model and the batch (FLOPs and the environment after)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_dnnbench.isolated import DIRECT_METHOD, _direct_memory, make_request, run_isolated, timeout_for
from pytest_dnnbench.measure.bench import BenchSettings, Measurement
from pytest_dnnbench.measure.floor import FloorCache, model_bytes
from pytest_dnnbench.measure.memory import read_status
from pytest_dnnbench.measure.timing import SamplingPolicy
from pytest_dnnbench.registry import REGISTRY, build_model

GIB = 2**30
#: A fraction of a second of timing (as helpers.FAST for a pytest run).
SETTINGS = BenchSettings(device="cpu", policy=SamplingPolicy(min_samples=3, max_time_s=0.3, warmup_min=1))


def test_the_isolated_childs_total_is_its_own_peak_above_the_floor_and_the_model() -> None:
    spec = REGISTRY.get("squeezenet1_1")
    with FloorCache() as floors:
        floors.start("torchvision")  # side by side with the child: it imports torch too
        record, environment = run_isolated(make_request(spec, SETTINGS, 1, "t"), timeout_for(SETTINGS))
        floor = floors.get("torchvision")
    assert floor.error is None and floor.bytes is not None
    mem = record["memory_bytes"]
    own = model_bytes(build_model(spec))
    assert mem["model"] == own
    assert floor.bytes + own <= mem["total"] <= floor.bytes + own + GIB
    assert mem["direct_total"] == mem["total"] == mem["process_total"]
    assert 0 < mem["delta"] < mem["total"] - floor.bytes - own + 1  # the forward pass's working set is in it
    assert mem["total"] < read_status()["VmRSS"]  # this pytest process holds much more
    assert record["memory_method"].startswith(
        f"{DIRECT_METHOD}peak RSS of an isolated process holding torch, torchvision, the model and the batch; peak RSS"
    )
    # what comes after the memory pass is still there
    assert record["macs"] and record["params"] == own // 4 and record["isolation"] == "process"
    assert environment is not None and environment["device"] == "cpu"


def _recording(calls: list[str], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return fn(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, ["measure", "_complexity", "_environment"]),
        # under --dnn-max-host-memory the counters are primed before the limit, as in process
        (8 * GIB, ["_prime_counters", "measure", "_complexity", "_environment"]),
    ],
    ids=["no-limit", "limit"],
)
def test_on_the_cpu_the_child_measures_before_counting_flops_and_collecting_the_environment(
    monkeypatch: pytest.MonkeyPatch, limit: int | None, expected: list[str]
) -> None:
    """The child's steps, run in this process with their order recorded (process-wide settings left alone)."""
    import pytest_dnnbench.isolated as iso
    import pytest_dnnbench.measure.bench as bench

    calls: list[str] = []
    monkeypatch.setattr(bench, "apply_process_settings", lambda settings: lambda: None)
    monkeypatch.setattr(bench, "measure", _recording(calls, "measure", bench.measure))
    for name in ("_prime_counters", "_complexity", "_environment"):
        monkeypatch.setattr(iso, name, _recording(calls, name, getattr(iso, name)))
    answer = iso._child(make_request(REGISTRY.get("squeezenet1_1"), SETTINGS, 1, "t", max_host_memory=limit))
    assert calls == expected
    method = answer["record"]["memory_method"]
    assert method.startswith(DIRECT_METHOD)
    assert ("FLOP counters primed" in method) is (limit is not None)


def _measurement(memory: dict[str, int | None]) -> Measurement:
    """A measurement with memory figures only (``_direct_memory`` reads nothing else)."""
    return Measurement(
        timing=None,  # type: ignore[arg-type]
        memory=memory,
        memory_method="peak RSS (x)",
        batch_size=1,
        input_size=(3, 8, 8),
    )


def test_direct_memory_names_what_the_process_held() -> None:
    m = _direct_memory(_measurement({"total": 100, "delta": 10}), None, 40)
    assert m.memory == {"total": 100, "delta": 10, "direct_total": 100, "process_total": 100, "model": 40}
    assert (
        m.memory_method
        == "direct: peak RSS of an isolated process holding torch, the model and the batch; peak RSS (x)"
    )
    primed = _direct_memory(_measurement({"total": 100, "delta": 10}), "timm", 40, counters_primed=True)
    assert primed.memory_method.startswith(
        "direct: peak RSS of an isolated process holding torch, timm, the model and the batch; "
        "the FLOP counters primed before it (--dnn-max-host-memory) count in it; "
    )
    unread = _measurement({"total": None, "delta": None})
    assert _direct_memory(unread, "timm", 40) is unread  # nothing measured: nothing claimed


def test_onednn_refusing_a_primitive_under_the_limit_is_out_of_memory() -> None:
    """Measured first, a model's first convolution meets the limit in oneDNN, whose message drops the reason
    (squeezenet1_1 under 20 to 45 MB here: "could not create a primitive"; from 60 MB on it runs)."""
    from pytest_dnnbench.isolated import _caused_by_memory, died_of_the_memory_limit

    assert _caused_by_memory(RuntimeError("could not create a primitive"))
    assert _caused_by_memory(RuntimeError("could not create a primitive descriptor for a convolution forward"))
    assert died_of_the_memory_limit(1, "Traceback ...\nRuntimeError: could not create a primitive\n")
