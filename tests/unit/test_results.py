"""Tests of results records and the atomic results file (:mod:`pytest_dnnbench.results`)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from pytest_dnnbench import results
from pytest_dnnbench.measure.bench import BenchSettings, Measurement
from pytest_dnnbench.measure.flops import Complexity
from pytest_dnnbench.measure.stats import summarize
from pytest_dnnbench.measure.timing import TimingResult
from pytest_dnnbench.record import Accuracy, ReferenceAccuracy, make_record
from pytest_dnnbench.results import (
    LATENCY_KEYS,
    RECORD_KEYS,
    SCHEMA,
    ResultsFile,
    atomic_write_text,
    load_results,
)

MiB = 2**20


def timing(samples: list[float], capped: bool = False) -> TimingResult:
    return TimingResult(
        samples_ms=tuple(samples),
        warmup_ms=(30.0, 12.0, 10.0),
        stats=summarize(samples),
        capped=capped,
        stop_reason="budget" if capped else "target",
        elapsed_s=1.0,
        ci_target=0.01,
    )


def measurement(samples: list[float] | None = None, batch: int = 8) -> Measurement:
    return Measurement(
        timing=timing(samples or [10.0, 11.0, 9.0, 10.5, 10.0, 9.5, 10.2, 10.1, 9.9, 10.0]),
        memory={"total": 700 * MiB, "delta": 40 * MiB},
        memory_method="peak RSS",
        batch_size=batch,
        input_size=(3, 224, 224),
    )


def record(model: str = "resnet18", **kw) -> dict:
    args = dict(
        model=model,
        paper_name="ResNet-18",
        source="torchvision",
        settings=BenchSettings(device="cpu", threads=4, seed=3),
        device_name="Some CPU",
        threads=4,
        measurement=measurement(),
        complexity=Complexity(
            macs=1_814_000_000, macs_check=1_819_000_000, params=11_689_512, param_file_bytes=46_800_000
        ),
    )
    args.update(kw)
    return make_record(**args).to_json()


# -- make_record -----------------------------------------------------------------------------


def test_record_has_every_schema_key() -> None:
    rec = record()
    missing = [k for k in RECORD_KEYS if k not in rec]
    assert not missing
    assert set(LATENCY_KEYS) <= set(rec["latency_ms"])
    json.dumps(rec, allow_nan=False)  # plain JSON data


def test_record_values() -> None:
    m = measurement(batch=8)
    rec = record(measurement=m)
    assert rec["model"] == "resnet18" and rec["device"] == "cpu" and rec["seed"] == 3
    assert rec["precision"] == "fp32" and rec["mode"] == "eager"
    assert "cudnn_benchmark" not in rec and "tf32" not in rec  # CUDA settings: absent on the CPU
    assert rec["batch_size"] == 8 and rec["input_size"] == [3, 224, 224]
    assert rec["per_image_ms"] == m.timing.stats.median / 8
    assert rec["fps"] == pytest.approx(1000 * 8 / m.timing.stats.median)
    assert rec["memory_bytes"] == {"total": 700 * MiB, "delta": 40 * MiB}
    assert rec["memory_bytes"] is not m.memory  # a copy: later edits do not alias
    assert rec["flops"] == 2 * rec["macs"] == 3_628_000_000
    assert rec["params"] == 11_689_512
    assert rec["param_file_bytes"] == 46_800_000 and "param_file_mb" not in rec
    assert rec["param_file_mib"] == 46_800_000 / 2**20  # MiB, as the name says
    assert rec["latency_ms"]["samples"] == list(m.timing.samples_ms)
    assert rec["latency_ms"]["warmup"] == 3
    assert rec["accuracy"] == {"measured": None, "reference": None, "reason": "accuracy was not evaluated in this run"}
    assert rec["checks"] == [] and rec["outcome"] is None and rec["reason"] is None


def test_record_complexity_error_and_a_replaced_accuracy() -> None:
    import dataclasses

    built = make_record(
        model="m",
        paper_name=None,
        source="custom",
        settings=BenchSettings(),
        device_name="cpu",
        threads=1,
        measurement=measurement(),
        complexity=Complexity(macs=None, macs_check=None, params=10, param_file_bytes=40, error="boom"),
    )
    rec = dataclasses.replace(
        built,
        accuracy=Accuracy(reference=ReferenceAccuracy(top1=0.7, top5=0.9, source="paper"), reason="no data"),
        extra={"note": "x"},
    ).to_json()
    assert rec["macs"] is None and rec["flops"] is None
    assert rec["complexity_error"] == "boom"
    assert rec["extra"] == {"note": "x"}
    assert rec["accuracy"] == {
        "measured": None,
        "reference": {"top1": 0.7, "top5": 0.9, "source": "paper"},
        "reason": "no data",
    }
    assert "complexity_error" not in record()  # only where there was an error


def test_fps_is_none_not_inf_for_a_zero_median() -> None:
    m = measurement(samples=[0.0, 0.0, 0.0])
    assert m.fps is None
    rec = record(measurement=m)
    json.dumps(rec, allow_nan=False)  # would raise on inf


# -- the results file ------------------------------------------------------------------------


def test_results_file_is_valid_json_after_each_record(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.json"
    rf = ResultsFile(path, environment={"torch": "2.x"})
    for k in range(1, 4):
        rf.add(record(model=f"m{k}"))
        data = load_results(path)
        assert data["schema"] == SCHEMA
        assert len(data["records"]) == k
        assert [r["model"] for r in data["records"]] == [f"m{i}" for i in range(1, k + 1)]
        assert data["environment"] == {"torch": "2.x"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]  # no temp files left


def test_results_file_refuses_nan_and_inf(tmp_path: Path) -> None:
    rf = ResultsFile(tmp_path / "r.json")
    with pytest.raises(ValueError):
        rf.add({"fps": math.inf})
    assert not (tmp_path / "r.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_results_file_serialises_tuples_and_paths(tmp_path: Path) -> None:
    rf = ResultsFile(tmp_path / "r.json")
    rf.set_environment({"where": tmp_path, "sizes": (1, 2)})
    rf.add({"model": "m"})
    assert load_results(tmp_path / "r.json")["environment"] == {"where": str(tmp_path), "sizes": [1, 2]}


# -- atomic writes ---------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_atomic_write_never_leaves_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "results.json"
    atomic_write_text(path, '{"old": true}\n')

    def boom(*args: object) -> None:
        raise OSError(f"simulated {failing} failure")

    monkeypatch.setattr(results.os, failing, boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_text(path, '{"new": true, "padding": "' + "x" * 100_000 + '"}\n')
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_write_cleans_up_on_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.json"

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(results.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "r.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text(encoding="utf-8") == "two"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_atomic_write_respects_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    old = os.umask(0o022)
    try:
        atomic_write_text(path, "x")
    finally:
        os.umask(old)
    # A results file is shared like any other output (mkstemp's 0600 would hide it from others).
    assert path.stat().st_mode & 0o777 == 0o644


# -- load_results ----------------------------------------------------------------------------


def test_load_results_rejects_non_json(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("this is not json {", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON") as exc:
        load_results(p)
    assert str(p) in str(exc.value)


def test_load_results_rejects_binary_garbage_clearly(tmp_path: Path) -> None:
    p = tmp_path / "results.json"
    p.write_bytes(b"\xff\xfe\x00garbage\x89PNG")
    with pytest.raises(ValueError, match="not valid JSON") as exc:
        load_results(p)
    assert str(p) in str(exc.value)


@pytest.mark.parametrize(
    "content", ['{"schema": "pytest-dnnbench/0", "records": []}', '{"records": []}', "[]", '"pytest-dnnbench/1"']
)
def test_load_results_rejects_a_wrong_schema(tmp_path: Path, content: str) -> None:
    p = tmp_path / "r.json"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="not a pytest-dnnbench results file") as exc:
        load_results(p)
    assert SCHEMA in str(exc.value)


@pytest.mark.parametrize("later", ["pytest-dnnbench/3", "pytest-dnnbench/10"])
def test_load_results_names_a_later_version(tmp_path: Path, later: str) -> None:
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"schema": later, "environment": {}, "records": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="written by a later version") as exc:
        load_results(p)
    assert "'pytest-dnnbench/1', 'pytest-dnnbench/2'" in str(exc.value)


def test_the_schema_is_version_2_and_version_1_is_read() -> None:
    assert SCHEMA == "pytest-dnnbench/2"
    assert results.READ_SCHEMAS == ("pytest-dnnbench/1", "pytest-dnnbench/2")


def old_record(status: str = "reference", device: str = "cpu") -> dict:
    """A record as version 1 wrote it (only the keys that changed, and a few others)."""
    acc = {
        "measured": {
            "top1": 71.2,
            "top5": 90.1,
            "status": "measured",
            "source": "measured on 50 images of /data",
            "n_images": 50,
            "unit": "%",
            "reason": None,
            "paper_top1": 69.76,
            "reference": {"top1": 69.758, "top5": 89.078, "source": "torchvision", "weights": "V1"},
            "dataset": "/data",
            "seconds": 1.5,
            "weights": "pretrained",
        },
        "reference": {
            "top1": 69.758,
            "top5": 89.078,
            "status": "reference",
            "source": "torchvision",
            "n_images": None,
            "unit": "%",
            "reason": "random weights",
            "paper_top1": 69.76,
            "reference": {"top1": 69.758, "top5": 89.078, "source": "torchvision", "weights": "V1"},
            "weights": "random",
        },
        "unavailable": {
            "top1": None,
            "top5": None,
            "status": "unavailable",
            "source": "not evaluated",
            "n_images": None,
        },
    }[status]
    return {
        "model": "resnet18",
        "device": device,
        "precision": "fp32",
        "threads": 2,
        "cudnn_benchmark": True,
        "seed": 0,
        "batch_size": 1,
        "latency_ms": {"median": 10.0, "n": 3},
        "per_image_ms": 10.0,
        "params": 11_689_512,
        "param_file_mb": 44.6,
        "param_file_bytes": 46_800_000,
        "accuracy": acc,
        "outcome": "passed",
    }


def test_load_results_reads_version_1_as_version_2(tmp_path: Path) -> None:
    env = {
        "torch": "2.x",
        "cuda": "13.0",
        "cudnn": 92400,
        "device": "cpu",
        "cudnn_benchmark": True,
        "tf32_matmul": False,
        "tf32_cudnn": True,
        "tf32_requested": False,
        "seed": 0,
    }
    doc = {
        "schema": "pytest-dnnbench/1",
        "environment": env,
        "records": [old_record(s) for s in ("measured", "reference", "unavailable")],
        "missing": [{"model": "x"}],
    }
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc), encoding="utf-8")
    data = load_results(p)
    assert data["schema"] == SCHEMA and data["missing"] == [{"model": "x"}]
    assert data["environment"] == {"torch": "2.x", "torch_cuda_build": "13.0", "device": "cpu", "seed": 0}
    measured, reference, unavailable = data["records"]
    for rec in data["records"]:
        assert list(rec)[:9] == [
            "model",
            "device",
            "precision",
            "threads",
            "seed",
            "batch_size",
            "latency_ms",
            "per_image_ms",
            "params",
        ]
        assert rec["param_file_mib"] == 44.6 and "param_file_mb" not in rec and "cudnn_benchmark" not in rec
    assert measured["accuracy"] == {
        "measured": {
            "top1": 71.2,
            "top5": 90.1,
            "n_images": 50,
            "source": "measured on 50 images of /data",
            "dataset": "/data",
            "seconds": 1.5,
        },
        "reference": {"top1": 69.758, "top5": 89.078, "source": "torchvision", "weights": "V1"},
        "reason": None,
        "unit": "%",
        "paper_top1": 69.76,
        "weights": "pretrained",
    }
    assert reference["accuracy"] == {
        "measured": None,
        "reference": {"top1": 69.758, "top5": 89.078, "source": "torchvision", "weights": "V1"},
        "reason": "random weights",
        "unit": "%",
        "paper_top1": 69.76,
        "weights": "random",
    }
    assert unavailable["accuracy"] == {"measured": None, "reference": None, "reason": "not evaluated"}
    # What is read is current: reading it again changes nothing.
    assert results.upgrade_results(data) == data


def test_a_cuda_record_of_version_1_keeps_its_cuda_settings(tmp_path: Path) -> None:
    from pytest_dnnbench.record import Record

    old = old_record("reference", device="cuda:0")
    rec = Record.from_json(old)
    assert rec.cudnn_benchmark is True and rec.to_json()["cudnn_benchmark"] is True
    assert rec.accuracy.status == "reference" and rec.accuracy.measured is None
    assert rec.param_file_mib == 44.6
    env = results.upgrade_results(
        {"schema": "pytest-dnnbench/1", "environment": {"cuda": "12.8", "cudnn": 91002, "device": "cuda:0"}}
    )["environment"]
    assert env == {"torch_cuda_build": "12.8", "cuda": "12.8", "cudnn": 91002, "device": "cuda:0"}


def test_a_cuda_record_carries_its_cuda_settings() -> None:
    rec = record(settings=BenchSettings(device="cuda:0", cudnn_benchmark=False, tf32=True))
    assert rec["cudnn_benchmark"] is False and rec["tf32"] is True
    assert list(rec).index("cudnn_benchmark") == list(rec).index("threads") + 1


def test_load_results_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read results file"):
        load_results(tmp_path / "nope.json")


def test_temporary_files_carry_the_pid_and_dead_writers_leftovers_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "results.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    stale = tmp_path / f".results.json.{dead_pid}.abc123.tmp"
    live = tmp_path / f".results.json.{os.getppid()}.def456.tmp"  # a writer still alive: left alone
    other = tmp_path / ".other.json.1.x.tmp"
    for p in (stale, live, other):
        p.write_text("{")
    atomic_write_text(path, "{}\n")
    assert not stale.exists() and live.exists() and other.exists()
    assert path.read_text() == "{}\n"


def test_the_temporary_file_is_named_after_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real_replace = results.os.replace

    def spy(src: str, dst: object) -> None:
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(results.os, "replace", spy)
    atomic_write_text(tmp_path / "r.json", "x")
    assert seen and seen[0].startswith(f".r.json.{os.getpid()}.") and seen[0].endswith(".tmp")
