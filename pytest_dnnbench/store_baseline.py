"""Baselines drawn from the results store (``--dnn-baseline=store``; no pytest here).

Each test is compared with the last ``--dnn-baseline-runs`` (default 5) complete runs of its fingerprint
(:mod:`.store.fingerprint`: the same model, weights, batch, input, mode, precision, threads and platform) on
the reference branch (``--dnn-baseline-branch``; default the repository's default branch), leaving out records
measured on a busy machine or with too few samples, the commits an ``ignore`` annotation names and everything
before the newest accepted change (``history accept``) -- :meth:`.store.db.Store.last_complete`. Each of those
runs is one round of the baseline, as a saved round of a baseline file is: the gate compares process medians
with process medians, the same way for both.

The store is opened read-only, once per process, when the first test asks (under pytest-xdist each worker
opens it): a store that cannot be read gives each test "no baseline applies" with the reason, as a missing
baseline file does.
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .jsontypes import JsonMapping, JsonObject
from .run_store import StoreChoice

if TYPE_CHECKING:
    from .gate import BaselineSource
    from .record import Record
    from .settings import Settings
    from .store.db import Point, Store

__all__ = ["DEFAULT_RUNS", "StoreBaselines", "baseline_source", "default_branch", "store_baselines"]

#: Complete runs a test is compared with, by default.
DEFAULT_RUNS = 5


def default_branch(rootdir: Path) -> str | None:
    """The repository's default branch: ``origin``'s HEAD where a clone knows it, else ``init.defaultBranch``,
    else ``main`` or ``master`` where such a branch exists; None outside a repository (then any branch)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=rootdir, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() or None if out.returncode == 0 else None

    head = git("symbolic-ref", "--short", "refs/remotes/origin/HEAD")
    if head:
        return head.split("/", 1)[1] if "/" in head else head
    if git("rev-parse", "--git-dir") is None:
        return None
    for name in filter(None, (git("config", "init.defaultBranch"), "main", "master")):
        if git("rev-parse", "--verify", "--quiet", f"refs/heads/{name}"):
            return name
    return None


def baseline_source(settings: Settings) -> BaselineSource:
    """Where this run's baselines come from: files (``--dnn-baseline``), or the store's history."""
    from .gate import BaselineSource

    return BaselineSource(
        settings.baseline, settings.rootpath, settings.require_baseline, history=store_baselines(settings)
    )


def store_baselines(settings: Settings) -> StoreBaselines | None:
    """The store's baselines of a run with ``--dnn-baseline=store`` (None otherwise)."""
    if settings.baseline != "store" or settings.store is None:
        return None
    branch = settings.baseline_branch
    if branch is None:
        branch = default_branch(settings.rootpath)
    elif branch == "*":
        branch = None
    return StoreBaselines(settings.store, settings.rootpath, branch, settings.baseline_runs)


@dataclass
class StoreBaselines:
    """The baselines of a run that compares with the store's history."""

    choice: StoreChoice
    rootdir: Path
    branch: str | None
    runs: int = DEFAULT_RUNS
    #: The store's URL, its password masked (what the records and messages show as the baseline's place).
    url: str = ""
    _db: Store | None = field(default=None, repr=False)
    _problem: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from .store.urls import mask_url, resolve_url

        self._url = resolve_url(self.choice.value, self.rootdir, relative_to=self.choice.base)
        self.url = mask_url(self._url)

    def where(self) -> str:
        on = f"branch {self.branch}" if self.branch else "any branch"
        return f"{self.url} ({on}, the last {self.runs} complete run(s))"

    def entry(self, record: Record) -> tuple[JsonObject | None, str | None]:
        """The baseline entry of ``record`` built from its history (None and why, where there is none)."""
        from .store.fingerprint import fingerprint

        store = self._open()
        if store is None:
            return None, self._problem
        from .store.urls import StoreError

        fp = fingerprint(record.to_json())
        try:
            points = store.last_complete(fp, self.branch, self.runs)
        except StoreError as exc:
            return None, str(exc)
        if not points:
            return None, (
                f"the results store {self.where()} has no usable record of {record.model} at batch "
                f"{record.batch_size} (fingerprint {fp[:12]}): record some with --dnn-store on that branch"
            )
        try:
            kept = store.records_json([p.record_id for p in points])
        except StoreError as exc:
            return None, str(exc)
        return entry_from_points(record, points, kept), None

    def _open(self) -> Store | None:
        if self._db is None and self._problem is None:
            from .store.db import open_store
            from .store.urls import StoreError

            try:
                self._db = open_store(self._url, write=False)
            except StoreError as exc:
                self._problem = str(exc)
        return self._db

    def close(self) -> None:
        store, self._db = self._db, None
        if store is not None:
            store.close()


def entry_from_points(record: Record, points: list[Point], kept: Mapping[int, JsonMapping] | None = None) -> JsonObject:
    """A baseline file's entry (as :func:`.gate.compare_entry` reads it) from a history's points: one round
    per run, the latest run's memory, MACs, parameters and measured Top-1 as the entry's figures.

    ``kept``: the records' JSON as the store keeps it, by record id (:meth:`.store.db.Store.records_json`): a
    round takes its machine speed from there (``latency_ms.reference``), as a saved round does, so that the gate
    divides the machine's speed out of a comparison with the store's runs too."""
    from .baseline_save import reference_of

    rounds: list[JsonObject] = []
    for p in points:
        rnd: JsonObject = {
            "created": p.created_at.isoformat(),
            "median_ms": p.latency_median_ms,
            "n": p.figures.get("latency_samples"),
            "capped": bool(p.capped),
            "commit": p.git_commit,
            "run": p.run_id,
        }
        total = p.figures.get("memory_total_bytes")
        if total is not None:
            rnd["memory_bytes"] = {"total": int(total)}
        latency = (kept or {}).get(p.record_id, {}).get("latency_ms")
        if isinstance(latency, Mapping):
            rnd.update(reference_of(latency))
        rounds.append(rnd)
    latest = points[-1].figures
    medians = [float(p.latency_median_ms) for p in points if p.latency_median_ms is not None]
    entry: JsonObject = {
        "model": record.model,
        "batch_size": record.batch_size,
        "input_size": list(record.input_size) if record.input_size else None,
        "rounds": rounds,
        "latency_ms": {"median": statistics.median(medians)} if medians else {},
        "source": "store",
    }
    if latest.get("memory_total_bytes") is not None:
        entry["memory_bytes"] = {"total": int(latest["memory_total_bytes"] or 0)}
    for metric, column in (("macs", "macs_per_image"), ("params", "params")):
        if latest.get(column) is not None:
            entry[metric] = int(latest[column] or 0)
    if latest.get("top1_pct") is not None:
        entry["accuracy"] = {"measured": {"top1": float(latest["top1_pct"] or 0.0)}}
    return entry
