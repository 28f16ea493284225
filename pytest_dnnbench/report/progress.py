"""Progress of a benchmark run, per model, and the tests that left no record (pure: no pytest).

The session feeds it the plan (node id -> model and batch size, in run order) after collection,
then each test's start (a run in one process) or end (under pytest-xdist, where tests of several
models run at once); it answers with the line to print, if any.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..record import JsonObject

__all__ = ["Progress", "missing_entry"]


@dataclass
class Progress:
    #: node id -> (model, batch size) of the benchmark tests, in run order.
    plan: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    announced: str | None = None
    started: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)

    def models(self) -> list[str]:
        return list(dict.fromkeys(m for m, _ in self.plan.values()))

    def started_line(self, nodeid: str) -> str | None:
        """At a test's start: the line announcing its model, when it is the first test of that model."""
        if nodeid not in self.plan:
            return None
        self.started.add(nodeid)
        model, _ = self.plan[nodeid]
        if model == self.announced:
            return None
        self.announced = model
        models = self.models()
        sizes = list(dict.fromkeys(str(b) for m, b in self.plan.values() if m == model))  # once, whatever the modes
        left = len(self.plan) - len(self.started) + 1
        return (
            f"dnnbench: model {models.index(model) + 1}/{len(models)} {model}, batch sizes "
            f"{','.join(sizes)} ({left} of {len(self.plan)} tests left)"
        )

    def finished_line(self, nodeid: str) -> str | None:
        """At a test's end: the line saying its model is complete, when it was the model's last test."""
        if nodeid not in self.plan:
            return None
        self.finished.add(nodeid)
        model, _ = self.plan[nodeid]
        if any(m == model and n not in self.finished for n, (m, _) in self.plan.items()):
            return None
        models = self.models()
        done = sum(1 for m in models if all(n in self.finished for n, (mm, _) in self.plan.items() if mm == m))
        return (
            f"dnnbench: {model} done ({done} of {len(models)} models; "
            f"{len(self.plan) - len(self.finished)} of {len(self.plan)} tests left)"
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
