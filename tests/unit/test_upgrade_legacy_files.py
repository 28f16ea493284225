"""Files written by earlier versions are read, compared and rendered as before, in this version's shape.

``tests/data/legacy-0.1.0`` holds a results file, a baseline file and a report's Markdown, CSV and JSON,
written by the 0.1.0 code (commit 6cd5ad8) from one CPU run of squeezenet1_1 and shufflenet at batch 1
and 2. ``tests/data/legacy-0.1.0-70cccd0`` holds files of the last version of schema 1 (commit 70cccd0,
``pytest-dnnbench/1``, ``pytest-dnnbench-baseline/1``, ``pytest-dnnbench-baseline-set/1``): one CPU run
in two modes with a measured, a reference and an unavailable accuracy, a baseline of two rounds, a
baseline set, and the reports that code made of them (its README says how).

Version 2 renamed three things, and nothing else may differ: ``param_file_mb`` is ``param_file_mib``;
``accuracy`` holds ``measured`` and ``reference`` apart; the environment's ``cuda`` is
``torch_cuda_build``, and a CPU run carries no cuDNN or TF32 entries (nor a record its
``cudnn_benchmark``). The expectations below are the old outputs with exactly those renames applied
(:func:`renamed_markdown`, :func:`renamed_csv_row`), written out here apart from the package's own
upgrade code.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_dnnbench.baseline_save import save_document, save_run
from pytest_dnnbench.baseline_store import (
    SCHEMA as BASELINE_SCHEMA,
)
from pytest_dnnbench.baseline_store import (
    SET_SCHEMA,
    load_baseline,
    load_baselines,
)
from pytest_dnnbench.gate import Tolerances, compare_entry
from pytest_dnnbench.record import Record
from pytest_dnnbench.results import SCHEMA, ResultsFile, load_results
from pytest_dnnbench.upgrade import CUDA_ONLY_ENVIRONMENT
from pytest_dnnbench.upgrade import MEASURED_KEYS as MEASURED_ACCURACY_KEYS

DATA = Path(__file__).parents[1] / "data" / "legacy-0.1.0"
DATA_1 = Path(__file__).parents[1] / "data" / "legacy-0.1.0-70cccd0"

#: Environment entries a CPU run no longer carries; a flat accuracy's keys that describe a measurement.
CPU_ONLY_IN_CUDA_RUNS, MEASURED_KEYS = CUDA_ONLY_ENVIRONMENT, MEASURED_ACCURACY_KEYS


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# -- the renames, spelled out ----------------------------------------------------------------------


def check_environment(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A CPU run's environment: ``cuda`` renamed in place, the cuDNN and TF32 entries gone, the rest equal."""
    assert old["device"] == "cpu"
    expected = {}
    for key, value in old.items():
        if key == "cuda":
            expected["torch_cuda_build"] = value
        elif key not in CPU_ONLY_IN_CUDA_RUNS:
            expected[key] = value
    assert list(new) == list(expected) and new == expected


