"""The end-of-session table (pure: records in, lines out)."""

from __future__ import annotations

from typing import Iterable, Optional

MIB = 2**20


def _fmt(value: Optional[float], spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_bytes(n: Optional[int]) -> str:
    """Bytes as MiB (or GiB from 10 GiB up), always with the unit."""
    if n is None:
        return "-"
    if n >= 10 * 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / MIB:.0f} MiB"


COLUMNS = ("model", "batch", "ms/image", "FPS", "memory", "GFLOPs", "params(M)", "n", "note")


def record_row(rec: dict) -> tuple[str, ...]:
    lat = rec.get("latency_ms") or {}
    mem = rec.get("memory_bytes") or {}
    notes = []
    if lat.get("capped"):
        notes.append("capped")
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
        format_bytes(mem.get("total")),
        _fmt(None if flops is None else flops / 1e9, ".2f"),
        _fmt(None if params is None else params / 1e6, ".2f"),
        str(lat.get("n", "-")),
        ", ".join(notes),
    )


def format_table(records: Iterable[dict]) -> list[str]:
    """Aligned rows; notes: ``capped`` (budget ran out before the CI target), ``flops?`` (the two
    FLOP counters disagree by more than 5 %), and any outcome but passed."""
    rows = [COLUMNS] + [record_row(r) for r in records]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    right = {1, 2, 3, 4, 5, 6, 7}
    lines = []
    for k, row in enumerate(rows):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        line = "  ".join(cells).rstrip()
        lines.append(line)
        if k == 0:
            lines.append("-" * len(line))
    return lines
