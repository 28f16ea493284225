"""The dashboard's pages as text: the index (every history, its sparkline and marks, the latest regressions and
improvements first), a page per model (the data its charts draw is a separate script per model: a page loads its
own model only), the platforms side by side, a page per run. Pure functions of a :class:`~.data.Site`; the
charts are drawn in the browser by ``assets/dashboard.js`` with Plotly (:mod:`.publish` copies both into the
site). Every value put into HTML is escaped, every value put into a script is JSON (``</`` escaped).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..jsontypes import JsonObject
from ..store.db import Run
from ..store.history import Change
from ..store.urls import mask_url
from .data import History, Point, Site

__all__ = [
    "Page",
    "index_page",
    "model_data",
    "model_page",
    "model_slug",
    "platforms_page",
    "run_page",
    "sparkline",
]

#: Vermillion for a change for the worse or a failed gate, bluish green for a change for the better (Okabe-Ito).
WORSE, BETTER = "#D55E00", "#009E73"


@dataclass(frozen=True)
class Page:
    """A file of the site: its path under the site's root and its text."""

    path: str
    text: str


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def script_json(value: object) -> str:
    """JSON that is safe inside a ``<script>``: no ``</`` that would end it, non-ASCII kept as escapes."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def model_slug(model: str) -> str:
    """A file name for a model's page: its name where that is plain ASCII, else a readable part and a hash (two
    models never share one)."""
    plain = re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-.")
    if plain == model and plain:
        return plain
    return f"{plain or 'model'}-{hashlib.sha256(model.encode('utf-8')).hexdigest()[:10]}"


def short(commit: str | None) -> str:
    return commit[:7] if commit else "—"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:#.3g}" if value < 100 else f"{value:,.0f}"


def mib(value: int | float | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.0f}"


def pct(step: float) -> str:
    return f"{step * 100:+.1f} %" if math.isfinite(step) else ("+∞" if step > 0 else "−∞")


def _page(title: str, body: str, *, depth: int, scripts: Sequence[str] = (), generated: Site | None = None) -> str:
    up = "../" * depth
    nav = (
        f'<nav aria-label="site"><a href="{up}index.html">All histories</a>'
        f'<a href="{up}platforms.html">Platforms side by side</a></nav>'
    )
    foot = ""
    if generated is not None:
        foot = (
            f"<footer>Store {esc(mask_url(generated.store))} · generated {esc(when(generated.generated_at))} · "
            f"window: the last {esc(generated.last or 'all')} runs of each history · pytest-dnnbench</footer>"
        )
    tags = "".join(f'<script src="{up}{esc(s)}"></script>' for s in scripts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        f'<link rel="stylesheet" href="{up}assets/dashboard.css"></head>'
        f"<body>{nav}<main><h1>{esc(title)}</h1>{body}</main>{foot}{tags}</body></html>\n"
    )


# -- sparklines --------------------------------------------------------------------------------------------------


def sparkline(history: History, width: int = 140, height: int = 30) -> str:
    """An inline SVG of the history's usable latencies (every point where none is usable), a ring at each change
    point (vermillion for the worse, green for the better, hollow once accepted) and a cross at each failed gate."""
    points = [p for p in history.points if p.usable] or history.points
    if not points:
        return ""
    values = [p.latency_ms for p in points]
    lo, hi = min(values), max(values)
    span = (hi - lo) or (abs(hi) or 1.0)
    pad = 4.0

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (i / (len(values) - 1) if len(values) > 1 else 0.5)
        y = height - pad - (height - 2 * pad) * ((v - lo) / span if hi > lo else 0.5)
        return round(x, 1), round(y, 1)

    where = {p.run_id: i for i, p in enumerate(points)}
    line = " ".join(f"{x},{y}" for x, y in (xy(i, v) for i, v in enumerate(values)))
    marks: list[str] = []
    for c in history.entry.changes:
        i = where.get(c.run_id)
        if i is None:
            continue
        x, y = xy(i, values[i])
        colour = WORSE if history.worse(c) else BETTER
        fill = "white" if c.accepted_by is not None else colour
        marks.append(
            f'<circle class="cp" cx="{x}" cy="{y}" r="3.2" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>'
        )
    failed = 0
    for p in history.points:
        i = where.get(p.run_id)
        if not p.failed or i is None:
            continue
        failed += 1
        x, y = xy(i, values[i])
        marks.append(
            f'<path class="fail" d="M{x - 3},{y - 3}L{x + 3},{y + 3}M{x - 3},{y + 3}L{x + 3},{y - 3}" '
            f'stroke="{WORSE}" stroke-width="1.6"/>'
        )
    label = (
        f"latency of the last {len(values)} runs, {ms(values[0])} to {ms(values[-1])} ms; "
        f"{len(history.entry.changes)} change point(s), {failed} failed gate(s)"
    )
    shape = (
        f'<polyline fill="none" stroke="#444" stroke-width="1.2" points="{line}"/>'
        if len(values) > 1
        else f'<circle cx="{xy(0, values[0])[0]}" cy="{xy(0, values[0])[1]}" r="2" fill="#444"/>'
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'data-changes="{len(history.entry.changes)}" data-failed="{failed}"><title>{esc(label)}</title>'
        f"{shape}{''.join(marks)}</svg>"
    )


# -- the index ---------------------------------------------------------------------------------------------------


def _swatch(site: Site, key: str) -> str:
    colour = site.platforms[key].color if key in site.platforms else "#888"
    return f'<span class="swatch" style="background:{colour}" aria-hidden="true"></span>'


def _changes_table(site: Site, rows: list[tuple[History, Change]], caption: str) -> str:
    if not rows:
        return f'<p class="none">{esc(caption)}: none in the window.</p>'
    body = []
    for h, change in rows:
        step = change.point.step
        accepted = change.accepted_by is not None
        body.append(
            "<tr>"
            f"<td>{esc(when(change.started_at))}</td>"
            f'<td><a href="models/{esc(model_slug(h.info.model))}.html#{esc(h.info.fingerprint[:12])}">'
            f"{esc(h.info.model)}</a></td><td>{h.info.batch_size}</td><td>{esc(h.info.mode)}</td>"
            f"<td>{_swatch(site, h.info.platform_key)}{esc(h.info.platform_key)}</td>"
            f'<td class="num">{esc(pct(step))}</td>'
            f'<td class="num">{change.point.before:.4g} → {change.point.after:.4g} ms</td>'
            f'<td class="num">{change.point.p_value:.2g}</td>'
            f'<td><a href="runs/{change.run_id}.html"><code>{esc(short(change.git_commit))}</code></a></td>'
            f"<td>{'accepted' if accepted else ''}</td></tr>"
        )
    return (
        f'<table class="changes"><caption>{esc(caption)}</caption><thead><tr><th>run</th><th>model</th>'
        "<th>batch</th><th>mode</th><th>platform</th><th>step</th><th>median before → after</th><th>p</th>"
        f"<th>first commit</th><th></th></tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _v(value: float | None) -> str:
    return "" if value is None else str(value)


def index_page(site: Site, *, limit: int = 25) -> Page:
    if not site.histories:
        body = (
            '<p class="empty">Nothing yet: the store holds no run with a latency figure. Record runs with '
            "<code>pytest --dnn-store</code> (docs/history.md), then publish again.</p>"
        )
        return Page("index.html", _page("Benchmark histories", body, depth=0, generated=site))
    changes = [(h, c) for h in site.histories for c in h.entry.changes]
    changes.sort(key=lambda hc: hc[1].started_at, reverse=True)
    worse = [(h, c) for h, c in changes if h.worse(c)][:limit]
    better = [(h, c) for h, c in changes if not h.worse(c)][:limit]
    rows = []
    for h in sorted(site.histories, key=lambda h: (h.info.model, h.info.batch_size, h.info.mode, h.info.platform_key)):
        p = h.latest
        assert p is not None  # a history of the site has a point
        marks = []
        if h.entry.changes:
            marks.append(f'<span class="mark cp" title="change points">{len(h.entry.changes)} change(s)</span>')
        if h.failed:
            marks.append(f'<span class="mark fail" title="failed gates">{len(h.failed)} failed</span>')
        if p.busy or not p.usable:
            marks.append('<span class="mark busy" title="the latest point is not usable">busy</span>')
        rows.append(
            f'<tr data-model="{esc(h.info.model)}" data-platform="{esc(h.info.platform_key)}" '
            f'data-mode="{esc(h.info.mode)}">'
            f'<td><a href="models/{esc(model_slug(h.info.model))}.html#{esc(h.info.fingerprint[:12])}">'
            f"{esc(h.info.model)}</a></td>"
            f'<td class="num" data-v="{h.info.batch_size}">{h.info.batch_size}</td>'
            f"<td>{esc(h.info.mode)}</td><td>{esc(h.info.precision)}</td>"
            f"<td>{_swatch(site, h.info.platform_key)}{esc(h.info.platform_key)}</td>"
            f'<td class="num" data-v="{p.latency_ms}">{ms(p.latency_ms)}</td>'
            f'<td class="num" data-v="{_v(p.memory_bytes)}">{mib(p.memory_bytes)}</td>'
            f'<td class="num" data-v="{_v(p.fps)}">{ms(p.fps)}</td>'
            f'<td class="num" data-v="{_v(p.energy_j)}">{ms(p.energy_j)}</td>'
            f"<td>{sparkline(h)}</td><td>{''.join(marks)}</td>"
            f'<td><a href="runs/{p.run_id}.html"><code>{esc(short(p.commit))}</code></a></td></tr>'
        )

    def options(values: Iterable[str]) -> str:
        return "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)

    body = (
        f"<p>{len(site.histories)} histories of {len(site.models)} model(s) on {len(site.platforms)} platform(s), "
        f"{len(site.runs)} run(s) in the window. A change point is where a history's latency steps (ruptures' "
        "PELT, each step tested with Mann–Whitney U), as <code>python -m pytest_dnnbench history</code> finds it; "
        "the sparklines show the usable points (complete runs, neither busy nor insufficient), rings the change "
        "points (hollow: accepted), crosses the failed gates.</p>"
        "<h2>Latest changes</h2>"
        + _changes_table(site, worse, "Regressions (slower), newest first")
        + _changes_table(site, better, "Improvements (faster), newest first")
        + '<h2>Every history</h2><form class="filters" role="search" onsubmit="return false">'
        '<label>Model <input id="f-model" type="search" placeholder="resnet*"></label>'
        f'<label>Platform <select id="f-platform"><option value="">all</option>{options(site.platforms)}</select>'
        f'</label><label>Mode <select id="f-mode"><option value="">all</option>{options(site.modes)}</select></label>'
        '<span id="f-count" aria-live="polite"></span></form>'
        '<table id="histories" class="sortable"><thead><tr>'
        '<th data-sort="text">model</th><th data-sort="num">batch</th><th data-sort="text">mode</th>'
        '<th data-sort="text">precision</th><th data-sort="text">platform</th>'
        '<th data-sort="num">latency (ms per batch)</th><th data-sort="num">memory (MiB)</th>'
        '<th data-sort="num">FPS (images/s)</th><th data-sort="num">energy (J per image)</th>'
        "<th>history</th><th>marks</th><th>latest run</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    return Page(
        "index.html",
        _page("Benchmark histories", body, depth=0, scripts=["assets/dashboard.js"], generated=site),
    )


# -- a model's page ----------------------------------------------------------------------------------------------


def _series(site: Site, h: History) -> JsonObject:
    points = h.points
    runs = site.runs
    return {
        "id": h.info.fingerprint[:12],
        "name": f"{h.info.platform_key} · {h.info.mode} · {h.info.precision}",
        "platform": h.info.platform_key,
        "mode": h.info.mode,
        "batch": h.info.batch_size,
        "color": site.platforms[h.info.platform_key].color,
        "symbol": site.platforms[h.info.platform_key].symbol,
        "dash": site.dash(h.info.mode),
        "x": [p.started_at.isoformat() for p in points],
        "latency": [p.latency_ms for p in points],
        "ci_low": [p.ci_low_ms for p in points],
        "ci_high": [p.ci_high_ms for p in points],
        "n": [p.samples for p in points],
        "memory_mib": [round(p.memory_bytes / 2**20, 2) if p.memory_bytes is not None else None for p in points],
        "busy": [not p.usable for p in points],
        "failed": [p.failed for p in points],
        "commit": [short(p.commit) for p in points],
        "run": [p.run_id for p in points],
        "ci_url": [runs[p.run_id].ci_url if p.run_id in runs else None for p in points],
        "changes": [
            {
                "x": c.started_at.isoformat(),
                "y": c.point.after,
                "commit": short(c.git_commit),
                "run": c.run_id,
                "step": pct(c.point.step),
                "p": c.point.p_value,
                "worse": h.worse(c),
                "accepted": c.accepted_by is not None,
            }
            for c in h.entry.changes
        ],
        "accepted": [
            {"x": h.entry.effective[a.id].isoformat(), "reason": a.reason, "commit": short(a.git_commit)}
            for a in h.entry.annotations
            if a.kind == "accept" and a.id in h.entry.effective
        ],
    }


def model_data(site: Site, model: str) -> JsonObject:
    """The data a model's page draws (``data/<slug>.js``): one series per history, by batch size."""
    histories = sorted(site.of_model(model), key=lambda h: (h.info.batch_size, h.info.platform_key, h.info.mode))
    return {"model": model, "series": [_series(site, h) for h in histories]}