def check_accuracy(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A flat accuracy (a record's, or a baseline round's) split by its status; a reference figure is never
    ``measured``."""
    status = old["status"]
    assert "status" not in new and "top1" not in new and "source" not in new
    if status == "measured":
        assert new["measured"] == {k: old[k] for k in MEASURED_KEYS if k in old}
        assert new["reference"] == old.get("reference")
        assert new.get("reason") is None
    elif status == "reference":
        assert new["measured"] is None
        ref = old.get("reference") or {"top1": old["top1"], "top5": old["top5"], "source": old.get("source")}
        assert new["reference"] == ref
        assert (new["reference"]["top1"], new["reference"]["top5"]) == (old["top1"], old["top5"])
        assert new.get("reason") == old.get("reason")
    else:
        assert status == "unavailable" and old["top1"] is None
        assert new["measured"] is None and new["reference"] is None
        assert new.get("reason") == (old.get("reason") or old.get("source"))
    rest = {k: v for k, v in old.items() if k not in (*MEASURED_KEYS, "status", "reason", "reference")}
    assert {k: v for k, v in new.items() if k not in ("measured", "reference", "reason")} == rest


def check_record(old: dict[str, Any], new: dict[str, Any]) -> None:
    """``param_file_mb`` -> ``param_file_mib`` in place, no ``cudnn_benchmark`` on the CPU, accuracy split."""
    assert old["device"] == "cpu"
    expected_keys = ["param_file_mib" if k == "param_file_mb" else k for k in old if k != "cudnn_benchmark"]
    assert list(new) == expected_keys
    assert new["param_file_mib"] == old["param_file_mb"] == pytest.approx(old["param_file_bytes"] / 2**20)
    check_accuracy(old["accuracy"], new["accuracy"])
    same = [k for k in old if k not in ("param_file_mb", "cudnn_benchmark", "accuracy")]
    assert {k: new[k] for k in same} == {k: old[k] for k in same}


def check_results(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert new["schema"] == SCHEMA == "pytest-dnnbench/2" and old["schema"] == "pytest-dnnbench/1"
    check_environment(old["environment"], new["environment"])
    assert len(new["records"]) == len(old["records"])
    for o, n in zip(old["records"], new["records"], strict=True):
        check_record(o, n)
    assert new.get("missing") == old.get("missing")


_ENV_ROW = re.compile(r"^\| ([a-z0-9_.]+) \| ")


#: What this version adds to Fig. 3's caption: how its labels were chosen.
FIG3_LABELS = (
    " Labelled: every model on the upper convex hull, then the others nearest to it whose label fits without "
    "overlapping another."
)
#: A note on a whole table (not on a cell) is listed after the numbered ones, without a number.
_TABLE_REMARK = re.compile(r"^- <sup>\d+</sup> (Top-1 .*)$")


def renamed_markdown(old: str) -> str:
    """A report's Markdown with this version's changes: the environment table's ``cuda`` row is
    ``torch_cuda_build``, its cuDNN and TF32 rows are gone (a CPU run); a table-wide note is not
    numbered; Fig. 3's caption says how its labels were chosen. Every other line is as it was."""
    out = []
    for line in old.splitlines(keepends=True):
        line = _TABLE_REMARK.sub(r"- \1", line)
        if line.startswith("_Top-1 (%) against images per second") and line.rstrip().endswith("._"):
            line = line.rstrip()[:-1] + FIG3_LABELS + "_\n"
        m = _ENV_ROW.match(line)
        key = m.group(1).rsplit(".", 1)[-1] if m else None
        if key in CPU_ONLY_IN_CUDA_RUNS:
            continue
        if key == "cuda":
            line = line.replace("| cuda |", "| torch_cuda_build |", 1).replace(".cuda |", ".torch_cuda_build |", 1)
        out.append(line)
    return "".join(out)


def _filled(row: dict[str, str], keep: Any) -> dict[str, str]:
    return {k: v for k, v in row.items() if v != "" and keep(k)}


def check_csv(old_text: str, new_text: str) -> None:
    """The same rows and figures: every column but the accuracy's as it was (``param_file_mb`` renamed
    ``param_file_mib``, no ``cudnn_benchmark``); the accuracy's figures split by the old status into
    ``accuracy.measured.*`` and ``accuracy.reference.*``, columns every row has (empty where null)."""
    old_rows = list(csv.DictReader(io.StringIO(old_text)))
    new_rows = list(csv.DictReader(io.StringIO(new_text)))
    assert len(new_rows) == len(old_rows)
    for old, new in zip(old_rows, new_rows, strict=True):
        renamed = {("param_file_mib" if k == "param_file_mb" else k): v for k, v in old.items()}
        renamed.pop("cudnn_benchmark", None)
        plain = lambda k: not k.startswith("accuracy")  # noqa: E731
        assert _filled(new, plain) == _filled(renamed, plain)
        assert {"accuracy.measured.top1", "accuracy.reference.top1"} <= set(new)
        status = old["accuracy.status"]
        measured = (new["accuracy.measured.top1"], new["accuracy.measured.top5"])
        reference = (new["accuracy.reference.top1"], new["accuracy.reference.top5"])
        figures = (old["accuracy.top1"], old["accuracy.top5"])
        old_reference = (old.get("accuracy.reference.top1", ""), old.get("accuracy.reference.top5", ""))
        if status == "measured":
            assert measured == figures and reference == old_reference
            if old["accuracy.n_images"]:  # (a baseline's rows had none: they now carry the figure's n_images)
                assert new["accuracy.measured.n_images"] == old["accuracy.n_images"]
        elif status == "reference":
            assert measured == ("", "") and reference == figures
        else:
            assert status == "unavailable" and measured == reference == ("", "")
        for key in ("accuracy.unit", "accuracy.paper_top1", "accuracy.weights", "accuracy.reference.weights"):
            assert new.get(key, "") == old.get(key, ""), key


def fix_clock(monkeypatch: pytest.MonkeyPatch, markdown: str) -> str:
    """Set the report's clock to the one in ``markdown``; return the command it names. (The module as
    ``sys.modules`` holds it, which the report's code imports: an in-process pytest run earlier in the
    session may have left the package's attribute pointing at an older copy.)"""
    build = importlib.import_module("pytest_dnnbench.report.build")

    stamp = re.search(r"on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\. Command: (.*)$", markdown, re.M)
    assert stamp is not None
    when = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=dt.timezone.utc)
    fixed = SimpleNamespace(datetime=SimpleNamespace(now=lambda tz=None: when), timezone=dt.timezone)
    monkeypatch.setattr(build, "_dt", fixed)
    return stamp.group(2)


