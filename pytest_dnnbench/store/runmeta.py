"""A run's metadata, read from where it runs: git (commit, branch, dirty), the CI (provider, job, URL, run id),
the host, the shard and the run group.

Pure functions of an ``environ`` mapping (and of a ``git`` command runner, which tests replace); no
SQLAlchemy, no torch, no pytest. Nothing here raises for a missing git or an unknown CI: what cannot be
known is None.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..jsontypes import JsonMapping

__all__ = [
    "CiInfo",
    "GitInfo",
    "GitRunner",
    "RunMeta",
    "author",
    "ci_info",
    "collect_run_meta",
    "git_info",
    "run_git",
    "run_group_id",
]

#: Seconds a git command may take before its answer is given up.
GIT_TIMEOUT_S = 10.0

#: Runs ``git ARGS`` in a folder: the output (stripped), or None where git failed, is missing or timed out.
GitRunner = Callable[[Sequence[str], Path], "str | None"]


@dataclass(frozen=True)
class GitInfo:
    """The checkout a run measured: None everywhere outside a git repository (or without git)."""

    commit: str | None = None
    #: None on a detached HEAD.
    branch: str | None = None
    #: Tracked files changed (untracked files do not count: a store's own file is one).
    dirty: bool | None = None


@dataclass(frozen=True)
class CiInfo:
    """The CI job a run belongs to (all None outside CI)."""

    #: ``github``, ``gitlab``, ``jenkins``, ``buildkite``, ``circleci``, or ``ci`` (``CI=true``, not known).
    provider: str | None = None
    job: str | None = None
    url: str | None = None
    #: The CI's id of the whole run (workflow run, pipeline, build): the default run group of its shards.
    run_id: str | None = None
    branch: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class RunMeta:
    """One run's row (``runs``) before it is written: :meth:`~.db.Store.begin_run` takes it."""

    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    ci_provider: str | None = None
    ci_job: str | None = None
    ci_url: str | None = None
    ci_run_id: str | None = None
    host: str | None = None
    #: The platform key of the run's device (:func:`~pytest_dnnbench.baseline_store.platform_key`), where known.
    platform_key: str | None = None
    #: The results file's ``environment``.
    environment: JsonMapping | None = None
    plugin_version: str | None = None
    torch_version: str | None = None
    #: Shard ``k`` of ``N`` (1-based), both None for a run that is not sharded.
    shard_index: int | None = None
    shard_count: int | None = None
    #: Ties the shards (and reruns) of one run together.
    run_group: str | None = None


