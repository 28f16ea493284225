"""``python -m pytest_dnnbench merge`` (:mod:`pytest_dnnbench.merge`): shards' results files as one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_dnnbench.merge import MergeError, entry_key, main, merge
from pytest_dnnbench.results import SCHEMA, load_results

DATA = Path(__file__).resolve().parents[1] / "data"


def _record(model: str, bs: int, *, latency: float = 1.0, test: str | None = "") -> dict[str, object]:
    r: dict[str, object] = {
        "model": model,
        "device": "cpu",
        "precision": "fp32",
        "mode": "eager",
        "batch_size": bs,
        "latency_ms": {"median": latency},
        "outcome": "passed",
    }
    if test is not None:
        r["test"] = test or f"suite.py::test_dnn[{model}-bs{bs}]"
    return r


def _missing(model: str, bs: int) -> dict[str, object]:
    return {
        "model": model,
        "paper_name": None,
        "batch_size": bs,
        "outcome": "skipped",
        "when": "setup",
        "reason": "out of memory at batch 64\nmore",
        "test": f"suite.py::test_dnn[{model}-bs{bs}]",
    }


def _write(path: Path, records: list[dict[str, object]], *, shard: str | None, group: str | None = "g-1",
           missing: list[dict[str, object]] | None = None, schema: str = SCHEMA) -> Path:  # fmt: skip
    env: dict[str, object] = {"device": "cpu", "hostname": path.stem}
    if shard is not None:
        env["shard"] = shard
    if group is not None:
        env["run_group"] = group
    doc: dict[str, object] = {"schema": schema, "environment": env, "records": records}
    if missing:
        doc["missing"] = missing
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    return [
        _write(tmp_path / "s1.json", [_record("alexnet", 1), _record("alexnet", 2)], shard="1/3"),
        _write(tmp_path / "s2.json", [_record("vgg16", 1)], shard="2/3", missing=[_missing("vgg16", 2)]),
        _write(tmp_path / "s3.json", [_record("resnet18", 1), _record("resnet18", 2)], shard="3/3"),
    ]


def _ids(doc: dict[str, object]) -> set[str]:
    records = doc["records"]
    assert isinstance(records, list)
    return {r["test"] for r in records}


def test_three_shards_make_one_file(shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "merged.json"
    assert main([*map(str, shards), "--out", str(out)]) == 0
    doc = load_results(out)  # a results file like any other
    assert doc["schema"] == SCHEMA
    assert _ids(doc) == {f"suite.py::test_dnn[{m}-bs{b}]" for m, b in [("alexnet", 1), ("alexnet", 2), ("vgg16", 1),
                                                                       ("resnet18", 1), ("resnet18", 2)]}  # fmt: skip
    assert doc["environment"] == {"device": "cpu", "hostname": "s1", "run_group": "g-1"}  # the first's, no shard
    assert [s["shard"] for s in doc["shards"]] == ["1/3", "2/3", "3/3"]
    assert [s["environment"]["hostname"] for s in doc["shards"]] == ["s1", "s2", "s3"]
    assert doc["missing"] == [_missing("vgg16", 2)]
    said = capsys.readouterr().out
    assert f"merged 3 file(s) (1/3, 2/3, 3/3; run group g-1): 5 record(s) of 5 test(s) -> {out}" in said
    assert "missing: 1 test(s) left no record:\n  vgg16 bs2: skipped at setup: out of memory at batch 64\n" in said


def test_the_order_of_the_files_does_not_matter(shards: list[Path]) -> None:
    assert merge(shards).document == merge(shards[::-1]).document == merge([shards[1], shards[2], shards[0]]).document


def test_a_missing_shard_is_listed_and_the_file_written_all_the_same(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "merged.json"
    assert main([str(shards[0]), str(shards[2]), "--out", str(out)]) == 1
    assert "missing shard(s): 2/3: not among the files" in capsys.readouterr().out
    assert len(load_results(out)["records"]) == 4


def test_a_test_in_two_files_is_an_error_unless_identical(shards: list[Path], tmp_path: Path) -> None:
    same = _write(tmp_path / "again.json", [_record("vgg16", 1)], shard="2/3", missing=[_missing("vgg16", 2)])
    merged = merge([*shards, same])
    assert len(merged.records) == 5 and len(merged.missing) == 1  # kept once
    assert any("shard 2/3 is given twice" in w for w in merged.warnings)
    rerun = _write(tmp_path / "rerun.json", [_record("vgg16", 1, latency=1.5)], shard="2/3")
    with pytest.raises(MergeError) as exc:
        merge([*shards, rerun])
    message = str(exc.value)
    assert "suite.py::test_dnn[vgg16-bs1] (in " in message and str(rerun) in message, message
    assert "1 test(s) are in two files with different results" in message


def test_files_without_test_ids_are_keyed_by_their_cell(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.json", [_record("alexnet", 1, test=None)], shard=None, group=None)
    b = _write(tmp_path / "b.json", [_record("alexnet", 1, test=None, latency=2.0)], shard=None, group=None)
    assert entry_key(_record("alexnet", 1, test=None)) == ("cell", "alexnet", 1, "eager", "fp32", "cpu")
    with pytest.raises(MergeError, match=r"alexnet batch 1 \(eager, fp32, cpu\)"):
        merge([a, b])


def test_different_run_groups_are_an_error_unless_forced(shards: list[Path], tmp_path: Path) -> None:
    other = _write(tmp_path / "other.json", [_record("vgg16", 1)], shard="2/3", group="g-2")
    with pytest.raises(MergeError, match=r"different run groups \(g-1: .*s1.json, .*s3.json; g-2: .*other.json\)"):
        merge([shards[0], other, shards[2]])
    merged = merge([shards[0], other, shards[2]], force=True)
    assert merged.run_group is None and any("different run groups" in w for w in merged.warnings)
    nameless = _write(tmp_path / "nameless.json", [_record("vgg16", 1)], shard="2/3", group=None)
    assert any("no run group in" in w for w in merge([shards[0], nameless, shards[2]]).warnings)


def test_different_numbers_of_shards_are_an_error_unless_forced(shards: list[Path], tmp_path: Path) -> None:
    other = _write(tmp_path / "of4.json", [_record("vgg16", 1)], shard="2/4")
    with pytest.raises(MergeError, match="different numbers of shards"):
        merge([shards[0], other])
    assert merge([shards[0], other], force=True).missing_shards == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "does not exist"),
        ("{", "truncated"),
        ('{"schema": "something/else", "records": []}', "is not a pytest-dnnbench results file"),
        (json.dumps({"schema": SCHEMA, "environment": [], "records": []}), "'environment' must be an object"),
        (json.dumps({"schema": SCHEMA, "environment": {}, "records": [1]}), "'records' must be a list of objects"),
        (json.dumps({"schema": SCHEMA, "environment": {"shard": "4/3"}, "records": []}), "is not K/N"),
    ],
)
def test_an_unreadable_file_is_an_error_and_nothing_is_written(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, why: str
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    out = tmp_path / "merged.json"
    out.write_text("the old file\n", encoding="utf-8")
    assert main([str(shards[0]), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and why in err, err
    assert out.read_text(encoding="utf-8") == "the old file\n"  # nothing overwritten


def test_out_may_not_be_an_input(shards: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = shards[1].read_bytes()
    assert main([*map(str, shards), "--out", str(shards[1].parent / "." / shards[1].name)]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert shards[1].read_bytes() == before


def test_out_that_cannot_be_written(shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blocker").write_text("a file")
    assert main([*map(str, shards), "--out", str(tmp_path / "blocker" / "m.json")]) == 2
    assert "--out=" in capsys.readouterr().err


def test_results_files_of_earlier_versions_are_read(tmp_path: Path) -> None:
    legacy = DATA / "legacy-0.1.0" / "results.json"
    assert json.loads(legacy.read_text())["schema"] == "pytest-dnnbench/1"
    merged = merge([legacy])
    assert merged.records and merged.document["schema"] == SCHEMA
    out = tmp_path / "m.json"
    assert main([str(legacy), "--out", str(out)]) == 0
    assert load_results(out)["records"] == load_results(legacy)["records"]


def test_no_file_is_an_error() -> None:
    with pytest.raises(MergeError, match="no results file given"):
        merge([])