def model_page(site: Site, model: str) -> tuple[Page, Page]:
    """The page of ``model`` and its data script."""
    slug = model_slug(model)
    histories = sorted(site.of_model(model), key=lambda h: (h.info.batch_size, h.info.platform_key, h.info.mode))
    sections = []
    for batch in sorted({h.info.batch_size for h in histories}):
        mine = [h for h in histories if h.info.batch_size == batch]
        rows = []
        for h in mine:
            p = h.latest
            assert p is not None
            changes = ", ".join(
                f'<a href="../runs/{c.run_id}.html">{esc(pct(c.point.step))} at <code>{esc(short(c.git_commit))}'
                f"</code></a>{' (accepted)' if c.accepted_by is not None else ''}"
                for c in h.entry.changes
            )
            accepted = "; ".join(
                f"{esc(a.reason)} (from {esc(when(h.entry.effective.get(a.id)))})"
                for a in h.entry.annotations
                if a.kind == "accept"
            )
            rows.append(
                f'<tr id="{esc(h.info.fingerprint[:12])}"><td>{_swatch(site, h.info.platform_key)}'
                f"{esc(h.info.platform_key)}</td><td>{esc(h.info.mode)}</td><td>{esc(h.info.precision)}</td>"
                f'<td class="num">{ms(p.latency_ms)}</td><td class="num">{mib(p.memory_bytes)}</td>'
                f'<td class="num">{len(h.points)}</td><td>{changes or "none"}</td><td>{accepted or ""}</td>'
                f'<td><a href="../runs/{p.run_id}.html">run {p.run_id}</a> '
                f"<code>{esc(short(p.commit))}</code></td></tr>"
            )
        sections.append(
            f'<section class="batch" data-batch="{batch}"><h2>Batch size {batch}</h2>'
            f'<div class="chart" id="latency-{batch}" data-kind="latency" data-batch="{batch}"></div>'
            f'<div class="chart" id="memory-{batch}" data-kind="memory" data-batch="{batch}"></div>'
            "<table><thead><tr><th>platform</th><th>mode</th><th>precision</th><th>latest latency (ms)</th>"
            "<th>latest memory (MiB)</th><th>points</th><th>change points</th><th>accepted changes</th>"
            f"<th>latest run</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
        )
    body = (
        "<p>Latency (the median per batch, its 95 % interval as error bars) and the process's memory over the "
        "runs of each platform and mode; hover a point for its commit, date, samples and busy flag; click it for "
        "its run. Open markers: busy or otherwise unusable points (left out of the change points). A cross marks "
        "a change point at its first run; a dotted line an accepted change.</p>"
        '<p id="no-script" class="none">The charts need JavaScript.</p>' + "".join(sections)
    )
    data = Page(f"data/{slug}.js", "window.DNN_MODEL = " + script_json(model_data(site, model)) + ";\n")
    page = Page(
        f"models/{slug}.html",
        _page(
            model,
            body,
            depth=1,
            scripts=["assets/plotly.min.js", f"data/{slug}.js", "assets/dashboard.js"],
            generated=site,
        ),
    )
    return page, data


