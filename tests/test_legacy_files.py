"""Files written by pytest-dnnbench 0.1.0 (before the record became typed) are read and written back unchanged.

``tests/data/legacy-0.1.0`` holds a results file, a baseline file and a report's Markdown, CSV and JSON,
written by the 0.1.0 code (commit 6cd5ad8) from one CPU run of squeezenet1_1 and shufflenet at batch 1
and 2. The records go through the typed record as they do in a run (``Record.from_json`` at the
controller, ``to_json`` for the files), with the report's clock fixed to the one in the file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_dnnbench.baseline_store import load_baseline, save_document
from pytest_dnnbench.record import Record
from pytest_dnnbench.results import ResultsFile

DATA = Path(__file__).parent / "data" / "legacy-0.1.0"


def test_results_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    original = (DATA / "results.json").read_text(encoding="utf-8")
    doc = json.loads(original)
    out = ResultsFile(tmp_path / "results.json", environment=doc["environment"])
    for rec in doc["records"]:
        out.add(Record.from_json(rec).to_json())
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == original


def test_baseline_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    original = (DATA / "baseline.json").read_bytes()
    baseline = load_baseline(DATA / "baseline.json")
    save_document(tmp_path / "b.json", baseline.document)
    assert (tmp_path / "b.json").read_bytes() == original


def test_report_files_are_written_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.report import build
    from pytest_dnnbench.report.tables import Platform, platform_label

    md = (DATA / "report.md").read_text(encoding="utf-8")
    stamp = re.search(r"on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\. Command: (.*)$", md, re.M)
    assert stamp is not None
    when = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=dt.timezone.utc)
    fixed = SimpleNamespace(datetime=SimpleNamespace(now=lambda tz=None: when), timezone=dt.timezone)
    monkeypatch.setattr(build, "_dt", fixed)
    doc = json.loads((DATA / "report-results.json").read_text(encoding="utf-8"))
    records = [Record.from_json(r).to_json() for r in doc["records"]]
    env = doc["environment"]
    platform = Platform(
        platform_label(env, records, "this run"), records, env, list(doc.get("missing", [])), "this run", "results"
    )
    build.write_report([platform], tmp_path, command=stamp.group(2))
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == md
    assert (tmp_path / "results.csv").read_text(encoding="utf-8") == (DATA / "results.csv").read_text(encoding="utf-8")
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == (DATA / "report-results.json").read_text(
        encoding="utf-8"
    )
