"""Deployment constraints: size and FPS parsing, and records x thresholds -> verdicts.

Pure (no torch, no pytest). Decimal units are decimal (``GB`` = 10^9 bytes) and binary
units binary (``GiB`` = 2^30 bytes), exactly as written; a plain number is bytes. The
paper's Table 3 thresholds (0.7 / 1.0 / 1.4 GB) come from nvidia-smi, which counts MiB:
to apply the paper's own thresholds write ``0.7GiB`` etc.; ``0.7GB`` means 700,000,000
bytes.

The memory constraint applies to the deployed model's total memory (``memory_bytes.total``:
the process's GPU memory, CUDA context included, on a GPU; on the CPU the runtime floor of
torch and the model's library + the model's bytes + the forward pass's working set), the FPS
constraint to the throughput at the batch size under test (``record["fps"]``). The model-memory
constraint applies to the model's own memory, without what the runtime holds before any model
(:func:`model_memory`: on the CPU the model's bytes + the forward pass's working set, without the
runtime floor; on a GPU the allocator's peak, without the CUDA context).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .jsontypes import JsonMapping
from .record import Check
from .units import format_bytes

__all__ = ["Constraints", "check_constraints", "format_bytes", "model_memory", "parse_fps", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([A-Za-z]*)\s*$")


def parse_size(value: object) -> int:
    """``"0.7GB"`` -> 700000000, ``"1.4GiB"`` -> 1503238554, ``"700MB"``, ``"123456"`` (bytes).

    Units: B, kB/KB, MB, GB, TB (powers of 10) and KiB, MiB, GiB, TiB (powers of 2),
    case-insensitive. The result is rounded to whole bytes and must be positive.
    Raises ``ValueError`` saying what is wrong, ``OverflowError`` for a size of 2^63 bytes or more.
    """
    shown = _short(value)
    if isinstance(value, bool):
        raise ValueError(f"{_short(value)} is not a size")
    if isinstance(value, int):
        number, unit = float(value), ""
        if value <= 0:
            raise ValueError(f"size {shown} is not positive")
        if value >= MAX_SIZE:
            raise OverflowError(f"size {shown} is 8 EiB (2^63 bytes) or more")
        return int(value)
    if isinstance(value, float):
        number, unit = value, ""
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ValueError(f"{shown} is not a size (expected a number and a unit such as 0.7GB, 700MB, 1.4GiB)")
        mantissa, exponent, unit = m.groups()
        if exponent and abs(int(exponent[-6:])) > 100 or len(mantissa) > 40:
            if exponent and exponent.startswith("-") or float(mantissa or 0) == 0:
                raise ValueError(f"size {shown} is less than one byte")
            raise OverflowError(f"size {shown} is 8 EiB (2^63 bytes) or more")
        number = float(mantissa) * (10.0 ** int(exponent) if exponent else 1.0)
        unit = unit.lower()
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit[:20]!r} in {shown} (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)")
    if math.isnan(number) or number <= 0:
        raise ValueError(f"size {shown} is not positive")
    if not math.isfinite(number):
        raise OverflowError(f"size {shown} is 8 EiB (2^63 bytes) or more")
    # Exact for the usual inputs: multiply the decimal mantissa in integers where possible.
    scaled = _exact_scale(str(value), number, _UNITS[unit]) if not isinstance(value, float) else number * _UNITS[unit]
    if not math.isfinite(scaled) or scaled >= MAX_SIZE:
        raise OverflowError(f"size {shown} is 8 EiB (2^63 bytes) or more")
    result = int(math.floor(scaled + 0.5))
    if result <= 0:
        raise ValueError(f"size {shown} is less than one byte")
    return result


#: Sizes from here on are refused: the figure would overflow a signed 64-bit integer (8 EiB).
MAX_SIZE = 2**63


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _exact_scale(text: str, number: float, factor: int) -> float:
    """``number * factor`` without binary rounding surprises for decimal input (0.7 * 10^9 = 700000000)."""
    from decimal import Decimal, InvalidOperation

    m = _SIZE_RE.match(text)
    if not m:
        return number * factor
    mantissa, exponent, _ = m.groups()
    try:
        d = Decimal(mantissa) * (Decimal(10) ** int(exponent) if exponent else 1) * factor
    except InvalidOperation:
        return number * factor
    return float(d.to_integral_value(rounding="ROUND_HALF_UP"))


_FPS_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*(fps)?\s*$", re.IGNORECASE)


def parse_fps(value: object) -> float:
    """``"30"``, ``"29.97"``, ``"60fps"`` -> frames (images) per second, positive and finite."""
    if isinstance(value, bool):
        raise ValueError(f"{_short(value)} is not a frame rate")
    if isinstance(value, (int, float)):
        fps = float(value)
    else:
        m = _FPS_RE.match(str(value))
        if not m:
            raise ValueError(f"{_short(value)} is not a frame rate (expected a number such as 15, 30 or 60)")
        fps = float(m.group(1)) * (10.0 ** int(m.group(2)) if m.group(2) else 1.0)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"frame rate {_short(value)} is not positive")
    return fps


@dataclass(frozen=True)
class Constraints:
    """Deployment limits for one test; ``source`` says where each came from (option or marker)."""

    max_memory: int | None = None
    min_fps: float | None = None
    max_memory_source: str = ""
    min_fps_source: str = ""
    #: The model's own memory (:func:`model_memory`), without the runtime floor or the CUDA context.
    max_model_memory: int | None = None
    max_model_memory_source: str = ""

    def __bool__(self) -> bool:
        return self.max_memory is not None or self.min_fps is not None or self.max_model_memory is not None


def model_memory(memory: JsonMapping) -> tuple[int | None, str]:
    """The model's own memory in a record's ``memory_bytes``, and what it is made of.

    CPU: ``model`` (parameters and buffers) + ``delta`` (the forward pass's working set), without the runtime
    floor (the interpreter, torch and the model's library). GPU: ``allocator_peak`` (the tensors live at the
    peak: parameters, buffers, activations), without the CUDA context and the allocator's spare reserve.
    (None, why) where the record has neither."""
    weights, delta = memory.get("model"), memory.get("delta")
    if isinstance(weights, int) and isinstance(delta, int):
        return weights + delta, (
            f"parameters and buffers {format_bytes(weights)} + forward pass {format_bytes(delta)}, "
            "without the runtime floor"
        )
    peak = memory.get("allocator_peak")
    if isinstance(peak, int):
        return peak, "the allocator's peak, without the CUDA context"
    return None, "the record has neither the model's bytes and the forward pass's, nor the allocator's peak"


def check_constraints(record: JsonMapping, constraints: Constraints) -> list[Check]:
    """One check per constraint that applies (``kind="constraint"``), for a record in JSON form."""
    checks: list[Check] = []
    where = f"{record.get('model')} at batch {record.get('batch_size')}"
    if constraints.max_memory is not None:
        total = (record.get("memory_bytes") or {}).get("total")
        limit = int(constraints.max_memory)
        if total is None:
            checks.append(
                Check.make(
                    **{
                        "kind": "constraint",
                        "metric": "memory",
                        "limit": limit,
                        "measured": None,
                        "passed": False,
                        "source": constraints.max_memory_source,
                        "message": f"memory of {where}: no total memory figure was measured, so the limit "
                        f"{format_bytes(limit)} ({constraints.max_memory_source}) cannot be verified",
                    }
                )
            )
        else:
            ok = total <= limit
            checks.append(
                Check.make(
                    **{
                        "kind": "constraint",
                        "metric": "memory",
                        "limit": limit,
                        "measured": int(total),
                        "passed": ok,
                        "source": constraints.max_memory_source,
                        "message": f"memory of {where}: total {format_bytes(total)} = {int(total):,} bytes "
                        f"{'<=' if ok else '>'} limit {format_bytes(limit)} = {limit:,} bytes "
                        f"({constraints.max_memory_source})",
                    }
                )
            )
    if constraints.max_model_memory is not None:
        checks.append(_model_memory_check(record, constraints.max_model_memory, constraints.max_model_memory_source))
    if constraints.min_fps is not None:
        fps = record.get("fps")
        limit_f = float(constraints.min_fps)
        if fps is None:
            checks.append(
                Check.make(
                    **{
                        "kind": "constraint",
                        "metric": "fps",
                        "limit": limit_f,
                        "measured": None,
                        "passed": False,
                        "source": constraints.min_fps_source,
                        "message": f"FPS of {where}: no throughput was measured ({constraints.min_fps_source})",
                    }
                )
            )
        else:
            ok = fps >= limit_f
            median = (record.get("latency_ms") or {}).get("median", float("nan"))
            checks.append(
                Check.make(
                    **{
                        "kind": "constraint",
                        "metric": "fps",
                        "limit": limit_f,
                        "measured": float(fps),
                        "passed": ok,
                        "source": constraints.min_fps_source,
                        "message": f"FPS of {where}: {fps:.4g} images/s (median {median:.4g} ms "
                        f"per batch of {record.get('batch_size')}) {'>=' if ok else '<'} minimum {limit_f:g} FPS "
                        f"({constraints.min_fps_source})",
                    }
                )
            )
    return checks


def _model_memory_check(record: JsonMapping, limit: int, source: str) -> Check:
    where = f"{record.get('model')} at batch {record.get('batch_size')}"
    measured, parts = model_memory(record.get("memory_bytes") or {})
    ok = measured is not None and measured <= limit
    if measured is None:
        message = (
            f"model memory of {where}: not measured ({parts}), so the limit {format_bytes(limit)} ({source}) "
            "cannot be verified"
        )
    else:
        message = (
            f"model memory of {where}: {format_bytes(measured)} = {measured:,} bytes ({parts}) "
            f"{'<=' if ok else '>'} limit {format_bytes(limit)} = {limit:,} bytes ({source})"
        )
    return Check.make(
        **{
            "kind": "constraint",
            "metric": "model_memory",
            "limit": limit,
            "measured": measured,
            "passed": ok,
            "source": source,
            "message": message,
        }
    )
