"""Progress of a benchmark run, per model, and the tests that left no record (pure: no pytest).

The session feeds it the plan (node id -> model and batch size, in run order) after collection,
then each test's start (a run in one process) or end (under pytest-xdist, where tests of several
models run at once); it answers with the line to print, if any, with an estimate of the time left.

The estimate is the wall-clock time per finished test so far times the tests left: in one process
tests run one after another, so a test's start means every test started before it has finished
(the session need not report ends); under pytest-xdist the ends are reported, and dividing wall
time (not the sum of the tests' own times) by them takes the workers' parallelism into account.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..jsontypes import JsonObject

__all__ = ["Progress", "format_time_left", "missing_entry"]


def format_time_left(seconds: float | None) -> str:
    """``about 45 s left`` below 90 s, ``about 12 min left`` below 90 min, ``about 2.5 h left``
    above; ``time left: unknown`` before any test has finished."""
    if seconds is None:
        return "time left: unknown"
    seconds = max(0.0, seconds)
    if seconds < 89.5:
        return f"about {max(1, _half_up(seconds))} s left"
    if seconds < 89.5 * 60:
        return f"about {_half_up(seconds / 60)} min left"
    hours = seconds / 3600
    return f"about {_half_up(hours * 10) / 10:.1f} h left" if hours < 9.95 else f"about {_half_up(hours)} h left"


def _half_up(x: float) -> int:
    return int(x + 0.5)


@dataclass
class Progress:
    #: node id -> (model, batch size) of the benchmark tests, in run order.
    plan: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    announced: str | None = None
    started: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)
    #: Seconds, monotonic (injected by the tests).
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    #: When the clock of the estimate started: :meth:`begin`, else the first start or end reported.
    began: float | None = None
    #: Tests complete at ``began`` whose time is not known (a first end reported without :meth:`begin`).
    _untimed: int = field(default=0, repr=False)

    def models(self) -> list[str]:
        return list(dict.fromkeys(m for m, _ in self.plan.values()))

    def begin(self) -> None:
        """Start the clock of the estimate (once; later calls do nothing). Optional: without it the
        clock starts at the first test's start, or, under pytest-xdist, at the first test's end."""
        if self.began is None:
            self.began = self.clock()

    def done(self) -> int:
        """Tests known to have finished: those reported, or, in one process, those started before
        the test that runs now."""
        return max(len(self.finished), len(self.started) - 1)

    def time_left(self) -> float | None:
        """Seconds left, estimated: wall-clock seconds per finished test so far × tests left; None
        before any test has finished."""
        timed = self.done() - self._untimed
        if self.began is None or timed <= 0:
            return None
        return (self.clock() - self.began) / timed * (len(self.plan) - self.done())

    def started_line(self, nodeid: str) -> str | None:
        """At a test's start: the line announcing its model, when it is the first test of that model."""
        if nodeid not in self.plan:
            return None
        self.begin()
        self.started.add(nodeid)
        model, _ = self.plan[nodeid]
        if model == self.announced:
            return None
        self.announced = model
        models = self.models()
        # Once, whatever the modes; a test without dnn_batch_size (None) runs at dnn_bench's default, batch 1.
        planned = [b for m, b in self.plan.values() if m == model]
        sizes = list(dict.fromkeys(str(1 if b is None else b) for b in planned))
        left = len(self.plan) - len(self.started) + 1
        batches = "batch 1" if all(b is None for b in planned) else f"batch sizes {','.join(sizes)}"
        return (
            f"dnnbench: model {models.index(model) + 1}/{len(models)} {model}, {batches} "
            f"({left} of {len(self.plan)} tests left), {format_time_left(self.time_left())}"
        )

    def finish(self, nodeid: str) -> None:
        """Record a test's end (:meth:`finished_line` does; in one process it is optional)."""
        if nodeid not in self.plan or nodeid in self.finished:
            return
        if self.began is None:  # no begin(), no start seen: the clock starts now, without this test
            self.began = self.clock()
            self._untimed = len(self.finished) + 1
        self.finished.add(nodeid)

    def finished_line(self, nodeid: str) -> str | None:
        """At a test's end: the line saying its model is complete, when it was the model's last test."""
        if nodeid not in self.plan:
            return None
        self.finish(nodeid)
        model, _ = self.plan[nodeid]
        if any(m == model and n not in self.finished for n, (m, _) in self.plan.items()):
            return None
        models = self.models()
        done = sum(1 for m in models if all(n in self.finished for n, (mm, _) in self.plan.items() if mm == m))
        left = len(self.plan) - len(self.finished)
        return f"dnnbench: {model} done ({done} of {len(models)} models; {left} of {len(self.plan)} tests left" + (
            f"; {format_time_left(self.time_left())})" if left else ")"
        )


def missing_entry(
    *,
    model: str,
    paper_name: str | None,
    batch_size: int | None,
    skipped: bool,
    when: str,
    reason: str,
    test: str,
    mode: str | None = None,
) -> JsonObject:
    """A cell of the tables that has no record (a model that could not be built, a batch out of memory).

    ``mode``: the test's deployment mode, written when given (after ``batch_size``); an entry without
    one belongs to every mode of the report's tables."""
    reason = reason.strip()
    if reason.startswith("Skipped: "):
        reason = reason[len("Skipped: ") :]
    entry: JsonObject = {"model": model, "paper_name": paper_name, "batch_size": batch_size}
    if mode is not None:
        entry["mode"] = mode
    entry.update(
        {
            "outcome": "skipped" if skipped else "failed",
            "when": when,
            "reason": reason[:2000],
            "test": test,
        }
    )
    return entry
