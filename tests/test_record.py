"""The typed record: JSON in and out unchanged, unknown keys kept, nothing shared by reference."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.record import RECORD_KEYS, Accuracy, Check, Latency, Record

LEGACY = Path(__file__).parent / "data" / "legacy-0.1.0" / "results.json"

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
    return json.loads(LEGACY.read_text())["records"][0]


@given(
    extra=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k not in Record._KEYS), json_values, max_size=4
    )
)
def test_unknown_keys_survive_a_round_trip_in_their_place(extra: dict) -> None:
    rec = legacy_record()
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
    out["accuracy"]["top1"] = 1.0
    again = rec.to_json()
    assert again == legacy_record()
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
    assert isinstance(rec.accuracy, Accuracy) and rec.accuracy.status in ("reference", "unavailable")
    assert all(isinstance(c, Check) for c in rec.checks) and rec.checks[0].kind == "constraint"
    assert rec.input_size == (3, 224, 224)
    assert all(c.passed for c in rec.checks)


def test_a_non_object_is_refused_with_the_part_named() -> None:
    with pytest.raises(TypeError, match="Latency: expected a JSON object"):
        Latency.from_json([1, 2])  # type: ignore[arg-type]
