"""``results.csv``: one row per record, nested fields flattened to ``a.b`` columns."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..record import JsonMapping

#: Left out of the CSV (every raw sample stays in results.json).
DROP = ("latency_ms.samples",)


def flatten_record(rec: JsonMapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in rec.items():
        name = f"{prefix}{key}"
        if name in DROP:
            continue
        if isinstance(value, dict):
            out.update(flatten_record(value, name + "."))
        elif isinstance(value, (list, tuple)):
            if all(isinstance(v, (int, float, str, bool)) or v is None for v in value) and len(value) <= 4:
                for i, v in enumerate(value):
                    out[f"{name}.{i}"] = v
            else:
                out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def to_csv(records: Iterable[JsonMapping]) -> str:
    """CSV text: columns in first-seen order, one row per record."""
    rows: list[dict[str, object]] = []
    columns: dict[str, None] = {}
    for rec in records:
        flat = flatten_record(rec)
        rows.append(flat)
        for k in flat:
            columns.setdefault(k, None)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()
