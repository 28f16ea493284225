"""The ``history`` command's core: for each history of the store (a fingerprint), its points of one figure, the
latest, the trend, the change points (:mod:`.changes`) with the commits where they begin, and what people said
about it (accepted changes, ignored commits, notes). :func:`collect` reads; :func:`to_json` gives the
``--json`` output; the words are :mod:`.cli`'s.

Which points (docs/history.md, "The history command"): one per run (the run's last record of the fingerprint
that has the figure), the last ``last`` runs of each history; by default only the points a baseline may use
(complete runs, records neither busy nor insufficient); the runs of a commit an ``ignore`` annotation names
are left out. No pytest, no torch here.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..jsontypes import JsonObject
from .change_cache import ChangeCache
from .changes import ALPHA, MIN_STEP, ChangePoint, change_points, trend
from .db import Annotation, SeriesPoint, Store, _matches

__all__ = [
    "DEFAULT_LAST",
    "DEFAULT_METRIC",
    "HIGHER_IS_BETTER",
    "Change",
    "Entry",
    "Subject",
    "build_entry",
    "Filters",
    "History",
    "annotations_of",
    "collect",
    "commit_matches",
    "subjects",
    "to_json",
]

#: The figure shown where none is asked for.
DEFAULT_METRIC = "latency_median_ms"
#: The runs of each history looked at where ``--last`` is not given.
DEFAULT_LAST = 100
#: Figures where a larger value is better (for every other one, a smaller value is).
HIGHER_IS_BETTER = frozenset({"fps", "top1_pct", "top5_pct"})


@dataclass(frozen=True)
class Subject:
    """What one history measures (from its latest record), and how many records it holds."""

    fingerprint: str
    model: str
    batch_size: int
    mode: str
    precision: str
    device: str
    platform_key: str
    source: str | None
    records: int

    @property
    def facts(self) -> dict[str, object]:
        """As an annotation's selection names them."""
        return {
            "model": self.model,
            "batch_size": self.batch_size,
            "mode": self.mode,
            "precision": self.precision,
            "device": self.device,
            "platform_key": self.platform_key,
            "source": self.source,
        }


def subjects(store: Store) -> list[Subject]:
    """Every history of ``store``, by model, batch, mode, precision, platform (two short queries: the newest
    record of each fingerprint, and the records' count from the index; not :meth:`.db.Store.fingerprints`,
    which reads every record)."""
    counts = store.record_counts()
    out = [
        Subject(
            fingerprint=fp,
            model=str(f["model"]),
            batch_size=int(str(f["batch_size"])),
            mode=str(f["mode"]),
            precision=str(f["precision"]),
            device=str(f["device"]),
            platform_key=str(f["platform_key"]),
            source=str(f["source"]) if f["source"] is not None else None,
            records=counts.get(fp, 0),
        )
        for fp, f in store.selection_facts().items()
    ]
    return sorted(out, key=lambda s: (s.model, s.batch_size, s.mode, s.precision, s.platform_key, s.fingerprint))


@dataclass(frozen=True)
class Filters:
    """Which histories: a model (a glob: ``resnet*``), a batch size, a mode, a fingerprint prefix (None: any)."""

    model: str | None = None
    batch_size: int | None = None
    mode: str | None = None
    fingerprint: str | None = None

    def admit(self, info: Subject) -> bool:
        return (
            (self.model is None or fnmatch.fnmatchcase(info.model, self.model))
            and (self.batch_size is None or info.batch_size == self.batch_size)
            and (self.mode is None or info.mode == self.mode)
            and (self.fingerprint is None or info.fingerprint.startswith(self.fingerprint.lower()))
        )

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.model, self.batch_size, self.mode, self.fingerprint))


@dataclass(frozen=True)
class Change:
    """A change point of a history, placed in it: the run (and commit) of its first point at the new level, and
    the accepted change that covers it (its first run at or before the time that accepted change takes effect)."""

    point: ChangePoint
    #: 1-based: the run's place among the points looked at.
    run_number: int
    run_id: int
    git_commit: str | None
    started_at: datetime
    accepted_by: int | None

    def worse(self, metric: str) -> bool:
        """Whether the step is for the worse (slower, more memory; lower fps or accuracy)."""
        return (self.point.step < 0) if metric in HIGHER_IS_BETTER else (self.point.step > 0)


@dataclass(frozen=True)
class Entry:
    """One history: what it measures, its points, trend, change points and annotations."""

    info: Subject
    points: list[SeriesPoint]
    #: Points of the window left out because an ``ignore`` annotation names their commit.
    ignored: int
    trend: float | None
    changes: list[Change]
    annotations: list[Annotation]
    #: When each annotation takes effect (:meth:`.db.Store.takes_effect`), by its id.
    effective: Mapping[int, datetime]
    #: For a history with no usable point: its runs that ``--all`` would show (busy or insufficient records,
    #: incomplete or interrupted runs); 0 otherwise (not counted: it would read every history twice).
    unusable: int = 0

    @property
    def latest(self) -> SeriesPoint | None:
        return self.points[-1] if self.points else None


@dataclass(frozen=True)
class History:
    """What ``history`` shows: the store, the figure, the window, and one entry per history that matched."""

    url: str
    metric: str
    last: int | None
    usable: bool
    branch: str | None
    #: The histories in the store (before the filters).
    total: int
    entries: list[Entry] = field(default_factory=list)


def commit_matches(commit: str | None, named: str) -> bool:
    """Whether a run's ``commit`` is the one an annotation names (the whole hash, or a prefix of 7 or more)."""
    if commit is None:
        return False
    named = named.strip().lower()
    commit = commit.lower()
    return commit.startswith(named) if 7 <= len(named) < 40 else commit == named


