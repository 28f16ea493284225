"""The paper's tables, built from records (pure: no torch, no matplotlib, no pytest).

- Table 1: per-image inference time (ms), models x batch sizes, each cell in one of the paper's
  FPS bands (its colour key: >1000, >250, >125, >62.5, >30, >15, >5, <=5 FPS).
- Table 2: total memory, models x batch sizes, in the paper's GB bands (<1 ... <7, >=7; the
  paper's "GB" is nvidia-smi's GiB, and so is ours).
- Table 3: the best five models by Top-1 under memory <= 0.7 / 1.0 / 1.4 GiB and FPS >= 15 / 30 /
  60, at batch 1.
- Side by side: the same figures of several platforms, with ratio columns.

Deployment modes (``record["mode"]``: eager, compile, cudagraph, onnxruntime, openvino...): a run
may hold the same (model, batch) in several modes. Tables 1 and 2 are then made per mode (titled
with it), Table 3 ranks (model, mode) pairs, and :func:`split_modes` turns a platform into one
platform per mode (eager first), so that the side-by-side tables put the modes next to each other.

Every table is a :class:`Table` of :class:`Cell` s that the terminal, Markdown and HTML renderers
share. A cell that has no figure (a test skipped or failed before measuring, a batch size not
run, no accuracy known) is shown as missing with a numbered note giving the reason, never as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, SupportsFloat, SupportsIndex

from ..upgrade import accuracy_parts

if TYPE_CHECKING:  # pragma: no cover
    from ..jsontypes import JsonMapping, JsonObject

GIB = 2**30
MIB = 2**20
MISSING = "–"

#: The paper's FPS colour key (Table 1): lower bounds of the bands, fastest first.
FPS_BANDS = (1000.0, 250.0, 125.0, 62.5, 30.0, 15.0, 5.0)
FPS_BAND_LABELS = (">1000", ">250", ">125", ">62.5", ">30", ">15", ">5", "<=5")
MS_BAND_LABELS = ("<1", "<4", "<8", "<16", "<33", "<66", "<200", ">=200")
#: Table 2's key: upper bounds in GiB.
MEM_BANDS_GIB = (1, 2, 3, 4, 5, 6, 7)
MEM_BAND_LABELS = ("<1", "<2", "<3", "<4", "<5", "<6", "<7", ">=7")
#: Table 3's constraints (the paper's): memory in GiB (the paper's GB), throughput in FPS at batch 1.
MEMORY_LIMITS_GIB = (0.7, 1.0, 1.4)
FPS_LIMITS = (15.0, 30.0, 60.0)
TOP_N = 5
#: The order of the deployment modes in tables and figures; others follow, alphabetically.
MODE_ORDER = ("eager", "compile", "cudagraph", "onnxruntime", "openvino")

STATUS_MARK = {"measured": "", "reference": "r", "paper": "p"}
STATUS_TEXT = {
    "measured": "measured in this run",
    "reference": "published reference accuracy of these weights (not measured here)",
    "paper": "the paper's Top-1 for this model (not measured here)",
}


# -- cells and tables ---------------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    value: float | None = None
    cls: str | None = None
    notes: list[int] = field(default_factory=list)
    #: Several lines in one cell (Table 3's lists); ``text`` is then their summary.
    lines: list[Cell] | None = None
    header: bool = False

    @property
    def missing(self) -> bool:
        return self.value is None and self.lines is None and not self.header


@dataclass
class Table:
    key: str
    title: str
    header: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    caption: str = ""
    #: (css class, label) pairs of a colour key.
    legend: list[tuple[str, str]] = field(default_factory=list)
    #: Numbers (into ``notes``) of the notes on the whole table, which no cell marks (Table 3's key
    #: to its Top-1 marks): shown unnumbered after the notes the cells mark.
    remarks: list[int] = field(default_factory=list)
    #: Why the table is not made (it would say nothing: Table 3 with no Top-1 to rank): shown as one
    #: line under the title instead of the table.
    absent: str = ""


class Notes:
    """Numbered notes; the same text gets the same number."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, text: str) -> int:
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


# -- records ------------------------------------------------------------------------------------


def display_name(rec: JsonMapping) -> str:
    return str(rec.get("paper_name") or rec.get("model"))


def model_order(records: Iterable[JsonMapping], missing: Iterable[JsonMapping] = ()) -> list[str]:
    seen: dict[str, None] = {}
    for r in list(records) + list(missing):
        seen.setdefault(str(r.get("model")), None)
    return list(seen)


