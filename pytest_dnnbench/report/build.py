"""Assemble a report (tables, figures, environment) and write its files (no pytest here).

``write_report(platforms, out)`` writes ``results.json`` (one platform) or one
``results-<k>.json`` per platform, ``results.csv``, ``report.md``, ``report.html`` and the
figures as PNG into ``out`` (Figures 1-4; one Fig. 3 per deployment mode, ``fig3_top1_vs_fps_<mode>.png``,
when the records hold modes other than eager). A platform of several modes is shown as one platform
per mode, side by side, eager first; its results file is still written whole. Records and
environments of earlier versions are shown, and written, as this version writes them
(:func:`current_platform`): the results files are of schema ``pytest-dnnbench/2``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..results import jsonable
from ..upgrade import upgrade_environment, upgrade_record
from . import table3 as T3
from . import tables as T
from .csvfile import to_csv
from .document import Report

if TYPE_CHECKING:  # pragma: no cover
    from ..jsontypes import JsonMapping, JsonObject
    from .figures import FigureFile, ModelFacts
    from .fits import Fit

FILES = ("results.json", "results.csv", "report.md", "report.html")


def memory_note(environment: JsonMapping, records: Sequence[JsonMapping] = ()) -> str:
    device = str((environment or {}).get("device") or next((r.get("device") for r in records if r.get("device")), ""))
    method = next((r.get("memory_method") for r in records if r.get("memory_method")), None)
    from ..measure.floor import cpu_total_meaning

    what = (
        "process GPU memory at steady state (CUDA context included)"
        if device.startswith("cuda")
        else cpu_total_meaning(method)
        if device == "cpu"
        else "total memory as recorded"
    )
    shown = f" [{method}]" if method else ""
    return f"memory_bytes.total: {what}{shown}; MiB = 2^20 bytes; colours: the paper's GB (GiB) key"


def build(
    platforms: Sequence[T.Platform], *, title: str | None = None, command: str | None = None, figures: bool = True
) -> Report:
    """The report of these platforms. A platform holding several modes (or a mode but eager) is
    shown as one platform per mode (:func:`~.tables.split_modes`, eager first), side by side."""
    from .. import __version__

    platforms = [current_platform(p) for p in platforms]
    if not platforms:
        raise ValueError("a report needs at least one results file or run")
    views = [v for p in platforms for v in T.split_modes(p)]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # The modes of one run (a platform split here, or by the report command): shown as its main tables.
    one_run = len(views) > 1 and views[0].split_from is not None and len({v.split_from for v in views}) == 1
    if title is None:
        if len(views) == 1:
            title = "pytest-dnnbench report: " + views[0].label
        elif one_run:
            title = f"pytest-dnnbench report: {views[0].split_from}, {len(views)} modes side by side"
        else:
            title = f"pytest-dnnbench report: {len(views)} platforms side by side"
    rep = Report(title, platforms, views=views)
    rep.intro.append(f"Made by pytest-dnnbench {__version__} on {now}." + (f" Command: {command}" if command else ""))
    for p in views:
        n_missing = len(p.missing)
        rep.intro.append(
            f"{p.label}: {len(p.records)} records"
            + (f", {n_missing} tests without a figure" if n_missing else "")
            + (f" (from {p.source})" if p.source else "")
        )
    rep.intro.append(
        "Missing cells (–) carry a numbered note with the reason; nothing missing is shown as zero. "
        "Memory in MiB/GiB (2^20/2^30 bytes): the paper's MB/GB are nvidia-smi's MiB/GiB."
    )
    all_records = [r for p in views for r in p.records]
    if not T.has_energy(all_records) and any(isinstance(r.get("energy"), dict) for r in all_records):
        reason = T.energy_reason(all_records)
        rep.intro.append("Energy: not measured" + (f" — {reason}" if reason else "") + ".")
    if len(views) == 1:
        p = views[0]
        mode = p.mode  # set when the platform's one mode is not eager
        tables = [
            T.table1(p.records, p.missing, mode),
            T.table2(p.records, p.missing, memory_note(p.environment, p.records), mode),
        ]
        if T.has_energy(p.records):
            tables.append(T.energy_table(p.records, p.missing, mode))
        tables.append(
            T3.table3_table(T3.select_table3(p.records), T.mode_title(T3.TABLE3_TITLE, mode) if mode else None)
        )
        rep.sections.append(("Tables", tables))
        rep.figures_after = "Tables"
        rep.sections.append(("Environment", [T.environment_table(p.environment)]))
    else:
        side = [
            T.compare_table(views, "per_image_ms"),
            T.compare_table(views, "fps", batch_sizes=[1]),
            T.compare_table(views, "memory"),
        ]
        if T.has_energy(all_records):
            side.append(T.compare_table(views, "energy"))
        rep.sections.append(("Side by side", side))
        per_platform_t3: list[T.Table] = []
        # Table 3 of (model, mode) pairs for each platform that holds several modes.
        groups: dict[str, list[T.Platform]] = {}
        for v in views:
            if v.split_from is not None:
                groups.setdefault(v.split_from, []).append(v)
        for label, group in groups.items():
            records = [r for v in group for r in v.records]
            if len(T.modes_of(records)) > 1:
                sel = T3.select_table3(records)
                per_platform_t3.append(T3.table3_table(sel, title=f"Table 3: best (model, mode) pairs: {label}"))
        for p in views:
            t3 = T3.table3_table(T3.select_table3(p.records), title=f"Table 3: {p.label}")
            per_platform_t3.append(t3)
        rep.sections.append(("Table 3 per platform", per_platform_t3))
        rep.figures_after = "Table 3 per platform"
        for p in views:
            heading = f"Tables 1 and 2: {p.label}"
            rep.sections.append(
                (
                    heading,
                    [
                        T.table1(p.records, p.missing, p.mode),
                        T.table2(p.records, p.missing, memory_note(p.environment, p.records), p.mode),
                    ],
                )
            )
            if not one_run:  # the modes of one run are its main tables: shown open
                rep.collapsed.add(heading)
        rep.sections.append(("Environments", [T.environment_table(p.environment, p.label) for p in views]))
        rep.collapsed.add("Environments")
    if figures:
        from . import figures as F

        F.require_matplotlib()
        facts = F.model_facts(views)
        f3s, bounds = fig3_per_mode(views, facts)
        f4, mem_fits = F.fig4(views, facts)
        rep.figures = [F.fig1(views, facts), F.fig2(views, facts), *f3s, f4]
        rep.fits = {"upper_bound": bounds, "memory": mem_fits}
    return rep


def current_platform(p: T.Platform) -> T.Platform:
    """``p`` with its records and environment as this version writes them (those of earlier versions upgraded:
    :mod:`..upgrade`; current ones come back equal). ``p`` itself is not changed."""
    return dataclasses.replace(
        p, records=[upgrade_record(r) for r in p.records], environment=upgrade_environment(p.environment)
    )


def view_mode(p: T.Platform) -> str:
    """The mode of a platform's records (one mode after :func:`~.tables.split_modes`)."""
    return p.mode or next(iter(T.modes_of(p.records, p.missing)), "eager")


