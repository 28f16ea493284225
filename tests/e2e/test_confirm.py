"""Confirm before failing: a suspicious latency is measured again in fresh processes (``--dnn-confirm``).

The process is the unit of comparison: the fresh processes' medians are judged against the baseline's
round medians (a rank test plus the tolerance). The end-to-end tests use a model whose forward pass
sleeps, so that its latency is set by the test, and slower in the pytest process alone where asked.
"""

from __future__ import annotations

import math
import os

import pytest
from helpers import FAST, as_record, load_json
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.baseline_store import load_baseline
from pytest_dnnbench.gate import (
    Confirmation,
    Tolerances,
    compare_entry,
    judge_confirmation,
)

# -- the judgement (pure) ---------------------------------------------------------------------------------

ROUNDS = [10.0, 10.2, 9.9, 10.1, 10.05]


def test_slower_fresh_processes_confirm_the_regression() -> None:
    v = judge_confirmation(ROUNDS, [13.0, 13.2, 12.9, 13.1], 0.10, 0.01)
    assert v.outcome == "fail" and v.reason.startswith("confirmed: 4 fresh processes measured 1.30x")
    assert v.p_value == pytest.approx(1 / math.comb(9, 4)) == v.min_p  # every new process slower than every round


def test_fresh_processes_within_the_limit_do_not_confirm() -> None:
    v = judge_confirmation(ROUNDS, [10.3, 9.8, 10.6, 10.2], 0.10, 0.01)
    assert v.outcome == "pass" and "not confirmed" in v.reason and "within the limit" in v.reason


def test_slower_but_not_significant_is_inconclusive_with_the_resolution() -> None:
    v = judge_confirmation(ROUNDS, [13.0, 9.0, 13.5, 12.0], 0.10, 0.01)  # one fast process: not significant
    assert v.outcome == "inconclusive" and "resolve +" in v.reason
    assert v.resolvable > 1.10


def test_a_whole_set_on_a_slower_state_of_the_machine_is_not_a_regression() -> None:
    # Measured with nothing changed (benchmarks/false_alarms.py confirm): 8 fresh processes 1.11x five rounds
    # saved back to back, every one slower than most rounds (p 0.0093): the machine had moved, not the code.
    rounds = [2.54, 2.47, 2.48, 2.51, 2.79]
    drifted = [2.76, 2.80, 2.75, 2.82, 2.78, 2.81, 2.74, 2.80]
    v = judge_confirmation(rounds, drifted, 0.10, 0.01, back_to_back=True)
    assert v.ratio > 1.10 and v.p_value < 0.01  # the rank test alone would confirm it
    assert v.outcome == "inconclusive", v
    assert "within what two states of this machine differ by" in v.reason and "saved back to back" in v.reason
    assert f"they resolve +{100 * (v.resolvable - 1):.0f} %" in v.reason and v.resolvable > 1.11
    # +50 % on the same rounds is confirmed, back to back or not; the era counts once for spaced rounds
    slowed = [m * 1.5 / 1.11 for m in drifted]
    assert judge_confirmation(rounds, slowed, 0.10, 0.01, back_to_back=True).outcome == "fail"
    spaced = judge_confirmation(rounds, drifted, 0.10, 0.01)
    assert spaced.resolvable < v.resolvable


def test_too_few_rounds_can_never_confirm_and_say_so() -> None:
    v = judge_confirmation([10.0, 10.1], [13.0, 13.2, 12.9], 0.10, 0.01)  # 1 / C(5, 3) = 0.1
    assert v.outcome == "inconclusive" and v.min_p == pytest.approx(0.1)
    assert "can never be significant" in v.reason and "save more baseline rounds" in v.reason


def test_a_median_within_the_limit_from_scattered_processes_does_not_clear_the_test() -> None:
    # Median 1.04x: within the 10 % limit; but these four processes spread over 30 %: their 90 % bound is not.
    v = judge_confirmation(ROUNDS, [10.0, 13.0, 9.0, 11.0], 0.10, 0.01)
    assert v.ratio <= 1.10 < v.upper
    assert v.outcome == "inconclusive" and "within the limit, but" in v.reason
    assert f"cannot rule out {v.upper:.2f}x (90 % bound)" in v.reason
    tight = judge_confirmation(ROUNDS, [10.4, 10.5, 10.45, 10.5], 0.10, 0.01)
    assert tight.ratio == pytest.approx(10.475 / 10.05) and tight.upper <= 1.10 and tight.outcome == "pass"


