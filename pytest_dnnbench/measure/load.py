"""The machine's load during a measurement (pure: no torch, no pytest).

A latency measured while other work competes for the CPUs is not the model's latency. Two
snapshots taken around the timed calls (:func:`take_snapshot`) give, through
:func:`load_between`, what the kernel saw in between:

- **CPU pressure**: the fraction of the wall time during which some runnable task waited for a
  CPU (``/proc/pressure/cpu``, the ``some`` line's ``total``; Linux >= 4.20 with PSI).
- **Steal**: the fraction of all CPU time that the hypervisor gave to other guests
  (``/proc/stat``, the ``steal`` column of the ``cpu`` line).
- **Involuntary context switches** of this process (all its threads) per second
  (``getrusage``): its threads were preempted because something else wanted their CPU.
- The CPU frequency (reported: a throttled or boosted CPU changes latencies) and the 1-minute
  load average per available CPU (reported, not a criterion: it lags by a minute).

A measurement is *busy* when any available signal exceeds its threshold (:class:`BusyThresholds`,
calibrated with ``benchmarks/load_signals.py``). Where a file is missing or malformed (not Linux,
no PSI, a container that hides ``/proc``) that signal is None and judges nothing.
:func:`wait_for_calm` waits, before a measurement, for a quiet window.

Every reader takes the file system root as a parameter, so the tests build a fake tree.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ..jsontypes import JsonObject

__all__ = [
    "BusyThresholds",
    "CpuTicks",
    "LOAD_KEYS",
    "Load",
    "LoadSnapshot",
    "available_cpus",
    "busy_cpus",
    "cgroup_cpu_limit",
    "load_between",
    "take_snapshot",
    "wait_for_calm",
]

ROOT = Path("/")
PSI_CPU = "proc/pressure/cpu"
PROC_STAT = "proc/stat"
CPUINFO = "proc/cpuinfo"
SELF_CGROUP = "proc/self/cgroup"
CPU_SYSFS = "sys/devices/system/cpu"
CGROUP_MOUNT = "sys/fs/cgroup"
#: Where cgroup v1 mounts the ``cpu`` controller (alone, or together with ``cpuacct``).
CGROUP_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct")
#: A CPU's directory in sysfs, its line in ``/proc/stat``: ``cpu0``, ``cpu1``, ...
_CPU_DIR = re.compile(r"cpu[0-9]+")


# -- available CPUs ----------------------------------------------------------------------------------


def _affinity_count() -> int:
    """CPUs this process may be scheduled on (``sched_getaffinity``; ``os.cpu_count()`` where unavailable)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except (OSError, ValueError):
        return None


