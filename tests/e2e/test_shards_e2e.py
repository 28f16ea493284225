"""``--dnn-shard`` and ``merge`` as a user types them (pytester).

- three shards of the paper's models (collect-only) cover every test exactly once;
- three real shards of tiny models, merged: the unsharded run's tests, each once, with the shard and the run
  group in every file;
- ``auto/N`` in a Kubernetes Indexed Job is the same shard as K/N;
- bad values are usage errors before anything is collected;
- under pytest-xdist the workers run the controller's shard, and the controller says which.
"""

from __future__ import annotations

import pytest
from helpers import FAST, load_json

from pytest_dnnbench import merge

pytest.importorskip("torch")

QUIET = ["-p", "no:cacheprovider"]
FLEET_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "JOB_COMPLETION_INDEX")


@pytest.fixture(autouse=True)
def _no_fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the machine's own Slurm or Kubernetes job (or CI run) reaches these runs."""
    for name in (*FLEET_VARIABLES, "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP", "GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(name, raising=False)


def _collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest(*FAST, *QUIET, "--collect-only", "-q", *args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    return [line for line in result.stdout.lines if "::" in line]


def test_three_shards_of_the_paper_cover_every_test_exactly_once(pytester: pytest.Pytester) -> None:
    selection = ["--dnn-models=paper", "--dnn-batch-sizes=1"]
    everything = _collected(pytester, *selection)
    assert len(everything) == 44
    shards = [_collected(pytester, *selection, f"--dnn-shard={k}/3") for k in (1, 2, 3)]
    together = [test for shard in shards for test in shard]
    assert sorted(together) == sorted(everything)  # each test in one shard, none lost, none twice
    assert sorted(len(s) for s in shards) == [14, 15, 15]


def test_auto_in_an_indexed_job_is_the_same_shard(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    selection = ["--dnn-models=paper", "--dnn-batch-sizes=1,2"]
    given = _collected(pytester, *selection, "--dnn-shard=2/3")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    assert _collected(pytester, *selection, "--dnn-shard=auto/3") == given


def test_three_real_shards_merged_are_the_unsharded_run(tiny_project: pytest.Pytester) -> None:
    selection = ["--dnn-models=tiny,tiny_wide,broken", "--dnn-batch-sizes=1,2", "--dnn-threads=1"]
    everything = _collected(tiny_project, *selection)
    files = []
    for k in (1, 2, 3):
        out = tiny_project.path / f"shard-{k}.json"
        result = tiny_project.runpytest(
            *FAST, *QUIET, *selection, f"--dnn-shard={k}/3", "--dnn-run-group=e2e-1", f"--dnn-json={out}"
        )
        assert result.ret in (0, 1), result.stdout.str()  # (broken fails to build: a test failed)
        result.stdout.fnmatch_lines([f"dnnbench: shard {k}/3: 2 test(s) of 1 model(s) *"])
        env = load_json(out)["environment"]
        assert env["shard"] == f"{k}/3" and env["run_group"] == "e2e-1"
        files.append(str(out))
    merged_path = tiny_project.path / "merged.json"
    assert merge.main([*files, "--out", str(merged_path)]) == 0
    merged = load_json(merged_path)
    ids = [r["test"] for r in merged["records"]] + [m["test"] for m in merged.get("missing", [])]
    assert sorted(ids) == sorted(everything)
    assert {m["model"] for m in merged["missing"]} == {"broken"}
    assert [s["shard"] for s in merged["shards"]] == ["1/3", "2/3", "3/3"]
    assert "shard" not in merged["environment"] and merged["environment"]["run_group"] == "e2e-1"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0/3", "shard 0 is not between 1 and 3"),
        ("4/3", "shard 4 is not between 1 and 3"),
        ("x/y", "not K/N, auto or auto/N"),
        ("auto", "neither SLURM_ARRAY_TASK_ID (a Slurm array job) nor JOB_COMPLETION_INDEX"),
    ],
)
def test_bad_shards_are_usage_errors(tiny_project: pytest.Pytester, value: str, why: str) -> None:
    result = tiny_project.runpytest(*FAST, *QUIET, "--dnn-models=tiny", f"--dnn-shard={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--dnn-shard={value}: {why}*K/N*"])
    assert "collected" not in result.stdout.str()


def test_under_xdist_the_workers_run_the_controllers_shard(tiny_project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    selection = ["--dnn-models=tiny,tiny_wide", "--dnn-batch-sizes=1,2", "--dnn-threads=1", "--dnn-shard=1/2"]
    expected = _collected(tiny_project, *selection)
    out = tiny_project.path / "r.json"
    result = tiny_project.runpytest_subprocess(
        *FAST, *QUIET, *selection, "-n", "2", "--dnn-allow-parallel-cpu", f"--dnn-json={out}"
    )
    assert result.ret == 0, result.stdout.str()
    [model] = {t.split("[")[1].split("-")[0] for t in expected}
    result.stdout.fnmatch_lines([f"dnnbench: shard 1/2: 2 test(s) of 1 model(s) ({model})"])
    data = load_json(out)
    assert sorted(r["test"] for r in data["records"]) == sorted(expected)
    assert data["environment"]["shard"] == "1/2"


def test_the_store_run_names_its_shard_and_run_group(tiny_project: pytest.Pytester) -> None:
    pytest.importorskip("sqlalchemy")
    from pytest_dnnbench.store.db import open_store
    from pytest_dnnbench.store.urls import resolve_url

    result = tiny_project.runpytest(
        *FAST, *QUIET, "--dnn-models=tiny,tiny_wide", "--dnn-batch-sizes=1", "--dnn-shard=2/2",
        "--dnn-run-group=nightly-7", "--dnn-store",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    with open_store(resolve_url(None, tiny_project.path), write=False) as store:
        [run] = store.runs()
        assert (run.shard_index, run.shard_count, run.run_group) == (2, 2, "nightly-7")
