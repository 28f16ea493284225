"""``python -m pytest_dnnbench history`` as a user runs it, in a fresh process, on stores real runs wrote:

- three runs of ``--dnn-store`` on three commits: the history shows three points of the fingerprint, the latest
  with its commit, every commit in ``--json``;
- ``history accept`` records an accepted change, and the next ``history`` shows it;
- a store with a forced step (records written through the Store API with synthetic figures): the change point
  is shown with the commit where it begins, and an accepted change covers it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import FAST, QUIET_LOAD, runs_on_commits

pytest.importorskip("torch")
pytest.importorskip("sqlalchemy")
pytest.importorskip("ruptures")

from pytest_dnnbench.store.db import open_store  # noqa: E402
from pytest_dnnbench.store.runmeta import RunMeta  # noqa: E402
from pytest_dnnbench.store.urls import resolve_url  # noqa: E402

RUN = [*FAST, "--dnn-threads=1", "-p", "no:cacheprovider", "--dnn-models=tiny", "--dnn-batch-sizes=1"]


def history(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_dnnbench", "history", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**_environ(), "PYTHONIOENCODING": "utf-8"},
    )


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "DNNBENCH_STORE"}


def test_three_runs_on_three_commits_then_an_accepted_change(tiny_project: pytest.Pytester) -> None:
    root = tiny_project.path
    tiny_project.makeconftest((root / "conftest.py").read_text() + QUIET_LOAD)
    commits = [commit for commit, _ in runs_on_commits(tiny_project, [*RUN, "--dnn-store"])]

    shown = history(root)  # the embedded store under the current directory
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"results store sqlite:///{root}/.dnnbench/history.sqlite"
    assert lines[2] == "1 of 1 histories"
    row = lines[5].split()
    assert row[:4] == ["tiny", "1", "eager", "fp32"] and row[6] == "3", shown.stdout
    assert row[8:11] == ["ms", "@", commits[-1][:7]] and lines[6] == "    no change point"

    data = json.loads(history(root, "--json", "--store", str(root / ".dnnbench" / "history.sqlite")).stdout)
    [tiny] = data["histories"]
    assert [p["git_commit"] for p in tiny["points"]] == commits
    assert all(p["value"] > 0 and p["run_status"] == "complete" and p["git_branch"] == "main" for p in tiny["points"])

    accepted = history(root, "accept", "model=tiny", "--commit", commits[1][:10], "--reason", "a wider stem")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith(
        f"accepted change #1 recorded for model=tiny (1 history) from commit {commits[1][:7]}"
    )
    again = history(root)
    [line] = [s for s in again.stdout.splitlines() if s.startswith("    accepted #1")]
    assert line.startswith(f"    accepted #1 from commit {commits[1][:7]} (") and ": a wider stem" in line
    [note] = json.loads(history(root, "--json").stdout)["histories"][0]["annotations"]
    assert note["kind"] == "accept" and note["selection"] == {"model": "tiny"} and note["reason"] == "a wider stem"
    with open_store(resolve_url(None, root), write=False) as store:
        [run] = [r for r in store.runs() if r.git_commit == commits[1]]
        assert note["takes_effect"] == run.started_at.isoformat()


def test_a_forced_step_is_shown_with_its_commit(tmp_path: Path) -> None:
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    url = f"sqlite:///{tmp_path}/team.sqlite"
    commits = [f"{k:02d}" + "5a" * 19 for k in range(24)]
    with open_store(url) as store:
        for k, commit in enumerate(commits):
            run_id = store.begin_run(
                RunMeta(started_at=start + timedelta(hours=k), git_commit=commit, git_branch="main")
            )
            median = (10.0 if k < 14 else 13.0) * (1.0 + 0.01 * ((k * 7) % 5 - 2))  # +30 % at run 15, +-2 %
            store.add_record(
                run_id,
                {
                    "model": "resnet18",
                    "source": "torchvision",
                    "batch_size": 8,
                    "input_size": [3, 224, 224],
                    "device": "cpu",
                    "device_name": "Some CPU",
                    "threads": 2,
                    "latency_ms": {"median": median, "n": 30},
                },
            )
            store.finish_run(run_id)
    shown = history(tmp_path, "--store", url)
    assert shown.returncode == 0, shown.stderr
    [line] = [s for s in shown.stdout.splitlines() if s.strip().startswith("change at")]
    assert line.startswith(f"    change at run 15 of 24 ({commits[14][:7]}, 2026-11-01 14:00 UTC): ")
    assert " → " in line and "(worse)" in line and "14 runs before, 10 after" in line and "+30." in line

    accepted = history(tmp_path, "--store", url, "accept", "all", "--commit", commits[14], "--reason", "bigger input")
    assert accepted.returncode == 0, accepted.stderr
    shown = history(tmp_path, "--store", url)
    assert "14 runs before, 10 after; accepted (#1)" in shown.stdout

    missing = history(tmp_path, "--store", f"sqlite:///{tmp_path}/nowhere.sqlite")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith(f"error: results store sqlite:///{tmp_path}/nowhere.sqlite: there is no store")
