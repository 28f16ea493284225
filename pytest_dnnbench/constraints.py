"""Deployment constraints: records x thresholds -> verdicts (the sizes and rates are parsed in settings).

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

from collections.abc import Mapping
from dataclasses import dataclass

from .record import Check, Record
from .units import format_bytes

__all__ = ["Constraints", "check_constraints", "format_bytes", "model_memory"]


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


def model_memory(memory: Mapping[str, object]) -> tuple[int | None, str]:
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


def check_constraints(record: Record, constraints: Constraints) -> list[Check]:
    """One check per constraint that applies (``kind="constraint"``)."""
    checks: list[Check] = []
    where = f"{record.model} at batch {record.batch_size}"
    if constraints.max_memory is not None:
        total = record.memory.get("total")
        limit = int(constraints.max_memory)
        if total is None:
            why = _why(record)
            checks.append(
                Check.make(
                    **{
                        "kind": "constraint",
                        "metric": "memory",
                        "limit": limit,
                        "measured": None,
                        "passed": False,
                        "source": constraints.max_memory_source,
                        "message": f"memory of {where}: no total memory figure was measured"
                        + (f" ({why})" if why else "")
                        + f", so the limit {format_bytes(limit)} ({constraints.max_memory_source}) cannot be verified",
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
        fps = record.fps
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
            median = record.latency.median
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
                        f"per batch of {record.batch_size}) {'>=' if ok else '<'} minimum {limit_f:g} FPS "
                        f"({constraints.min_fps_source})",
                    }
                )
            )
    return checks


def _why(record: Record) -> str | None:
    """The record's own word on a memory it did not measure (its ``memory_method``: ``not measured: why``)."""
    method = record.memory_method or ""
    return method.removeprefix("not measured: ") if method.startswith("not measured: ") else None


def _model_memory_check(record: Record, limit: int, source: str) -> Check:
    where = f"{record.model} at batch {record.batch_size}"
    measured, parts = model_memory(record.memory)
    ok = measured is not None and measured <= limit
    if measured is None:
        message = (
            f"model memory of {where}: not measured ({_why(record) or parts}), so the limit {format_bytes(limit)} "
            f"({source}) cannot be verified"
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