#: The batch of a test with no batch size of its own (no ``dnn_batch_size``): ``dnn_bench``'s default.
DEFAULT_BATCH = 1


def missing_batch(entry: JsonMapping) -> int:
    """The batch size of a missing entry; one that names none (a test without ``dnn_batch_size``) ran at
    :data:`DEFAULT_BATCH`: its cell is there, with its reason, and no other batch size is implied."""
    bs = entry.get("batch_size")
    return DEFAULT_BATCH if bs is None else int(bs)


def missing_index(missing: Iterable[JsonMapping]) -> dict[tuple[str, int], JsonMapping]:
    """(model, batch) -> missing entry (:func:`missing_batch`)."""
    return {(str(m.get("model")), missing_batch(m)): m for m in missing}


def batch_order(records: Iterable[JsonMapping], missing: Iterable[JsonMapping] = ()) -> list[int]:
    sizes = {int(r["batch_size"]) for r in records if r.get("batch_size") is not None}
    return sorted(sizes | {missing_batch(m) for m in missing})


def names_of(records: Iterable[JsonMapping], missing: Iterable[JsonMapping] = ()) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in list(records) + list(missing):
        m = str(r.get("model"))
        if m not in out or r.get("paper_name"):
            out[m] = display_name(r)
    return out


def index(records: Iterable[JsonMapping]) -> dict[tuple[str, int], JsonMapping]:
    """(model, batch) -> record; where a test produced several, the last wins."""
    return {(str(r.get("model")), int(r.get("batch_size") or 0)): r for r in records}


def mode_of(rec: JsonMapping) -> str:
    """The record's deployment mode; records without one (older files, baselines) are eager."""
    return str(rec.get("mode") or "eager")


def mode_key(mode: str) -> tuple[int, str]:
    """Sort key of a mode: :data:`MODE_ORDER` first, then the others alphabetically."""
    return (MODE_ORDER.index(mode), "") if mode in MODE_ORDER else (len(MODE_ORDER), mode)


def modes_of(records: Iterable[JsonMapping], missing: Iterable[JsonMapping] = ()) -> list[str]:
    """The modes of these records (and of the missing entries that name one), in :func:`mode_key` order."""
    found = {mode_of(r) for r in records} | {str(m["mode"]) for m in missing if m.get("mode")}
    return sorted(found, key=mode_key)


def shows_modes(records: Iterable[JsonMapping], missing: Iterable[JsonMapping] = ()) -> bool:
    """Whether the mode must be shown: more than one mode, or any mode but eager."""
    return modes_of(records, missing) not in ([], ["eager"])


def of_mode(records: Iterable[JsonMapping], mode: str) -> list[JsonMapping]:
    return [r for r in records if mode_of(r) == mode]


def missing_of_mode(missing: Iterable[JsonMapping], mode: str) -> list[JsonMapping]:
    """The missing entries of one mode; an entry that names no mode (a model that could not be
    built, before any mode) belongs to every mode."""
    return [m for m in missing if not m.get("mode") or str(m["mode"]) == mode]


def mode_title(title: str, mode: str | None) -> str:
    """``Table 1: ...`` -> ``Table 1 (onnxruntime): ...``; unchanged without a mode."""
    if not mode:
        return title
    head, sep, rest = title.partition(": ")
    return f"{head} ({mode}){sep}{rest}"


