"""A run's metadata from its environment (:mod:`pytest_dnnbench.store.runmeta`): git, the CI, the run group."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_dnnbench.store.runmeta import (
    CiInfo,
    GitInfo,
    GitRunner,
    author,
    ci_info,
    collect_run_meta,
    git_info,
    run_git,
    run_group_id,
)

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "CI": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/nets",
    "GITHUB_RUN_ID": "1234",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_WORKFLOW": "bench",
    "GITHUB_JOB": "cpu",
    "GITHUB_REF_NAME": "main",
    "GITHUB_SHA": "a" * 40,
}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            GITHUB,
            CiInfo(
                provider="github",
                job="bench/cpu",
                url="https://github.com/acme/nets/actions/runs/1234/attempts/2",
                run_id="1234-2",
                branch="main",
                commit="a" * 40,
            ),
        ),
        (
            {**GITHUB, "GITHUB_HEAD_REF": "feature", "GITHUB_RUN_ATTEMPT": ""},
            CiInfo(
                provider="github",
                job="bench/cpu",
                url="https://github.com/acme/nets/actions/runs/1234",
                run_id="1234",
                branch="feature",
                commit="a" * 40,
            ),
        ),
        (
            {
                "GITLAB_CI": "true",
                "CI_JOB_NAME": "bench: [cpu]",
                "CI_JOB_URL": "https://gitlab.example/acme/nets/-/jobs/77",
                "CI_PIPELINE_ID": "55",
                "CI_COMMIT_REF_NAME": "main",
                "CI_COMMIT_SHA": "b" * 40,
            },
            CiInfo("gitlab", "bench: [cpu]", "https://gitlab.example/acme/nets/-/jobs/77", "55", "main", "b" * 40),
        ),
        (
            {
                "JENKINS_URL": "https://ci.example/",
                "JOB_NAME": "nets/bench",
                "BUILD_URL": "https://ci.example/job/nets/job/bench/9/",
                "BUILD_TAG": "jenkins-nets-bench-9",
                "GIT_BRANCH": "origin/main",
                "GIT_COMMIT": "c" * 40,
            },
            CiInfo(
                "jenkins",
                "nets/bench",
                "https://ci.example/job/nets/job/bench/9/",
                "jenkins-nets-bench-9",
                "main",
                "c" * 40,
            ),
        ),
        (
            {
                "BUILDKITE": "true",
                "BUILDKITE_LABEL": ":pytest: bench",
                "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/nets/builds/3",
                "BUILDKITE_JOB_ID": "j-1",
                "BUILDKITE_BUILD_ID": "b-3",
                "BUILDKITE_BRANCH": "main",
                "BUILDKITE_COMMIT": "d" * 40,
            },
            CiInfo(
                "buildkite", ":pytest: bench", "https://buildkite.com/acme/nets/builds/3#j-1", "b-3", "main", "d" * 40
            ),
        ),
        (
            {
                "CIRCLECI": "true",
                "CIRCLE_JOB": "bench",
                "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/nets/8",
                "CIRCLE_WORKFLOW_ID": "w-8",
                "CIRCLE_BRANCH": "main",
                "CIRCLE_SHA1": "e" * 40,
            },
            CiInfo("circleci", "bench", "https://circleci.com/gh/acme/nets/8", "w-8", "main", "e" * 40),
        ),
        ({"CI": "true"}, CiInfo(provider="ci")),
        ({"CI": "1"}, CiInfo(provider="ci")),
        ({"CI": "false", "GITHUB_ACTIONS": "false"}, CiInfo()),
        ({}, CiInfo()),
    ],
    ids=["github", "github-pr", "gitlab", "jenkins", "buildkite", "circleci", "ci", "ci-1", "ci-false", "none"],
)
def test_ci_info_of_each_provider(environ: dict[str, str], expected: CiInfo) -> None:
    assert ci_info(environ) == expected


def test_the_run_group_is_the_option_else_the_ci_run_id() -> None:
    assert run_group_id(ci_info(GITHUB)) == "github:1234-2"
    assert run_group_id(ci_info(GITHUB), "nightly-42") == "nightly-42"
    assert run_group_id(CiInfo(provider="ci")) is None
    assert run_group_id(CiInfo()) is None


def test_author() -> None:
    assert author({"GITHUB_ACTOR": "octocat", "USER": "runner"}) == "octocat"
    assert author({"USER": "ada"}) == "ada"
    assert author({}) is None


def fake_git(answers: dict[str, str | None]) -> GitRunner:
    """A git that answers ``rev-parse``, ``rev-parse --abbrev-ref`` (key ``rev-parse-abbrev``) and ``status``."""

    def run(args: Sequence[str], cwd: Path) -> str | None:
        return answers.get(args[0] + ("-abbrev" if "--abbrev-ref" in args else ""))

    return run


def test_git_info_outside_a_repository_is_empty(tmp_path: Path) -> None:
    run = fake_git({})
    assert git_info(tmp_path, run) == GitInfo()


@pytest.mark.parametrize(
    ("abbrev", "status", "branch", "dirty"),
    [("main", "", "main", False), ("HEAD", " M a.py", None, True), ("main", None, "main", None)],
    ids=["clean-branch", "detached-dirty", "status-failed"],
)
def test_git_info_with_a_fake_git(
    tmp_path: Path, abbrev: str, status: str | None, branch: str | None, dirty: bool | None
) -> None:
    run = fake_git({"rev-parse": "f" * 40, "rev-parse-abbrev": abbrev, "status": status})
    assert git_info(tmp_path, run) == GitInfo("f" * 40, branch, dirty)


def test_no_git_on_the_path_is_no_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git there
    assert run_git(["rev-parse", "HEAD"], tmp_path) is None
    assert git_info(tmp_path) == GitInfo()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_info_of_a_real_repository(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=tmp_path, check=True)

    assert git_info(tmp_path) == GitInfo()
    git("init", "-q", "-b", "trunk")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    info = git_info(tmp_path)
    assert info.branch == "trunk" and info.dirty is False and info.commit is not None and len(info.commit) == 40
    (tmp_path / "untracked.sqlite").write_text("a store's own file")
    assert git_info(tmp_path).dirty is False  # untracked files do not count
    (tmp_path / "a.txt").write_text("2")
    assert git_info(tmp_path).dirty is True
    git("checkout", "-q", "--detach")
    assert git_info(tmp_path).branch is None


def test_collect_run_meta_takes_the_cis_branch_on_a_detached_head(tmp_path: Path) -> None:
    run = fake_git({"rev-parse": "1" * 40, "rev-parse-abbrev": "HEAD", "status": ""})
    started = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
    env = {"torch": "2.14.1", "plugin_version": "0.1.0", "hostname": "runner-7", "threads": 2}
    meta = collect_run_meta(
        tmp_path,
        GITHUB,
        environment=env,
        platform_key="cpu-x-2t-fp32-eager",
        shard=(2, 4),
        started_at=started,
        git=run,
    )
    assert meta.started_at == started
    assert (meta.git_commit, meta.git_branch, meta.git_dirty) == ("1" * 40, "main", False)  # git's commit wins
    assert (meta.ci_provider, meta.ci_job, meta.ci_run_id) == ("github", "bench/cpu", "1234-2")
    assert meta.host == "runner-7" and meta.torch_version == "2.14.1" and meta.plugin_version == "0.1.0"
    assert (meta.shard_index, meta.shard_count, meta.run_group) == (2, 4, "github:1234-2")
    assert meta.platform_key == "cpu-x-2t-fp32-eager" and meta.environment == env


def test_collect_run_meta_outside_git_and_ci(tmp_path: Path) -> None:
    run = fake_git({})
    meta = collect_run_meta(tmp_path, {}, run_group="mine", git=run)
    assert meta.git_commit is None and meta.git_branch is None and meta.ci_provider is None
    assert meta.run_group == "mine" and meta.host  # this machine's name
    assert meta.started_at.tzinfo is not None
    # no git checkout, but the CI says which commit it built
    assert collect_run_meta(tmp_path, GITHUB, git=run).git_commit == "a" * 40
