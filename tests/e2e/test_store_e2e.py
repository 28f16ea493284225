"""``--dnn-store``: a run's records in the results store, as a user types it (pytester).

- three runs on three commits: three points of one fingerprint, each with its commit, the runs complete;
- ``DNNBENCH_STORE`` names the store (a bare ``--dnn-store`` takes it from there; alone it turns the store on);
- a store that cannot be used at the start is a usage error naming it, its password masked, before any test;
- a store that fails during the run fails no test: the summary says what the store lacks and where it is;
- under pytest-xdist only the controller writes: one run, every record once.
"""

from __future__ import annotations

import json

import pytest
from helpers import FAST, QUIET_LOAD, runs_on_commits
from helpers import git as _git

pytest.importorskip("torch")
pytest.importorskip("sqlalchemy")

from pytest_dnnbench.store.db import open_store  # noqa: E402
from pytest_dnnbench.store.urls import resolve_url  # noqa: E402

RUN = [*FAST, "--dnn-threads=1", "-p", "no:cacheprovider", "--dnn-models=tiny", "--dnn-batch-sizes=1"]


def test_three_runs_on_three_commits_are_three_points_of_one_fingerprint(tiny_project: pytest.Pytester) -> None:
    root = tiny_project.path
    runs = runs_on_commits(tiny_project, [*RUN, "--dnn-store"])
    commits = [commit for commit, _ in runs]
    store_file = root / ".dnnbench" / "history.sqlite"
    for k, (_, result) in enumerate(runs):
        result.stdout.fnmatch_lines([f"results store: sqlite:///{store_file}, run {k + 1}: 1 record(s), complete"])
    with open_store(resolve_url(None, root), write=False) as store:
        [fp] = store.fingerprints()
        points = store.history(fp.fingerprint)
        assert [p.git_commit for p in points] == commits
        assert all(p.model == "tiny" and p.batch_size == 1 and p.run_status == "complete" for p in points)
        assert all(p.latency_median_ms and p.latency_median_ms > 0 for p in points)
        assert [r.git_branch for r in store.runs()] == ["main"] * 3


def test_the_environment_variable_names_the_store(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tiny_project.path / "team.sqlite"
    monkeypatch.setenv("DNNBENCH_STORE", f"sqlite:///{target}")
    alone = tiny_project.runpytest(*RUN)  # the variable alone turns the store on
    assert alone.ret == 0, alone.stdout.str()
    bare = tiny_project.runpytest(*RUN, "--dnn-store")  # a bare flag takes its URL from the variable
    assert bare.ret == 0, bare.stdout.str()
    assert not (tiny_project.path / ".dnnbench" / "history.sqlite").exists()
    with open_store(f"sqlite:///{target}", write=False) as store:
        assert [r.records for r in store.runs()] == [1, 1]


def test_a_store_that_cannot_be_used_is_a_usage_error_with_its_password_masked(
    tiny_project: pytest.Pytester,
) -> None:
    url = "postgresql://bench:s3cret-pw@127.0.0.1:1/history"
    result = tiny_project.runpytest(*RUN, f"--dnn-store={url}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "s3cret-pw" not in text
    result.stderr.fnmatch_lines(["*--dnn-store=postgresql://bench:***@127.0.0.1:1/history: *"])
    assert "PASSED" not in text and "passed" not in text


@pytest.mark.parametrize("case", ["corrupt", "newer schema"])
def test_a_store_that_cannot_be_used_is_refused_before_any_test_and_left_as_it_was(
    tiny_project: pytest.Pytester, case: str
) -> None:
    import sqlite3

    path = tiny_project.path / "team.sqlite"
    if case == "corrupt":
        path.write_bytes(b"this is no SQLite database" * 300)
        why = "the file is not an SQLite database"
    else:
        open_store(f"sqlite:///{path}").close()
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE dnnbench_alembic_version SET version_num = 'f00d42'")
        why = "its schema is revision f00d42"
    before = path.read_bytes()
    result = tiny_project.runpytest(*RUN, f"--dnn-store=sqlite:///{path}", "--dnn-json=out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --dnn-store=sqlite:///{path}: {why}*"])
    assert path.read_bytes() == before and not (tiny_project.path / "out.json").exists()


def test_a_store_that_fails_during_the_run_fails_no_test_and_the_summary_says_where_the_records_are(
    tiny_project: pytest.Pytester,
) -> None:
    # The store takes the first record, then every write fails (the server went away, say).
    tiny_project.makeconftest(
        (tiny_project.path / "conftest.py").read_text()
        + """

import pytest

from pytest_dnnbench.store import db as _db
from pytest_dnnbench.store.urls import StoreError

_calls = {"n": 0}


@pytest.fixture(autouse=True)
def _failing_store(monkeypatch):  # undone after each test: the outer session's store class stays as it was
    real_add = _db.Store.add_record

    def add_record(self, run_id, record_json):
        _calls["n"] += 1
        if _calls["n"] > 1:
            raise StoreError("sqlite:///gone", "the server closed the connection", "")
        return real_add(self, run_id, record_json)

    monkeypatch.setattr(_db.Store, "add_record", add_record)
"""
    )
    result = tiny_project.runpytest(*RUN, "--dnn-batch-sizes=1,2,4", "--dnn-store")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*the results store failed (results store sqlite:///gone: the server closed the connection)*",
            "*results store: sqlite:///*history.sqlite, run 1: FAILED after 1 record(s)*",
            "*2 record(s) not in the store are kept in *unstored-*.json",
        ]
    )
    [kept] = (tiny_project.path / ".dnnbench").glob("unstored-*.json")
    assert [r["batch_size"] for r in json.loads(kept.read_text())["records"]] == [2, 4]


