"""Records and runs as a pytest run writes them into a results store, for the store's, history's and
dashboard's tests (one home: tests/unit/test_store.py, tests/e2e/test_dashboard.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pytest_dnnbench.measure.bench import BenchSettings, Measurement
from pytest_dnnbench.measure.flops import Complexity
from pytest_dnnbench.measure.stats import summarize
from pytest_dnnbench.measure.timing import TimingResult
from pytest_dnnbench.record import make_record
from pytest_dnnbench.store.db import Store
from pytest_dnnbench.store.runmeta import RunMeta

MiB = 2**20
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def record(
    model: str = "resnet18",
    batch: int = 8,
    median: float = 10.0,
    *,
    busy: bool = False,
    insufficient: bool = False,
    **changes: Any,
) -> dict[str, Any]:
    """A record's JSON as a run makes it (``record.make_record``, as tests/unit/test_results.py builds them)."""
    samples = [median * f for f in (1.0, 1.1, 0.9, 1.05, 1.0, 0.95, 1.02, 1.01, 0.99, 1.0)]
    measurement = Measurement(
        timing=TimingResult(
            samples_ms=tuple(samples),
            warmup_ms=(3 * median, median),
            stats=summarize(samples),
            capped=False,
            stop_reason="target",
            elapsed_s=1.0,
            ci_target=0.01,
        ),
        memory={"total": 700 * MiB, "delta": 40 * MiB},
        memory_method="peak RSS",
        batch_size=batch,
        input_size=(3, 224, 224),
        load={"busy": busy, "reasons": ["a co-tenant"] if busy else []},
    )
    built = make_record(
        model=model,
        paper_name=None,
        source="torchvision",
        settings=BenchSettings(device="cpu", threads=2, seed=0),
        device_name="Some CPU",
        threads=2,
        measurement=measurement,
        complexity=Complexity(
            macs=1_814_000_000, macs_check=1_819_000_000, params=11_689_512, param_file_bytes=46_800_000
        ),
        test=f"test_models.py::test_model[{model}-bs{batch}]",
    )
    data = built.to_json()
    if insufficient:
        data["latency_ms"]["insufficient"] = True
    data.update(changes)
    return data


def meta(at: datetime = T0, commit: str = "a" * 40, branch: str | None = "main", **kw: Any) -> RunMeta:
    return RunMeta(started_at=at, git_commit=commit, git_branch=branch, host="bench-1", **kw)


def run_with(store: Store, records: list[dict[str, Any]], status: str | None = "complete", **kw: Any) -> int:
    run_id = store.begin_run(meta(**kw))
    for data in records:
        store.add_record(run_id, data)
    if status is not None:
        store.finish_run(run_id, status)
    return run_id
