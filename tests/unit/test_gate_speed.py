"""The gate at the baseline's machine speed (gate.machine_speed): a process on a slower state of the machine is
no regression; a slower model is one, whatever state of the machine it met."""

from __future__ import annotations

import pytest
from helpers import as_record

from pytest_dnnbench.gate import Confirmation, Tolerances, compare_entry, judge_confirmation, machine_speed
from pytest_dnnbench.measure.reference import WORKLOAD

RELATIVES = [5.0, 5.05, 4.97, 5.02, 4.99]  # the model in units of the reference, five rounds
REF_MS = 0.4  # the reference workload's time in the rounds


def entry(workload: str = WORKLOAD, with_reference: bool = True) -> dict[str, object]:
    rounds = []
    for rel in RELATIVES:
        r: dict[str, object] = {"median_ms": rel * REF_MS}
        if with_reference:
            r["reference"] = {"workload": workload, "median_ms": REF_MS, "relative": rel}
        rounds.append(r)
    return {"model": "m", "batch_size": 1, "rounds": rounds}


def record(model_factor: float, machine_factor: float, n: int = 40) -> dict[str, object]:
    """A process whose machine runs ``machine_factor`` times slower and whose model does ``model_factor`` times
    the work: the samples and the reference both slow down with the machine."""
    wobble = [1 + 0.004 * ((i % 5) - 2) for i in range(n)]
    ref = [REF_MS * machine_factor * w for w in wobble]
    samples = [5.0 * REF_MS * model_factor * machine_factor * w for w in wobble]
    median = sorted(samples)[n // 2]
    return {
        "model": "m",
        "batch_size": 1,
        "latency_ms": {
            "median": median,
            "samples": samples,
            "n": n,
            "reference": {
                "workload": WORKLOAD,
                "median": sorted(ref)[n // 2],
                "relative": 5.0 * model_factor,
                "samples": ref,
            },
        },
    }


def latency(rec: dict[str, object], ent: dict[str, object], confirmation: Confirmation | None = None):
    checks = compare_entry(as_record(rec), ent, Tolerances(), confirmation=confirmation)
    return next(c for c in checks if c.metric == "latency")


@pytest.mark.parametrize("machine", [0.7, 1.0, 1.45, 1.6])
def test_a_slower_or_faster_state_of_the_machine_is_no_regression(machine: float) -> None:
    c = latency(record(1.0, machine), entry())
    assert c.passed and c.get("verdict") == "pass" and not c.get("suspicious")
    speed = c.get("machine_speed")
    assert speed["slower"] == pytest.approx(machine, rel=0.01)
    assert speed["raw_ratio"] == pytest.approx(machine, rel=0.02)
    assert c.get("ratio") == pytest.approx(1.0, abs=0.02)
    assert f"the reference workload ran {machine:.2f}x its time in the rounds" in c.message


def test_the_same_state_compared_as_measured_would_have_failed() -> None:
    """Without the reference in the rounds (an earlier version's baseline) the 1.45x process is a regression."""
    c = latency(record(1.0, 1.45), entry(with_reference=False))
    assert c.get("verdict") == "fail" and c.get("machine_speed") is None


@pytest.mark.parametrize("machine", [0.7, 1.0, 1.5])
def test_a_slower_model_fails_whatever_state_the_machine_was_in(machine: float) -> None:
    c = latency(record(1.5, machine), entry())
    assert c.get("verdict") == "fail" and not c.passed
    assert c.get("ratio") == pytest.approx(1.5, rel=0.02)


def test_another_workload_or_a_round_without_it_is_compared_as_measured() -> None:
    assert machine_speed(as_record(record(1.0, 1.0)), entry(workload="another")["rounds"]) is None  # type: ignore[arg-type]
    mixed = entry()
    del mixed["rounds"][0]["reference"]  # type: ignore[index]
    assert machine_speed(as_record(record(1.0, 1.0)), mixed["rounds"]) is None  # type: ignore[arg-type]


def test_fresh_processes_are_judged_at_the_rounds_speed_too() -> None:
    """A suspicious test (1.2x in units of the reference) confirmed by fresh processes whose relative latencies
    say 1.2x, while their raw medians (a faster state of the machine) say 0.8x."""
    rec = record(1.2, 1.0)
    fresh = Confirmation(medians=(1.6, 1.6, 1.61, 1.59), relatives=(6.0, 6.01, 5.99, 6.02))
    c = latency(rec, entry(), fresh)
    assert c.get("suspicious") and c.get("confirmation")["verdict"] == "fail"
    assert c.get("confirmation")["relatives"] == [6.0, 6.01, 5.99, 6.02]
    assert c.get("confirmation")["ratio"] == pytest.approx(1.2, rel=0.01)
    # The same raw medians without relatives: judged as measured, 0.8x: not confirmed.
    raw = latency(rec, entry(), Confirmation(medians=fresh.medians))
    assert raw.get("confirmation")["verdict"] != "fail"
    assert judge_confirmation([2.0] * 5, fresh.medians, 0.1, 0.01).outcome != "fail"


def test_an_entry_from_the_stores_runs_carries_their_machine_speed() -> None:
    """``--dnn-baseline=store``: each run's kept record gives its round the reference, as a saved round has it;
    a run kept without one (an earlier version) leaves the comparison as measured."""
    from datetime import datetime, timezone

    from pytest_dnnbench.store.db import Point
    from pytest_dnnbench.store_baseline import entry_from_points

    now = datetime(2026, 12, 7, tzinfo=timezone.utc)

    def point(i: int, rel: float) -> Point:
        figures = {"latency_median_ms": rel * REF_MS, "latency_samples": 40}
        return Point(
            i,
            i,
            "fp",
            now,
            now,
            "complete",
            f"c{i}",
            "main",
            False,
            "h",
            "t",
            "m",
            1,
            "eager",
            "fp32",
            "cpu",
            "cpu-x",
            "passed",
            False,
            False,
            False,
            figures,
        )

    points = [point(i, rel) for i, rel in enumerate(RELATIVES)]
    kept = {
        i: {
            "latency_ms": {
                "median": rel * REF_MS,
                "reference": {"workload": WORKLOAD, "median": REF_MS, "relative": rel},
            }
        }
        for i, rel in enumerate(RELATIVES)
    }
    rec = as_record(record(1.0, 1.45))
    ent = entry_from_points(rec, points, kept)
    assert [r["reference"] for r in ent["rounds"]] == [
        {"workload": WORKLOAD, "median_ms": REF_MS, "relative": rel} for rel in RELATIVES
    ]
    c = latency(record(1.0, 1.45), ent)
    assert c.get("verdict") == "pass" and c.get("machine_speed")["slower"] == pytest.approx(1.45, rel=0.01)
    del kept[2]["latency_ms"]["reference"]
    as_measured = latency(record(1.0, 1.45), entry_from_points(rec, points, kept))
    assert as_measured.get("machine_speed") is None and as_measured.get("verdict") == "fail"
