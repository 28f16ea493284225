"""Bridge to pytest-benchmark: our samples become one of its benchmarks (when it is active)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from .state import get_state


def attach_to_benchmark_session(config: pytest.Config, node: pytest.Item, record: dict) -> None:
    """Put one record's samples into pytest-benchmark's session (when it is active)."""
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or getattr(bs, "disabled", True):
        return
    from pytest_benchmark.stats import Metadata

    callspec = getattr(node, "callspec", None)
    extra = {k: v for k, v in record.items() if k != "latency_ms"}
    extra["latency_ms"] = {k: v for k, v in record["latency_ms"].items() if k != "samples"}
    fixture = SimpleNamespace(
        name=node.name,
        fullname=node.nodeid,
        group=f"{record['model']}",
        param=callspec.id if callspec is not None else None,
        params=dict(callspec.params) if callspec is not None else None,
        extra_info=extra,
        cprofile_stats=None,
        has_error=False,
    )
    lat = record["latency_ms"]
    meta = Metadata(
        fixture,
        iterations=1,
        options={
            "timer": "cuda events" if str(record["device"]).startswith("cuda") else "perf_counter_ns",
            "min_rounds": get_state(config).options.policy.min_samples,
            "max_time": get_state(config).options.policy.max_time_s,
            "warmup": lat["warmup"],
            "disable_gc": False,
        },
    )
    for ms in lat["samples"]:
        meta.stats.update(ms / 1000.0)
    bs.benchmarks.append(meta)