def test_more_processes_narrow_the_bound() -> None:
    few = judge_confirmation(ROUNDS, [10.9, 10.1, 10.6, 10.3], 0.10, 0.01)
    many = judge_confirmation(ROUNDS, [10.9, 10.1, 10.6, 10.3] * 2, 0.10, 0.01)
    assert many.upper < few.upper


def test_a_judgement_needs_two_fresh_processes() -> None:
    with pytest.raises(ValueError):
        judge_confirmation(ROUNDS, [13.0], 0.10, 0.01)


@given(
    st.lists(st.floats(min_value=1.0, max_value=100.0), min_size=3, max_size=12),
    st.lists(st.floats(min_value=1.0, max_value=100.0), min_size=2, max_size=8),
    st.floats(min_value=0.0, max_value=0.5),
)
def test_a_confirmed_regression_is_slower_beyond_the_tolerance(
    rounds: list[float], medians: list[float], tolerance: float
) -> None:
    v = judge_confirmation(rounds, medians, tolerance, 0.01)
    assert v.outcome in ("fail", "pass", "inconclusive")
    if v.outcome == "fail":
        assert v.ratio > 1 + tolerance and v.p_value < 0.01
    if v.outcome == "pass":
        assert v.ratio <= 1 + tolerance and v.upper <= 1 + tolerance
    if v.ratio <= 1 + tolerance < v.upper:
        assert v.outcome == "inconclusive"
    assert v.resolvable >= 1 + tolerance and v.p_value >= v.min_p - 1e-12


