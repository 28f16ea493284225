"""The end-of-session table (pure: records in, lines out)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..units import format_mib

if TYPE_CHECKING:  # pragma: no cover
    from ..record import JsonMapping
    from .tables import Cell, Table


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


COLUMNS = ("model", "batch", "ms/image", "FPS", "memory", "GFLOPs", "params(M)", "n", "note")
#: Shown after ``n`` when a record was compared with a baseline.
BASELINE_COLUMN = "vs baseline"
#: What the notes and the baseline column mean: shown under the table for the ones that appear in it.
LEGEND = {
    "capped": "capped: the time budget ran out before the median's confidence interval reached its target",
    "insufficient": "insufficient: fewer samples than --dnn-min-samples (the hard ceiling of 3x the budget ran out)",
    "busy": "busy: the machine was busy while the timed calls ran (CPU pressure, steal or involuntary switches)",
    "inconclusive": "inconclusive: the latency comparison could not be trusted either way (passed unless --dnn-strict)",
    "noisy": "noisy: the baseline's rounds spread too widely to resolve twice the latency tolerance",
    BASELINE_COLUMN: (
        f"{BASELINE_COLUMN}: median / the baseline's, and the smallest slowdown the comparison can resolve"
    ),
}


def _latency_check(rec: JsonMapping) -> JsonMapping | None:
    return next((c for c in rec.get("checks") or [] if c.get("metric") == "latency" and "ratio" in c), None)


def baseline_cell(rec: JsonMapping) -> str:
    """``1.03x res 14%``: the ratio to the baseline and the smallest slowdown it resolves; ``-`` if not compared."""
    check = _latency_check(rec)
    if check is None:
        return "-"
    ratio, resolution = check.get("ratio"), check.get("resolution")
    text = f"{float(ratio):.2f}x" if isinstance(ratio, (int, float)) else "?"
    return f"{text} res {100 * float(resolution):.0f}%" if isinstance(resolution, (int, float)) else text


def record_notes(rec: JsonMapping) -> list[str]:
    lat = rec.get("latency_ms") or {}
    notes: list[str] = []
    if lat.get("capped"):
        notes.append("capped")
    if lat.get("insufficient"):
        notes.append("insufficient")
    if (rec.get("load") or {}).get("busy"):
        notes.append("busy")
    check = _latency_check(rec) or {}
    if check.get("inconclusive"):
        notes.append("inconclusive")
    if check.get("noisy"):
        notes.append("noisy")
    return notes


def record_row(rec: JsonMapping) -> tuple[str, ...]:
    lat = rec.get("latency_ms") or {}
    mem = rec.get("memory_bytes") or {}
    notes = record_notes(rec)
    if rec.get("counters_disagree"):
        notes.append("flops?")
    if rec.get("outcome") not in (None, "passed"):
        notes.append(str(rec.get("outcome")))
    flops = rec.get("flops")
    params = rec.get("params")
    return (
        str(rec.get("model")),
        str(rec.get("batch_size")),
        _fmt(rec.get("per_image_ms"), ".3f"),
        _fmt(rec.get("fps"), ".1f"),
        format_mib(mem.get("total")),
        _fmt(None if flops is None else flops / 1e9, ".2f"),
        _fmt(None if params is None else params / 1e6, ".2f"),
        str(lat.get("n", "-")),
        ", ".join(notes),
    )


#: The accuracy column, shown after params(M) when the records carry accuracy (real runs always do).
TOP1_COLUMN = "Top-1(%)"
REFERENCE_MARK = "(ref)"
REFERENCE_LEGEND = (
    f"{TOP1_COLUMN}: plain = measured in this run; {REFERENCE_MARK} = published reference figure, "
    "not measured here (accuracy.reason says why); - = unavailable"
)


def accuracy_cell(rec: JsonMapping) -> str:
    """Top-1 as measured (``76.13``), a reference figure marked as such (``76.13 (ref)``), or ``-``."""
    acc = rec.get("accuracy") or {}
    top1 = acc.get("top1")
    if top1 is None or acc.get("status") not in ("measured", "reference"):
        return "-"
    text = format(float(top1), ".2f")
    return text if acc.get("status") == "measured" else f"{text} {REFERENCE_MARK}"


def format_table(records: Iterable[JsonMapping]) -> list[str]:
    """Aligned rows; notes: ``capped`` (budget ran out before the CI target), ``flops?`` (the two
    FLOP counters disagree by more than 5 %), and any outcome but passed. Records with accuracy add
    a Top-1 column, where reference figures are marked ``(ref)``, explained below the table."""
    recs = list(records)
    with_accuracy = any("accuracy" in r for r in recs)
    with_baseline = any(_latency_check(r) is not None for r in recs)
    columns: tuple[str, ...] = COLUMNS
    rows = [record_row(r) for r in recs]
    right = {1, 2, 3, 4, 5, 6, 7}
    if with_accuracy:
        columns = COLUMNS[:7] + (TOP1_COLUMN,) + COLUMNS[7:]
        rows = [row[:7] + (accuracy_cell(r),) + row[7:] for row, r in zip(rows, recs, strict=True)]
        right = {1, 2, 3, 4, 5, 6, 7, 8}
    if with_baseline:  # after n, before the notes
        columns = columns[:-1] + (BASELINE_COLUMN,) + columns[-1:]
        rows = [row[:-1] + (baseline_cell(r),) + row[-1:] for row, r in zip(rows, recs, strict=True)]
        right = right | {len(columns) - 2}
    rows = [columns] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines: list[str] = []
    for k, row in enumerate(rows):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        line = "  ".join(cells).rstrip()
        lines.append(line)
        if k == 0:
            lines.append("-" * len(line))
    used = [key for key in LEGEND if any(key in row[-1].split(", ") for row in rows[1:])]
    if with_baseline:
        used.append(BASELINE_COLUMN)
    legend = [LEGEND[key] for key in used]
    if with_accuracy and any(REFERENCE_MARK in row[7] for row in rows[1:]):
        legend.append(REFERENCE_LEGEND)
    if legend:
        lines += [""] + legend
    return lines


# -- the paper's tables, condensed to the terminal's width ------------------------------------------


def _cell_text(cell: Cell) -> str:
    marks = "".join(f"[{n}]" for n in cell.notes)
    return cell.text + marks


def render_grid(table: Table, width: int = 80, name_width: int = 22) -> list[str]:
    """A :class:`~pytest_dnnbench.report.tables.Table` of single-line cells, as aligned text no
    wider than ``width``: long names are shortened, and columns that do not fit are left out
    (the last line says how many)."""
    header = [_ascii(h) for h in table.header]
    rows = [[_ascii(_cell_text(c)) for c in row] for row in table.rows]
    head_cols = sum(1 for c in (table.rows[0] if table.rows else []) if c.header) or 1
    for row in rows:
        for i in range(head_cols):
            if len(row[i]) > name_width:
                row[i] = row[i][: name_width - 1] + "~"
    ncols = len(header)
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(ncols)]
    shown = ncols
    while shown > head_cols + 1 and sum(widths[:shown]) + 2 * (shown - 1) > width:
        shown -= 1
    lines = [_wrap(_ascii(table.title), width)]
    for k, row in enumerate([header] + rows):
        cells = [c.ljust(widths[i]) if i < head_cols else c.rjust(widths[i]) for i, c in enumerate(row[:shown])]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("-" * min(width, len(lines[-1])))
    if shown < ncols:
        lines.append(
            f"({ncols - shown} of {ncols - head_cols} columns not shown at this terminal width: "
            f"{', '.join(header[shown:])}; the full table is in --dnn-report)"
        )
    lines.extend(_wrap(f"[{i}] {_ascii(t)}", width) for i, t in enumerate(table.notes, 1))
    return lines


def render_table3(table: Table, width: int = 80) -> list[str]:
    """Table 3 as one wrapped line per (memory, FPS) pair."""
    lines = [_wrap(_ascii(table.title), width)]
    for row in table.rows:
        mem = _ascii(row[0].text)
        for head, cell in zip(table.header[1:], row[1:], strict=True):
            picks = cell.lines or []
            if picks:
                text = ", ".join(_ascii(_cell_text(c)).replace("  ", " ") for c in picks)
            else:
                text = _ascii(_cell_text(cell))
            lines.append(_wrap(f"{mem}, {_ascii(head)}: {text}", width, indent="    "))
    lines.extend(_wrap(f"[{i}] {_ascii(t)}", width) for i, t in enumerate(table.notes, 1))
    return lines


def format_paper_tables(
    records: Iterable[JsonMapping], missing: Sequence[JsonMapping] = (), width: int = 80, memory_note: str = ""
) -> list[str]:
    """Tables 1, 2 and 3 of the paper for these records, condensed to ``width`` columns."""
    from .tables import table1, table2, table3

    recs = list(records)
    lines: list[str] = []
    lines += render_grid(table1(recs, missing), width)
    lines.append("")
    lines += render_grid(table2(recs, missing, memory_note), width)
    lines.append("")
    lines += render_table3(table3(recs), width)
    return lines


_ASCII = {"≤": "<=", "≥": ">=", "–": "-", "÷": "/", "×": "x", "…": "...", "·": "*"}


def _ascii(text: str) -> str:
    for k, v in _ASCII.items():
        text = text.replace(k, v)
    return text


def _wrap(text: str, width: int, indent: str = "    ") -> str:
    import textwrap

    return (
        "\n".join(textwrap.wrap(text, width=max(20, width), subsequent_indent=indent, break_on_hyphens=False)) or text
    )
