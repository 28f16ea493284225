"""The reference workload's timer (pytest_dnnbench/measure/reference.py): what it runs and which time it keeps."""

from __future__ import annotations

import ast
import hashlib
import inspect
from collections.abc import Iterator

import pytest

from pytest_dnnbench.measure.reference import TIMED_RUNS, WORKLOAD, reference_timer


class Recorder:
    """A clock whose readings advance by the given steps (ns), logging each reading and each convolution."""

    def __init__(self, steps: Iterator[int]) -> None:
        self.steps, self.now = steps, 0
        self.events: list[str] = []

    def clock(self) -> int:
        self.events.append("clock")
        self.now += next(self.steps)
        return self.now


def test_one_untimed_run_then_the_fastest_of_the_timed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    # Each timed run reads the clock twice: the step before its end reading is its time. The three warm-up calls
    # take 1 ms per run; the call under test takes 5, 3, 7 and 4 ms: its time is the fastest, 3 ms.
    def steps() -> Iterator[int]:
        for _ in range(3 * TIMED_RUNS):
            yield from (10, 1_000_000)
        for ms in (5, 3, 7, 4):
            yield from (10, ms * 1_000_000)

    recorder = Recorder(steps())
    real = F.conv2d

    def conv2d(*args: object, **kwargs: object) -> object:
        recorder.events.append("conv")
        return real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(F, "conv2d", conv2d)
    timer = reference_timer(clock=recorder.clock)
    recorder.events.clear()
    assert timer() == pytest.approx(3.0)
    # The run after the model's call is not timed (what the call left cold slows it); then each timed run alone.
    assert recorder.events == ["conv"] + ["clock", "conv", "clock"] * TIMED_RUNS


#: The timer's code (docstring, comments and layout aside) when WORKLOAD was last named. Rounds and records of
#: another workload are compared as measured (the gate matches WORKLOAD), so a change of how the workload is run
#: or timed must change WORKLOAD's version; then set this to what the test prints.
TIMER_CODE_OF_V3 = "7f4f947e31ef8511"


def _timer_code(source: str | None = None) -> str:
    """A fingerprint of reference_timer's code and TIMED_RUNS in ``source`` (the module's own by default)."""
    from pytest_dnnbench.measure import reference

    tree = ast.parse(inspect.getsource(reference) if source is None else source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "reference_timer")
    body = fn.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        fn.body = body[1:]  # the docstring
    return hashlib.sha256(f"{ast.unparse(fn)}\nTIMED_RUNS={TIMED_RUNS}".encode()).hexdigest()[:16]


def test_a_change_of_the_timer_changes_the_workloads_version() -> None:
    code = _timer_code()
    assert WORKLOAD.endswith(", v3") and code == TIMER_CODE_OF_V3, (
        f"the reference timer's code changed ({code}, was {TIMER_CODE_OF_V3} for {WORKLOAD!r}): if what it runs "
        "or how it times changed, rounds saved before would be divided by another workload's time: give WORKLOAD "
        "a new version, say it in its text and rename TIMER_CODE_OF_V3; either way set it to the new code"
    )


def test_the_fingerprint_sees_a_change_of_timing_but_not_of_comments_or_the_docstring() -> None:
    from pytest_dnnbench.measure import reference

    src = inspect.getsource(reference)
    line = "best = min(best, t1 - t0)"
    assert src.count(line) == 1
    assert _timer_code(src.replace(line, "best = t1 - t0")) != TIMER_CODE_OF_V3
    assert _timer_code(src.replace("F.conv2d(x, w, padding=1)\n", "F.relu(x)\n", 1)) != TIMER_CODE_OF_V3
    assert _timer_code(src.replace(line, f"{line}  # the fastest")) == TIMER_CODE_OF_V3
    assert _timer_code(src.replace("the fastest is its time", "the fastest run is kept")) == TIMER_CODE_OF_V3


def test_a_real_run_is_a_fraction_of_a_millisecond_to_milliseconds() -> None:
    timer = reference_timer()
    times = [timer() for _ in range(5)]
    assert all(0.005 < t < 50 for t in times), times