# -- 0.1.0 (6cd5ad8) --------------------------------------------------------------------------------


def test_results_file_is_read_in_version_2_and_written_back_the_same(tmp_path: Path) -> None:
    old = read(DATA / "results.json")
    doc = load_results(DATA / "results.json")
    check_results(old, doc)
    # Through the typed record, as in a run: what is read is written, byte for byte.
    out = ResultsFile(tmp_path / "results.json", environment=doc["environment"])
    for rec in old["records"]:
        out.add(Record.from_json(rec).to_json())
    assert read(tmp_path / "results.json") == doc
    again = ResultsFile(tmp_path / "again.json", environment=doc["environment"])
    for rec in load_results(tmp_path / "results.json")["records"]:
        again.add(Record.from_json(rec).to_json())
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "results.json").read_bytes()


def test_baseline_file_is_read_in_version_2_and_written_back_the_same(tmp_path: Path) -> None:
    old = read(DATA / "baseline.json")
    baseline = load_baseline(DATA / "baseline.json")
    doc = baseline.document
    assert doc["schema"] == BASELINE_SCHEMA == "pytest-dnnbench-baseline/2"
    check_environment(
        {"device": "cpu", **old["platform"]["environment"]}, {"device": "cpu", **doc["platform"]["environment"]}
    )
    assert {k: v for k, v in doc["platform"].items() if k != "environment"} == {
        k: v for k, v in old["platform"].items() if k != "environment"
    }
    for o, n in zip(old["entries"], doc["entries"], strict=True):
        check_accuracy(o["accuracy"], n["accuracy"])
        assert len(n["rounds"]) == len(o["rounds"])
        for ro, rn in zip(o["rounds"], n["rounds"], strict=True):
            check_accuracy(ro["accuracy"], rn["accuracy"])
            assert "cudnn_benchmark" not in rn
            same = [k for k in ro if k not in ("accuracy", "cudnn_benchmark")]
            assert {k: rn[k] for k in same} == {k: ro[k] for k in same}
        same = [k for k in o if k not in ("accuracy", "rounds")]
        assert {k: n[k] for k in same} == {k: o[k] for k in same}
    save_document(tmp_path / "b.json", doc)
    assert read(tmp_path / "b.json") == doc
    save_document(tmp_path / "c.json", load_baseline(tmp_path / "b.json").document)
    assert (tmp_path / "c.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_report_files_are_written_as_before_apart_from_the_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.report.tables import Platform, platform_label

    build = importlib.import_module("pytest_dnnbench.report.build")  # the module fix_clock patches

    md = (DATA / "report.md").read_text(encoding="utf-8")
    command = fix_clock(monkeypatch, md)
    # As the session hands its records to the report: through the typed record (the environment is the
    # run's own, of this version).
    raw = read(DATA / "report-results.json")
    doc = load_results(DATA / "report-results.json")
    records = [Record.from_json(r).to_json() for r in raw["records"]]
    env = doc["environment"]
    platform = Platform(
        platform_label(env, records, "this run"), records, env, list(doc.get("missing", [])), "this run", "results"
    )
    build.write_report([platform], tmp_path, command=command)
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == renamed_markdown(md)
    check_csv(
        (DATA / "results.csv").read_text(encoding="utf-8"), (tmp_path / "results.csv").read_text(encoding="utf-8")
    )
    check_results(raw, read(tmp_path / "results.json"))


# -- schema 1 as 70cccd0 last wrote it --------------------------------------------------------------


def test_results_file_of_schema_1_loads_in_version_2(tmp_path: Path) -> None:
    old = read(DATA_1 / "results.json")
    doc = load_results(DATA_1 / "results.json")
    check_results(old, doc)
    statuses = {(r["model"], r["accuracy"]["status"]) for r in old["records"]}
    assert statuses == {("tiny_cnn", "measured"), ("squeezenet1_1", "reference"), ("tiny_nopre", "unavailable")}
    by_model = {r["model"]: Record.from_json(r) for r in old["records"] if r["mode"] == "eager"}
    assert by_model["tiny_cnn"].accuracy.status == "measured"
    measured = by_model["tiny_cnn"].accuracy.measured
    assert measured is not None and (measured.top1, measured.n_images) == (5.0, 20)
    squeeze = by_model["squeezenet1_1"].accuracy
    assert squeeze.measured is None and squeeze.reference is not None and squeeze.reference.top1 == 58.178
    assert squeeze.status == "reference" and "random weights" in str(squeeze.reason)
    assert by_model["tiny_nopre"].accuracy.status == "unavailable"
    assert by_model["tiny_nopre"].cudnn_benchmark is None and "cudnn_benchmark" not in by_model["tiny_nopre"].to_json()
    # Written back in version 2 and read again: the same document.
    out = ResultsFile(tmp_path / "r.json", environment=doc["environment"])
    for rec in doc["records"]:
        out.add(Record.from_json(rec).to_json())
    assert load_results(tmp_path / "r.json") == doc == read(tmp_path / "r.json")


@pytest.mark.parametrize(
    ("inputs", "folder"), [(["results.json"], "report"), (["results.json", "baseline-set.json"], "report-side-by-side")]
)
def test_report_command_renders_schema_1_files_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inputs: list[str], folder: str
) -> None:
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.__main__ import main

    md = (DATA_1 / folder / "report.md").read_text(encoding="utf-8")
    assert fix_clock(monkeypatch, md) == "python -m pytest_dnnbench report " + " ".join(inputs)
    monkeypatch.chdir(DATA_1)
    assert main(["report", *inputs, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.md").read_text(encoding="utf-8") == renamed_markdown(md)
    check_csv(
        (DATA_1 / folder / "results.csv").read_text(encoding="utf-8"),
        (tmp_path / "out" / "results.csv").read_text(encoding="utf-8"),
    )
    for written in (tmp_path / "out").glob("results-*.json"):
        assert read(written)["schema"] == SCHEMA


def test_baselines_of_schema_1_load_and_compare() -> None:
    single = load_baseline(DATA_1 / "baseline.json")
    assert single.document["schema"] == BASELINE_SCHEMA and single.key.endswith("-fp32-eager")
    both = load_baselines(DATA_1 / "baseline-set.json")
    assert not both.single and both.modes == ["eager", "onnxruntime"]
    assert both.document["schema"] == SET_SCHEMA == "pytest-dnnbench-baseline-set/2"
    assert all(block["schema"] == BASELINE_SCHEMA for block in both.document["baselines"])
    records = {
        (r["model"], r["batch_size"], r["mode"]): Record.from_json(r) for r in read(DATA_1 / "results.json")["records"]
    }
    tol = Tolerances()
    # A measured Top-1 against a measured one: compared; a reference figure never is.
    entry = single.entry("tiny_cnn", 1)
    assert entry is not None and entry["accuracy"]["measured"]["top1"] == 5.0
    checks = {c.metric: c for c in compare_entry(records[("tiny_cnn", 1, "eager")], entry, tol)}
    assert checks["top1"].passed and checks["top1"].measured == checks["top1"].get("baseline") == 5.0
    assert {"latency", "memory", "macs", "params"} <= set(checks)
    eager = both["cpu-intel-r-xeon-r-processor-2t-fp32-eager"]
    squeeze = eager.entry("squeezenet1_1", 1)
    assert squeeze is not None and squeeze["accuracy"]["measured"] is None
    assert squeeze["accuracy"]["reference"]["top1"] == 58.178
    metrics = [c.metric for c in compare_entry(records[("squeezenet1_1", 1, "eager")], squeeze, tol)]
    assert "top1" not in metrics and "latency" in metrics


def _usable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "load": {**(r.get("load") or {}), "busy": False}} for r in records]


