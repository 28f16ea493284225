"""The end-of-session table (pure: records in, lines out)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..measure.flops import DISAGREEMENT
from ..units import format_count, format_mib
from .markdown import Footnotes, footnotes
from .tables import (
    as_number,
    energy_reason,
    format_joules,
    has_energy,
    joules_per_image,
    mode_key,
    mode_of,
    paper_top1,
    shows_modes,
    top1_of,
    watts,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..jsontypes import JsonMapping
    from .tables import Cell, Table


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


#: FLOPs (of one image) and params are counts with a decimal prefix chosen per cell (``11.0 k``, ``3.65 G``).
COLUMNS = ("model", "batch", "ms/image", "FPS", "memory", "FLOPs", "params", "n", "note")
#: Shown after ``n`` when a record was compared with a baseline.
BASELINE_COLUMN = "vs baseline"
#: What the notes and the baseline column mean: shown under the table for the ones that appear in it.
LEGEND = {
    "capped": "capped: the time budget ran out before the median's confidence interval reached its target",
    "insufficient": "insufficient: fewer samples than --dnn-min-samples (the hard ceiling of 3x the budget ran out)",
    "busy": "busy: the machine was busy while the timed calls ran (CPU pressure, steal or involuntary switches)",
    "inconclusive": "inconclusive: the latency comparison could not be trusted either way (passed unless --dnn-strict)",
    "noisy": "noisy: the baseline's rounds spread too widely to resolve twice the latency tolerance",
    "flops?": (
        "flops?: on the operators both count (convolutions, linear layers, attention) thop and torch's "
        f"FlopCounterMode differ by more than {100 * DISAGREEMENT:g} %, or one failed (complexity_error): some "
        "work was seen by one counter only, e.g. a layer run through torch.nn.functional (thop misses it) or a "
        "fused attention kernel (FlopCounterMode misses it); FLOPs is thop's count, FlopCounterMode's is "
        "macs_check in the record"
    ),
    BASELINE_COLUMN: (
        f"{BASELINE_COLUMN}: median / the baseline's, and the smallest slowdown the comparison can resolve"
    ),
}


def _latency_of(rec: JsonMapping) -> JsonMapping | None:
    return next((c for c in rec.get("checks") or [] if c.get("metric") == "latency" and "ratio" in c), None)


def baseline_cell(rec: JsonMapping) -> str:
    """``1.03x res 14%``: the ratio to the baseline and the smallest slowdown it resolves; ``-`` if not compared."""
    check = _latency_of(rec)
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
    check = _latency_of(rec) or {}
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
        format_count(as_number(flops)),
        format_count(as_number(params)),
        str(lat.get("n", "-")),
        ", ".join(notes),
    )


#: The accuracy column, shown after params when the records carry accuracy (real runs always do).
TOP1_COLUMN = "Top-1(%)"
REFERENCE_MARK = "(ref)"
#: A Top-1 neither measured nor published for these weights: the paper's figure for the model, as Table 3
#: and the figures use it (mark ``p`` there).
PAPER_MARK = "(paper)"
REFERENCE_LEGEND = (
    f"{TOP1_COLUMN}: plain = measured in this run; {REFERENCE_MARK} = published reference figure, "
    "not measured here (accuracy.reason says why); - = unavailable"
)
PAPER_LEGEND = (
    f"{TOP1_COLUMN}: {PAPER_MARK} = the paper's Top-1 for this model (Bianco et al. 2018; no measurement or "
    "reference figure of these weights), the figure Table 3 ranks it by (mark p there)"
)


def accuracy_cell(rec: JsonMapping) -> str:
    """Top-1 as measured (``76.13``), a reference figure marked as such (``76.13 (ref)``), else the paper's
    figure for the model (``69.52 (paper)``, as in Table 3), or ``-``."""
    top1, kind = top1_of(rec)
    if top1 is None:
        paper = paper_top1(str(rec.get("model")))
        return "-" if paper is None else f"{float(paper):.2f} {PAPER_MARK}"
    text = format(float(top1), ".2f")
    return text if kind == "measured" else f"{text} {REFERENCE_MARK}"


#: Columns shown when the records hold several modes (or any mode but eager).
MODE_COLUMN, RATIO_COLUMN, PREPARE_COLUMN = "mode", "vs eager", "prepare(s)"
#: Shown after memory when at least one record has an energy figure.
ENERGY_COLUMN = "energy"
MODE_LEGEND = {
    RATIO_COLUMN: (
        f"{RATIO_COLUMN}: ms/image / the eager row's of the same model and batch "
        "(- : no eager figure for that model and batch in this run)"
    ),
    PREPARE_COLUMN: f"{PREPARE_COLUMN}: seconds to export, compile or convert the model for its mode (- : eager)",
}


def mode_sorted(records: Sequence[JsonMapping]) -> list[JsonMapping]:
    """Model (first seen first), batch size, then mode (:data:`~.tables.MODE_ORDER`, then others)."""
    models = {m: i for i, m in enumerate(dict.fromkeys(str(r.get("model")) for r in records))}
    return sorted(
        records, key=lambda r: (models[str(r.get("model"))], int(r.get("batch_size") or 0), mode_key(mode_of(r)))
    )


def eager_ratio_cell(rec: JsonMapping, eager: JsonMapping | None) -> str:
    """``0.48x``: the record's ms/image over the eager record's of the same (model, batch); ``-`` if none."""
    if eager is None or mode_of(rec) == "eager":
        return "-"
    ms, ref = as_number(rec.get("per_image_ms")), as_number(eager.get("per_image_ms"))
    if ms is None or ref is None or ref <= 0:
        return "-"
    return f"{ms / ref:.2f}x"


def energy_cell(rec: JsonMapping) -> str:
    """``0.512 J 35.2 W``: joules per image and mean power over the timed calls; ``-`` if not measured."""
    j = joules_per_image(rec)
    if j is None:
        return "-"
    w = watts(rec)
    return f"{format_joules(j)} J" + ("" if w is None else f" {w:.1f} W")


def _output_check(rec: JsonMapping) -> JsonMapping | None:
    return next((c for c in rec.get("checks") or [] if c.get("metric") == "output"), None)


def output_note(rec: JsonMapping) -> str | None:
    """``out 2e-07``: the output check's relative difference to eager (``out 3e-02>1e-03`` when over
    its limit, ``top1 98%`` added when the Top-1 classes of the batch disagree); None without a check."""
    check = _output_check(rec)
    if check is None:
        return None
    if check.get("skipped"):
        return "out -"  # no tensor output to compare
    value = as_number(check.get("measured"))
    if value is None:
        value = as_number(check.get("value"))
    text = "out " + ("?" if value is None else f"{value:.0e}")
    limit = as_number(check.get("limit"))
    if check.get("passed") is False and limit is not None:
        text += f">{limit:.0e}"
    agree = as_number(check.get("top1_agreement"))
    if agree is not None and agree < 1:
        text += f" top1 {100 * agree:.0f}%"
    return text


def _output_legend(records: Sequence[JsonMapping]) -> str:
    limits = sorted({v for r in records if (c := _output_check(r)) is not None and (v := as_number(c.get("limit")))})
    shown = " or ".join(f"{v:g}" for v in limits)
    return (
        "out: max |output - eager's| / max |eager's| on the same batch"
        + (f" (fails above {shown})" if shown else "")
        + "; top1: images with eager's Top-1 class, when not all"
        + (
            "; out -: no tensor output to compare"
            if any((c := _output_check(r)) is not None and c.get("skipped") for r in records)
            else ""
        )
    )


def format_table(records: Iterable[JsonMapping]) -> list[str]:
    """Aligned rows; notes: ``capped`` (budget ran out before the CI target), ``flops?`` (the two
    FLOP counters disagree on the operators both count), and any outcome but passed. Records with accuracy add
    a Top-1 column, where reference figures are marked ``(ref)``, explained below the table.

    Records of several modes (or of a mode but eager) add a mode column, the rows being ordered
    by model, batch and mode, the ratio of ms/image to the eager row of the same (model, batch),
    the preparation time, and the output check as a note (``out 2e-07``). An energy column comes
    when some record has an energy figure; when they all lack one, a line under the table says why."""
    recs = list(records)
    with_modes = shows_modes(recs)
    if with_modes:
        recs = mode_sorted(recs)
    with_accuracy = any("accuracy" in r for r in recs)
    with_baseline = any(_latency_of(r) is not None for r in recs)
    with_energy = has_energy(recs)
    columns: list[str] = list(COLUMNS)
    cols: dict[str, list[str]] = {name: [] for name in columns}
    for r in recs:
        row = record_row(r)
        for name, cell in zip(COLUMNS, row, strict=True):
            cols[name].append(cell)
    left = {"model", "note", MODE_COLUMN}

    def insert(after: str, name: str, cells: list[str]) -> None:
        columns.insert(columns.index(after) + 1, name)
        cols[name] = cells

    if with_accuracy:
        insert("params", TOP1_COLUMN, [accuracy_cell(r) for r in recs])
    if with_baseline:  # after n, before the notes
        insert("n", BASELINE_COLUMN, [baseline_cell(r) for r in recs])
    if with_modes:
        eager = {(str(r.get("model")), r.get("batch_size")): r for r in recs if mode_of(r) == "eager"}
        insert("batch", MODE_COLUMN, [mode_of(r) for r in recs])
        insert(
            "ms/image",
            RATIO_COLUMN,
            [eager_ratio_cell(r, eager.get((str(r.get("model")), r.get("batch_size")))) for r in recs],
        )
        insert(RATIO_COLUMN, PREPARE_COLUMN, [_fmt(as_number(r.get("prepare_s")), ".1f") for r in recs])
    if with_energy:
        insert("memory", ENERGY_COLUMN, [energy_cell(r) for r in recs])
    outputs = [output_note(r) for r in recs]
    cols["note"] = [", ".join(x for x in (out, note) if x) for out, note in zip(outputs, cols["note"], strict=True)]
    rows = [tuple(columns)] + [tuple(cols[name][k] for name in columns) for k in range(len(recs))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines: list[str] = []
    for k, row in enumerate(rows):
        cells = [c.ljust(widths[i]) if columns[i] in left else c.rjust(widths[i]) for i, c in enumerate(row)]
        line = "  ".join(cells).rstrip()
        lines.append(line)
        if k == 0:
            lines.append("-" * len(line))
    notes = [row[-1].split(", ") for row in rows[1:]]
    legend: list[str] = []
    if any(out for out in outputs):
        legend.append(_output_legend(recs))
    legend += [LEGEND[key] for key in LEGEND if any(key in n for n in notes)]
    if with_baseline:
        legend.append(LEGEND[BASELINE_COLUMN])
    if with_accuracy and any(REFERENCE_MARK in cell for cell in cols[TOP1_COLUMN]):
        legend.append(REFERENCE_LEGEND)
    if with_accuracy and any(PAPER_MARK in cell for cell in cols[TOP1_COLUMN]):
        legend.append(PAPER_LEGEND)
    if with_modes:
        legend += list(MODE_LEGEND.values())
    legend += _energy_legend(recs, with_energy)
    if legend:
        lines += [""] + legend
    return lines


def _energy_legend(records: Sequence[JsonMapping], with_energy: bool) -> list[str]:
    """What the energy column means, or why there is none (records that carry no energy: nothing)."""
    reason = energy_reason(records)
    if with_energy:
        measured = [r["energy"] for r in records if joules_per_image(r) is not None]
        where = sorted({f"{e.get('source')}" + (f", {e.get('scope')}" if e.get("scope") else "") for e in measured})
        line = f"{ENERGY_COLUMN}: joules per image and mean power over the timed calls ({'; '.join(where)})"
        return [line] + ([f"{ENERGY_COLUMN} -: not measured - {_ascii(reason)}"] if reason else [])
    if any(isinstance(r.get("energy"), Mapping) for r in records):
        return [f"{ENERGY_COLUMN}: not measured" + (f" - {_ascii(reason)}" if reason else "")]
    return []


# -- the paper's tables, condensed to the terminal's width ------------------------------------------


def _cell_text(cell: Cell, fn: Footnotes | None = None) -> str:
    marks = "".join(f"[{n}]" for n in (fn.marks(cell.notes) if fn is not None else cell.notes))
    return cell.text + marks


def _notes(fn: Footnotes, width: int) -> list[str]:
    """The notes the cells mark, numbered as the cells are, then the notes on the whole table, unnumbered
    (as in Markdown and HTML: :func:`~.markdown.footnotes`)."""
    lines = [_wrap(f"[{i}] {_ascii(t)}", width) for i, t in enumerate(fn.texts, 1)]
    return lines + [_wrap(_ascii(t), width) for t in fn.remarks]


def render_grid(table: Table, width: int = 80, name_width: int = 22) -> list[str]:
    """A :class:`~pytest_dnnbench.report.tables.Table` of single-line cells, as aligned text no
    wider than ``width``: long names are shortened, and columns that do not fit are left out
    (the last line says how many)."""
    fn = footnotes(table)
    header = [_ascii(h) for h in table.header]
    rows = [[_ascii(_cell_text(c, fn)) for c in row] for row in table.rows]
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
    return lines + _notes(fn, width)


def render_table3(table: Table, width: int = 80) -> list[str]:
    """Table 3 as one wrapped line per (memory, FPS) pair; one line in all where no pair has a model, and
    the title and why where it is not made (nothing to rank)."""
    if table.absent:
        return [_wrap(f"{_ascii(table.title)}: {_ascii(table.absent)}", width)]
    fn = footnotes(table)
    lines = [_wrap(_ascii(table.title), width)]
    cells = [cell for row in table.rows for cell in row[1:]]
    texts = {_cell_text(cell, fn) for cell in cells}
    if cells and not any(cell.lines for cell in cells) and len(texts) == 1:
        memory = " / ".join(_number_in(row[0].text) for row in table.rows)
        fps = " / ".join(_number_in(head) for head in table.header[1:])
        lines.append(
            _wrap(
                f"any of the {len(cells)} constraints (memory <= {memory} GiB; >= {fps} FPS): {_ascii(texts.pop())}",
                width,
                indent="    ",
            )
        )
        return lines + _notes(fn, width)
    for row in table.rows:
        mem = _ascii(row[0].text)
        for head, cell in zip(table.header[1:], row[1:], strict=True):
            picks = cell.lines or []
            if picks:
                text = ", ".join(_ascii(_cell_text(c, fn)).replace("  ", " ") for c in picks)
            else:
                text = _ascii(_cell_text(cell, fn))
            lines.append(_wrap(f"{mem}, {_ascii(head)}: {text}", width, indent="    "))
    return lines + _notes(fn, width)


def _number_in(text: str) -> str:
    """The first number in a header such as ``memory ≤ 0.7 GiB`` or ``≥ 15 FPS``."""
    import re

    found = re.search(r"[0-9]+(?:\.[0-9]+)?", text)
    return found.group(0) if found else text


def format_paper_tables(
    records: Iterable[JsonMapping], missing: Sequence[JsonMapping] = (), width: int = 80, memory_note: str = ""
) -> list[str]:
    """Tables 1, 2 and 3 of the paper for these records, condensed to ``width`` columns. Records of
    several modes (or of a mode but eager) give a Table 1 and a Table 2 per mode, titled with it,
    eager first; Table 3 then ranks (model, mode) pairs."""
    from .table3 import table3
    from .tables import missing_of_mode, modes_of, of_mode, table1, table2

    recs = list(records)
    lines: list[str] = []
    if not shows_modes(recs, missing):
        lines += render_grid(table1(recs, missing), width)
        lines.append("")
        lines += render_grid(table2(recs, missing, memory_note), width)
    else:
        modes = modes_of(recs, missing)
        for mode in modes:
            lines += render_grid(table1(of_mode(recs, mode), missing_of_mode(missing, mode), mode), width)
            lines.append("")
        for k, mode in enumerate(modes):
            if k:
                lines.append("")
            lines += render_grid(table2(of_mode(recs, mode), missing_of_mode(missing, mode), memory_note, mode), width)
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
