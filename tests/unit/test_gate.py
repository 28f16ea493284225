"""Baselines: platform key, loading and its errors, merging, atomic saving, and the decisions (pure logic)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from helpers import as_record
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_dnnbench import baseline_store as bl
from pytest_dnnbench import gate
from pytest_dnnbench.baseline_save import document_text, merge_records, round_from_record, save_document
from pytest_dnnbench.baseline_store import BaselineError, load_baseline, platform_key
from pytest_dnnbench.gate import Tolerances, compare_latency
from pytest_dnnbench.measure.stats import summarize, t_cdf, t_quantile
from pytest_dnnbench.upgrade import upgrade_document


def compare_entry(record, entry, tol):
    """The checks as the results file holds them (JSON form)."""
    return [c.to_json() for c in gate.compare_entry(as_record(record), entry, tol)]


def record(
    model="resnet18",
    bs=1,
    samples=None,
    median=None,
    macs=1000,
    params=10,
    total=900 * 2**20,
    device_name="AMD EPYC 7B13",
    threads=2,
    top1=None,
):
    samples = list(samples if samples is not None else [10.0, 10.1, 9.9, 10.2, 9.8, 10.0, 10.05, 9.95, 10.1, 9.9])
    st_ = summarize(samples)
    lat = st_.as_dict()
    lat.update({"samples": samples, "warmup": 3, "capped": False})
    if median is not None:
        lat["median"] = median
    acc = {
        "measured": {"top1": top1, "top5": None, "n_images": 100} if top1 is not None else None,
        "reference": None,
        "reason": None if top1 is not None else "not evaluated",
    }
    return {
        "model": model,
        "batch_size": bs,
        "device": "cpu",
        "device_name": device_name,
        "threads": threads,
        "precision": "fp32",
        "mode": "eager",
        "channels_last": False,
        "seed": 0,
        "input_size": [3, 224, 224],
        "latency_ms": lat,
        "per_image_ms": lat["median"] / bs,
        "fps": 1000 * bs / lat["median"],
        "memory_bytes": {"total": total, "delta": 1000},
        "macs": macs,
        "flops": 2 * macs,
        "params": params,
        "accuracy": acc,
        "checks": [],
    }


# -- platform key -------------------------------------------------------------------------------


def test_platform_key_is_documented_shape() -> None:
    assert (
        platform_key("cuda:0", "NVIDIA H100 80GB HBM3", 16, "fp32", "eager") == "cuda-nvidia-h100-80gb-hbm3-fp32-eager"
    )
    assert (
        platform_key("cpu", "Intel(R) Xeon(R) CPU @ 2.20GHz", 2, "fp32", "eager")
        == "cpu-intel-r-xeon-r-cpu-2-20ghz-2t-fp32-eager"
    )
    assert platform_key("cpu", "AMD EPYC", 2, "bf16", "eager", channels_last=True) == "cpu-amd-epyc-2t-bf16-eager-cl"
    # threads matter on the CPU, not on a GPU
    assert platform_key("cpu", "x", 1, "fp32", "eager") != platform_key("cpu", "x", 2, "fp32", "eager")
    assert platform_key("cuda:0", "x", 1, "fp32", "eager") == platform_key("cuda:1", "x", 8, "fp32", "eager")


def test_platform_from_record_says_which_environment() -> None:
    plat = bl.platform_from_record(as_record(record()), {"torch": "2.14", "cpu": "AMD EPYC 7B13", "secret": 1})
    assert plat["key"] == "cpu-amd-epyc-7b13-2t-fp32-eager"
    assert plat["device_name"] == "AMD EPYC 7B13" and plat["source"] == "measured"
    assert plat["environment"] == {"torch": "2.14", "cpu": "AMD EPYC 7B13"}


# -- merging and saving -----------------------------------------------------------------------------


def _plat(rec=None):
    return bl.platform_from_record(as_record(rec or record()))


def test_each_save_adds_one_round_and_keeps_the_last_n() -> None:
    doc = None
    for i in range(7):
        doc = merge_records(doc, [as_record(r) for r in [record(samples=[10.0 + i] * 5)]], _plat(), max_rounds=5)
    (entry,) = doc["entries"]
    assert [r["median_ms"] for r in entry["rounds"]] == [12.0, 13.0, 14.0, 15.0, 16.0]
    assert entry["latency_ms"]["median"] == 14.0 and entry["latency_ms"]["rounds"] == 5
    assert entry["per_image_ms"] == 14.0 and entry["fps"] == pytest.approx(1000 / 14)
    r = entry["rounds"][-1]
    assert len(r["quantiles_ms"]) == 21 and r["n"] == 5  # bounded: 21 quantiles, not every sample
    assert entry["memory_bytes"]["total"] == 900 * 2**20 and entry["macs"] == 1000 and entry["params"] == 10


def test_merge_keeps_other_models_and_does_not_modify_its_input() -> None:
    first = merge_records(None, [as_record(r) for r in [record("a"), record("a", bs=8)]], _plat())
    snapshot = json.dumps(first)
    second = merge_records(first, [as_record(r) for r in [record("b")]], _plat())
    assert json.dumps(first) == snapshot
    assert [(e["model"], e["batch_size"]) for e in second["entries"]] == [("a", 1), ("a", 8), ("b", 1)]
    assert all(len(e["rounds"]) == 1 for e in second["entries"])


def test_a_changed_network_restarts_its_rounds() -> None:
    doc = merge_records(None, [as_record(r) for r in [record(macs=1000)]], _plat())
    doc = merge_records(doc, [as_record(r) for r in [record(macs=1000)]], _plat())
    assert len(doc["entries"][0]["rounds"]) == 2
    doc = merge_records(doc, [as_record(r) for r in [record(macs=2000)]], _plat())
    assert len(doc["entries"][0]["rounds"]) == 1 and doc["entries"][0]["macs"] == 2000


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from([1, 2, 8])), min_size=1, max_size=12),
    st.integers(min_value=1, max_value=4),
)
def test_merge_properties(runs, limit) -> None:
    doc = None
    counts: dict = {}
    for model, bs in runs:
        doc = merge_records(doc, [as_record(r) for r in [record(model, bs)]], _plat(), max_rounds=limit)
        counts[(model, bs)] = min(limit, counts.get((model, bs), 0) + 1)
    assert {(e["model"], e["batch_size"]): len(e["rounds"]) for e in doc["entries"]} == counts
    assert bl.baseline_from_document(doc).entries.keys() == counts.keys()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    doc = merge_records(None, [as_record(r) for r in [record("a"), record("b", bs=4)]], _plat())
    path = tmp_path / "sub" / "base.json"
    save_document(path, doc)
    b = load_baseline(path)
    assert b.key == "cpu-amd-epyc-7b13-2t-fp32-eager" and b.platform["source"] == "measured"
    e = b.entry("b", 4)
    assert e["per_image_ms"] == pytest.approx(10.0 / 4) and e["memory_bytes"]["total"] == 900 * 2**20
    assert e["accuracy"] == {"measured": None, "reference": None}
    assert b.entry("a", 1)["rounds"][0]["accuracy"] == {"measured": None, "reference": None}
    assert "cudnn_benchmark" not in b.entry("a", 1)["rounds"][0]  # a CPU round
    assert json.loads(path.read_text())["schema"] == bl.SCHEMA == "pytest-dnnbench-baseline/2"
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left


def test_a_crash_during_save_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "base.json"
    save_document(path, merge_records(None, [as_record(r) for r in [record("a")]], _plat()))
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C between writing the temporary file and the rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_document(path, merge_records(load_baseline(path).document, [as_record(r) for r in [record("b")]], _plat()))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["base.json"]


def test_a_crash_while_writing_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "base.json"
    save_document(path, merge_records(None, [as_record(r) for r in [record("a")]], _plat()))
    before = path.read_bytes()
    real_fsync = os.fsync

    def crash(fd):
        real_fsync(fd)
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_document(path, merge_records(None, [as_record(r) for r in [record("b")]], _plat()))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["base.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b'{"schema": "pytest-dnnbench-baseline/1", "platform": {"key": "k"}, "entr', "truncated"),
        (b"{not json}", "not valid JSON"),
        (b"[]", "top level must be a JSON object"),
        (b'{"schema": "other"}', "schema 'other' is not"),
        (b'{"schema": "pytest-dnnbench-baseline/3"}', "schema 'pytest-dnnbench-baseline/3' is a version this one"),
        (
            b'{"schema": "pytest-dnnbench-baseline/2", "platform": {"key": "k"}, "entries": '
            b'[{"model": "a", "batch_size": 1, "accuracy": {"measured": {"top1": "high"}}}]}',
            "'accuracy.measured' must be null or an object with a numeric",
        ),
        (
            b'{"schema": "pytest-dnnbench-baseline/1", "platform": {"key": "k"}, "entries": '
            b'[{"model": "a", "batch_size": 1, "accuracy": {"top1": "high", "status": "measured"}}]}',
            "'accuracy.measured' must be null or an object with a numeric",
        ),
        (b'{"schema": "pytest-dnnbench-baseline/1", "platform": {}, "entries": []}', "'platform' must be"),
        (
            b'{"schema": "pytest-dnnbench-baseline/1", "platform": {"key": "k"}, "entries": {}}',
            "'entries' must be a list",
        ),
        (
            b'{"schema": "pytest-dnnbench-baseline/1", "platform": {"key": "k"}, '
            b'"entries": [{"model": "a", "batch_size": 0}]}',
            "'batch_size' must be a positive",
        ),
        (
            b'{"schema": "pytest-dnnbench-baseline/1", "platform": {"key": "k"}, "entries": '
            b'[{"model": "a", "batch_size": 1, "rounds": [{"median_ms": -1}]}]}',
            "round 0 needs a positive 'median_ms'",
        ),
        (
            b'{"schema": "pytest-dnnbench-baseline/1", "platform": {"key": "k"}, "entries": '
            b'[{"model": "a", "batch_size": 1}, {"model": "a", "batch_size": 1}]}',
            "repeats a at batch 1",
        ),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(BaselineError, match=message) as exc:
        load_baseline(path)
    assert str(path) in str(exc.value)
    assert path.read_bytes() == content


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="does not exist"):
        load_baseline(tmp_path / "nope.json")


def test_truncation_anywhere_is_an_error(tmp_path: Path) -> None:
    full = document_text(merge_records(None, [as_record(r) for r in [record("a"), record("b")]], _plat())).encode()
    path = tmp_path / "t.json"
    for cut in range(1, len(full.rstrip()), max(1, len(full) // 40)):
        path.write_bytes(full[:cut])
        with pytest.raises(BaselineError):
            load_baseline(path)


# -- Student's t ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "dof", "expected"),
    [
        (0.99, 1, 31.8205),
        (0.99, 2, 6.9646),
        (0.99, 4, 3.7469),
        (0.99, 6, 3.1427),
        (0.975, 5, 2.5706),
        (0.95, 10, 1.8125),
        (0.99, 1000, 2.3301),
        (0.5, 3, 0.0),
        (0.01, 6, -3.1427),
        (0.99, 2.5, 5.0),
    ],
)
def test_t_quantiles(p, dof, expected) -> None:
    if dof == 2.5:  # not a table value: check through the CDF instead
        assert t_cdf(t_quantile(p, dof), dof) == pytest.approx(p, abs=1e-9)
    else:
        assert t_quantile(p, dof) == pytest.approx(expected, abs=2e-4)


# -- the latency decision ---------------------------------------------------------------------------


def test_known_cases() -> None:
    quiet = [10.0, 10.2, 9.9, 10.1, 10.0]
    same = compare_latency(quiet, [10.05] * 30, 0.1)
    assert not same.regressed and not same.stale and same.rounds == 5
    slow = compare_latency(quiet, [15.0] * 30, 0.1)
    assert slow.regressed and slow.significant and slow.ratio == pytest.approx(1.5)
    fast = compare_latency(quiet, [5.0] * 30, 0.1)
    assert fast.stale and not fast.regressed
    # Within the tolerance: never a regression, however significant.
    assert not compare_latency(quiet, [10.9] * 30, 0.1).regressed
    # Noisy rounds (+45 % between processes, as measured on these CPUs): 30 % slower is not significant.
    noisy = [16.0, 23.2, 18.1, 20.5, 17.0]
    v = compare_latency(noisy, [24.0] * 30, 0.1)
    assert v.ratio > 1.1 and not v.significant and not v.regressed
    assert compare_latency(noisy, [60.0] * 30, 0.1).regressed
    # One round: only large changes count (the spread between runs is unknown).
    assert not compare_latency([10.0], [14.0] * 30, 0.1).regressed
    assert compare_latency([10.0], [100.0] * 30, 0.1).regressed
    assert compare_latency([100.0], [10.0] * 30, 0.1).stale


def test_ten_times_faster_baseline_is_a_regression_with_both_figures_in_the_message() -> None:
    base = merge_records(None, [as_record(r) for r in [record(samples=[1.0, 1.01, 0.99, 1.0, 1.02])]], _plat())[
        "entries"
    ][0]
    checks = compare_entry(record(), base, Tolerances())
    (lat,) = [c for c in checks if c["metric"] == "latency"]
    assert not lat["passed"] and lat["baseline"] == 1.0 and lat["measured"] == 10.0
    assert lat["limit"] == pytest.approx(1.1)
    msg = lat["message"]
    assert "resnet18 at batch 1" in msg and "median 10 ms" in msg and "baseline 1 ms" in msg and "limit 1.1 ms" in msg


def test_entry_checks_memory_macs_params_and_top1() -> None:
    base = merge_records(None, [as_record(r) for r in [record(macs=1000, params=10, total=1000, top1=70.0)]], _plat())[
        "entries"
    ][0]
    checks = {
        c["metric"]: c for c in compare_entry(record(macs=1001, params=10, total=1200, top1=69.0), base, Tolerances())
    }
    assert checks["latency"]["passed"]
    assert not checks["memory"]["passed"] and checks["memory"]["limit"] == pytest.approx(1100)
    assert not checks["macs"]["passed"] and "changed by +1" in checks["macs"]["message"]
    assert checks["params"]["passed"]
    assert not checks["top1"]["passed"] and checks["top1"]["limit"] == 69.5
    looser = {
        c["metric"]: c for c in compare_entry(record(total=1200, top1=69.0), base, Tolerances(memory=0.25, top1=2.0))
    }
    assert looser["memory"]["passed"] and looser["top1"]["passed"]


def test_reference_accuracy_is_never_compared_with_measured() -> None:
    base = merge_records(None, [as_record(r) for r in [record()]], _plat())["entries"][0]
    base["accuracy"] = {"measured": None, "reference": {"top1": 90.0, "top5": None, "source": "paper"}}
    assert "top1" not in {c["metric"] for c in compare_entry(record(top1=50.0), base, Tolerances())}
    # Nor a record's reference figure with a measured baseline.
    measured = merge_records(None, [as_record(r) for r in [record(top1=90.0)]], _plat())["entries"][0]
    published = record()
    published["accuracy"] = {"measured": None, "reference": {"top1": 50.0, "top5": None, "source": "x"}}
    assert "top1" not in {c["metric"] for c in compare_entry(published, measured, Tolerances())}
    # Version 1's flat shape, as an entry of an old file that was not loaded through load_baseline.
    base["accuracy"] = {"top1": 90.0, "status": "reference"}
    assert "top1" not in {c["metric"] for c in compare_entry(record(top1=50.0), base, Tolerances())}
    base["accuracy"] = {"top1": 90.0, "status": "measured"}
    assert not {c["metric"]: c for c in compare_entry(record(top1=50.0), base, Tolerances())}["top1"]["passed"]


def test_a_round_keeps_both_figures_apart_and_cuda_settings_on_cuda_only() -> None:
    rec = record(top1=70.0)
    rec["accuracy"]["reference"] = {"top1": 69.758, "top5": 89.078, "source": "torchvision", "weights": "V1"}
    rnd = round_from_record(as_record(rec))
    assert rnd["accuracy"] == {
        "measured": {"top1": 70.0, "top5": None, "n_images": 100},
        "reference": {"top1": 69.758, "top5": 89.078, "source": "torchvision"},
    }
    assert "cudnn_benchmark" not in rnd
    gpu = {**rec, "device": "cuda:0", "cudnn_benchmark": False}
    assert round_from_record(as_record(gpu))["cudnn_benchmark"] is False


def test_a_document_of_version_1_is_upgraded_and_merged_into(tmp_path: Path) -> None:
    old = merge_records(None, [as_record(r) for r in [record("a")]], _plat())
    # Written as version 1 wrote it.
    old["schema"] = "pytest-dnnbench-baseline/1"
    old["platform"]["environment"] = {"torch": "2.x", "cuda": "13.0", "cudnn": 92400, "cudnn_benchmark": True}
    rnd = old["entries"][0]["rounds"][0]
    rnd["accuracy"] = {"top1": None, "top5": None, "status": "unavailable", "n_images": None}
    rnd["cudnn_benchmark"] = True
    old["entries"][0]["accuracy"] = dict(rnd["accuracy"])
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    loaded = load_baseline(path)
    assert loaded.document["schema"] == bl.SCHEMA
    assert loaded.platform["environment"] == {"torch": "2.x", "torch_cuda_build": "13.0"}  # a CPU platform
    entry = loaded.entry("a", 1)
    assert entry["accuracy"] == entry["rounds"][0]["accuracy"] == {"measured": None, "reference": None}
    assert "cudnn_benchmark" not in entry["rounds"][0]
    merged = merge_records(old, [as_record(r) for r in [record("a", top1=71.0)]], _plat())
    assert merged["schema"] == bl.SCHEMA and len(merged["entries"][0]["rounds"]) == 2
    assert merged["entries"][0]["rounds"][0]["median_ms"] == rnd["median_ms"]
    assert merged["entries"][0]["accuracy"]["measured"]["top1"] == 71.0
    assert upgrade_document(merged, schema=bl.SCHEMA, read_schemas=bl.READ_SCHEMAS) == merged  # already current


samples_st = st.lists(st.floats(min_value=0.01, max_value=1000.0, allow_nan=False), min_size=1, max_size=60)


@given(samples_st, st.integers(min_value=1, max_value=8), st.floats(min_value=0.0, max_value=1.0))
def test_never_flags_identical_sample_sets(samples, k, tol) -> None:
    med = summarize(samples).median
    v = compare_latency([med] * k, samples, tol)
    assert not v.regressed and not v.stale


@given(
    samples_st,
    st.lists(st.floats(min_value=0.01, max_value=1000.0), min_size=1, max_size=10),
    st.floats(min_value=1.0, max_value=20.0),
    st.floats(min_value=1.0, max_value=20.0),
    st.floats(min_value=0.0, max_value=0.5),
)
def test_monotone_in_the_injected_slowdown(samples, rounds, f1, f2, tol) -> None:
    lo, hi = sorted((f1, f2))
    a = compare_latency(rounds, [s * lo for s in samples], tol)
    b = compare_latency(rounds, [s * hi for s in samples], tol)
    assert b.statistic >= a.statistic - 1e-9 and b.ratio >= a.ratio
    assert b.regressed or not a.regressed  # flagged at a slowdown => flagged at any larger one


@given(
    st.lists(st.floats(min_value=0.01, max_value=1000.0), min_size=1, max_size=3),
    st.lists(st.floats(min_value=0.01, max_value=1000.0), min_size=1, max_size=2),
)
def test_tolerant_of_tiny_samples(rounds, samples) -> None:
    v = compare_latency(rounds, samples, 0.1)
    assert math.isfinite(v.statistic) and math.isfinite(v.threshold)
    # A run of one or two calls against one to three rounds needs a large change to count.
    if v.regressed:
        assert v.ratio > 1.4


@settings(max_examples=50)
@given(st.floats(min_value=0.5, max_value=50.0), st.integers(min_value=2, max_value=10))
def test_identical_rounds_and_run_at_any_scale(scale, k) -> None:
    samples = [scale * (1 + 0.01 * ((i * 7) % 5)) for i in range(20)]
    med = summarize(samples).median
    v = compare_latency([med] * k, samples, 0.0)
    assume(v.ratio == 1.0)
    assert not v.regressed and v.statistic == pytest.approx(0.0, abs=1e-9)
