"""Computational and model complexity: MACs (thop and torch's FlopCounterMode), parameters, file size.

DESIGN §3: MACs for one image, counted by thop on a deep copy of the model (so
the benchmarked model is never altered); FLOPs = 2 x MACs; cross-checked with
``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 FLOPs per
multiply-add) and both stored; parameters are ``sum(p.numel())``; the
parameter-file size is the byte length of the serialized ``state_dict``.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ..record import JsonObject

#: Counters further apart than this (relative) are flagged in the record.
DISAGREEMENT = 0.05
MIB = 2**20


@dataclass(frozen=True)
class Complexity:
    macs: int | None
    macs_check: int | None
    params: int
    param_file_bytes: int
    error: str | None = None

    @property
    def flops(self) -> int | None:
        return None if self.macs is None else 2 * self.macs

    @property
    def counters_disagree(self) -> bool:
        return counters_disagree(self.macs, self.macs_check)

    @property
    def param_file_mb(self) -> float:
        """Parameter-file size in MiB (the paper's "MB", like its memory figures)."""
        return self.param_file_bytes / MIB

    def as_record(self) -> JsonObject:
        return {
            "macs": self.macs,
            "flops": self.flops,
            "macs_check": self.macs_check,
            "counters_disagree": self.counters_disagree,
            "params": self.params,
            "param_file_mb": self.param_file_mb,
            "param_file_bytes": self.param_file_bytes,
        }


def counters_disagree(macs: int | None, macs_check: int | None, tolerance: float = DISAGREEMENT) -> bool:
    """True when both counts exist and differ by more than ``tolerance`` of the larger."""
    if macs is None or macs_check is None:
        return macs is not macs_check  # one counter failed: that is a disagreement worth a look
    top = max(macs, macs_check)
    return top > 0 and abs(macs - macs_check) / top > tolerance


def count_params(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def param_file_bytes(model: torch.nn.Module) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def thop_macs(model: torch.nn.Module, example: torch.Tensor) -> int:
    """MACs of one forward pass of ``example`` counted by thop, on a deep copy of ``model``."""
    import thop
    import torch

    clone = copy.deepcopy(model).eval()
    try:
        with torch.inference_mode():
            macs, _ = thop.profile(clone, inputs=(example,), verbose=False)
    finally:
        del clone
    return int(round(float(macs)))


def flop_counter_macs(model: torch.nn.Module, example: torch.Tensor) -> int:
    """MACs of one forward pass counted by torch's FlopCounterMode (its FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(example)
    return int(counter.get_total_flops()) // 2


def measure_complexity(model: torch.nn.Module, example: torch.Tensor) -> Complexity:
    """Count MACs for ``example`` (one image), parameters and file size of ``model``."""
    errors: list[str] = []
    try:
        macs: int | None = thop_macs(model, example)
    except Exception as exc:  # noqa: BLE001 - a counter failing must not fail the benchmark
        macs = None
        errors.append(f"thop: {type(exc).__name__}: {exc}")
    try:
        check: int | None = flop_counter_macs(model, example)
    except Exception as exc:  # noqa: BLE001
        check = None
        errors.append(f"FlopCounterMode: {type(exc).__name__}: {exc}")
    return Complexity(
        macs=macs,
        macs_check=check,
        params=count_params(model),
        param_file_bytes=param_file_bytes(model),
        error="; ".join(errors) or None,
    )


def prime_counters() -> None:
    """Count a tiny network once, so that the counters' one-time costs are paid now.

    The first count in a process imports thop and builds torch's dispatch machinery: about 80 MiB
    of private memory here (CPU, torch 2.14), and nothing on later counts. A caller that bounds what
    a model adds (``--dnn-max-host-memory``) primes the counters before the bound starts.
    """
    import torch

    measure_complexity(torch.nn.Conv2d(3, 2, 3), torch.zeros(1, 3, 8, 8))
