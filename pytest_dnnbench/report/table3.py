"""Table 3 of the paper: the best models by Top-1 under memory and FPS constraints, at batch 1
(memory <= 0.7 / 1.0 / 1.4 GiB, FPS >= 15 / 30 / 60); with several deployment modes, the best
(model, mode) pairs. Selection (:func:`select_table3`) apart from the :class:`~.tables.Table` it
makes (:func:`table3_table`), which every renderer shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from .tables import (
    FPS_LIMITS,
    GIB,
    MEMORY_LIMITS_GIB,
    MISSING,
    TOP_N,
    Cell,
    Notes,
    Table,
    Top1,
    accuracy_legend,
    as_number,
    best_top1,
    mode_key,
    mode_of,
    model_order,
    modes_of,
    names_of,
    paper_top1,
    top1_by_model,
    total_memory,
)

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

    from ..jsontypes import JsonMapping


@dataclass(frozen=True)
class Choice:
    model: str
    name: str
    top1: Top1
    fps: float
    memory_bytes: float
    #: The deployment mode, when Table 3 ranks (model, mode) pairs (``name`` then says it too).
    mode: str | None = None


@dataclass
class Table3:
    """``cells[(memory GiB, FPS)]``: up to five choices, best Top-1 first; ``unranked``: models
    that meet the constraints but have no Top-1 at all (listed after the ranked ones)."""

    cells: dict[tuple[float, float], list[Choice]]
    unranked: dict[tuple[float, float], list[Choice]]
    memory_limits: tuple[float, ...]
    fps_limits: tuple[float, ...]
    note: str | None = None
    #: The accuracy statuses of the ranked choices (:attr:`Top1.status`).
    statuses: set[str | None] = field(default_factory=set)
    #: Models left out for want of a batch-1 FPS or memory figure.
    excluded: list[str] = field(default_factory=list)
    #: The candidates are (model, mode) pairs: the records hold several modes.
    pairs: bool = False
    #: No candidate has a Top-1 (measured, reference or the paper's): there is nothing to rank.
    no_top1: bool = False


class Table3Options(TypedDict, total=False):
    """The keyword arguments of :func:`select_table3`, which :func:`table3` passes on."""

    memory_limits_gib: Sequence[float]
    fps_limits: Sequence[float]
    top_n: int
    fallback: Callable[[str], float | None]


def pair_name(name: str, mode: str) -> str:
    """``ResNet-18 (onnxruntime)``: a (model, mode) pair of Table 3."""
    return f"{name} ({mode})"


def select_table3(
    records: Sequence[JsonMapping],
    *,
    memory_limits_gib: Sequence[float] = MEMORY_LIMITS_GIB,
    fps_limits: Sequence[float] = FPS_LIMITS,
    top_n: int = TOP_N,
    fallback: Callable[[str], float | None] = paper_top1,
) -> Table3:
    """The best ``top_n`` models by Top-1 with batch-1 memory <= limit and batch-1 FPS >= limit.

    When the records hold several modes the candidates are (model, mode) pairs, each with its own
    batch-1 FPS and memory; a pair's Top-1 is the one measured in that mode, else the model's best."""
    pairs = len(modes_of(records)) > 1
    accs = top1_by_model(records, fallback)
    names = names_of(records)

    def key(r: JsonMapping) -> tuple[str, str]:
        return (str(r.get("model")), mode_of(r) if pairs else "")

    def label(k: tuple[str, str]) -> str:
        return pair_name(names[k[0]], k[1]) if pairs else names[k[0]]

    def top1_of(k: tuple[str, str]) -> Top1:
        model_best = accs.get(k[0], Top1(None, None))
        if not pairs:
            return model_best
        own = best_top1(k[0], [r for r in records if key(r) == k], fallback)
        return own if own.status == "measured" else model_best

    b1 = [
        r
        for r in records
        if int(r.get("batch_size") or 0) == 1
        and r.get("outcome") != "skipped"
        and as_number(r.get("fps")) is not None
        and total_memory(r) is not None
    ]
    by_key = {key(r): r for r in b1}
    every = list(dict.fromkeys(key(r) for r in records))
    if pairs:
        order = {m: i for i, m in enumerate(model_order(records))}
        every.sort(key=lambda k: (order[k[0]], mode_key(k[1])))
    excluded = [label(k) for k in every if k not in by_key]
    note = None
    if not by_key:
        note = "no batch-1 measurement with FPS and memory in this run (Table 3 is at batch 1)"
    # (key, batch-1 FPS, batch-1 total memory) in the order of by_key; b1 kept only records with both.
    figures: list[tuple[tuple[str, str], float, float]] = []
    for k, r in by_key.items():
        total = total_memory(r)
        if total is not None:
            figures.append((k, float(r["fps"]), total))
    cells: dict[tuple[float, float], list[Choice]] = {}
    unranked: dict[tuple[float, float], list[Choice]] = {}
    statuses: set[str | None] = set()
    tops = {k: top1_of(k) for k, _, _ in figures}
    for mem in memory_limits_gib:
        for fps in fps_limits:
            fit = [
                Choice(k[0], label(k), tops[k], k_fps, total or 0.0, k[1] if pairs else None)
                for k, k_fps, total in figures
                if total <= mem * GIB and k_fps >= fps
            ]
            # Best Top-1 first (then faster, then by name and mode), over the choices that have a Top-1.
            scored = [(c.top1.value, c) for c in fit if c.top1.value is not None]
            ranked = [
                c
                for _, c in sorted(scored, key=lambda vc: (-vc[0], -vc[1].fps, vc[1].model, mode_key(vc[1].mode or "")))
            ]
            cells[(mem, fps)] = ranked[:top_n]
            statuses.update(c.top1.status for c in ranked[:top_n])
            unranked[(mem, fps)] = sorted((c for c in fit if c.top1.value is None), key=lambda c: (-c.fps, c.model))
    no_top1 = bool(figures) and all(t.value is None for t in tops.values())
    return Table3(
        cells, unranked, tuple(memory_limits_gib), tuple(fps_limits), note, statuses, excluded, pairs, no_top1
    )


def table3(records: Sequence[JsonMapping], **kwargs: Unpack[Table3Options]) -> Table:
    sel = select_table3(records, **kwargs)
    return table3_table(sel)


TABLE3_TITLE = "Table 3: best models by Top-1 under memory and FPS constraints (batch 1)"
TABLE3_PAIRS_TITLE = "Table 3: best (model, mode) pairs by Top-1 under memory and FPS constraints (batch 1)"


def table3_table(sel: Table3, title: str | None = None) -> Table:
    if title is None:
        title = TABLE3_PAIRS_TITLE if sel.pairs else TABLE3_TITLE
    what = "(model, mode) pairs" if sel.pairs else "models"
    key = "table3_pairs" if sel.pairs else "table3"
    if sel.no_top1 and sel.note is None:
        which = "no (model, mode) pair" if sel.pairs else "no model"
        absent = (
            f"nothing to rank: {which} measured at batch 1 here has a Top-1 "
            "(measured, published for its weights, or the paper's)"
        )
        return Table(key, title, [], [], absent=absent)
    notes = Notes()
    rows: list[list[Cell]] = []
    for mem in sel.memory_limits:
        row = [Cell(f"memory ≤ {mem:g} GiB", header=True)]
        for fps in sel.fps_limits:
            lines = [
                Cell(
                    f"{c.name}  {c.top1.text()}",
                    value=c.top1.value,
                    cls="ref" if c.top1.status in ("reference", "paper") else None,
                )
                for c in sel.cells[(mem, fps)]
            ]
            extra = sel.unranked[(mem, fps)]
            if extra and len(lines) < TOP_N:
                n = notes.add("no Top-1 known for this model (no measurement, no reference): not ranked")
                for c in extra[: TOP_N - len(lines)]:
                    lines.append(Cell(f"{c.name}  {MISSING}", cls="missing", notes=[n]))
            if not lines:
                lines = []
                none_fits = "no (model, mode) pair measured here meets both constraints" if sel.pairs else None
                row.append(
                    Cell(
                        "none fits",
                        cls="missing",
                        lines=[],
                        notes=[notes.add(sel.note or none_fits or "no model measured here meets both constraints")],
                    )
                )
                continue
            row.append(Cell(f"{len(lines)} {'pairs' if sel.pairs else 'models'}", lines=lines))
        rows.append(row)
    remarks: list[int] = []
    if sel.excluded and sel.note is None:
        remarks.append(notes.add("not considered (no batch-1 FPS or memory figure): " + ", ".join(sel.excluded)))
    for text in accuracy_legend(sel.statuses):
        remarks.append(notes.add(text))
    caption = (
        f"{what} with batch-1 total memory ≤ the limit (GiB, the paper's GB) and batch-1 FPS ≥ the limit, "
        "best Top-1 first"
    )
    if sel.pairs:
        caption += "; each mode of a model is a candidate of its own, with its own FPS and memory"
    return Table(
        key,
        title,
        ["memory \\ FPS"] + [f"≥ {f:g} FPS" for f in sel.fps_limits],
        rows,
        notes.texts,
        caption,
        remarks=remarks,
    )