def fig3_per_mode(views: Sequence[T.Platform], facts: list[ModelFacts]) -> tuple[list[FigureFile], dict[str, Fit]]:
    """Fig. 3 as today when every platform is eager; else one Fig. 3 per mode (titled with it, eager
    first), each with the platforms of that mode. The bounds are keyed by platform label."""
    from . import figures as F

    modes = sorted({view_mode(p) for p in views}, key=T.mode_key)
    if modes == ["eager"]:
        f3, bounds = F.fig3(views, facts)
        return [f3], bounds
    out: list[FigureFile] = []
    bounds = {}
    for mode in modes:
        f3, b = F.fig3([p for p in views if view_mode(p) == mode], facts, mode=mode)
        out.append(f3)
        bounds.update(b)
    return out, bounds


def _write_text(path: Path, text: str) -> Path:
    from ..results import atomic_write_text

    atomic_write_text(path, text)
    return path


def write_report(
    platforms: Sequence[T.Platform], out: Path, *, title: str | None = None, command: str | None = None
) -> list[Path]:
    """Write every file of the report into ``out``; returns their paths."""
    from ..results import SCHEMA
    from . import html, markdown
    from .figures import write_figures

    out = Path(out)
    rep = build(platforms, title=title, command=command)  # first: a report that cannot be built leaves no folder
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if len(rep.platforms) == 1:
        p = rep.platforms[0]
        written.append(_write_text(out / "results.json", _json(SCHEMA, p)))
        written.append(_write_text(out / "results.csv", to_csv(p.records)))
    else:
        rows: list[JsonObject] = []
        for k, p in enumerate(rep.platforms, 1):
            written.append(_write_text(out / f"results-{k}.json", _json(SCHEMA, p)))
            rows += [{"platform": p.label, **r} for r in p.records]
        written.append(_write_text(out / "results.csv", to_csv(rows)))
    written += write_figures(rep.figures, out)
    written.append(_write_text(out / "report.md", markdown.render(rep)))
    written.append(_write_text(out / "report.html", html.render(rep)))
    return written


def _json(schema: str, p: T.Platform) -> str:
    """A platform's results file. A figure that is not finite (NaN or infinite: JSON has no such number)
    is written as null, and a ``notes`` entry names the record and the figure."""
    from ..jsonfile import finite_or_null

    records: list[object] = []
    notes: list[str] = []
    for i, r in enumerate(p.records):
        clean, replaced = finite_or_null(r)
        records.append(clean)
        if replaced:
            what = f"record {i} ({r.get('model')} at batch {r.get('batch_size')})"
            notes.append(f"{what}: not finite, written as null: {', '.join(replaced)}")
    environment, replaced = finite_or_null(p.environment, "environment")
    notes += [f"not finite, written as null: {', '.join(replaced)}"] if replaced else []
    missing, replaced = finite_or_null(p.missing, "missing")
    notes += [f"not finite, written as null: {', '.join(replaced)}"] if replaced else []
    doc: JsonObject = {"schema": schema, "environment": environment, "records": records}
    if p.missing:
        doc["missing"] = missing
    if notes:
        doc["notes"] = notes
    return json.dumps(doc, indent=1, allow_nan=False, default=jsonable) + "\n"
