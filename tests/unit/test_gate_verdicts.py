"""The latency verdict: ratio and resolution shown, the hard ceiling, busy and insufficient measurements
are inconclusive, noisy baselines said (pure: gate.py, no torch)."""

from __future__ import annotations

import json
import math

from helpers import as_record
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dnnbench.baseline_save import merge_records
from pytest_dnnbench.baseline_store import platform_from_record
from pytest_dnnbench.gate import (
    NOISY_FACTOR,
    BaselineSource,
    Tolerances,
    baseline_checks,
    compare_entry,
    compare_latency,
    failure_message,
)

QUIET_ROUNDS = [10.0, 10.1, 9.95, 10.05, 10.02]
#: Rounds recorded while the machine was busy: medians from 10 to 34 ms.
WIDE_ROUNDS = [10.0, 14.0, 22.0, 34.0, 12.0]


def _samples(median: float, n: int = 30) -> list[float]:
    return [median * (1 + 0.002 * ((i % 5) - 2)) for i in range(n)]


def _record(median: float, **extra: object) -> dict[str, object]:
    lat: dict[str, object] = {"median": median, "samples": _samples(median), "n": 30}
    lat.update(extra.pop("latency", {}))  # type: ignore[arg-type]
    rec: dict[str, object] = {"model": "m", "batch_size": 1, "latency_ms": lat}
    rec.update(extra)
    return rec


def _entry(medians: list[float], busy: tuple[int, ...] = ()) -> dict[str, object]:
    rounds = [{"median_ms": m, **({"busy": True} if i in busy else {})} for i, m in enumerate(medians)]
    return {"model": "m", "batch_size": 1, "rounds": rounds}


DEFAULTS = Tolerances()


def _latency(record: dict[str, object], entry: dict[str, object], tol: Tolerances = DEFAULTS, strict: bool = False):
    return next(c for c in compare_entry(as_record(record), entry, tol, strict) if c.metric == "latency")


def test_a_quiet_three_times_slower_test_fails_whatever_the_baseline_spread() -> None:
    v = compare_latency(WIDE_ROUNDS, _samples(3 * 14.0), 0.10, 0.001, max_slowdown=2.0)
    assert not v.regressed  # the spread alone would let it through
    assert v.over_ceiling and v.failed
    check = _latency(_record(42.0), _entry(WIDE_ROUNDS))
    assert not check.passed and check.get("verdict") == "fail"
    assert "hard ceiling of 2x" in check.message and "--dnn-max-slowdown" in check.message


def test_the_ceiling_is_per_test_configurable() -> None:
    check = _latency(_record(42.0), _entry(WIDE_ROUNDS), Tolerances(max_slowdown=4.0))
    assert check.passed and check.get("noisy") is True


def test_every_comparison_shows_ratio_and_resolution() -> None:
    check = _latency(_record(10.3), _entry(QUIET_ROUNDS))
    assert check.passed and check.get("verdict") == "pass"
    assert math.isclose(float(check.get("ratio")), 10.3 / 10.02, rel_tol=1e-9)
    resolution = float(check.get("resolution"))
    # Tight rounds: the comparison resolves the tolerance itself, or close to it.
    assert 0.10 <= resolution < 0.2
    assert f"resolves +{100 * resolution:.0f} %" in check.message
    assert check.get("noisy") is False


def test_a_noisy_baseline_is_said_with_the_fix() -> None:
    check = _latency(_record(14.0), _entry(WIDE_ROUNDS))
    assert check.passed and check.get("noisy") is True
    assert "too noisy" in check.message and "quiet machine" in check.message


def test_a_busy_measurement_is_inconclusive_even_over_the_ceiling() -> None:
    rec = _record(50.0, load={"busy": True, "reasons": ["CPU pressure 40 % (> 10 %)"]})
    check = _latency(rec, _entry(QUIET_ROUNDS))
    assert check.get("verdict") == "inconclusive" and check.get("inconclusive") is True
    assert check.passed  # passes with a note ...
    assert "busy machine" in check.message and "CPU pressure 40 %" in check.message
    strict = _latency(rec, _entry(QUIET_ROUNDS), strict=True)
    assert not strict.passed  # ... and fails under --dnn-strict
    assert strict.get("verdict") == "inconclusive"


