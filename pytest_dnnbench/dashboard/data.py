"""What the dashboard shows, read from a results store: every history's window of points with the figures the
pages draw, its change points and annotations, the runs those points come from, the platforms and their colours.

:func:`read_site` reads; :mod:`.pages` writes the words and the charts' data. The change points are those of
``python -m pytest_dnnbench history`` (:func:`..store.history.build_entry`, through the same
:class:`~..store.change_cache.ChangeCache`): found on the same window (the last ``last`` usable runs of each
history: complete, neither busy nor insufficient, ignored commits left out), so the site and the command agree.
The pages show every run of the last ``last`` runs, busy and incomplete ones marked.

No pytest, no torch here; SQLAlchemy through the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..jsontypes import JsonMapping, JsonObject
from ..store.change_cache import ChangeCache
from ..store.changes import ALPHA, MIN_STEP
from ..store.db import Annotation, Run, SeriesPoint, Store
from ..store.history import Change, Entry, Subject, annotations_of, build_entry, subjects

__all__ = [
    "MODE_DASHES",
    "PALETTE",
    "POINT_FIGURES",
    "History",
    "Platform",
    "Point",
    "Site",
    "read_site",
]

#: Okabe & Ito's colour-blind-safe palette (Color Universal Design), yellow last: it reads worst on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
#: Line dashes by mode, in order of appearance (eager solid): a mode is told apart without its colour.
MODE_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
#: The figures a point carries besides its latency (columns of the store's records).
POINT_FIGURES = (
    "latency_ci_low_ms",
    "latency_ci_high_ms",
    "latency_samples",
    "per_image_ms",
    "fps",
    "memory_total_bytes",
    "energy_j_per_image",
    "outcome",
)


@dataclass(frozen=True)
class Point:
    """One run's record of a history: when, which commit, the trust flags and the figures drawn."""

    run_id: int
    record_id: int
    started_at: datetime
    commit: str | None
    branch: str | None
    host: str | None
    run_status: str
    busy: bool
    insufficient: bool
    failed: bool
    latency_ms: float
    ci_low_ms: float | None
    ci_high_ms: float | None
    samples: int | None
    per_image_ms: float | None
    fps: float | None
    memory_bytes: int | None
    energy_j: float | None

    @property
    def usable(self) -> bool:
        """Whether a baseline (and the change points) may use it: a complete run, neither busy nor insufficient."""
        return self.run_status == "complete" and not self.busy and not self.insufficient


@dataclass(frozen=True)
class History:
    """One fingerprint: what it measures, every point of its window, and the history command's entry for it
    (change points and annotations, found on the usable points)."""

    info: Subject
    points: list[Point]
    entry: Entry

    @property
    def latest(self) -> Point | None:
        usable = [p for p in self.points if p.usable]
        return usable[-1] if usable else (self.points[-1] if self.points else None)

    @property
    def failed(self) -> list[Point]:
        return [p for p in self.points if p.failed]

    def worse(self, change: Change) -> bool:
        return change.worse("latency_median_ms")


@dataclass(frozen=True)
class Platform:
    """A platform key of the store, the colour it has on every page, and how many histories it holds."""

    key: str
    color: str
    symbol: str
    histories: int
    device_name: str | None


@dataclass
class Site:
    """Everything the pages show, read once."""

    store: str
    generated_at: datetime
    last: int | None
    histories: list[History] = field(default_factory=list)
    platforms: dict[str, Platform] = field(default_factory=dict)
    runs: dict[int, Run] = field(default_factory=dict)
    environments: dict[int, JsonMapping] = field(default_factory=dict)
    #: Run id -> the records of that run that the site shows (their kept JSON).
    run_records: dict[int, list[JsonObject]] = field(default_factory=dict)
    modes: list[str] = field(default_factory=list)
    #: Every annotation of the store (accepted changes, ignored commits, notes).
    annotations: list[Annotation] = field(default_factory=list)
    #: Histories in the store (all are shown: the site has no filters).
    total: int = 0

    @property
    def models(self) -> list[str]:
        return sorted({h.info.model for h in self.histories})

    def of_model(self, model: str) -> list[History]:
        return [h for h in self.histories if h.info.model == model]

    def dash(self, mode: str) -> str:
        return MODE_DASHES[self.modes.index(mode) % len(MODE_DASHES)] if mode in self.modes else "solid"


