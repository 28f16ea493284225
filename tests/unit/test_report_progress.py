"""The progress lines: which model, how many tests and how much time are left (a fake clock)."""

from __future__ import annotations

import pytest

from pytest_dnnbench.report.progress import Progress, format_time_left


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _plan() -> dict[str, tuple[str, int | None]]:
    # 2 models x 2 batch sizes, then a third model with one.
    return {
        "t[a-1]": ("a", 1),
        "t[a-8]": ("a", 8),
        "t[b-1]": ("b", 1),
        "t[b-8]": ("b", 8),
        "t[c-1]": ("c", 1),
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "time left: unknown"),
        (0.2, "about 1 s left"),
        (45.4, "about 45 s left"),
        (89.0, "about 89 s left"),
        (90.0, "about 2 min left"),
        (185.0, "about 3 min left"),
        (150.0, "about 3 min left"),  # halves round up
        (2.5, "about 3 s left"),
        (89 * 60.0, "about 89 min left"),
        (90 * 60.0, "about 1.5 h left"),
        (4 * 3600 + 700.0, "about 4.2 h left"),
        (30 * 3600.0, "about 30 h left"),
        (-5.0, "about 1 s left"),
    ],
)
def test_time_left_is_rounded_to_its_scale(seconds: float | None, text: str) -> None:
    assert format_time_left(seconds) == text


def test_one_process_estimates_from_the_tests_started_before() -> None:
    clock = FakeClock()
    p = Progress(plan=_plan(), clock=clock)
    assert p.started_line("t[a-1]") == "dnnbench: model 1/3 a, batch sizes 1,8 (5 of 5 tests left), time left: unknown"
    clock.now += 10  # a-1 took 10 s
    assert p.started_line("t[a-8]") is None
    assert p.time_left() == pytest.approx(10.0 * 4)  # while a-8 runs: a-1 is the one finished
    clock.now += 30  # a-8 took 30 s: 20 s per test so far, 3 tests left (b-1 now starting, b-8, c-1)
    assert p.started_line("t[b-1]") == "dnnbench: model 2/3 b, batch sizes 1,8 (3 of 5 tests left), about 60 s left"
    clock.now += 20
    p.started_line("t[b-8]")
    clock.now += 100  # 160 s for 4 tests: 40 s per test, 1 left
    assert p.started_line("t[c-1]") == "dnnbench: model 3/3 c, batch sizes 1 (1 of 5 tests left), about 40 s left"


def test_reported_ends_in_one_process_give_the_same_estimate() -> None:
    clock = FakeClock()
    p = Progress(plan=_plan(), clock=clock)
    p.started_line("t[a-1]")
    clock.now += 60
    p.finish("t[a-1]")
    p.started_line("t[a-8]")
    clock.now += 120
    p.finish("t[a-8]")
    line = p.started_line("t[b-1]")
    assert line is not None and line.endswith("(3 of 5 tests left), about 5 min left")  # 90 s x 3 = 4.5 min


def test_xdist_ends_estimate_from_wall_time_not_the_sum_of_test_times() -> None:
    """Two workers: ends come twice as often as one test's time; the estimate follows the ends."""
    clock = FakeClock()
    p = Progress(plan=_plan(), clock=clock)
    p.begin()  # the controller knows the plan: the clock starts
    clock.now += 50
    assert p.finished_line("t[a-1]") is None
    clock.now += 50
    # 100 s for 2 tests: 50 s each; 3 left.
    assert p.finished_line("t[b-1]") is None
    assert p.time_left() == pytest.approx(150.0)
    clock.now += 20
    assert p.finished_line("t[a-8]") == "dnnbench: a done (1 of 3 models; 2 of 5 tests left; about 80 s left)"
    clock.now += 10
    p.finished_line("t[b-8]")
    clock.now += 10
    assert p.finished_line("t[c-1]") == "dnnbench: c done (3 of 3 models; 0 of 5 tests left)"


def test_without_begin_the_first_end_starts_the_clock() -> None:
    clock = FakeClock()
    p = Progress(plan=_plan(), clock=clock)
    clock.now += 500  # collection, worker start-up: not counted
    p.finish("t[a-1]")
    assert p.time_left() is None  # the first test's own time is unknown
    clock.now += 40
    p.finish("t[b-1]")
    assert p.time_left() == pytest.approx(40.0 * 3)
    p.finish("t[b-1]")  # reported twice: counted once
    assert p.time_left() == pytest.approx(40.0 * 3)


def test_tests_outside_the_plan_change_nothing() -> None:
    clock = FakeClock()
    p = Progress(plan=_plan(), clock=clock)
    assert p.started_line("tests/test_other.py::test_x") is None
    assert p.finished_line("tests/test_other.py::test_x") is None
    assert p.began is None and p.time_left() is None


def test_the_default_clock_is_monotonic() -> None:
    import time

    assert Progress().clock is time.monotonic
