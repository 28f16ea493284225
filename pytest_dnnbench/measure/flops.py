"""Computational and model complexity: MACs (thop and torch's FlopCounterMode), parameters, file size.

- ``macs``: the multiply-accumulates of one forward pass of one image counted by thop, with all of
  its rules (convolutions and linear layers, and also normalisation, pooling, softmax, upsampling,
  recurrent layers and functional matrix products), on a deep copy of the model so that the
  benchmarked model is never altered. This is the headline figure: ``flops = 2 * macs``.
- ``macs_check``: the MACs of the same forward pass counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (its FLOPs / 2), on the model itself under
  ``inference_mode``, as benchmarked. FlopCounterMode counts only convolutions, matrix products
  (``mm``, ``addmm`` - linear layers -, ``bmm``, ``baddbmm``) and attention kernels.
- ``counters_disagree``: thop's count *on the same operators* (``macs_same_ops``: its rules for
  convolutions, transposed convolutions, linear layers and multi-head attention less the softmax
  it charges there, plus the matrix products it counts outside module rules) differs from
  ``macs_check`` by more than :data:`DISAGREEMENT` of the larger, or one counter failed. The two
  counters then see different work in the model: a module that calls ``F.conv2d`` with its own
  weight (thop has no rule for it), or attention fused into one kernel FlopCounterMode has no rule
  for (torchvision's ViT in eval). thop's rules for other operators (normalisation, pooling,
  softmax, upsampling, recurrent layers) are not compared: FlopCounterMode does not count them,
  so comparing them flagged ordinary networks (MobileNet-v2: 327 against 301 M MACs, 8 %).
- parameters are ``sum(p.numel())``; the parameter-file size is the byte length of the serialized
  ``state_dict``.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..oom import is_out_of_memory

if TYPE_CHECKING:
    import torch

    from ..jsontypes import JsonObject

#: thop's count on the shared operators and FlopCounterMode's further apart than this (relative to the
#: larger) are flagged. Where both see the same work they agree exactly (the paper's 44 networks,
#: small custom ones, attention in training mode); the disagreements measured are whole layers one of
#: them misses (7 % to 96 %). 1 % leaves room for a change in either's rules, at the price of missing
#: a layer below 1 % of the network (a classifier, say).
DISAGREEMENT = 0.01
MIB = 2**20

_Rule = Callable[..., object]


def _same_operator_types() -> tuple[type[torch.nn.Module], ...]:
    """The module types whose thop rule counts what FlopCounterMode counts: convolutions (transposed
    too: ``_ConvNd`` is the base of both), linear layers and multi-head attention (projections and
    the two attention products; the softmax thop's rule adds is taken off in :func:`thop_counts`)."""
    from torch import nn

    return (nn.modules.conv._ConvNd, nn.Linear, nn.MultiheadAttention)


@dataclass(frozen=True)
class Complexity:
    macs: int | None
    macs_check: int | None
    params: int
    param_file_bytes: int
    error: str | None = None
    #: thop's MACs on the operators FlopCounterMode counts (see the module docstring); None where thop failed.
    macs_same_ops: int | None = None

    @property
    def flops(self) -> int | None:
        return None if self.macs is None else 2 * self.macs

    @property
    def counters_disagree(self) -> bool:
        """See :func:`counters_disagree`; a thop count without its shared part (a Complexity built by
        hand with ``macs`` only) has nothing to compare and is not flagged unless a counter failed."""
        if self.macs is not None and self.macs_check is not None and self.macs_same_ops is None:
            return False
        return counters_disagree(None if self.macs is None else self.macs_same_ops, self.macs_check)

    @property
    def param_file_mib(self) -> float:
        """Parameter-file size in MiB (the paper's "MB", like its memory figures)."""
        return self.param_file_bytes / MIB

    def as_record(self) -> JsonObject:
        return {
            "macs": self.macs,
            "flops": self.flops,
            "macs_check": self.macs_check,
            "counters_disagree": self.counters_disagree,
            "params": self.params,
            "param_file_mib": self.param_file_mib,
            "param_file_bytes": self.param_file_bytes,
        }


def counters_disagree(macs_same_ops: int | None, macs_check: int | None, tolerance: float = DISAGREEMENT) -> bool:
    """True when thop's count on the shared operators and FlopCounterMode's differ by more than
    ``tolerance`` of the larger, or when only one of them exists (a counter failed)."""
    if macs_same_ops is None or macs_check is None:
        return macs_same_ops is not macs_check  # one counter failed: that is a disagreement worth a look
    top = max(macs_same_ops, macs_check)
    return top > 0 and abs(macs_same_ops - macs_check) / top > tolerance


def count_params(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def param_file_bytes(model: torch.nn.Module) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def thop_counts(model: torch.nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """thop's MACs of one forward pass of ``example``, on a deep copy of ``model``: the full count
    (every rule of thop's) and the count on the operators FlopCounterMode counts (``macs_same_ops``).

    One profile serves both. Every thop rule outside :func:`_same_operator_types` is handed to thop
    again as a custom rule that also adds what it counts to a tally; multi-head attention's rule
    likewise, for the softmax it charges besides the products. thop thus picks the same rule for
    every module and the full count is unchanged; the shared count is the full count less the
    tally. Products run functionally (``torch.matmul``, ``F.linear``, scaled dot-product
    attention), which thop counts outside any module rule, stay in the shared count.
    """
    import thop
    import torch
    from thop.profile import register_hooks
    from thop.vision.basic_hooks import zero_ops

    shared = _same_operator_types()
    outside = [0.0]

    def tallied(rule: _Rule) -> _Rule:
        def count(m: torch.nn.Module, x: tuple[object, ...], y: object) -> None:
            before = _total_ops(m)
            rule(m, x, y)
            outside[0] += _total_ops(m) - before

        return count

    def softmax_tallied(rule: _Rule) -> _Rule:
        def count(m: torch.nn.Module, x: tuple[object, ...], y: object) -> None:
            before = _total_ops(m)
            rule(m, x, y)
            # thop charges the softmax per head and the products independently of the heads, so the
            # rule run on a no-head shadow of the module gives the products alone
            shadow = copy.copy(m)
            buffers = {k: v for k, v in m._buffers.items() if k != "total_ops"}
            shadow.__dict__.update(num_heads=0, total_ops=0, _buffers=buffers)
            rule(shadow, x, y)
            outside[0] += _total_ops(m) - before - _total_ops(shadow)

        return count

    custom_ops: dict[type[torch.nn.Module], _Rule] = {
        kind: tallied(rule)
        for kind, rule in register_hooks.items()
        if rule is not zero_ops and not issubclass(kind, shared)
    }
    attention = register_hooks.get(torch.nn.MultiheadAttention)
    if attention is not None:
        custom_ops[torch.nn.MultiheadAttention] = softmax_tallied(attention)
    clone = copy.deepcopy(model).eval()
    try:
        with torch.inference_mode():
            macs, _ = thop.profile(clone, inputs=(example,), custom_ops=custom_ops, verbose=False)
    finally:
        del clone
    return int(round(float(macs))), int(round(float(macs) - outside[0]))


def _total_ops(m: torch.nn.Module) -> float:
    """What thop has counted for ``m`` so far (an int attribute, or a float64 buffer in older thop)."""
    return float(getattr(m, "total_ops", 0))


def thop_macs(model: torch.nn.Module, example: torch.Tensor) -> int:
    """MACs of one forward pass of ``example`` counted by thop (all its rules), on a deep copy of ``model``."""
    return thop_counts(model, example)[0]


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
    macs: int | None = None
    same_ops: int | None = None
    try:
        macs, same_ops = thop_counts(model, example)
    except Exception as exc:  # noqa: BLE001 - a counter failing must not fail the benchmark
        if is_out_of_memory(exc):
            raise  # out of memory is the test's, not the counter's: the caller's guard skips the test
        errors.append(f"thop: {type(exc).__name__}: {exc}")
    try:
        check: int | None = flop_counter_macs(model, example)
    except Exception as exc:  # noqa: BLE001
        if is_out_of_memory(exc):
            raise
        check = None
        errors.append(f"FlopCounterMode: {type(exc).__name__}: {exc}")
    return Complexity(
        macs=macs,
        macs_check=check,
        params=count_params(model),
        param_file_bytes=param_file_bytes(model),
        error="; ".join(errors) or None,
        macs_same_ops=same_ops,
    )


def prime_counters() -> None:
    """Count a tiny network once, so that the counters' one-time costs are paid now.

    The first count in a process imports thop and builds torch's dispatch machinery: about 80 MiB
    of private memory here (CPU, torch 2.14), and nothing on later counts. A caller that bounds what
    a model adds (``--dnn-max-host-memory``) primes the counters before the bound starts.
    """
    import torch

    measure_complexity(torch.nn.Conv2d(3, 2, 3), torch.zeros(1, 3, 8, 8))