#: Marker symbols cycled once the palette is used up (platform 9 on: the colours repeat, the symbols do not).
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "cross", "x", "star")


def _float(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
        return float(value)
    return None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _point(p: SeriesPoint, figures: Mapping[str, object]) -> Point:
    return Point(
        run_id=p.run_id,
        record_id=p.record_id,
        started_at=p.started_at,
        commit=p.git_commit,
        branch=p.git_branch,
        host=p.host,
        run_status=p.run_status,
        busy=bool(p.busy),
        insufficient=bool(p.insufficient),
        failed=figures.get("outcome") == "failed",
        latency_ms=p.value,
        ci_low_ms=_float(figures.get("latency_ci_low_ms")),
        ci_high_ms=_float(figures.get("latency_ci_high_ms")),
        samples=_int(figures.get("latency_samples")),
        per_image_ms=_float(figures.get("per_image_ms")),
        fps=_float(figures.get("fps")),
        memory_bytes=_int(figures.get("memory_total_bytes")),
        energy_j=_float(figures.get("energy_j_per_image")),
    )


def read_site(store: Store, *, last: int | None = 100, run_pages: bool = True) -> Site:
    """Read what the site shows from ``store``: each history's last ``last`` runs (None: every run) of latency,
    with the figures of :data:`POINT_FIGURES`; the change points as ``history`` finds them; the runs of those
    points (with their records' JSON where ``run_pages``). Raises :class:`~..store.urls.StoreError` where the
    database fails."""
    site = Site(store=store.url, generated_at=datetime.now(timezone.utc), last=last)
    infos = subjects(store)
    site.total = len(infos)
    if not infos:
        return site
    series = store.series("latency_median_ms", last=last, usable=False)
    found = store.series("latency_median_ms", last=last, usable=True)  # the history command's window
    ids = [p.record_id for points in series.values() for p in points]
    figures = store.record_figures(ids, POINT_FIGURES)
    notes = store.annotations()
    site.annotations = notes
    effective = store.takes_effect(notes) if notes else {}
    cache = ChangeCache()
    for info in infos:
        window = series.get(info.fingerprint)
        if not window:
            continue  # no latency in any run (an accuracy-only history): nothing to draw
        points = [_point(p, figures.get(p.record_id, {})) for p in window]
        usable = found.get(info.fingerprint, [])
        entry = build_entry(info, usable, annotations_of(info, notes), effective, ALPHA, MIN_STEP, cache)
        site.histories.append(History(info, points, entry))
    cache.save()
    keys = sorted({h.info.platform_key for h in site.histories})
    run_ids = sorted({p.run_id for h in site.histories for p in h.points})
    runs = store.runs_by_id(run_ids)
    site.runs = {k: v[0] for k, v in runs.items()}
    site.environments = {k: v[1] for k, v in runs.items() if v[1] is not None}
    for i, key in enumerate(keys):
        names = [h for h in site.histories if h.info.platform_key == key]
        device = next((str(e.get("device_name")) for e in _envs(site, names) if e.get("device_name")), None)
        site.platforms[key] = Platform(
            key, PALETTE[i % len(PALETTE)], _SYMBOLS[(i // len(PALETTE)) % len(_SYMBOLS)], len(names), device
        )
    seen: list[str] = []
    for h in site.histories:
        if h.info.mode not in seen:
            seen.append(h.info.mode)
    site.modes = sorted(seen, key=lambda m: (m != "eager", m))
    if run_pages:
        shown = store.records_json(ids)
        for h in site.histories:
            for p in h.points:
                data = shown.get(p.record_id)
                if data is not None:
                    site.run_records.setdefault(p.run_id, []).append(data)
        for records in site.run_records.values():
            records.sort(key=lambda r: (str(r.get("model")), _int(r.get("batch_size")) or 0, str(r.get("mode"))))
    return site


def _envs(site: Site, histories: Sequence[History]) -> list[JsonMapping]:
    out = []
    for h in histories:
        latest = h.latest
        if latest is not None and latest.run_id in site.environments:
            out.append(site.environments[latest.run_id])
    return out
