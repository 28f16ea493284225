"""The typed record: JSON in and out unchanged, unknown keys kept, nothing shared by reference; a record of
an earlier version read in this version's shape."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.record import (
    RECORD_KEYS,
    Accuracy,
    Check,
    Latency,
    MeasuredAccuracy,
    Record,
    ReferenceAccuracy,
    unavailable_accuracy,
)
from pytest_dnnbench.results import load_results

LEGACY = Path(__file__).parents[1] / "data" / "legacy-0.1.0" / "results.json"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def legacy_record() -> dict:
    """A record as 0.1.0 wrote it (schema 1)."""
    return json.loads(LEGACY.read_text())["records"][0]


def current_record() -> dict:
    """The same record as this version reads (and writes) it."""
    return load_results(LEGACY)["records"][0]


@given(
    extra=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k not in Record._KEYS and k != "param_file_mb"),
        json_values,
        max_size=4,
    )
)
def test_unknown_keys_survive_a_round_trip_in_their_place(extra: dict) -> None:
    rec = current_record()
    mixed = dict(list(rec.items())[:5]) | extra | dict(list(rec.items())[5:])
    assert json.dumps(Record.from_json(mixed).to_json()) == json.dumps(mixed)


@given(details=st.dictionaries(st.sampled_from(["ratio", "baseline", "source", "stale", "x"]), json_values))
def test_checks_keep_their_details_in_order(details: dict) -> None:
    check = {"kind": "baseline", "metric": "latency", **details, "passed": False, "message": "m"}
    assert list(Check.from_json(check).to_json().items()) == list(check.items())


def test_a_built_record_has_the_documented_keys_in_order() -> None:
    rec = Record(model="m", batch_size=2, latency=Latency(median=4.0, samples=(4.0,)), test="t::x")
    out = rec.to_json()
    assert [k for k in out if k in RECORD_KEYS] == list(RECORD_KEYS)
    assert "complexity_error" not in out and "build_s" not in out and "extra" not in out  # only when set
    assert out["latency_ms"]["samples"] == [4.0] and out["input_size"] == []


def test_nothing_is_shared_by_reference() -> None:
    rec = Record.from_json(legacy_record())
    out = rec.to_json()
    out["memory_bytes"]["total"] = -1
    out["latency_ms"]["samples"].append(123.0)
    out["checks"][0]["passed"] = False
    out["accuracy"]["reference"]["top1"] = 1.0
    again = rec.to_json()
    assert again == current_record()
    source = legacy_record()
    rec2 = Record.from_json(source)
    source["memory_bytes"]["total"] = -1
    assert rec2.memory["total"] != -1


def test_records_are_immutable_and_replace_makes_a_new_one() -> None:
    rec = Record.from_json(legacy_record())
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.outcome = "failed"  # type: ignore[misc]
    done = dataclasses.replace(rec, outcome="failed", reason="because")
    assert rec.outcome == "passed" and done.to_json()["outcome"] == "failed"
    assert list(done.to_json()) == list(rec.to_json())  # same place for every key


def test_parts_are_typed() -> None:
    rec = Record.from_json(legacy_record())
    assert isinstance(rec.latency, Latency) and isinstance(rec.latency.samples, tuple)
    assert isinstance(rec.accuracy, Accuracy) and rec.accuracy.status == "reference"
    assert isinstance(rec.accuracy.reference, ReferenceAccuracy) and rec.accuracy.measured is None
    assert all(isinstance(c, Check) for c in rec.checks) and rec.checks[0].kind == "constraint"
    assert rec.input_size == (3, 224, 224)
    assert all(c.passed for c in rec.checks)


def test_a_non_object_is_refused_with_the_part_named() -> None:
    with pytest.raises(TypeError, match="Latency: expected a JSON object"):
        Latency.from_json([1, 2])  # type: ignore[arg-type]


def test_a_record_of_version_1_is_read_in_this_versions_shape() -> None:
    old = legacy_record()
    rec = Record.from_json(old)
    assert rec.param_file_mib == old["param_file_mb"] and rec.cudnn_benchmark is None  # a CPU record
    out = rec.to_json()
    assert list(out) == ["param_file_mib" if k == "param_file_mb" else k for k in old if k != "cudnn_benchmark"]
    assert out["accuracy"]["reference"] == old["accuracy"]["reference"]
    assert out["accuracy"]["measured"] is None and out["accuracy"]["reason"] == old["accuracy"]["reason"]
    assert Record.from_json(out).to_json() == out  # already current: unchanged


def test_accuracy_keeps_measured_and_reference_apart() -> None:
    both = Accuracy(
        measured=MeasuredAccuracy(top1=70.1, top5=89.0, n_images=500),
        reference=ReferenceAccuracy(top1=69.758, top5=89.078, source="torchvision"),
        reason=None,
    )
    assert both.status == "measured"
    assert both.to_json() == {
        "measured": {"top1": 70.1, "top5": 89.0, "n_images": 500},
        "reference": {"top1": 69.758, "top5": 89.078, "source": "torchvision"},
        "reason": None,
    }
    assert Accuracy.from_json(both.to_json()) == both
    published = Accuracy(reference=ReferenceAccuracy(top1=69.758, top5=None, source="x"), reason="random weights")
    assert published.status == "reference" and published.measured is None
    assert unavailable_accuracy("no data").to_json() == {"measured": None, "reference": None, "reason": "no data"}
    assert unavailable_accuracy("no data").status == "unavailable"
    # A flat accuracy of version 1 is split when it is read.
    flat = {"top1": 58.178, "top5": 80.624, "status": "reference", "source": "meta", "n_images": None, "unit": "%"}
    assert Accuracy.from_json(flat).to_json() == {
        "measured": None,
        "reference": {"top1": 58.178, "top5": 80.624, "source": "meta"},
        "unit": "%",
    }


def test_upgrades_are_idempotent_on_every_shipped_file_of_version_1() -> None:
    import copy

    from pytest_dnnbench.upgrade import upgrade_accuracy, upgrade_environment, upgrade_record

    data = Path(__file__).parents[1] / "data"
    for path in (data / "legacy-0.1.0" / "results.json", data / "legacy-0.1.0-70cccd0" / "results.json"):
        doc = json.loads(path.read_text())
        env = upgrade_environment(doc["environment"])
        assert upgrade_environment(env) == env and "cuda" not in env and "torch_cuda_build" in env
        for old in doc["records"]:
            before = copy.deepcopy(old)
            new = upgrade_record(old)
            assert old == before  # the input is not changed
            assert upgrade_record(new) == new and upgrade_accuracy(new["accuracy"]) == new["accuracy"]
            assert Record.from_json(new).to_json() == new
