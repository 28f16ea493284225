"""One record judged: its deployment constraints, its baseline (confirmed in fresh processes when suspicious),
and the text a failing test fails with (no pytest here).

:func:`judge` runs the checks in a fixed order and returns the record with them; :func:`verdict_text` says
why the test fails (None: it passes): first a mode whose output differs from eager's, then the constraints,
then the regressions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .constraints import check_constraints
from .gate import BaselineSource, baseline_checks, failure_message, lookup_entry, short_reason

if TYPE_CHECKING:
    from .constraints import Constraints
    from .gate import Confirmation, Tolerances
    from .jsontypes import JsonObject
    from .record import Check, Record

__all__ = ["Confirm", "Judged", "judge", "judged_by_baseline", "verdict_text"]

#: Measures a suspicious latency again in fresh processes: (the baseline checks, the confirmation so far) -> a
#: confirmation (None: none asked for).
Confirm = Callable[[Sequence["Check"], "Confirmation | None"], "Confirmation | None"]


@dataclass(frozen=True)
class Judged:
    """A record with its checks, and the checks apart (the verdict reads them)."""

    record: Record
    constraints: tuple[Check, ...]
    baseline: tuple[Check, ...]
    #: What the baseline said (its status, the entry compared, the rounds).
    info: JsonObject


def judged_by_baseline(baselines: BaselineSource, record: Record) -> bool:
    """Whether a baseline entry will judge this record (looked up, not compared: the file is read once)."""
    entry, _, _ = lookup_entry(baselines, record)
    return entry is not None


def judge(
    record: Record,
    baselines: BaselineSource,
    tolerances: Tolerances,
    constraints: Constraints,
    *,
    strict: bool,
    confirm: Confirm,
) -> Judged:
    """The record's constraints and baseline checks, added to it. A suspicious latency is measured again in
    fresh processes (``confirm``) and judged again; when the first set cannot settle it, as many again,
    judged together."""
    constraint_checks = check_constraints(record, constraints)
    base_checks, info = baseline_checks(baselines, record, tolerances, strict)
    confirmation = confirm(base_checks, None)
    if confirmation is not None:
        base_checks, info = baseline_checks(baselines, record, tolerances, strict, confirmation)
        if _unsettled(base_checks):
            confirmation = confirm(base_checks, confirmation) or confirmation
            base_checks, info = baseline_checks(baselines, record, tolerances, strict, confirmation)
    record = dataclasses.replace(
        record,
        checks=record.checks + tuple(constraint_checks) + tuple(base_checks),
        baseline=info,
        tolerances=dataclasses.asdict(tolerances),
    )
    return Judged(record, tuple(constraint_checks), tuple(base_checks), info)


def verdict_text(judged: Judged) -> str | None:
    """Why the test fails: the reasons in a few words on the first line (pytest's short summary shows it),
    then each failed check in full; None where every check passed."""
    record = judged.record
    bad_output = [c for c in record.checks if c.metric == "output" and not c.passed]
    bad_constraints = [c for c in judged.constraints if not c.passed]
    bad_baseline = [c for c in judged.baseline if not c.passed]
    if not (bad_output or bad_constraints or bad_baseline):
        return None
    lines = ["; ".join(short_reason(c) for c in (*bad_output, *bad_constraints, *bad_baseline))]
    lines += [f"output check failed: {c.message}" for c in bad_output]
    if bad_constraints or bad_baseline:
        lines += failure_message(record, bad_constraints, bad_baseline, judged.info).splitlines()[1:]
    return "\n".join(lines)


def _unsettled(checks: Sequence[Check]) -> bool:
    """The latency check's fresh processes left it inconclusive: more of them may settle it."""
    for c in checks:
        confirmation = c.get("confirmation") if c.metric == "latency" else None
        if isinstance(confirmation, dict) and confirmation.get("verdict") == "inconclusive":
            return True
    return False
