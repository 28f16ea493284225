"""Assemble a report (tables, figures, environment) and write its files (no pytest here).

``write_report(platforms, out)`` writes ``results.json`` (one platform) or one
``results-<k>.json`` per platform, ``results.csv``, ``report.md``, ``report.html`` and the four
figures as PNG into ``out``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from ..results import jsonable
from . import tables as T
from .csvfile import to_csv

if TYPE_CHECKING:  # pragma: no cover
    from ..record import JsonMapping, JsonObject
    from .figures import FigureFile, MemoryFits
    from .fits import Fit

FILES = ("results.json", "results.csv", "report.md", "report.html")


class ReportFits(TypedDict, total=False):
    """The lines fitted for the figures (absent when the report has no figures)."""

    #: Fig. 3's upper bound per platform label.
    upper_bound: dict[str, Fit]
    #: Fig. 4's memory fits per platform label.
    memory: dict[str, MemoryFits]


@dataclass
class Report:
    title: str
    platforms: list[T.Platform]
    intro: list[str] = field(default_factory=list)
    #: (heading, tables) in order.
    sections: list[tuple[str, list[T.Table]]] = field(default_factory=list)
    figures: list[FigureFile] = field(default_factory=list)
    #: The figures go after the section with this heading (None: at the end).
    figures_after: str | None = None
    #: Headings of the sections shown collapsed in HTML.
    collapsed: set[str] = field(default_factory=set)
    #: Upper bounds (Fig. 3) and memory fits (Fig. 4) per platform label.
    fits: ReportFits = field(default_factory=ReportFits)


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
    from .. import __version__

    platforms = list(platforms)
    if not platforms:
        raise ValueError("a report needs at least one results file or run")
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if title is None:
        title = (
            "pytest-dnnbench report: " + platforms[0].label
            if len(platforms) == 1
            else f"pytest-dnnbench report: {len(platforms)} platforms side by side"
        )
    rep = Report(title, platforms)
    rep.intro.append(f"Made by pytest-dnnbench {__version__} on {now}." + (f" Command: {command}" if command else ""))
    for p in platforms:
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
    if len(platforms) == 1:
        p = platforms[0]
        rep.sections.append(
            (
                "Tables",
                [
                    T.table1(p.records, p.missing),
                    T.table2(p.records, p.missing, memory_note(p.environment, p.records)),
                    T.table3(p.records),
                ],
            )
        )
        rep.figures_after = "Tables"
        rep.sections.append(("Environment", [T.environment_table(p.environment)]))
    else:
        rep.sections.append(
            (
                "Side by side",
                [
                    T.compare_table(platforms, "per_image_ms"),
                    T.compare_table(platforms, "fps", batch_sizes=[1]),
                    T.compare_table(platforms, "memory"),
                ],
            )
        )
        per_platform_t3: list[T.Table] = []
        for p in platforms:
            t3 = T.table3_table(T.select_table3(p.records), title=f"Table 3: {p.label}")
            per_platform_t3.append(t3)
        rep.sections.append(("Table 3 per platform", per_platform_t3))
        rep.figures_after = "Table 3 per platform"
        for p in platforms:
            heading = f"Tables 1 and 2: {p.label}"
            rep.sections.append(
                (
                    heading,
                    [
                        T.table1(p.records, p.missing),
                        T.table2(p.records, p.missing, memory_note(p.environment, p.records)),
                    ],
                )
            )
            rep.collapsed.add(heading)
        rep.sections.append(("Environments", [T.environment_table(p.environment, p.label) for p in platforms]))
        rep.collapsed.add("Environments")
    if figures:
        from . import figures as F

        F.require_matplotlib()
        facts = F.model_facts(platforms)
        f3, bounds = F.fig3(platforms, facts)
        f4, mem_fits = F.fig4(platforms, facts)
        rep.figures = [F.fig1(platforms, facts), F.fig2(platforms, facts), f3, f4]
        rep.fits = {"upper_bound": bounds, "memory": mem_fits}
    return rep


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
    out.mkdir(parents=True, exist_ok=True)
    rep = build(platforms, title=title, command=command)
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
    doc: JsonObject = {"schema": schema, "environment": p.environment, "records": p.records}
    if p.missing:
        doc["missing"] = p.missing
    return json.dumps(doc, indent=1, allow_nan=False, default=jsonable) + "\n"