# -- platforms side by side --------------------------------------------------------------------------------------


def platforms_page(
    site: Site,
    reference: str | None,
    paper: Mapping[str, Mapping[tuple[str, int], float]],
    figures: Sequence[str],
    report: str | None,
) -> Page:
    """The latest per-image latency and memory of each history on each platform, with the ratio to
    ``reference`` (a platform key); ``paper``: the paper's per-image ms by platform label and (model, batch);
    ``figures``: image paths of the paper's Figures 1-4 drawn for the latest run of each platform."""
    if not site.histories:
        return Page("platforms.html", _page("Platforms side by side", '<p class="empty">Nothing yet.</p>', depth=0))
    keys = sorted(site.platforms)
    ref = reference if reference in site.platforms else keys[0]
    keys = [ref, *[k for k in keys if k != ref]]
    cells: dict[tuple[str, int, str, str], dict[str, Point]] = {}
    for h in site.histories:
        p = h.latest
        if p is not None:
            cells.setdefault((h.info.model, h.info.batch_size, h.info.mode, h.info.precision), {})[
                h.info.platform_key
            ] = p

    def per_image(p: Point, batch: int) -> float:
        return p.per_image_ms if p.per_image_ms is not None else p.latency_ms / batch

    head = "".join(f"<th>{_swatch(site, k)}{esc(k)}{' (reference)' if k == ref else ''}</th>" for k in keys)
    paper_head = "".join(f"<th>{esc(label)}</th>" for label in paper)
    lat_rows, mem_rows = [], []
    for (model, batch, mode, precision), by in sorted(cells.items()):
        base = by.get(ref)
        lat, mem = [], []
        for k in keys:
            p = by.get(k)
            if p is None:
                lat.append('<td class="num">—</td>')
                mem.append('<td class="num">—</td>')
                continue
            ratio = f" <small>{per_image(p, batch) / per_image(base, batch):.2f}×</small>" if base and k != ref else ""
            lat.append(f'<td class="num">{ms(per_image(p, batch))}{ratio}</td>')
            mratio = (
                f" <small>{p.memory_bytes / base.memory_bytes:.2f}×</small>"
                if base and k != ref and p.memory_bytes and base.memory_bytes
                else ""
            )
            mem.append(f'<td class="num">{mib(p.memory_bytes)}{mratio}</td>')
        papers = "".join(f'<td class="num">{ms(v.get((model, batch)))}</td>' for v in paper.values())
        name = f'<td><a href="models/{esc(model_slug(model))}.html">{esc(model)}</a></td>'
        lat_rows.append(
            f"<tr>{name}<td>{batch}</td><td>{esc(mode)}</td><td>{esc(precision)}</td>{''.join(lat)}{papers}</tr>"
        )
        mem_rows.append(f"<tr>{name}<td>{batch}</td><td>{esc(mode)}</td><td>{esc(precision)}</td>{''.join(mem)}</tr>")
    first = "<th>model</th><th>batch</th><th>mode</th><th>precision</th>"
    figs = "".join(
        f'<figure><img src="{esc(f)}" alt="{esc(_figure_alt(f))}" loading="lazy"><figcaption>{esc(_figure_alt(f))}'
        "</figcaption></figure>"
        for f in figures
    )
    body = (
        f"<p>The latest usable record of each history on each of the store's {len(keys)} platform(s); ratios to "
        f"the reference platform <strong>{esc(ref)}</strong> (<code>publish --reference KEY</code> to choose "
        "another). The paper's columns are Bianco et al. 2018's Table 1 (ms per image, batch 1 to 64).</p>"
        "<h2>Inference time per image (ms), as the paper's Table 1</h2>"
        f"<table><thead><tr>{first}{head}{paper_head}</tr></thead><tbody>{''.join(lat_rows)}</tbody></table>"
        "<h2>Memory of the process (MiB), as the paper's Table 2</h2>"
        f"<table><thead><tr>{first}{head}</tr></thead><tbody>{''.join(mem_rows)}</tbody></table>"
        + (
            "<h2>The paper's Figures 1–4, for the latest run of each platform and the paper's own</h2>"
            f'<div class="figures">{figs}</div>'
            if figs
            else ""
        )
        + (
            f'<p>The whole report of these runs (Tables 1–3): <a href="{esc(report)}">{esc(report)}</a>.</p>'
            if report
            else ""
        )
    )
    return Page("platforms.html", _page("Platforms side by side", body, depth=0, generated=site))