def collect(
    store: Store,
    *,
    metric: str = DEFAULT_METRIC,
    filters: Filters = Filters(),
    branch: str | None = None,
    last: int | None = DEFAULT_LAST,
    usable: bool = True,
    alpha: float = ALPHA,
    min_step: float = MIN_STEP,
    cache: ChangeCache | None = None,
) -> History:
    """Read the histories of ``store`` that ``filters`` admit and find their change points (one query for the
    points of all of them; raises :class:`~.urls.StoreError` where the database fails, ``ValueError`` for a
    figure the store does not have). The change points come from ``cache`` (a new :class:`~.change_cache.ChangeCache`
    where None: the user's), found only for the histories it does not hold yet, and written back."""
    cache = ChangeCache() if cache is None else cache
    infos = subjects(store)
    chosen = [i for i in infos if filters.admit(i)]
    history = History(store.url, metric, last, usable, branch, len(infos))
    if not chosen:
        return history
    series = store.series(
        metric,
        fingerprints=[i.fingerprint for i in chosen] if filters.any else None,
        branch=branch,
        last=last,
        usable=usable,
    )
    empty = [i.fingerprint for i in chosen if i.fingerprint not in series]
    unusable = (
        store.series(metric, fingerprints=empty, branch=branch, last=last, usable=False) if usable and empty else {}
    )
    notes = store.annotations()
    effective = store.takes_effect(notes) if notes else {}
    for info in chosen:
        mine = annotations_of(info, notes)
        entry = build_entry(info, series.get(info.fingerprint, []), mine, effective, alpha, min_step, cache)
        history.entries.append(replace(entry, unusable=len(unusable.get(info.fingerprint, []))))
    cache.save()
    return history


def annotations_of(info: Subject, notes: Sequence[Annotation]) -> list[Annotation]:
    """The annotations of ``notes`` that name the history ``info``: by its fingerprint or by a selection."""
    return [n for n in notes if n.fingerprint == info.fingerprint or _matches(n.selection, info.facts)]


def build_entry(
    info: Subject,
    window: Sequence[SeriesPoint],
    notes: Sequence[Annotation],
    effective: Mapping[int, datetime],
    alpha: float,
    min_step: float,
    cache: ChangeCache | None = None,
) -> Entry:
    """One history's entry from its points in time order (``window``) and the annotations that name it: the
    points of ignored commits left out, the trend, the change points placed at their runs and commits."""
    ignored = [n.git_commit for n in notes if n.kind == "ignore" and n.git_commit]
    points = [p for p in window if not any(commit_matches(p.git_commit, c) for c in ignored)]
    values = [p.value for p in points]
    accepts = sorted((effective[n.id], n.id) for n in notes if n.kind == "accept" and n.id in effective)
    changes = []
    found = (
        cache.find(values, alpha=alpha, min_step=min_step)
        if cache is not None
        else change_points(values, alpha=alpha, min_step=min_step)
    )
    for cp in found:
        first = points[cp.index]
        cover = next((note_id for when, note_id in accepts if first.started_at <= when), None)
        changes.append(Change(cp, cp.index + 1, first.run_id, first.git_commit, first.started_at, cover))
    return Entry(
        info=info,
        points=points,
        ignored=len(window) - len(points),
        trend=trend(values),
        changes=changes,
        annotations=list(notes),
        effective={n.id: effective[n.id] for n in notes if n.id in effective},
    )


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_json(history: History) -> JsonObject:
    """The ``--json`` output: every history with its points, change points and annotations."""
    return {
        "store": history.url,
        "metric": history.metric,
        "last": history.last,
        "usable_only": history.usable,
        "branch": history.branch,
        "histories_in_store": history.total,
        "histories": [
            {
                "fingerprint": e.info.fingerprint,
                "model": e.info.model,
                "batch_size": e.info.batch_size,
                "mode": e.info.mode,
                "precision": e.info.precision,
                "device": e.info.device,
                "platform_key": e.info.platform_key,
                "records": e.info.records,
                "ignored_points": e.ignored,
                "unusable_points": e.unusable,
                "trend": e.trend,
                "latest": _point(e.latest) if e.latest is not None else None,
                "points": [_point(p) for p in e.points],
                "change_points": [
                    {
                        "run_number": c.run_number,
                        "run_id": c.run_id,
                        "git_commit": c.git_commit,
                        "started_at": _when(c.started_at),
                        "before": c.point.before,
                        "after": c.point.after,
                        "step": c.point.step if math.isfinite(c.point.step) else None,
                        "p_value": c.point.p_value,
                        "n_before": c.point.n_before,
                        "n_after": c.point.n_after,
                        "worse": c.worse(history.metric),
                        "accepted_by": c.accepted_by,
                    }
                    for c in e.changes
                ],
                "annotations": [
                    {
                        "id": a.id,
                        "kind": a.kind,
                        "fingerprint": a.fingerprint,
                        "selection": dict(a.selection) if a.selection is not None else None,
                        "git_commit": a.git_commit,
                        "at": _when(a.at),
                        "takes_effect": _when(e.effective.get(a.id)),
                        "reason": a.reason,
                        "author": a.author,
                        "created_at": _when(a.created_at),
                    }
                    for a in e.annotations
                ],
            }
            for e in history.entries
        ],
    }


def _point(p: SeriesPoint) -> JsonObject:
    return {
        "run_id": p.run_id,
        "record_id": p.record_id,
        "started_at": _when(p.started_at),
        "run_status": p.run_status,
        "git_commit": p.git_commit,
        "git_branch": p.git_branch,
        "host": p.host,
        "busy": p.busy,
        "insufficient": p.insufficient,
        "value": p.value,
    }
