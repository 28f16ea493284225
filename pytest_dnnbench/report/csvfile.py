"""``results.csv``: one row per record, nested fields flattened to ``a.b`` columns."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..jsontypes import JsonMapping

#: Left out of the CSV (every raw sample stays in results.json).
DROP = ("latency_ms.samples",)
#: Objects that may be null, as the columns of their figures (empty where null), so that every row has them:
#: a measured Top-1 and a published one are apart (``accuracy.measured.top1``, ``accuracy.reference.top1``).
NULLABLE = {
    "accuracy.measured": ("top1", "top5", "n_images"),
    "accuracy.reference": ("top1", "top5", "source"),
}


def flatten_record(rec: JsonMapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in rec.items():
        name = f"{prefix}{key}"
        if name in DROP:
            continue
        if value is None and name in NULLABLE:
            out.update({f"{name}.{k}": None for k in NULLABLE[name]})
        elif isinstance(value, dict):
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
