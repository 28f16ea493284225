"""Which load signals tell a busy machine from a quiet one: the calibration of ``BusyThresholds``.

In one process, times resnet18's forward pass at batch 1 for about ``--seconds`` seconds, with a
load snapshot (:func:`pytest_dnnbench.measure.load.take_snapshot`) before and after, under three
conditions: quiet, one CPU hog, two CPU hogs (a hog is a separate Python process spinning in a
busy loop, started before the timed calls and killed after them). The conditions are interleaved
(quiet, 1 hog, 2 hogs, quiet, ...), ``--reps`` times, first with torch's threads = the available
CPUs, then with one thread. Before each measurement it waits for a calm window
(:func:`~pytest_dnnbench.measure.load.wait_for_calm`), so that one condition's hogs do not spill
into the next.

Prints, per row: the median latency and its slowdown against the quiet median of the same thread
count, CPU pressure, steal, involuntary context switches of this process per second, the mean CPU
frequency, the 1-minute load average per CPU, the CPUs kept busy by the hogs and by anything else
("foreign"), and whether the default thresholds call it busy. The machine may be shared: a row
where other processes than this one and its hogs kept more than 0.2 CPU busy is printed as void
and measured again (up to ten times).
Then the range of each signal per condition, and a check of ``wait_for_calm`` with and without a
hog. About 3 minutes on a quiet 2-core machine (913 s on a shared one, where 41 of 58 rows were void).

    python benchmarks/load_signals.py [--seconds 5] [--reps 3] [--threads 2,1]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_dnnbench.measure.load import (  # noqa: E402
    BusyThresholds,
    Load,
    available_cpus,
    busy_cpus,
    load_between,
    take_snapshot,
    wait_for_calm,
)

HOG = "while True:\n    pass\n"
CONDITIONS = (("quiet", 0), ("1 hog", 1), ("2 hogs", 2))
#: Other processes than this one and its hogs keeping more CPUs than this busy make a row void:
#: the machine may be shared, and another user's job must not pass for a quiet measurement (an
#: idle machine's housekeeping kept 0.03 to 0.06 CPU busy here).
FOREIGN_CPUS = 0.2
ATTEMPTS = 10


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process (``utime + stime`` of ``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def hogs(n: int) -> Iterator[list[int]]:
    """``n`` busy-loop processes for the duration of the block (given 0.3 s to start spinning); their pids."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]
    try:
        if procs:
            time.sleep(0.3)
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


@dataclass
class Row:
    threads: int
    condition: str
    rep: int
    median_ms: float
    calls: int
    load: Load
    #: CPUs kept busy by the hogs during the timed calls.
    hog_cpus: float
    #: CPUs kept busy by other processes than this one and its hogs during the timed calls.
    foreign_cpus: float | None
    calm_wait_s: float
    calm: bool

    @property
    def foreign(self) -> bool:
        """Disturbed by something other than its hogs: this row does not count."""
        return self.foreign_cpus is not None and self.foreign_cpus > FOREIGN_CPUS


def time_calls(call: Callable[[], object], seconds: float) -> list[float]:
    """Call repeatedly for about ``seconds``; each call's duration in ms."""
    out: list[float] = []
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        out.append(1e3 * (t1 - t0))
        if t1 >= end:
            return out


def measure(
    call: Callable[[], object], seconds: float, n_hogs: int, cpus: int
) -> tuple[float, int, Load, float, float | None]:
    """(median ms, calls, load, CPUs kept busy by the hogs, CPUs kept busy by anything else)."""
    with hogs(n_hogs) as pids:
        hogs_before = sum(process_cpu_s(pid) for pid in pids)
        before, own_before = take_snapshot(), own_cpu_s()
        times = time_calls(call, seconds)
        after, own_after = take_snapshot(), own_cpu_s()
        hogs_after = sum(process_cpu_s(pid) for pid in pids)
    load = load_between(before, after, cpus)
    hog_cpus = (hogs_after - hogs_before) / load.seconds
    busy = busy_cpus(before, after)
    foreign = None if busy is None else max(0.0, busy - (own_after - own_before) / load.seconds - hog_cpus)
    return statistics.median(times), len(times), load, hog_cpus, foreign


def quiet_median(rows: list[Row], threads: int) -> float | None:
    """The median of the quiet medians with this thread count: what slowdowns are relative to."""
    quiet = [r.median_ms for r in rows if r.threads == threads and r.condition == "quiet"]
    return statistics.median(quiet) if quiet else None


def fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(scale * value, spec)