def as_number(v: object) -> float | None:
    """A JSON value as a finite float, else None (bools, missing, non-numbers, NaN and infinities)."""
    if isinstance(v, bool) or v is None:
        return None
    # What float() takes (its argument types); anything else would raise TypeError, hence None.
    if not isinstance(v, (int, float, str, bytes, bytearray, SupportsFloat, SupportsIndex)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def total_memory(rec: JsonMapping) -> float | None:
    return as_number((rec.get("memory_bytes") or {}).get("total"))


def param_file_mib(rec: JsonMapping) -> float | None:
    """The parameter file's size in MiB of a record of any version (``param_file_mib``; ``param_file_mb`` before)."""
    return as_number(rec.get("param_file_mib", rec.get("param_file_mb")))


def joules_per_image(rec: JsonMapping) -> float | None:
    energy = rec.get("energy")
    return as_number(energy.get("joules_per_image")) if isinstance(energy, Mapping) else None


def watts(rec: JsonMapping) -> float | None:
    energy = rec.get("energy")
    return as_number(energy.get("watts")) if isinstance(energy, Mapping) else None


def energy_reason(records: Iterable[JsonMapping]) -> str | None:
    """The first reason given by a record without an energy figure (None when none gives one)."""
    for r in records:
        energy = r.get("energy")
        if isinstance(energy, Mapping) and joules_per_image(r) is None and energy.get("reason"):
            return clip_text(energy.get("reason"))
    return None


def has_energy(records: Iterable[JsonMapping]) -> bool:
    return any(joules_per_image(r) is not None for r in records)


def clip_text(reason: object, limit: int = 320) -> str:
    """``reason`` on one line, cut to ``limit`` characters (an ellipsis marks the cut)."""
    text = " ".join(str(reason or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(reason: object) -> str:
    """The first line of a test's failure, without pytest.fail's ``Failed: ``: the reason in a few words
    (``memory 0.556 GB > 0.001 GB``); the whole text is in the test's failure and the results file."""
    line = next((part.strip() for part in str(reason or "").splitlines() if part.strip()), "")
    return clip_text(line.removeprefix("Failed: ").removeprefix("Skipped: "))


def outcome_note(rec: JsonMapping) -> str:
    """The note on a figure of a test that did not pass: its outcome and the reason in a few words
    (:func:`first_line`), never the whole failure text again (``failed: memory 0.556 GB > 0.001 GB``)."""
    why = first_line(rec.get("reason"))
    return f"{rec.get('outcome')}: {why}" if why else str(rec.get("outcome"))


def _missing_reason(
    model: str,
    bs: int,
    missing: Mapping[tuple[str, int], JsonMapping],
    rec: JsonMapping | None,
    field_name: str = "",
) -> str:
    if rec is not None:
        why = (rec.get("missing") or {}).get(field_name) if isinstance(rec.get("missing"), dict) else None
        if why:
            return f"not reported: {clip_text(why)}"
        if field_name == "energy.joules_per_image":
            reason = energy_reason([rec])
            if reason:
                return f"not measured: {reason}"
        out = rec.get("outcome") or "no figure"
        return f"{out}: {first_line(rec.get('reason')) or 'the record has no figure'}"
    m = missing.get((model, bs))
    if m is not None:
        return f"{m.get('outcome', 'missing')}: {clip_text(m.get('reason')) or 'no reason given'}"
    return "not measured (batch size not run for this model, or the run was interrupted)"


# -- accuracy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Top1:
    value: float | None
    status: str | None  # measured | reference | paper | None
    source: str = ""

    @property
    def mark(self) -> str:
        return STATUS_MARK.get(self.status or "", "")

    def text(self) -> str:
        if self.value is None:
            return MISSING
        return f"{self.value:.2f}{self.mark}"


def paper_top1(model: str) -> float | None:
    from ..registry import REGISTRY

    try:
        return REGISTRY.get(model).paper_top1
    except Exception:
        return None


def record_top1(rec: JsonMapping) -> Top1:
    """A record's Top-1 (of any version of the results file): ``accuracy.measured``'s, else
    ``accuracy.reference``'s (status ``reference``), else none (status None)."""
    measured, reference = accuracy_parts(rec.get("accuracy"))
    for status, part in (("measured", measured), ("reference", reference)):
        top1 = as_number(part.get("top1")) if part is not None else None
        if part is not None and top1 is not None:
            return Top1(top1, status, str(part.get("source") or ""))
    return Top1(None, None, "")


def top1_of(rec: JsonMapping) -> tuple[float | None, str | None]:
    """``(Top-1 in percent, "measured" | "reference")`` of a record of any version, ``(None, None)`` where it
    has none: a reference figure is published, not measured, and must be shown as such."""
    t = record_top1(rec)
    return t.value, t.status


def best_top1(model: str, records: Iterable[JsonMapping], fallback: Callable[[str], float | None] = paper_top1) -> Top1:
    """Measured Top-1, else a reference figure, else the paper's own (registry), else none."""
    ref = None
    for r in records:
        top1 = record_top1(r)
        if top1.status == "measured":
            return top1
        if ref is None and top1.status == "reference":
            ref = top1
    if ref is not None:
        return ref
    value = fallback(model) if fallback is not None else None
    if value is not None:
        return Top1(float(value), "paper", "Bianco et al. 2018")
    return Top1(None, None, "")


def top1_by_model(
    records: Sequence[JsonMapping], fallback: Callable[[str], float | None] = paper_top1
) -> dict[str, Top1]:
    by: dict[str, list[JsonMapping]] = {}
    for r in records:
        by.setdefault(str(r.get("model")), []).append(r)
    return {m: best_top1(m, rs, fallback) for m, rs in by.items()}


def accuracy_legend(used: Iterable[str | None]) -> list[str]:
    out: list[str] = []
    for status in ("measured", "reference", "paper"):
        if status in used:
            mark = STATUS_MARK[status]
            out.append(f"Top-1{(' ' + repr(mark)) if mark else ' without a mark'}: {STATUS_TEXT[status]}")
    return out


# -- bands --------------------------------------------------------------------------------------


def fps_band(fps: float | None) -> int | None:
    if fps is None:
        return None
    for i, bound in enumerate(FPS_BANDS):
        if fps > bound:
            return i
    return len(FPS_BANDS)


def mem_band(total_bytes: float | None) -> int | None:
    if total_bytes is None:
        return None
    gib = total_bytes / GIB
    for i, bound in enumerate(MEM_BANDS_GIB):
        if gib < bound:
            return i
    return len(MEM_BANDS_GIB)


def fps_legend() -> list[tuple[str, str]]:
    return [(f"fps{i}", f"{FPS_BAND_LABELS[i]} FPS ({MS_BAND_LABELS[i]} ms)") for i in range(len(FPS_BAND_LABELS))]


def mem_legend() -> list[tuple[str, str]]:
    return [(f"mem{i}", f"{MEM_BAND_LABELS[i]} GiB") for i in range(len(MEM_BAND_LABELS))]


def format_ms(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def format_ratio(r: float) -> str:
    return (f"{r:.2f}" if 0.1 <= r < 100 else f"{r:.3g}") + "×"


def mib_figure(total_bytes: float) -> str:
    """Bytes as a whole number of MiB, without the unit (a table's title carries it)."""
    return f"{total_bytes / MIB:.0f}"


# -- Tables 1 and 2 -----------------------------------------------------------------------------


def _grid(
    key: str,
    title: str,
    caption: str,
    records: Sequence[JsonMapping],
    missing: Sequence[JsonMapping],
    value: Callable[[JsonMapping], float | None],
    text: Callable[[float], str],
    band: Callable[[JsonMapping, float], int | None],
    band_prefix: str,
    legend: list[tuple[str, str]],
    field_name: str = "",
) -> Table:
    models = model_order(records, missing)
    sizes = batch_order(records, missing)
    names = names_of(records, missing)
    recs = index(records)
    miss = missing_index(missing)
    notes = Notes()
    rows: list[list[Cell]] = []
    for model in models:
        row = [Cell(names[model], header=True)]
        for bs in sizes:
            rec = recs.get((model, bs))
            v = value(rec) if rec is not None else None
            if rec is None or v is None:  # (v is None whenever rec is)
                row.append(
                    Cell(MISSING, cls="missing", notes=[notes.add(_missing_reason(model, bs, miss, rec, field_name))])
                )
                continue
            cell = Cell(text(v), value=v)
            b = band(rec, v)
            if b is not None:
                cell.cls = f"{band_prefix}{b}"
            if rec.get("outcome") not in (None, "passed"):
                cell.notes.append(notes.add(outcome_note(rec)))
            row.append(cell)
        rows.append(row)
    return Table(key, title, ["model"] + [str(bs) for bs in sizes], rows, notes.texts, caption, legend)


def _per_image(rec: JsonMapping) -> float | None:
    return as_number(rec.get("per_image_ms"))


def _keyed(key: str, mode: str | None) -> str:
    return f"{key}_{safe_name(mode)}" if mode else key


def safe_name(text: str) -> str:
    """``text`` as a file-name and HTML-id part (letters, digits, ``_.-``)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "mode"


def table1(records: Sequence[JsonMapping], missing: Sequence[JsonMapping] = (), mode: str | None = None) -> Table:
    """Table 1 of these records; ``mode`` (the records' mode, when the mode is shown) goes into the title."""
    return _grid(
        _keyed("table1", mode),
        mode_title("Table 1: inference time per image (ms) by batch size", mode),
        "median time of one batch divided by the batch size; colours: the paper's FPS key",
        records,
        missing,
        _per_image,
        format_ms,
        lambda rec, v: fps_band(as_number(rec.get("fps")) or (1000.0 / v if v > 0 else None)),
        "fps",
        fps_legend(),
        "per_image_ms",
    )


def table2(
    records: Sequence[JsonMapping], missing: Sequence[JsonMapping] = (), memory_note: str = "", mode: str | None = None
) -> Table:
    return _grid(
        _keyed("table2", mode),
        mode_title("Table 2: total memory (MiB) by batch size", mode),
        memory_note or "memory_bytes.total; MiB = 2^20 bytes; colours: the paper's GB (GiB) key",
        records,
        missing,
        total_memory,
        mib_figure,
        lambda rec, v: mem_band(v),
        "mem",
        mem_legend(),
        "memory_bytes.total",
    )


def format_joules(j: float) -> str:
    """Three significant figures, trailing zeros kept (``0.200``, ``1.50``, ``12.0``); ``123`` from 100 J."""
    return f"{j:.0f}" if abs(j) >= 100 else f"{j:#.3g}"


def energy_table(records: Sequence[JsonMapping], missing: Sequence[JsonMapping] = (), mode: str | None = None) -> Table:
    """Energy per image (J) by batch size: ``energy.joules_per_image``, with its source in the caption."""
    sources = sorted({str(r["energy"].get("source")) for r in records if joules_per_image(r) is not None})
    scopes = sorted(
        {str(r["energy"].get("scope")) for r in records if joules_per_image(r) is not None and r["energy"].get("scope")}
    )
    caption = "energy.joules_per_image: energy over the timed calls ÷ images; source: " + ", ".join(sources)
    if scopes:
        caption += " (" + ", ".join(scopes) + ")"
    return _grid(
        _keyed("energy", mode),
        mode_title("Energy: joules per image by batch size", mode),
        caption,
        records,
        missing,
        joules_per_image,
        format_joules,
        lambda rec, v: None,
        "",
        [],
        "energy.joules_per_image",
    )


# -- several platforms --------------------------------------------------------------------------


@dataclass
class Platform:
    """One column group of a side-by-side report: a results file, a baseline, or this run."""

    label: str
    records: list[JsonObject]
    environment: JsonObject = field(default_factory=dict)
    #: Entries of the tests that left no record (``model``, ``batch_size``, ``outcome``, ``reason``).
    missing: list[JsonObject] = field(default_factory=list)
    source: str = ""
    kind: str = "results"
    #: The one mode of its records, when :func:`split_modes` made it (None: not split).
    mode: str | None = None
    #: The label of the platform it was split from (:func:`split_modes`), or None.
    split_from: str | None = None


#: Between a platform's label and a mode (``cpu Intel Xeon (fp32) · onnxruntime``).
MODE_SEPARATOR = " · "


def split_modes(platform: Platform) -> list[Platform]:
    """One platform per mode, eager first (the reference of the ratio columns), each labelled
    ``<label> · <mode>``; a platform of eager records only is returned as it is, one of another
    single mode gets the mode in its label. The missing entries that name no mode go to every mode."""
    modes = modes_of(platform.records, platform.missing)
    if not shows_modes(platform.records, platform.missing) or platform.mode is not None:
        return [platform]
    return [
        Platform(
            f"{platform.label}{MODE_SEPARATOR}{mode}",
            [r for r in platform.records if mode_of(r) == mode],
            dict(platform.environment),
            [m for m in platform.missing if not m.get("mode") or str(m["mode"]) == mode],
            platform.source,
            platform.kind,
            mode,
            platform.label,
        )
        for mode in modes
    ]


def platform_label(environment: JsonMapping, records: Sequence[JsonMapping], fallback: str = "") -> str:
    env = environment or {}
    dev = env.get("device_name") or next((r.get("device_name") for r in records if r.get("device_name")), None)
    kind = env.get("device") or next((r.get("device") for r in records if r.get("device")), None)
    prec = env.get("precision") or next((r.get("precision") for r in records if r.get("precision")), None)
    parts = [p for p in (kind, dev) if p]
    label = " ".join(str(p) for p in parts) or fallback or "run"
    if prec:
        label += f" ({prec})"
    return label


def unique_labels(labels: Sequence[str]) -> list[str]:
    out: list[str] = []
    for lab in labels:
        new, k = lab, 2
        while new in out:
            new, k = f"{lab} #{k}", k + 1
        out.append(new)
    return out


def compare_table(
    platforms: Sequence[Platform],
    metric: str,
    *,
    batch_sizes: Sequence[int] | None = None,
) -> Table:
    """Rows (model, batch); a column per platform and a ratio column per platform after the
    first: ``ratio = platform / first`` (time and memory: above 1 = slower / larger than the
    first platform; FPS: above 1 = faster)."""
    value: Callable[[JsonMapping], float | None]
    text: Callable[[float], str]
    if metric == "per_image_ms":
        value, text, title, unit = _per_image, format_ms, "inference time per image (ms)", "ms"
    elif metric == "memory":
        value, text, title, unit = total_memory, mib_figure, "total memory (MiB)", "MiB"
    elif metric == "fps":
        value, text, title, unit = (
            (lambda r: as_number(r.get("fps"))),
            (lambda v: f"{v:.1f}"),
            "images per second",
            "FPS",
        )
    elif metric == "energy":
        value, text, title, unit = joules_per_image, format_joules, "energy per image (J)", "J"
    else:
        raise ValueError(f"unknown metric {metric!r}")
    recs = [index(p.records) for p in platforms]
    misses = [missing_index(p.missing) for p in platforms]
    models: dict[str, None] = {}
    names: dict[str, str] = {}
    sizes: set[int] = set()
    for p in platforms:
        for m in model_order(p.records, p.missing):
            models.setdefault(m, None)
        for k, name in names_of(p.records, p.missing).items():
            if k not in names or names[k] == k:
                names[k] = name
        sizes.update(batch_order(p.records, p.missing))
    if batch_sizes is not None:
        sizes &= set(batch_sizes)
    notes = Notes()
    header = (
        ["model", "batch"] + [p.label for p in platforms] + [f"{p.label} ÷ {platforms[0].label}" for p in platforms[1:]]
    )
    rows: list[list[Cell]] = []
    dropped = 0
    for model in models:
        for bs in sorted(sizes):
            vals: list[float | None] = []
            row = [Cell(names.get(model, model), header=True), Cell(str(bs), header=True)]
            for rec_i, miss_i in zip(recs, misses, strict=True):
                rec = rec_i.get((model, bs))
                v = value(rec) if rec is not None else None
                vals.append(v)
                if v is None:
                    if rec is None and (model, bs) not in miss_i:
                        row.append(Cell(MISSING, cls="missing", notes=[notes.add("not in this platform's results")]))
                    else:
                        field_name = {"memory": "memory_bytes.total", "energy": "energy.joules_per_image"}.get(
                            metric, "per_image_ms"
                        )
                        row.append(
                            Cell(
                                MISSING,
                                cls="missing",
                                notes=[notes.add(_missing_reason(model, bs, miss_i, rec, field_name))],
                            )
                        )
                else:
                    cls = None
                    if metric in ("per_image_ms", "fps"):
                        b = fps_band(as_number(rec.get("fps")) if rec is not None else None)
                        cls = None if b is None else f"fps{b}"
                    elif metric == "memory":
                        b = mem_band(v)
                        cls = None if b is None else f"mem{b}"
                    row.append(Cell(text(v), value=v, cls=cls))
            if all(v is None for v in vals):
                continue
            first_has = (model, bs) in recs[0] or (model, bs) in misses[0]
            if not first_has and sum(v is not None for v in vals) < 2:
                dropped += 1
                continue
            for v in vals[1:]:
                if v is None or vals[0] is None or vals[0] == 0:
                    row.append(Cell(MISSING, cls="missing"))
                else:
                    row.append(Cell(format_ratio(v / vals[0]), value=v / vals[0], cls="ratio"))
            rows.append(row)
    caption = f"{title}; ratio = that platform's {unit} ÷ {platforms[0].label}'s"
    if dropped:
        caption += (
            f"; {dropped} (model, batch) pairs that only one platform other than {platforms[0].label} has are left out"
        )
    legend = mem_legend() if metric == "memory" else [] if metric == "energy" else fps_legend()
    return Table(f"compare_{metric}", f"Side by side: {title}", header, rows, notes.texts, caption, legend)


def environment_table(environment: JsonMapping, label: str = "") -> Table:
    rows: list[list[Cell]] = []
    for key, val in flatten(environment or {}, skip=("samples",)).items():
        text = _short(val)
        rows.append([Cell(key, header=True), Cell(text, value=0.0, cls="text")])
    title = "Environment" + (f": {label}" if label else "")
    return Table("environment", title, ["key", "value"], rows)


def _short(v: object, limit: int = 200) -> str:
    text = "" if v is None else (str(v) if not isinstance(v, (list, dict)) else _json(v))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(v: object) -> str:
    import json

    return json.dumps(v, sort_keys=False, default=str)


def flatten(obj: Mapping[str, object], prefix: str = "", skip: Sequence[str] = ()) -> dict[str, object]:
    """Nested dicts to ``a.b.c`` keys; lists stay values."""
    out: dict[str, object] = {}
    for k, v in obj.items():
        if k in skip:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + ".", skip))
        else:
            out[key] = v
    return out