def _cgroup_paths(root: Path) -> tuple[str, str]:
    """This process's cgroup v2 path and cgroup v1 ``cpu`` path, from ``/proc/self/cgroup`` ("/" where unknown)."""
    v2 = v1 = "/"
    for line in (_read_text(root / SELF_CGROUP) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path or "/"
        elif "cpu" in controllers.split(","):
            v1 = path or "/"
    return v2, v1


def _with_ancestors(mount: Path, cgroup: str) -> list[Path]:
    """``mount/cgroup`` and every directory above it up to ``mount``: each one's quota applies."""
    parts = PurePosixPath(cgroup).parts[1:]  # without the leading "/"
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _quota_v2(text: str | None) -> float | None:
    """``cpu.max`` ("200000 100000": 2 CPUs; "max 100000": no limit) as CPUs; None for none or malformed."""
    fields = (text or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(quota_text: str | None, period_text: str | None) -> float | None:
    """``cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` as CPUs; None for no limit (-1) or malformed."""
    try:
        quota, period = int((quota_text or "").strip()), int((period_text or "").strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(root: Path = ROOT) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (1.5 for 150 ms per 100 ms); None where there is none.

    cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us``/``cpu.cfs_period_us``), in this process's
    cgroup (``/proc/self/cgroup``) and every cgroup above it, since each one's quota applies: the
    smallest is the limit. In a container the mount shows the container's own cgroup at its top,
    which this walk reaches too.
    """
    v2_path, v1_path = _cgroup_paths(root)
    limits: list[float] = []
    for directory in _with_ancestors(root / CGROUP_MOUNT, v2_path):
        limit = _quota_v2(_read_text(directory / "cpu.max"))
        if limit is not None:
            limits.append(limit)
    for mount in CGROUP_V1_CPU_MOUNTS:
        for directory in _with_ancestors(root / CGROUP_MOUNT / mount, v1_path):
            limit = _quota_v1(_read_text(directory / "cpu.cfs_quota_us"), _read_text(directory / "cpu.cfs_period_us"))
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def available_cpus(root: Path = ROOT, affinity: Callable[[], int] = _affinity_count) -> int:
    """CPUs this process may use: its affinity mask, limited by a cgroup CPU quota (rounded up); at least 1."""
    cpus = affinity()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


# -- snapshots ---------------------------------------------------------------------------------------


def read_psi_some_us(path: Path) -> int | None:
    """The ``total=`` of the ``some`` line of a PSI file: microseconds during which some task waited."""
    for line in (_read_text(path) or "").splitlines():
        fields = line.split()
        if fields[:1] != ["some"]:
            continue
        for field in fields[1:]:
            key, _, value = field.partition("=")
            if key == "total":
                try:
                    return int(value)
                except ValueError:
                    return None
    return None


class CpuTicks(NamedTuple):
    """CPU time since boot from ``/proc/stat``, in clock ticks, summed over ``cpus`` CPUs."""

    #: Stolen by the hypervisor for other guests.
    steal: int
    #: Idle, waiting for I/O included.
    idle: int
    #: All of it: user nice system idle iowait irq softirq steal.
    total: int
    #: How many CPUs the sums cover.
    cpus: int


def _ticks(fields: list[str]) -> tuple[int, int, int] | None:
    """(steal, idle, total) of one ``cpu`` line's columns; None where malformed or without a steal column."""
    try:
        ticks = [int(f) for f in fields[:8]]
    except ValueError:
        return None
    if len(ticks) < 8 or min(ticks) < 0:
        return None
    return ticks[7], ticks[3] + ticks[4], sum(ticks)


def read_cpu_ticks(path: Path, cpu_set: frozenset[int] | None = None) -> CpuTicks | None:
    """The CPU time counters of ``/proc/stat``: all CPUs (the ``cpu`` line), or only those of ``cpu_set``.

    The columns are user nice system idle iowait irq softirq steal guest guest_nice; the total is
    the sum of the first eight, since guest time is already counted in user and nice. With
    ``cpu_set`` (this process's affinity, say) the ``cpuN`` lines of those CPUs are summed. None
    where a line is missing, malformed or has no steal column (kernels before 2.6.11).
    """
    lines = [line.split() for line in (_read_text(path) or "").splitlines()]
    per_cpu = [f for f in lines if f and _CPU_DIR.fullmatch(f[0])]
    if cpu_set is None:
        for fields in lines:
            if fields[:1] == ["cpu"]:
                ticks = _ticks(fields[1:])
                return None if ticks is None else CpuTicks(*ticks, cpus=max(1, len(per_cpu)))
        return None
    steal = idle = total = found = 0
    for fields in per_cpu:
        if int(fields[0][3:]) in cpu_set:
            ticks = _ticks(fields[1:])
            if ticks is None:
                return None
            steal, idle, total, found = steal + ticks[0], idle + ticks[1], total + ticks[2], found + 1
    return CpuTicks(steal, idle, total, found) if found == len(cpu_set) and found else None


def read_freq_mhz(root: Path = ROOT) -> float | None:
    """The mean current CPU frequency in MHz: cpufreq's ``scaling_cur_freq`` (kHz), else ``/proc/cpuinfo``."""
    khz: list[float] = []
    try:
        cpu_dirs = [d for d in (root / CPU_SYSFS).iterdir() if _CPU_DIR.fullmatch(d.name)]
    except OSError:
        cpu_dirs = []
    for cpu_dir in cpu_dirs:
        text = _read_text(cpu_dir / "cpufreq" / "scaling_cur_freq")
        try:
            value = float(text) if text is not None else math.nan
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            khz.append(value)
    if khz:
        return sum(khz) / len(khz) / 1000.0
    mhz: list[float] = []
    for line in (_read_text(root / CPUINFO) or "").splitlines():
        key, sep, rest = line.partition(":")
        if sep and key.strip() == "cpu MHz":
            try:
                number = float(rest)
            except ValueError:
                continue
            if math.isfinite(number) and number > 0:
                mhz.append(number)
    return sum(mhz) / len(mhz) if mhz else None


def involuntary_switches() -> int | None:
    """Involuntary context switches of this process so far, all its threads (``ru_nivcsw``); None where unknown."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw)
    except (ImportError, OSError):  # pragma: no cover - not POSIX
        return None


def loadavg_1min() -> float | None:
    """The 1-minute load average (``os.getloadavg``); None where unavailable."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not POSIX
        return None


@dataclass(frozen=True)
class LoadSnapshot:
    """The load counters at one moment (:func:`take_snapshot`); None where a counter is unavailable."""

    #: Monotonic time, seconds.
    t: float
    #: Microseconds during which some task waited for a CPU, since boot (PSI).
    psi_some_us: int | None = None
    #: CPU time counters (steal, idle, total ticks) since boot, over all CPUs or a set of them.
    cpu_ticks: CpuTicks | None = None
    #: Involuntary context switches of this process so far.
    involuntary_switches: int | None = None
    #: Mean current CPU frequency, MHz.
    freq_mhz: float | None = None
    #: 1-minute load average.
    loadavg: float | None = None


def take_snapshot(
    root: Path = ROOT,
    clock: Callable[[], float] = time.monotonic,
    rusage: Callable[[], int | None] = involuntary_switches,
    loadavg: Callable[[], float | None] = loadavg_1min,
    cpu_set: frozenset[int] | None = None,
) -> LoadSnapshot:
    """Read every counter (files under ``root``); never raises: a missing or malformed one is None.

    ``cpu_set`` limits the CPU time counters (steal, idle) to those CPUs (default: all of them).
    """
    return LoadSnapshot(
        t=clock(),
        psi_some_us=read_psi_some_us(root / PSI_CPU),
        cpu_ticks=read_cpu_ticks(root / PROC_STAT, cpu_set),
        involuntary_switches=rusage(),
        freq_mhz=read_freq_mhz(root),
        loadavg=loadavg(),
    )


# -- load over an interval ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BusyThresholds:
    """Above any of these, a measurement was made on a busy machine.

    Calibrated with ``python benchmarks/load_signals.py`` on a 2-CPU VM with PSI (resnet18 at
    batch 1, 5 s per measurement; a hog is a Python busy loop in another process; three
    interleaved repetitions per condition; rows where other users' jobs kept more than 0.2 CPU
    busy were measured again). Torch threads = 2: quiet, CPU pressure 1.5-1.6 % (3.8 % at most in
    an earlier run) and 35-45 involuntary switches/s (18-22 per CPU); one hog, 48-50 % and
    109-116/s (54-58 per CPU), the median latency 8 to 10 times the quiet one; two hogs, 94-96 %
    and 172-189/s, +252 to +383 %. The pressure threshold is 2.6 times the highest quiet figure
    and a fifth of the lowest hogged one; the switches', 1.8 times and 0.74 times. One torch
    thread: one hog (on the other CPU) changed nothing (-1 to +15 % against a quiet spread of
    -6 to +6 %; 1.7-2.8 % pressure, 28-36 switches/s) and is rightly not flagged;
    two hogs, 51-55 % and 84-92/s (42-46 per CPU), +26 to +85 %. Another user's job of 0.2-0.3
    CPU during a 2-thread measurement gave 12-15 % pressure: flagged. Steal stayed at or below
    1 % throughout: its threshold (5 %) is not calibrated by these runs.
    """

    #: Fraction of the wall time during which some task waited for a CPU (PSI ``some``).
    cpu_pressure: float = 0.10
    #: Fraction of all CPU time stolen by the hypervisor.
    steal: float = 0.05
    #: Involuntary context switches of this process per second of measurement and per available CPU
    #: (a process that keeps more CPUs busy is preempted more often by the machine's own housekeeping).
    involuntary_per_cpu_s: float = 40.0
    #: CPUs kept busy by other work while this process sleeps (:func:`wait_for_calm` only): an idle
    #: machine's housekeeping kept 0.02-0.07 CPU busy, one hog 1.0.
    others_cpus: float = 0.5


#: The JSON keys of :class:`Load`, in the order the results file writes them.
LOAD_KEYS = ("seconds", "cpu_pressure", "steal", "involuntary_per_s", "freq_mhz", "loadavg_per_cpu", "busy", "reasons")


def _optional_float(data: Mapping[str, object], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Load: {key!r} must be a number or null, got {type(value).__name__}")
    return float(value)


@dataclass(frozen=True)
class Load:
    """The machine's load over one measurement (:func:`load_between`); None where a signal is unavailable."""

    seconds: float
    cpu_pressure: float | None = None
    steal: float | None = None
    involuntary_per_s: float | None = None
    freq_mhz: float | None = None
    #: 1-minute load average per available CPU, at the end (reported only: it lags by a minute).
    loadavg_per_cpu: float | None = None
    busy: bool = False
    #: Why it is busy, one sentence per signal over its threshold.
    reasons: tuple[str, ...] = ()

    def to_json(self) -> JsonObject:
        """Plain JSON data, keys in :data:`LOAD_KEYS` order."""
        return {
            "seconds": self.seconds,
            "cpu_pressure": self.cpu_pressure,
            "steal": self.steal,
            "involuntary_per_s": self.involuntary_per_s,
            "freq_mhz": self.freq_mhz,
            "loadavg_per_cpu": self.loadavg_per_cpu,
            "busy": self.busy,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Load:
        """Read what :meth:`to_json` wrote; a missing signal is None. TypeError on a value of the wrong type."""
        seconds = _optional_float(data, "seconds")
        busy = data.get("busy", False)
        reasons = data.get("reasons", [])
        if not isinstance(busy, bool):
            raise TypeError(f"Load: 'busy' must be true or false, got {type(busy).__name__}")
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise TypeError("Load: 'reasons' must be a list of strings")
        return cls(
            seconds=0.0 if seconds is None else seconds,
            cpu_pressure=_optional_float(data, "cpu_pressure"),
            steal=_optional_float(data, "steal"),
            involuntary_per_s=_optional_float(data, "involuntary_per_s"),
            freq_mhz=_optional_float(data, "freq_mhz"),
            loadavg_per_cpu=_optional_float(data, "loadavg_per_cpu"),
            busy=busy,
            reasons=tuple(reasons),
        )


def _fraction(part: int, whole: float) -> float | None:
    """``part / whole`` within [0, 1]; None for a counter that went backwards or an empty whole."""
    if part < 0 or whole <= 0:
        return None
    return min(1.0, part / whole)


def _mean_of_present(a: float | None, b: float | None) -> float | None:
    if a is not None and b is not None:
        return (a + b) / 2
    return b if b is not None else a


def load_between(a: LoadSnapshot, b: LoadSnapshot, cpus: int, thresholds: BusyThresholds = BusyThresholds()) -> Load:
    """The load from snapshot ``a`` to snapshot ``b``; busy when any available signal exceeds its threshold.

    ``cpus`` (:func:`available_cpus`) scales the involuntary-switch threshold and the load average.
    A zero or negative interval tells nothing: every delta is None and the load is not busy.
    """
    seconds = b.t - a.t
    freq = _mean_of_present(a.freq_mhz, b.freq_mhz)
    loadavg_per_cpu = None if b.loadavg is None else b.loadavg / max(1, cpus)
    if not seconds > 0:
        return Load(seconds=seconds, freq_mhz=freq, loadavg_per_cpu=loadavg_per_cpu)
    pressure = steal = per_s = None
    if a.psi_some_us is not None and b.psi_some_us is not None:
        pressure = _fraction(b.psi_some_us - a.psi_some_us, seconds * 1e6)
    if a.cpu_ticks is not None and b.cpu_ticks is not None:
        steal = _fraction(b.cpu_ticks.steal - a.cpu_ticks.steal, b.cpu_ticks.total - a.cpu_ticks.total)
    if a.involuntary_switches is not None and b.involuntary_switches is not None:
        switches = b.involuntary_switches - a.involuntary_switches
        per_s = switches / seconds if switches >= 0 else None
    reasons: list[str] = []
    if pressure is not None and pressure > thresholds.cpu_pressure:
        reasons.append(f"CPU pressure {_pct(pressure)} of the time (> {_pct(thresholds.cpu_pressure)})")
    if steal is not None and steal > thresholds.steal:
        reasons.append(f"{_pct(steal)} of CPU time stolen by the hypervisor (> {_pct(thresholds.steal)})")
    per_s_limit = thresholds.involuntary_per_cpu_s * max(1, cpus)
    if per_s is not None and per_s > per_s_limit:
        reasons.append(
            f"{per_s:.0f} involuntary context switches/s in this process"
            f" (> {per_s_limit:g}/s: {thresholds.involuntary_per_cpu_s:g}/s per CPU)"
        )
    return Load(
        seconds=seconds,
        cpu_pressure=pressure,
        steal=steal,
        involuntary_per_s=per_s,
        freq_mhz=freq,
        loadavg_per_cpu=loadavg_per_cpu,
        busy=bool(reasons),
        reasons=tuple(reasons),
    )


def busy_cpus(a: LoadSnapshot, b: LoadSnapshot) -> float | None:
    """How many CPUs were busy (not idle) on average from ``a`` to ``b``, among those the counters cover."""
    if a.cpu_ticks is None or b.cpu_ticks is None or a.cpu_ticks.cpus != b.cpu_ticks.cpus:
        return None
    total = b.cpu_ticks.total - a.cpu_ticks.total
    idle = _fraction(b.cpu_ticks.idle - a.cpu_ticks.idle, total)
    return None if idle is None else (1.0 - idle) * b.cpu_ticks.cpus


def _pct(fraction: float) -> str:
    """A fraction as a percentage for people: "34 %", "4.2 %", "0.1 %"."""
    pct = 100 * fraction
    return f"{pct:.0f} %" if pct >= 10 or pct == 0 else f"{pct:.2g} %"


# -- waiting -----------------------------------------------------------------------------------------


def wait_for_calm(
    max_wait_s: float = 30.0,
    window_s: float = 1.0,
    thresholds: BusyThresholds = BusyThresholds(),
    snapshot: Callable[[], LoadSnapshot] = take_snapshot,
    sleep: Callable[[float], object] = time.sleep,
) -> tuple[bool, float]:
    """Wait for a calm window: ``window_s`` seconds in which nothing else competed for the CPUs.

    A window is calm when its CPU pressure, its steal and the CPUs kept busy meanwhile
    (:func:`busy_cpus`: this process sleeps, so that is other work) are all at or below their
    thresholds, where available. CPU pressure alone would not do: a process spinning on one of
    two CPUs makes no pressure while this one sleeps, yet it takes a CPU from the measurement.
    The involuntary switches of this process are no criterion here: it sleeps.

    Windows follow one another until one is calm or ``max_wait_s`` has passed (at least one
    window: the wait is at most ``max_wait_s`` plus one window). Returns (calm, seconds waited,
    by the snapshots' clock). Where neither PSI nor ``/proc/stat`` can be read nothing can be
    told, and it returns (True, 0.0) at once.
    """
    if not window_s > 0:
        raise ValueError(f"wait_for_calm: window_s must be positive, got {window_s}")
    start = snapshot()
    if start.psi_some_us is None and start.cpu_ticks is None:
        return True, 0.0
    before = start
    windows = 0
    while True:
        sleep(window_s)
        windows += 1
        after = snapshot()
        waited = after.t - start.t
        if _calm(before, after, thresholds):
            return True, waited
        # The windows slept count too, so that a clock that does not move cannot keep it here.
        if waited >= max_wait_s or windows * window_s >= max_wait_s:
            return False, waited
        before = after


def _calm(a: LoadSnapshot, b: LoadSnapshot, thresholds: BusyThresholds) -> bool:
    """Whether the window from ``a`` to ``b`` was calm (:func:`wait_for_calm`); False where nothing can be told."""
    load = load_between(a, b, 1, thresholds)
    others = busy_cpus(a, b) if load.seconds > 0 else None
    signals = (
        (load.cpu_pressure, thresholds.cpu_pressure),
        (load.steal, thresholds.steal),
        (others, thresholds.others_cpus),
    )
    told = [value <= limit for value, limit in signals if value is not None]
    return bool(told) and all(told)