def print_row(row: Row, quiet_ms: float | None) -> None:
    slow = "" if quiet_ms is None else f"{100 * (row.median_ms / quiet_ms - 1):+.0f} %"
    load = row.load
    print(
        f"{row.threads:>3} {row.condition:<7} {row.rep:>3} {row.median_ms:>8.2f} {slow:>7} {row.calls:>5}"
        f" {fmt(load.cpu_pressure, '.1f', 100):>7} {fmt(load.steal, '.2f', 100):>7}"
        f" {fmt(load.involuntary_per_s, '.1f'):>8} {fmt(load.freq_mhz, '.0f'):>6}"
        f" {fmt(load.loadavg_per_cpu, '.2f'):>6} {row.hog_cpus:>5.2f} {fmt(row.foreign_cpus, '.2f'):>7}"
        f" {'BUSY' if load.busy else 'quiet':>5}"
        f" {row.calm_wait_s:>5.1f}{'' if row.calm else '!'}{'  void: foreign load' if row.foreign else ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed calls per measurement (s)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each condition")
    parser.add_argument("--threads", default=None, help="torch thread counts, comma-separated (default: CPUs,1)")
    args = parser.parse_args()

    import torch
    import torchvision

    cpus = available_cpus()
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else [cpus, 1]
    thresholds = BusyThresholds()
    probe = take_snapshot()
    print(
        f"available CPUs {cpus}; torch {torch.__version__}; signals: PSI {probe.psi_some_us is not None}, "
        f"/proc/stat {probe.cpu_ticks is not None}, rusage {probe.involuntary_switches is not None}, "
        f"freq {probe.freq_mhz is not None}"
    )
    print(f"default thresholds: {thresholds}")
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)

    def call() -> object:
        with torch.inference_mode():
            return model(x)

    start = time.monotonic()
    rows: list[Row] = []
    print(
        f"\n{'thr':>3} {'cond':<7} {'rep':>3} {'med ms':>8} {'slow':>7} {'calls':>5} {'psi %':>7} {'steal%':>7}"
        f" {'invol/s':>8} {'MHz':>6} {'la/cpu':>6} {'hogs':>5} {'foreign':>7} {'busy':>5} {'calm':>5}"
    )
    for threads in thread_counts:
        torch.set_num_threads(threads)
        time_calls(call, 1.0)  # warm-up
        quiet_ms: float | None = None
        for rep in range(1, args.reps + 1):
            for condition, n_hogs in CONDITIONS:
                for _ in range(ATTEMPTS):
                    calm, waited = wait_for_calm(max_wait_s=20.0, window_s=1.0)
                    median_ms, calls, load, hog_cpus, foreign = measure(call, args.seconds, n_hogs, cpus)
                    row = Row(threads, condition, rep, median_ms, calls, load, hog_cpus, foreign, waited, calm)
                    if condition == "quiet" and quiet_ms is None and not row.foreign:
                        quiet_ms = median_ms
                    print_row(row, quiet_ms)
                    for reason in load.reasons:
                        print(f"{'':>21}{reason}")
                    if not row.foreign:
                        rows.append(row)
                        break
        quiet_all = quiet_median(rows, threads)
        print(f"{'':>4}quiet median of medians, {threads} thread(s): {fmt(quiet_all, '.2f')} ms")

    print("\nranges per condition (min .. max over repetitions)")
    print(f"{'thr':>3} {'cond':<7} {'slowdown %':>14} {'psi %':>13} {'steal %':>13} {'invol/s':>13} {'busy':>5}")
    for threads in thread_counts:
        quiet_all = quiet_median(rows, threads)
        for condition, _ in CONDITIONS:
            sel = [r for r in rows if r.threads == threads and r.condition == condition]

            def span(values: list[float | None], scale: float = 1.0, spec: str = ".1f") -> str:
                present = [scale * v for v in values if v is not None]
                return "-" if not present else f"{min(present):{spec}} .. {max(present):{spec}}"

            slowdowns: list[float | None] = [
                None if quiet_all is None else 100 * (r.median_ms / quiet_all - 1) for r in sel
            ]
            if not sel:
                continue
            print(
                f"{threads:>3} {condition:<7} {span(slowdowns, spec='+.0f'):>14}"
                f" {span([r.load.cpu_pressure for r in sel], 100):>13}"
                f" {span([r.load.steal for r in sel], 100, '.2f'):>13}"
                f" {span([r.load.involuntary_per_s for r in sel]):>13}"
                f" {sum(r.load.busy for r in sel):>2}/{len(sel)}"
            )

    print("\nwait_for_calm(max_wait_s=3, window_s=1)")
    for n_hogs in (0, 1, 2):
        with hogs(n_hogs):
            calm, waited = wait_for_calm(max_wait_s=3.0, window_s=1.0)
        print(f"  {n_hogs} hog(s): calm {calm}, waited {waited:.1f} s")
    print(f"\ntotal {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
