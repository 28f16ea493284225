"""``history import`` and ``history export`` (``pytest_dnnbench.store.transfer``): files of earlier versions
into the store, the latest records out in the formats other tools read."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from pytest_dnnbench.__main__ import main  # noqa: E402
from pytest_dnnbench.baseline_store import load_baselines  # noqa: E402
from pytest_dnnbench.store.db import open_store  # noqa: E402
from pytest_dnnbench.store.transfer import export, import_files, latest_points  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
RESULTS = [DATA / "legacy-0.1.0" / "results.json", DATA / "legacy-0.1.0-70cccd0" / "results.json"]
BASELINES = [DATA / "legacy-0.1.0" / "baseline.json", DATA / "legacy-0.1.0-70cccd0" / "baseline-set.json"]


def test_results_and_baseline_files_of_earlier_versions_become_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with open_store(url) as store:
        done = import_files(store, [*RESULTS, *BASELINES])
        assert [(d.kind, d.problem) for d in done] == [("results", None)] * 2 + [("baseline", None)] * 2
        assert [d.records for d in done[:2]] == [4, 12]  # every record of each results file
        rounds = [
            sum(len(e.get("rounds") or []) for b in load_baselines(p).values() for e in b.entries.values())
            for p in BASELINES
        ]
        assert [d.records for d in done[2:]] == rounds and all(d.runs >= 1 for d in done[2:])
        runs = store.runs(limit=None)
        assert len(runs) == sum(d.runs for d in done) and {r.status for r in runs} == {"complete"}
        # a baseline's rounds join the history of its platform: the key the file names
        keys = {b.key for p in BASELINES for b in load_baselines(p).values()}
        imported = {f.platform_key for f in store.fingerprints() if f.model in ("shufflenet", "tiny_cnn")}
        assert imported and imported <= keys


def test_a_file_that_cannot_be_read_is_reported_and_nothing_of_it_is_written(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "pytest-dnnbench/2", "records": [')
    with open_store(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        [bad, good] = import_files(store, [broken, RESULTS[0]])
        assert bad.problem and "cannot be read" in bad.problem and bad.records == 0
        assert good.problem is None and len(store.runs(limit=None)) == 1


def test_export_formats_carry_the_latest_record_of_each_history(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        import_files(store, [RESULTS[1]])
        points = latest_points(store)
    assert points and len({p.fingerprint for p in points}) == len(points)
    rows = json.loads(export(points, "json"))
    assert [r["fingerprint"] for r in rows] == [p.fingerprint for p in points]
    assert rows[0]["latency_median_ms"] == points[0].latency_median_ms
    table = list(csv.DictReader(io.StringIO(export(points, "csv"))))
    assert len(table) == len(points) and float(table[0]["latency_median_ms"]) == points[0].latency_median_ms
    gab = json.loads(export(points, "github-action-benchmark"))
    assert {e["unit"] for e in gab} == {"ms"} and gab[0]["value"] == points[0].latency_median_ms
    assert gab[0]["name"].startswith(f"{points[0].model} bs{points[0].batch_size} ")
    bmf = json.loads(export(points, "bencher"))
    first = bmf[gab[0]["name"]]["latency"]
    assert first["value"] == points[0].latency_median_ms
    assert first["lower_value"] <= first["value"] <= first["upper_value"]
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export(points, "xml")


def test_the_command_line_imports_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    assert main(["history", "--store", url, "import", str(RESULTS[0])]) == 0
    assert f"{RESULTS[0]}: results file, 1 run(s), 4 record(s)" in capsys.readouterr().out
    out = tmp_path / "bench.json"
    assert main(["history", "--store", url, "export", "--format", "bencher", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 4
    assert main(["history", "--store", url, "import", str(tmp_path / "missing.json")]) == 1
    assert "missing.json: cannot be read" in capsys.readouterr().err
