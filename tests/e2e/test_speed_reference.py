"""``--dnn-speed-reference`` end to end: on the CPU each timed call is followed by the reference workload; the
record, the saved round and the latency check carry it; ``off`` leaves it out; a bad value is a usage error."""

from __future__ import annotations

import json

import pytest
from helpers import FAST

from pytest_dnnbench.measure.reference import WORKLOAD

# --dnn-min-samples=1: a round with fewer samples than the minimum is not saved, and on a loaded machine FAST's
# 0.3 s budget can leave fewer than three.
RUN = [*FAST, "--dnn-threads=1", "--benchmark-disable", "-p", "no:cacheprovider", "--dnn-models=tiny",
       "--dnn-batch-sizes=1", "--dnn-confirm=0", "--dnn-calm-wait=0", "--dnn-min-samples=1"]  # fmt: skip


def latency_check(path) -> dict:
    rec = json.loads(path.read_text())["records"][0]
    return next(c for c in rec["checks"] if c["metric"] == "latency")


def test_the_reference_is_recorded_saved_and_compared(tiny_project: pytest.Pytester) -> None:
    p = tiny_project
    p.runpytest(*RUN, "--dnn-save-baseline=base.json", "--dnn-json=first.json").assert_outcomes(passed=1)
    lat = json.loads((p.path / "first.json").read_text())["records"][0]["latency_ms"]
    ref = lat["reference"]
    assert ref["workload"] == WORKLOAD and len(ref["samples"]) == lat["n"] > 0
    assert ref["median"] > 0 and ref["relative"] > 0
    lo, hi = ref["relative_ci"]
    assert lo <= ref["relative"] <= hi
    # The relative latency is the median of the per-call ratios, not the ratio of the medians.
    ratios = sorted(s / r for s, r in zip(lat["samples"], ref["samples"], strict=True))
    assert ref["relative"] == pytest.approx(ratios[len(ratios) // 2] if len(ratios) % 2 else
                                            (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2)  # fmt: skip
    (rnd,) = json.loads((p.path / "base.json").read_text())["entries"][0]["rounds"]
    assert rnd["reference"]["workload"] == WORKLOAD
    assert rnd["reference"]["relative"] == pytest.approx(ref["relative"], rel=1e-5)
    p.runpytest(*RUN, "--dnn-baseline=base.json", "--dnn-json=second.json")
    check = latency_check(p.path / "second.json")
    speed = check["machine_speed"]
    assert speed["workload"] == WORKLOAD and speed["reference_ms"] == pytest.approx(rnd["reference"]["median_ms"])
    assert "at the rounds' machine speed (the reference workload ran" in check["message"]


def test_off_measures_and_compares_as_measured(tiny_project: pytest.Pytester) -> None:
    p = tiny_project
    p.runpytest(*RUN, "--dnn-save-baseline=base.json").assert_outcomes(passed=1)
    p.runpytest(*RUN, "--dnn-baseline=base.json", "--dnn-json=off.json", "--dnn-speed-reference=off")
    rec = json.loads((p.path / "off.json").read_text())["records"][0]
    assert "reference" not in rec["latency_ms"]
    assert "machine_speed" not in latency_check(p.path / "off.json")


def test_a_bad_value_is_a_usage_error(tiny_project: pytest.Pytester) -> None:
    result = tiny_project.runpytest(*RUN, "--dnn-speed-reference=maybe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-speed-reference=maybe: neither on nor off*Give on or off*"])