def _get(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _true(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no", "off")


def ci_info(environ: Mapping[str, str]) -> CiInfo:
    """The CI job of ``environ``: GitHub Actions, GitLab CI, Jenkins, Buildkite, CircleCI, or a CI that sets
    only ``CI=true`` (provider ``ci``); all None outside CI."""
    e = environ
    if _true(e.get("GITHUB_ACTIONS")):
        run_id = _get(e, "GITHUB_RUN_ID")
        server, repo = _get(e, "GITHUB_SERVER_URL") or "https://github.com", _get(e, "GITHUB_REPOSITORY")
        url = f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else None
        attempt = _get(e, "GITHUB_RUN_ATTEMPT")
        workflow, job = _get(e, "GITHUB_WORKFLOW"), _get(e, "GITHUB_JOB")
        return CiInfo(
            provider="github",
            job="/".join(p for p in (workflow, job) if p) or None,
            url=f"{url}/attempts/{attempt}" if url and attempt else url,
            run_id=f"{run_id}-{attempt}" if run_id and attempt else run_id,
            branch=_get(e, "GITHUB_HEAD_REF", "GITHUB_REF_NAME"),
            commit=_get(e, "GITHUB_SHA"),
        )
    if _true(e.get("GITLAB_CI")):
        return CiInfo(
            provider="gitlab",
            job=_get(e, "CI_JOB_NAME"),
            url=_get(e, "CI_JOB_URL"),
            run_id=_get(e, "CI_PIPELINE_ID"),
            branch=_get(e, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_BRANCH", "CI_COMMIT_REF_NAME"),
            commit=_get(e, "CI_COMMIT_SHA"),
        )
    if _get(e, "JENKINS_URL", "JENKINS_HOME"):
        branch = _get(e, "CHANGE_BRANCH", "BRANCH_NAME", "GIT_BRANCH")
        if branch and branch.startswith("origin/"):
            branch = branch.removeprefix("origin/")
        return CiInfo(
            provider="jenkins",
            job=_get(e, "JOB_NAME"),
            url=_get(e, "BUILD_URL"),
            run_id=_get(e, "BUILD_TAG", "BUILD_NUMBER"),
            branch=branch,
            commit=_get(e, "GIT_COMMIT"),
        )
    if _true(e.get("BUILDKITE")):
        build_url, job_id = _get(e, "BUILDKITE_BUILD_URL"), _get(e, "BUILDKITE_JOB_ID")
        return CiInfo(
            provider="buildkite",
            job=_get(e, "BUILDKITE_LABEL", "BUILDKITE_STEP_KEY", "BUILDKITE_PIPELINE_SLUG"),
            url=f"{build_url}#{job_id}" if build_url and job_id else build_url,
            run_id=_get(e, "BUILDKITE_BUILD_ID"),
            branch=_get(e, "BUILDKITE_BRANCH"),
            commit=_get(e, "BUILDKITE_COMMIT"),
        )
    if _true(e.get("CIRCLECI")):
        return CiInfo(
            provider="circleci",
            job=_get(e, "CIRCLE_JOB"),
            url=_get(e, "CIRCLE_BUILD_URL"),
            run_id=_get(e, "CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM"),
            branch=_get(e, "CIRCLE_BRANCH"),
            commit=_get(e, "CIRCLE_SHA1"),
        )
    if _true(e.get("CI")):
        return CiInfo(provider="ci")
    return CiInfo()


def run_git(args: Sequence[str], cwd: Path) -> str | None:
    """``git ARGS`` in ``cwd``: its output, stripped; None where git is missing, fails or times out."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, env=env, check=False
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(cwd: Path, run: GitRunner = run_git) -> GitInfo:
    """The commit, branch and dirty flag of the checkout ``cwd`` is in (all None outside one)."""
    commit = run(["rev-parse", "--verify", "HEAD"], cwd)
    if not commit:
        return GitInfo()
    branch = run(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    status = run(["status", "--porcelain", "--untracked-files=no"], cwd)
    return GitInfo(
        commit=commit,
        branch=branch if branch and branch != "HEAD" else None,
        dirty=None if status is None else bool(status),
    )


def run_group_id(ci: CiInfo, given: str | None = None) -> str | None:
    """The run group: ``given`` (the option), else the CI's run id as ``<provider>:<id>`` (every shard of one
    CI run shares it), else None (a run on its own)."""
    if given:
        return given
    if ci.provider and ci.run_id:
        return f"{ci.provider}:{ci.run_id}"
    return None


def author(environ: Mapping[str, str]) -> str | None:
    """Who is making an annotation: the CI's user where one triggered the job, else the login name."""
    return _get(
        environ,
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "BUILDKITE_BUILD_CREATOR",
        "CIRCLE_USERNAME",
        "BUILD_USER_ID",
        "USER",
        "LOGNAME",
        "USERNAME",
    )


def collect_run_meta(
    cwd: Path,
    environ: Mapping[str, str],
    *,
    environment: JsonMapping | None = None,
    platform_key: str | None = None,
    shard: tuple[int, int] | None = None,
    run_group: str | None = None,
    plugin_version: str | None = None,
    host: str | None = None,
    started_at: datetime | None = None,
    git: GitRunner = run_git,
) -> RunMeta:
    """The metadata of a run started now in ``cwd`` (the rootdir): git first, the CI's commit and branch where
    git cannot tell (no checkout, a detached HEAD); ``host`` defaults to the environment's ``hostname``, else
    this machine's name; ``shard`` is ``(k, N)``, 1-based."""
    env = environment or {}
    checkout = git_info(cwd, git)
    ci = ci_info(environ)
    torch = env.get("torch")
    hostname = host or env.get("hostname") or socket.gethostname() or None
    return RunMeta(
        started_at=started_at or datetime.now(timezone.utc),
        git_commit=checkout.commit or ci.commit,
        git_branch=checkout.branch or ci.branch,
        git_dirty=checkout.dirty,
        ci_provider=ci.provider,
        ci_job=ci.job,
        ci_url=ci.url,
        ci_run_id=ci.run_id,
        host=str(hostname) if hostname else None,
        platform_key=platform_key,
        environment=dict(env) if environment is not None else None,
        plugin_version=plugin_version or (str(env["plugin_version"]) if env.get("plugin_version") else None),
        torch_version=str(torch) if torch else None,
        shard_index=shard[0] if shard else None,
        shard_count=shard[1] if shard else None,
        run_group=run_group_id(ci, run_group),
    )