def _figure_alt(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    titles = {
        "fig1": "Figure 1: Top-1 accuracy against operations per image (GFLOPs)",
        "fig2": "Figure 2: accuracy density (Top-1 per million parameters)",
        "fig3": "Figure 3: Top-1 accuracy against throughput (FPS)",
        "fig4": "Figure 4: memory against model size",
    }
    return next((t for k, t in titles.items() if name.startswith(k)), name)


# -- a run's page ------------------------------------------------------------------------------------------------


def _flat(prefix: str, value: object, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and len(value) > 8:
        out.append((prefix, f"{len(value)} values"))
    else:
        out.append((prefix, json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value))


def run_page(site: Site, run: Run) -> Page:
    env = site.environments.get(run.id) or {}
    facts = [
        ("status", run.status),
        ("started", when(run.started_at)),
        ("finished", when(run.finished_at)),
        ("commit", run.git_commit or "—"),
        ("branch", run.git_branch or "—"),
        (
            "uncommitted changes",
            {True: "yes", False: "no"}.get(run.git_dirty, "—") if run.git_dirty is not None else "—",
        ),
        ("host", run.host or "—"),
        ("platform", run.platform_key or "—"),
        ("plugin", run.plugin_version or "—"),
        ("torch", run.torch_version or "—"),
        ("CI", " ".join(x for x in (run.ci_provider, run.ci_job) if x) or "—"),
        ("shard", f"{run.shard_index}/{run.shard_count}" if run.shard_count else "—"),
        ("run group", run.run_group or "—"),
        ("records in the store", str(run.records)),
    ]
    rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in facts)
    if run.ci_url and run.ci_url.startswith(("https://", "http://")):
        link = f'<a href="{esc(run.ci_url)}" rel="external">{esc(run.ci_url)}</a>'
        rows += f'<tr><th scope="row">CI job</th><td>{link}</td></tr>'
    flat: list[tuple[str, str]] = []
    _flat("", env, flat)
    env_rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in flat)
    records = site.run_records.get(run.id, [])
    rec_rows = []
    for r in records:
        lat = r.get("latency_ms") if isinstance(r.get("latency_ms"), Mapping) else {}
        assert isinstance(lat, Mapping)
        ci = lat.get("ci_median")
        ci_text = (
            f"{ms(float(ci[0]))}–{ms(float(ci[1]))}"
            if isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci)
            else "—"
        )
        mem = r.get("memory_bytes") if isinstance(r.get("memory_bytes"), Mapping) else {}
        assert isinstance(mem, Mapping)
        checks = r.get("checks") if isinstance(r.get("checks"), list) else []
        assert isinstance(checks, list)
        check_text = "".join(
            f'<li class="{"ok" if c.get("passed") else "bad"}">{esc(c.get("metric"))}: '
            f"{'passed' if c.get('passed') else 'FAILED'} — {esc(c.get('message') or '')}</li>"
            for c in checks
            if isinstance(c, Mapping)
        )
        model = str(r.get("model"))
        rec_rows.append(
            f'<tr><td><a href="../models/{esc(model_slug(model))}.html">{esc(model)}</a></td>'
            f"<td>{esc(r.get('batch_size'))}</td><td>{esc(r.get('mode'))}</td><td>{esc(r.get('precision'))}</td>"
            f'<td class="num">{ms(_num(lat.get("median")))}</td><td class="num">{ci_text}</td>'
            f'<td class="num">{esc(lat.get("n", "—"))}</td><td class="num">{mib(_num(mem.get("total")))}</td>'
            f'<td class="num">{ms(_num(r.get("fps")))}</td><td>{esc(r.get("outcome") or "—")}'
            f"{' · ' + esc(r.get('reason')) if r.get('reason') else ''}</td>"
            f'<td><ul class="checks">{check_text or "<li>no checks</li>"}</ul></td></tr>'
        )
    body = (
        f'<table class="facts">{rows}</table>'
        f"<h2>Records ({len(records)} shown)</h2>"
        + (
            "<table><thead><tr><th>model</th><th>batch</th><th>mode</th><th>precision</th><th>latency median "
            "(ms per batch)</th><th>95 % interval (ms)</th><th>samples</th><th>memory (MiB)</th><th>FPS</th>"
            f"<th>outcome</th><th>checks</th></tr></thead><tbody>{''.join(rec_rows)}</tbody></table>"
            if rec_rows
            else '<p class="none">No record of this run has a latency figure.</p>'
        )
        + f'<h2>Environment</h2><table class="facts">{env_rows or "<tr><td>not recorded</td></tr>"}</table>'
    )
    title = f"Run {run.id}" + (f" · {short(run.git_commit)}" if run.git_commit else "")
    return Page(f"runs/{run.id}.html", _page(title, body, depth=1, generated=site))


def _num(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
        return float(value)
    return None