def _entry(medians: list[float]) -> dict[str, object]:
    return {
        "latency_ms": {"median": sorted(medians)[len(medians) // 2]},
        "rounds": [{"median_ms": m, "busy": False} for m in medians],
    }


def _record(median: float) -> dict[str, object]:
    samples = [median * (1 + 0.001 * (i % 5 - 2)) for i in range(200)]
    return {
        "model": "m",
        "batch_size": 1,
        "latency_ms": {"median": median, "samples": samples, "ci_median": [median * 0.999, median * 1.001], "n": 200},
    }


def _latency(record: dict[str, object], confirmation: Confirmation | None = None) -> dict[str, object]:
    checks = compare_entry(as_record(record), _entry(ROUNDS), Tolerances(), confirmation=confirmation)
    return next(c for c in checks if c.metric == "latency").to_json()


def test_a_slowdown_under_the_ceiling_asks_for_confirmation_and_its_verdict_follows_it() -> None:
    first = _latency(_record(13.0))
    assert first["suspicious"] and first["verdict"] == "fail"
    confirmed = _latency(_record(13.0), Confirmation((13.0, 13.1, 12.9, 13.2), None, 12.5))
    assert confirmed["verdict"] == "fail" and not confirmed["passed"]
    assert confirmed["confirmation"]["medians"] == [13.0, 13.1, 12.9, 13.2]
    assert confirmed["confirmation"]["seconds"] == 12.5 and confirmed["confirmation"]["verdict"] == "fail"
    assert "1.29x the baseline in this process; confirmed: 4 fresh processes measured 1.30x" in confirmed["message"]
    cleared = _latency(_record(13.0), Confirmation((10.0, 10.1, 9.9, 10.2)))
    assert cleared["verdict"] == "pass" and cleared["passed"] and "not confirmed" in cleared["message"]


def test_over_the_ceiling_or_within_the_limit_asks_for_no_confirmation() -> None:
    assert not _latency(_record(25.0))["suspicious"]  # 2.5x: fails at once
    assert not _latency(_record(10.2))["suspicious"]  # 1.01x: its bound is within the limit of tight rounds


#: Rounds that spread 1.3x, as a CPU's processes do: one process cannot resolve a 10 % tolerance.
WIDE = [9.0, 10.0, 11.5, 10.5, 8.9]


def test_slower_within_the_limit_where_one_process_cannot_resolve_it_asks_for_confirmation() -> None:
    def latency(median: float, confirmation: Confirmation | None = None) -> dict[str, object]:
        checks = compare_entry(as_record(_record(median)), _entry(WIDE), Tolerances(), confirmation=confirmation)
        return next(c for c in checks if c.metric == "latency").to_json()

    borderline = latency(10.5)  # 1.05x: within the limit, but a +25 % slowdown on a fast state looks the same
    assert borderline["verdict"] == "pass" and borderline["suspicious"], borderline
    # 0.98x: below the median, but with rounds this wide a +25 % slowdown on a fast state measures so too
    below = latency(9.8)
    assert below["verdict"] == "pass" and below["suspicious"], below
    assert not latency(8.0)["suspicious"]  # 0.8x: its bound clears it even with this spread
    again = latency(10.5, Confirmation((12.9, 13.1, 12.7, 13.3)))
    assert again["verdict"] == "fail" and "1.05x the baseline in this process; confirmed" in again["message"]


def test_a_confirmation_that_could_not_run_leaves_the_first_verdict_and_says_why() -> None:
    check = _latency(_record(13.0), Confirmation((), "mode compile is not measured in fresh processes"))
    assert check["verdict"] == "fail"
    assert "not confirmed in fresh processes: mode compile is not measured in fresh processes" in check["message"]


# -- end to end ---------------------------------------------------------------------------------------------

SLEEPY_MODULE = """
import os
import sys
import time

import torch


def sequence_ms():
    '''The i-th fresh process (the isolated child) to call takes the i-th of DNN_SEQUENCE_MS (comma-separated;
    the last one repeats); they are counted by the files they leave in DNN_SEQUENCE_DIR, one per PID.'''
    values = os.environ["DNN_SEQUENCE_MS"].split(",")
    if not sys.argv[0].endswith("isolated.py"):  # a memory child, say: not timed
        return float(values[-1])
    folder = os.environ["DNN_SEQUENCE_DIR"]
    mine = os.path.join(folder, str(os.getpid()))
    if not os.path.exists(mine):
        index = len(os.listdir(folder))
        with open(mine, "w") as f:
            f.write(str(index))
    with open(mine) as f:
        return float(values[min(int(f.read()), len(values) - 1)])


class Sleepy(torch.nn.Module):
    '''Sleeps DNN_SLEEP_MS per call; DNN_SLOW_MS instead in the process whose PID is DNN_SLOW_PID, and in
    the others as DNN_SEQUENCE_MS says where it is set.'''

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x):
        slow = os.environ.get("DNN_SLOW_PID") == str(os.getpid())
        if not slow and os.environ.get("DNN_SEQUENCE_MS"):
            time.sleep(sequence_ms() / 1000)
        else:
            time.sleep(float(os.environ.get("DNN_SLOW_MS" if slow else "DNN_SLEEP_MS", "3")) / 1000)
        return self.linear(x.flatten(1)[:, :4])


def sleepy():
    return Sleepy()
"""

#: The machine's load is said quiet in this process and in the fresh ones (their answers pass through here),
#: so that no verdict below depends on what else runs on the machine; latencies are measured for real.
SLEEPY_CONFTEST = """
import dataclasses
import importlib

import pytest


def pytest_dnnbench_register_models(registry, config):
    registry.register("sleepy", "sleepymodels:sleepy", input_size=(3, 4, 4))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    load = importlib.import_module("pytest_dnnbench.measure.load")
    isolated = importlib.import_module("pytest_dnnbench.isolated")
    real_load, real_run = load.load_between, isolated.run_isolated

    def load_between(*args, **kwargs):
        return dataclasses.replace(real_load(*args, **kwargs), busy=False, reasons=())

    def run_isolated(*args, **kwargs):
        answer, environment = real_run(*args, **kwargs)
        answer["load"] = {**(answer.get("load") or {}), "busy": False, "reasons": []}
        return answer, environment

    monkeypatch.setattr(load, "load_between", load_between)
    monkeypatch.setattr(isolated, "run_isolated", run_isolated)
"""

# A sleeping model's time does not follow the CPU's speed: compared as measured, not at the rounds' machine speed
# (tests/e2e/test_speed_reference.py and tests/unit/test_gate_speed.py test that).
RUN = [
    *FAST,
    "--dnn-threads=1",
    "--benchmark-disable",
    "-p",
    "no:cacheprovider",
    "--dnn-models=sleepy",
    "--dnn-speed-reference=off",
]
RUN += ["--dnn-batch-sizes=1", "--dnn-calm-wait=0"]


#: The five rounds' baseline file, saved by the first test that needs it (5 s) and given to the others:
#: they compare with the same rounds, measured on the same machine in this session.
_ROUNDS: dict[str, str] = {}


@pytest.fixture
def sleepy(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(sleepymodels=SLEEPY_MODULE)
    pytester.makeconftest(SLEEPY_CONFTEST)
    pytester.syspathinsert()
    monkeypatch.setenv("PYTHONPATH", str(pytester.path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("DNN_SLEEP_MS", "3")
    if "base.json" not in _ROUNDS:
        # Five rounds at 3 ms, each saved without a comparison with the rounds before it (--dnn-save-baseline=PATH
        # alone would compare with that file, and a round that looked slower than the ones before would be
        # measured again in --dnn-confirm's four fresh processes: 20-25 s each time, at random).
        for _ in range(5):
            pytester.runpytest(*RUN, "--dnn-save-baseline=base.json", "--dnn-baseline=none").assert_outcomes(passed=1)
        _ROUNDS["base.json"] = (pytester.path / "base.json").read_text()
    else:
        (pytester.path / "base.json").write_text(_ROUNDS["base.json"])
    return pytester


def _check(p: pytest.Pytester) -> dict[str, object]:
    (record,) = load_json(p.path / "out.json")["records"]
    return next(c for c in record["checks"] if c["metric"] == "latency")


def test_a_slowdown_of_one_process_alone_is_not_confirmed_and_passes(
    sleepy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DNN_SLOW_PID", str(os.getpid()))  # the pytester run is in this process
    monkeypatch.setenv("DNN_SLOW_MS", "4.5")
    result = sleepy.runpytest(*RUN, "--dnn-baseline=base.json", "--dnn-json=out.json", "--dnn-confirm=4")
    result.assert_outcomes(passed=1)
    check = _check(sleepy)
    assert check["verdict"] == "pass" and check["ratio"] > 1.3, check
    assert check["confirmation"]["verdict"] == "pass" and check["confirmation"]["ratio"] < 1.1
    assert len(check["confirmation"]["medians"]) == 4  # settled by the first four: none more
    assert "not confirmed: 4 fresh processes measured" in str(check["message"])


def test_fresh_processes_that_cannot_settle_it_are_followed_by_as_many_again(
    sleepy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("DNN_SLOW_PID", str(os.getpid()))
    monkeypatch.setenv("DNN_SLOW_MS", "4.5")
    # The first six fresh processes: five at 1.5x, one at 2 ms, faster than every round (3 ms): the rank test
    # cannot confirm it (p = 19/462 = 0.04); six more at 1.5x settle it (p = 19/6188 = 0.003). Both sets are
    # far from the rounds, so that a few per cent of drift since they were saved changes neither.
    monkeypatch.setenv("DNN_SEQUENCE_MS", "4.5,2,4.5,4.5,4.5,4.5,4.5")
    monkeypatch.setenv("DNN_SEQUENCE_DIR", str(tmp_path_factory.mktemp("sequence")))
    result = sleepy.runpytest(*RUN, "--dnn-baseline=base.json", "--dnn-json=out.json", "--dnn-confirm=6")
    result.assert_outcomes(failed=1)
    check = _check(sleepy)
    medians = check["confirmation"]["medians"]
    assert len(medians) == 12 and check["verdict"] == "fail", check
    # The fast process stays in the set: below every round (a 2 ms sleep against 3 ms ones; how far below
    # depends on how much the machine's timer overshoots a sleep, more on a loaded CI machine).
    (entry,) = load_baseline(sleepy.path / "base.json").entries.values()
    fastest_round = min(float(r["median_ms"]) for r in entry["rounds"])
    assert sum(m < fastest_round for m in medians) == 1, (medians, fastest_round)
    result.stdout.fnmatch_lines(["*confirmed: 12 fresh processes measured 1.*x the baseline*"])


def test_without_confirmation_the_first_process_decides(
    sleepy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DNN_SLOW_PID", str(os.getpid()))
    monkeypatch.setenv("DNN_SLOW_MS", "4.5")
    result = sleepy.runpytest(*RUN, "--dnn-baseline=base.json", "--dnn-json=out.json", "--dnn-confirm=0")
    result.assert_outcomes(failed=1)
    assert _check(sleepy).get("confirmation") is None


def test_a_bad_confirm_count_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*FAST, "--dnn-models=resnet18", "--dnn-confirm=50")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-confirm=50: must be at most 20*"])
