"""The reference workload's timer (pytest_dnnbench/measure/reference.py): what it runs and which time it keeps."""

from __future__ import annotations

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


def test_the_workload_names_its_version() -> None:
    # Rounds and records of another workload are compared as measured: the name must change with the timing.
    assert TIMED_RUNS == 4 and WORKLOAD.endswith("best of four after one, v3")


def test_a_real_run_is_a_fraction_of_a_millisecond_to_milliseconds() -> None:
    timer = reference_timer()
    times = [timer() for _ in range(5)]
    assert all(0.005 < t < 50 for t in times), times