def test_busy_baseline_rounds_are_left_out_or_make_the_verdict_inconclusive() -> None:
    # One busy round among quiet ones: left out, so a +25 % slowdown is seen.
    mixed = _entry(QUIET_ROUNDS + [30.0], busy=(5,))
    check = _latency(_record(12.5), mixed)
    assert not check.passed and check.get("verdict") == "fail"
    assert "1 busy baseline round(s) left out" in check.message
    # Every round busy: nothing to trust.
    all_busy = _entry(WIDE_ROUNDS, busy=(0, 1, 2, 3, 4))
    check = _latency(_record(21.0), all_busy)
    assert check.get("verdict") == "inconclusive" and "every baseline round" in check.message


def test_too_few_samples_never_pass_silently() -> None:
    rec = _record(10.1, latency={"insufficient": True, "n": 2, "samples": [10.0, 10.2]})
    check = _latency(rec, _entry(QUIET_ROUNDS))
    assert check.get("verdict") == "inconclusive" and "only 2 sample(s)" in check.message
    # ... but a clear failure is still a failure.
    slow = _record(30.0, latency={"insufficient": True, "n": 2, "samples": [30.0, 30.2]})
    assert _latency(slow, _entry(QUIET_ROUNDS)).get("verdict") == "fail"


def test_require_baseline_fails_a_noisy_one(tmp_path) -> None:
    rec = {**_record(14.0), "device": "cpu", "macs": 1, "params": 1}
    platform = platform_from_record(as_record(rec))
    doc = None
    for m in WIDE_ROUNDS:  # five rounds, as five --dnn-save-baseline runs would add them
        doc = merge_records(
            doc, [as_record(r) for r in [{**rec, "latency_ms": {"median": m, "samples": _samples(m)}}]], platform
        )
    path = tmp_path / "base.json"
    path.write_text(json.dumps(doc))
    checks, info = baseline_checks(BaselineSource(str(path), tmp_path, require=True), as_record(rec), Tolerances())
    assert info["status"] == "compared"
    noise = [c for c in checks if c.metric == "noise"]
    assert len(noise) == 1 and not noise[0].passed and "too noisy" in noise[0].message
    # Not a regression: listed apart from regressions.
    message = failure_message(as_record(rec), [], [c for c in checks if not c.passed], info)
    assert "no usable baseline (not a regression)" in message and "baseline regression" not in message
    relaxed, _ = baseline_checks(BaselineSource(str(path), tmp_path, require=False), as_record(rec), Tolerances())
    assert not [c for c in relaxed if c.metric == "noise"]
    assert all(c.passed for c in relaxed)


@settings(max_examples=200, deadline=None)
@given(
    rounds=st.lists(st.floats(min_value=1.0, max_value=100.0), min_size=1, max_size=12),
    ratio=st.floats(min_value=0.2, max_value=10.0),
    tolerance=st.floats(min_value=0.0, max_value=0.5),
    ceiling=st.floats(min_value=1.01, max_value=5.0),
)
def test_verdict_invariants(rounds: list[float], ratio: float, tolerance: float, ceiling: float) -> None:
    import statistics

    base = statistics.median(rounds)
    v = compare_latency(rounds, _samples(base * ratio), tolerance, 0.001, max_slowdown=ceiling)
    # Anything over the ceiling fails; a failure is always slower than the tolerance allows.
    assert v.failed == (v.regressed or v.ratio > ceiling)
    if v.failed:
        assert v.ratio > 1 + tolerance or v.ratio > ceiling
    # The resolution is at least the tolerance and never above the ceiling.
    assert 1 + min(tolerance, ceiling - 1) - 1e-12 <= v.resolvable <= ceiling + 1e-12
    # A slowdown beyond what the comparison resolves is flagged.
    if v.ratio > v.resolvable * 1.000001:
        assert v.failed
    assert v.noisy == (v.baseline_resolvable > 1 + NOISY_FACTOR * tolerance)
