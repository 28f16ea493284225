"""Records reach the pytest-xdist controller with the reports: one results file, nothing lost."""

from __future__ import annotations

import pytest

from helpers import FAST, load_json

pytest.importorskip("xdist")


def test_workers_records_are_merged_at_the_controller(tiny_project: pytest.Pytester) -> None:
    out = tiny_project.path / "r.json"
    result = tiny_project.runpytest(
        *FAST, "-n", "2", "--dnn-models=tiny,tiny_wide", "--dnn-batch-sizes=1,2,3", f"--dnn-json={out}",
        "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=6)
    data = load_json(out)
    got = sorted((r["model"], r["batch_size"]) for r in data["records"])
    assert got == [(m, b) for m in ("tiny", "tiny_wide") for b in (1, 2, 3)]  # each exactly once
    assert data["environment"]["torch"] and data["environment"]["device"] == "cpu"
    assert all(r["outcome"] == "passed" for r in data["records"])
    # The controller prints the table, built from the workers' records.
    result.stdout.fnmatch_lines(["*dnnbench: cpu*", "tiny_wide*3*"])