def test_a_save_upgrades_a_schema_1_file_keeping_every_round(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    shutil.copy(DATA_1 / "baseline.json", path)
    old = read(path)
    doc = load_results(DATA_1 / "results.json")
    eager = [r for r in _usable(doc["records"]) if r["mode"] == "eager" and r["model"] == "tiny_cnn"]
    out = save_run(
        [Record.from_json(r) for r in eager],
        doc["environment"],
        choice=str(path),
        root=tmp_path,
        max_rounds=10,
        force=False,
        regressions=0,
        interrupted=False,
    )
    assert out.saved == [path.name] and not out.failed, out.notes
    new = read(path)
    assert new["schema"] == BASELINE_SCHEMA
    assert "torch_cuda_build" in new["platform"]["environment"] and "cuda" not in new["platform"]["environment"]
    for o, n in zip(old["entries"], new["entries"], strict=True):
        assert len(n["rounds"]) == len(o["rounds"]) + 1
        for ro, rn in zip(o["rounds"], n["rounds"], strict=False):
            check_accuracy(ro["accuracy"], rn["accuracy"])
            assert rn["median_ms"] == ro["median_ms"] and rn["created"] == ro["created"]
        assert n["rounds"][-1]["accuracy"] == {
            "measured": {"top1": 5.0, "top5": 35.0, "n_images": 20},
            "reference": None,
        }
        assert all("cudnn_benchmark" not in r for r in n["rounds"])
    assert load_baseline(path).document == new
    assert not list(tmp_path.glob(".baseline.json.*.tmp"))


def test_a_save_upgrades_a_schema_1_set_keeping_every_block(tmp_path: Path) -> None:
    path = tmp_path / "set.json"
    shutil.copy(DATA_1 / "baseline-set.json", path)
    old = read(path)
    doc = load_results(DATA_1 / "results.json")
    out = save_run(
        [Record.from_json(r) for r in _usable(doc["records"])],
        doc["environment"],
        choice=str(path),
        root=tmp_path,
        max_rounds=10,
        force=False,
        regressions=0,
        interrupted=False,
    )
    assert not out.failed, out.notes
    new = read(path)
    assert new["schema"] == SET_SCHEMA and [b["schema"] for b in new["baselines"]] == [BASELINE_SCHEMA] * 2
    for ob, nb in zip(old["baselines"], new["baselines"], strict=True):
        assert nb["platform"]["key"] == ob["platform"]["key"]
        for o, n in zip(ob["entries"], nb["entries"], strict=True):
            assert [r["median_ms"] for r in n["rounds"][:-1]] == [r["median_ms"] for r in o["rounds"]]
            check_accuracy(o["rounds"][0]["accuracy"], n["rounds"][0]["accuracy"])
    assert load_baselines(path).modes == ["eager", "onnxruntime"]