def test_under_xdist_only_the_controller_writes(tiny_project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = tiny_project.runpytest_subprocess(
        *RUN,
        "--dnn-batch-sizes=1,2",
        "--dnn-models=tiny,tiny_wide",
        "-n",
        "2",
        "--dnn-allow-parallel-cpu",
        "--dnn-store",
    )
    assert result.ret == 0, result.stdout.str()
    with open_store(resolve_url(None, tiny_project.path), write=False) as store:
        [run] = store.runs()
        assert run.records == 4 and run.status == "complete"


#: A plugin (``-p killer``: the shipped suite's tests lie outside the project, out of its conftest's reach) that
#: kills the run with SIGKILL once the second test's record is written: nothing of pytest's ending runs.
KILLER = """
import os
import signal


def pytest_runtest_logfinish(nodeid, location):
    if nodeid.endswith("-bs2]"):
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_run_killed_with_sigkill_stays_incomplete_with_every_record_it_finished(
    tiny_project: pytest.Pytester,
) -> None:
    tiny_project.makepyfile(killer=KILLER)
    result = tiny_project.runpytest_subprocess(*RUN, "--dnn-batch-sizes=1,2,4", "--dnn-store", "-p", "killer")
    assert result.ret == -9, result.stdout.str()
    store_file = tiny_project.path / ".dnnbench" / "history.sqlite"
    import sqlite3

    with sqlite3.connect(store_file) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with open_store(resolve_url(None, tiny_project.path)) as store:  # opens for writing again: nothing half-done
        [run] = store.runs()
        assert run.status == "incomplete" and run.finished_at is None and run.records == 2
        [fp1, fp2] = sorted(store.fingerprints(), key=lambda f: f.batch_size)
        assert (fp1.batch_size, fp2.batch_size) == (1, 2)


SLEEPY = """
import os
import time

import torch.nn as nn


class Sleepy(nn.Module):
    '''A network whose call takes DNN_SLEEP_MS milliseconds: timings set by the test, not by the machine.'''

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        time.sleep(float(os.environ.get("DNN_SLEEP_MS", "2")) / 1000)
        return self.fc(x.flatten(1)[:, :4])
"""


def test_a_baseline_from_the_store_is_the_last_runs_of_each_test_on_the_reference_branch(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tiny_project.path
    tiny_project.makepyfile(sleepy=SLEEPY)
    tiny_project.makeconftest(
        (root / "conftest.py").read_text()
        + """

def pytest_dnnbench_register_models(registry, config):
    registry.register("sleepy", "sleepy:Sleepy", input_size=(3, 8, 8))
"""
        + QUIET_LOAD
    )
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "start")
    # A sleep is not slowed by the machine as the reference workload is: compared as measured.
    sleepy = ["--dnn-models=sleepy", "--dnn-confirm=0", "--dnn-calm-wait=0", "--dnn-speed-reference=off"]
    refused = tiny_project.runpytest(*RUN, *sleepy, "--dnn-baseline=store")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--dnn-baseline=store: no results store is named. Give --dnn-store=URL*"])
    for _ in range(3):  # three complete runs on main
        assert tiny_project.runpytest(*RUN, *sleepy, "--dnn-store").ret == 0
    _git(root, "checkout", "-q", "-b", "feature")
    monkeypatch.setenv("DNN_SLEEP_MS", "20")  # a run on another branch is no baseline of main
    assert tiny_project.runpytest(*RUN, *sleepy, "--dnn-store").ret == 0
    monkeypatch.setenv("DNN_SLEEP_MS", "2")
    compared = tiny_project.runpytest(*RUN, *sleepy, "--dnn-store", "--dnn-baseline=store", "--dnn-json=same.json")
    assert compared.ret == 0, compared.stdout.str()
    [record] = json.loads((root / "same.json").read_text())["records"]
    assert record["baseline"]["status"] == "compared" and record["baseline"]["rounds"] == 3
    assert "branch main, the last 5 complete run(s)" in record["baseline"]["path"]
    [latency] = [c for c in record["checks"] if c.get("metric") == "latency"]
    assert latency["verdict"] == "pass" and latency["rounds"] == 3, latency
    monkeypatch.setenv("DNN_SLEEP_MS", "8")  # 4x: over the hard ceiling, fails at once
    slow = tiny_project.runpytest(*RUN, *sleepy, "--dnn-store", "--dnn-baseline=store", "--dnn-baseline-runs=2")
    assert slow.ret == pytest.ExitCode.TESTS_FAILED
    slow.stdout.fnmatch_lines(["*over the hard ceiling of 2x*"])
    anywhere = tiny_project.runpytest(
        *RUN, *sleepy, "--dnn-baseline=store", "--dnn-baseline-branch=*", "--dnn-store", "--dnn-json=any.json"
    )
    [record] = json.loads((root / "any.json").read_text())["records"]
    assert record["baseline"]["rounds"] == 5 and "any branch" in record["baseline"]["path"], anywhere.stdout.str()


def test_a_baseline_from_the_store_divides_the_machines_speed_out(tiny_project: pytest.Pytester) -> None:
    """The store's runs keep each record's reference workload (``latency_ms.reference``): a comparison with
    them is made at their machine speed, as one with a saved baseline file is."""
    root = tiny_project.path
    # Said quiet: the store leaves busy records out, and beside another test (the suite's two workers) these
    # runs are busy.
    tiny_project.makeconftest((root / "conftest.py").read_text() + QUIET_LOAD)
    for _ in range(2):
        assert tiny_project.runpytest(*RUN, "--dnn-store").ret == 0
    tiny_project.runpytest(
        *RUN,
        "--dnn-store",
        "--dnn-baseline=store",
        "--dnn-baseline-branch=*",
        "--dnn-confirm=0",
        "--dnn-latency-tolerance=5",
        "--dnn-json=speed.json",
    )
    [record] = json.loads((root / "speed.json").read_text())["records"]
    assert record["baseline"]["status"] == "compared" and record["baseline"]["rounds"] == 2, record["baseline"]
    [latency] = [c for c in record["checks"] if c.get("metric") == "latency"]
    speed = latency["machine_speed"]
    assert speed["workload"] == record["latency_ms"]["reference"]["workload"]
    assert speed["measured_reference_ms"] == pytest.approx(record["latency_ms"]["reference"]["median"])
    assert speed["reference_ms"] > 0 and speed["raw_ratio"] > 0
    assert "at the rounds' machine speed" in latency["message"], latency
