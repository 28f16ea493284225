"""Tests of the machine-load signals (:mod:`pytest_dnnbench.measure.load`): fake trees, crafted snapshots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.measure.load import (
    BusyThresholds,
    CpuTicks,
    Load,
    LoadSnapshot,
    available_cpus,
    busy_cpus,
    cgroup_cpu_limit,
    load_between,
    read_cpu_ticks,
    read_freq_mhz,
    read_psi_some_us,
    take_snapshot,
    wait_for_calm,
)

PSI = "some avg10=1.50 avg60=0.86 avg300=1.75 total=2563115595\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
#: user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user and nice.
STAT = (
    "cpu  1000 10 200 5000 40 0 30 20 700 7\n"
    "cpu0 600 5 100 2400 20 0 15 10 350 3\n"
    "cpu1 400 5 100 2600 20 0 15 10 350 4\n"
    "intr 12345 0 0\n"
    "ctxt 999\n"
)
CPUINFO = "processor\t: 0\ncpu MHz\t\t: 2000.000\n\nprocessor\t: 1\ncpu MHz\t\t: 3000.000\n"


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def freq_file(cpu: int) -> str:
    return f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"


# -- readers -----------------------------------------------------------------------------------------


def test_psi_present_missing_malformed(tmp_path: Path) -> None:
    assert read_psi_some_us(write(tmp_path, "a", PSI)) == 2563115595
    assert read_psi_some_us(tmp_path / "missing") is None
    assert read_psi_some_us(write(tmp_path, "b", "some avg10=1.0 total=lots\n")) is None
    assert read_psi_some_us(write(tmp_path, "c", "full avg10=0.00 total=12\n")) is None  # no "some" line
    assert read_psi_some_us(write(tmp_path, "d", "some avg10=1.0\n")) is None  # no total
    assert read_psi_some_us(write(tmp_path, "e", "")) is None
    (tmp_path / "dir").mkdir()
    assert read_psi_some_us(tmp_path / "dir") is None


def test_cpu_ticks_all_cpus(tmp_path: Path) -> None:
    ticks = read_cpu_ticks(write(tmp_path, "stat", STAT))
    # total = user..steal (guest columns excluded); idle = idle + iowait; cpus = the cpuN lines.
    assert ticks == CpuTicks(steal=20, idle=5040, total=6300, cpus=2)


def test_cpu_ticks_of_a_cpu_set(tmp_path: Path) -> None:
    path = write(tmp_path, "stat", STAT)
    assert read_cpu_ticks(path, frozenset({1})) == CpuTicks(steal=10, idle=2620, total=3150, cpus=1)
    assert read_cpu_ticks(path, frozenset({0, 1})) == CpuTicks(steal=20, idle=5040, total=6300, cpus=2)
    assert read_cpu_ticks(path, frozenset({0, 5})) is None  # cpu5 has no line
    assert read_cpu_ticks(path, frozenset()) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "intr 1 2 3\n",
        "cpu  1000 10 200 5000 40 0 30\n",  # no steal column
        "cpu  1000 10 200 five 40 0 30 20\n",
        "cpu  1000 10 200 -5 40 0 30 20\n",
    ],
)
def test_cpu_ticks_malformed(tmp_path: Path, text: str) -> None:
    assert read_cpu_ticks(write(tmp_path, "stat", text)) is None


def test_cpu_ticks_missing(tmp_path: Path) -> None:
    assert read_cpu_ticks(tmp_path / "stat") is None
    assert read_cpu_ticks(tmp_path / "stat", frozenset({0})) is None


def test_cpu_ticks_malformed_cpu_of_the_set(tmp_path: Path) -> None:
    path = write(tmp_path, "stat", "cpu  1 1 1 1 1 1 1 1\ncpu0 1 1 1 1 1 1 1 1\ncpu1 1 1 x 1 1 1 1 1\n")
    assert read_cpu_ticks(path, frozenset({0})) == CpuTicks(1, 2, 8, 1)
    assert read_cpu_ticks(path, frozenset({0, 1})) is None


def test_freq_from_cpufreq(tmp_path: Path) -> None:
    write(tmp_path, freq_file(0), "2000000\n")
    write(tmp_path, freq_file(1), "3000000\n")
    write(tmp_path, "proc/cpuinfo", "cpu MHz\t\t: 100.0\n")  # cpufreq comes first
    # Not CPUs: cpufreq/ and cpuidle/ sit next to cpu0/ in sysfs.
    write(tmp_path, "sys/devices/system/cpu/cpufreq/cpufreq/scaling_cur_freq", "1\n")
    write(tmp_path, "sys/devices/system/cpu/cpuidle/cpufreq/scaling_cur_freq", "1\n")
    assert read_freq_mhz(tmp_path) == pytest.approx(2500.0)


def test_freq_skips_malformed_cpufreq(tmp_path: Path) -> None:
    write(tmp_path, freq_file(0), "2000000\n")
    write(tmp_path, freq_file(1), "garbage\n")
    write(tmp_path, freq_file(2), "0\n")
    (tmp_path / "sys/devices/system/cpu/cpu3").mkdir()  # offline: no cpufreq
    assert read_freq_mhz(tmp_path) == pytest.approx(2000.0)


def test_freq_from_cpuinfo(tmp_path: Path) -> None:
    write(tmp_path, freq_file(0), "nonsense\n")
    write(tmp_path, "proc/cpuinfo", CPUINFO + "cpu MHz\t\t: fast\n")
    assert read_freq_mhz(tmp_path) == pytest.approx(2500.0)


def test_freq_unknown(tmp_path: Path) -> None:
    assert read_freq_mhz(tmp_path) is None
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: something\n")
    assert read_freq_mhz(tmp_path) is None


def test_snapshot_of_a_full_tree(tmp_path: Path) -> None:
    write(tmp_path, "proc/pressure/cpu", PSI)
    write(tmp_path, "proc/stat", STAT)
    write(tmp_path, "proc/cpuinfo", CPUINFO)
    write(tmp_path, freq_file(0), "1800000\n")
    snap = take_snapshot(tmp_path, clock=lambda: 12.5, rusage=lambda: 42, loadavg=lambda: 0.75)
    assert snap == LoadSnapshot(
        t=12.5,
        psi_some_us=2563115595,
        cpu_ticks=CpuTicks(20, 5040, 6300, 2),
        involuntary_switches=42,
        freq_mhz=1800.0,
        loadavg=0.75,
    )
    assert take_snapshot(tmp_path, cpu_set=frozenset({0})).cpu_ticks == CpuTicks(10, 2420, 3150, 1)


def test_snapshot_of_an_empty_tree(tmp_path: Path) -> None:
    snap = take_snapshot(tmp_path, clock=lambda: 1.0, rusage=lambda: None, loadavg=lambda: None)
    assert snap == LoadSnapshot(t=1.0)


def test_snapshot_of_a_garbage_tree(tmp_path: Path) -> None:
    for rel in ("proc/pressure/cpu", "proc/stat", "proc/cpuinfo", freq_file(0)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"\xff\xfe\x00garbage\n\x80")
    snap = take_snapshot(tmp_path, clock=lambda: 1.0, rusage=lambda: None, loadavg=lambda: None)
    assert snap == LoadSnapshot(t=1.0)


def test_snapshot_of_this_machine() -> None:
    snap = take_snapshot()
    assert snap.t > 0
    for value in (snap.psi_some_us, snap.involuntary_switches):
        assert value is None or value >= 0
    assert snap.cpu_ticks is None or snap.cpu_ticks.total >= snap.cpu_ticks.idle >= 0
    assert snap.freq_mhz is None or snap.freq_mhz > 0


# -- available CPUs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu_max", "limit", "cpus"),
    [
        ("max 100000\n", None, 8),
        ("200000 100000\n", 2.0, 2),
        ("150000 100000\n", 1.5, 2),  # rounded up
        ("50000 100000\n", 0.5, 1),  # at least 1
        ("1600000 100000\n", 16.0, 8),  # above the affinity: the affinity
        ("garbage\n", None, 8),
        ("200000\n", None, 8),
        ("0 100000\n", None, 8),
    ],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, limit: float | None, cpus: int) -> None:
    write(tmp_path, "sys/fs/cgroup/cpu.max", cpu_max)
    assert cgroup_cpu_limit(tmp_path) == limit
    assert available_cpus(tmp_path, affinity=lambda: 8) == cpus


def test_no_cgroup_is_the_affinity(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cpus(tmp_path, affinity=lambda: 3) == 3
    assert available_cpus(tmp_path, affinity=lambda: 0) == 1


def test_cgroup_v2_nested(tmp_path: Path) -> None:
    """The process's own cgroup and every one above it: the smallest quota applies."""
    write(tmp_path, "proc/self/cgroup", "0::/user.slice/job\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000\n")
    write(tmp_path, "sys/fs/cgroup/user.slice/cpu.max", "300000 100000\n")
    write(tmp_path, "sys/fs/cgroup/user.slice/job/cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 3.0
    write(tmp_path, "sys/fs/cgroup/user.slice/job/cpu.max", "100000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.0


def test_cgroup_v2_in_a_container(tmp_path: Path) -> None:
    """Without a cgroup namespace the path names the host's cgroup; the mount shows the container's own at its top."""
    write(tmp_path, "proc/self/cgroup", "0::/docker/abc123\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "250000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.5
    assert available_cpus(tmp_path, affinity=lambda: 64) == 3


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/cgroup", "4:memory:/x\n3:cpu,cpuacct:/job\n0::/\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "400000\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path) == 4.0
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "oops\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_separate_cpu_mount(tmp_path: Path) -> None:
    write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "150000\n")
    write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
    assert available_cpus(tmp_path, affinity=lambda: 4) == 2


def test_malformed_self_cgroup(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/cgroup", "nonsense\n0::\n\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "200000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.0


def test_available_cpus_of_this_machine() -> None:
    assert available_cpus() >= 1


# -- load between two snapshots ----------------------------------------------------------------------


def snap(
    t: float,
    psi: int | None = 0,
    steal: int = 0,
    idle: int = 0,
    total: int = 0,
    invol: int | None = 0,
    freq: float | None = 2600.0,
    loadavg: float | None = 0.5,
    ticks: bool = True,
) -> LoadSnapshot:
    return LoadSnapshot(
        t=t,
        psi_some_us=psi,
        cpu_ticks=CpuTicks(steal, idle, total, 2) if ticks else None,
        involuntary_switches=invol,
        freq_mhz=freq,
        loadavg=loadavg,
    )


def test_quiet() -> None:
    load = load_between(snap(10.0), snap(15.0, psi=100_000, steal=1, total=1000, invol=25, loadavg=1.0), cpus=2)
    assert load.seconds == 5.0
    assert load.cpu_pressure == pytest.approx(0.02)
    assert load.steal == pytest.approx(0.001)
    assert load.involuntary_per_s == pytest.approx(5.0)
    assert load.freq_mhz == 2600.0
    assert load.loadavg_per_cpu == 0.5
    assert not load.busy and load.reasons == ()


def test_busy_by_cpu_pressure() -> None:
    load = load_between(snap(0.0), snap(2.0, psi=680_000), cpus=2)
    assert load.cpu_pressure == pytest.approx(0.34)
    assert load.busy
    assert load.reasons == ("CPU pressure 34 % of the time (> 10 %)",)


def test_busy_by_steal() -> None:
    load = load_between(snap(0.0, steal=100, total=1000), snap(1.0, steal=170, total=2000), cpus=2)
    assert load.steal == pytest.approx(0.07)
    assert load.busy
    assert load.reasons == ("7 % of CPU time stolen by the hypervisor (> 5 %)",)


def test_busy_by_involuntary_switches() -> None:
    thresholds = BusyThresholds(involuntary_per_cpu_s=40.0)
    load = load_between(snap(0.0, invol=1000), snap(4.0, invol=1000 + 4 * 100), cpus=2, thresholds=thresholds)
    assert load.involuntary_per_s == pytest.approx(100.0)
    assert load.busy
    assert load.reasons == ("100 involuntary context switches/s in this process (> 80/s: 40/s per CPU)",)
    # The limit scales with the CPUs the process may keep busy.
    assert not load_between(snap(0.0, invol=1000), snap(4.0, invol=1400), cpus=3, thresholds=thresholds).busy


def test_default_involuntary_threshold() -> None:
    per_cpu = BusyThresholds().involuntary_per_cpu_s
    assert not load_between(snap(0.0), snap(1.0, invol=int(2 * per_cpu)), cpus=2).busy
    assert load_between(snap(0.0), snap(1.0, invol=int(2 * per_cpu) + 1), cpus=2).busy


def test_busy_by_every_signal() -> None:
    load = load_between(
        snap(0.0), snap(1.0, psi=900_000, steal=500, total=1000, invol=10_000), cpus=2, thresholds=BusyThresholds()
    )
    assert load.busy and len(load.reasons) == 3


def test_at_the_threshold_is_quiet() -> None:
    thresholds = BusyThresholds(cpu_pressure=0.25, steal=0.5, involuntary_per_cpu_s=50.0)
    load = load_between(snap(0.0), snap(1.0, psi=250_000, steal=500, total=1000, invol=100), 2, thresholds)
    assert not load.busy


def test_loadavg_is_no_criterion() -> None:
    load = load_between(snap(0.0), snap(1.0, loadavg=40.0), cpus=2)
    assert load.loadavg_per_cpu == 20.0
    assert not load.busy


@pytest.mark.parametrize("end", [5.0, 4.0])
def test_zero_or_negative_interval(end: float) -> None:
    load = load_between(snap(5.0), snap(end, psi=10**9, steal=999, total=1000, invol=10**6, loadavg=2.0), cpus=2)
    assert load.seconds == end - 5.0
    assert (load.cpu_pressure, load.steal, load.involuntary_per_s) == (None, None, None)
    assert not load.busy and load.reasons == ()
    assert load.freq_mhz == 2600.0 and load.loadavg_per_cpu == 1.0  # levels, not deltas: still reported


def test_missing_signals_judge_nothing() -> None:
    a = snap(0.0, psi=None, invol=None, freq=None, loadavg=None, ticks=False)
    load = load_between(a, snap(1.0, psi=900_000, steal=900, total=1000, invol=10_000, freq=None, loadavg=None), 2)
    assert load == Load(seconds=1.0)
    assert busy_cpus(a, snap(1.0)) is None


def test_counters_going_backwards() -> None:
    load = load_between(snap(0.0, psi=500, steal=10, total=100, invol=50), snap(1.0, psi=0, steal=5, total=200), 2)
    assert (load.cpu_pressure, load.steal, load.involuntary_per_s) == (None, None, None)
    assert not load.busy
    # No ticks elapsed: no steal fraction.
    assert load_between(snap(0.0, total=100), snap(1.0, total=100), 2).steal is None


def test_pressure_is_capped() -> None:
    """The snapshots are not read at the very instants of their clock readings: a hair over 100 % is 100 %."""
    assert load_between(snap(0.0), snap(1.0, psi=1_000_100), 2).cpu_pressure == 1.0


def test_freq_mean_or_either() -> None:
    assert load_between(snap(0.0, freq=2000.0), snap(1.0, freq=3000.0), 2).freq_mhz == 2500.0
    assert load_between(snap(0.0, freq=None), snap(1.0, freq=3000.0), 2).freq_mhz == 3000.0
    assert load_between(snap(0.0, freq=2000.0), snap(1.0, freq=None), 2).freq_mhz == 2000.0


def test_busy_cpus() -> None:
    assert busy_cpus(snap(0.0, idle=0, total=0), snap(1.0, idle=100, total=200)) == pytest.approx(1.0)
    assert busy_cpus(snap(0.0), snap(1.0, idle=200, total=200)) == 0.0
    assert busy_cpus(snap(0.0), snap(1.0)) is None  # no ticks elapsed
    other_set = LoadSnapshot(t=1.0, cpu_ticks=CpuTicks(0, 100, 200, 1))
    assert busy_cpus(snap(0.0), other_set) is None


def test_percent_text() -> None:
    load = load_between(snap(0.0), snap(1.0, psi=123_000), 2, BusyThresholds(cpu_pressure=0.042))
    assert load.reasons == ("CPU pressure 12 % of the time (> 4.2 %)",)
    load = load_between(snap(0.0), snap(1.0, psi=5_000), 2, BusyThresholds(cpu_pressure=0.0))
    assert load.reasons == ("CPU pressure 0.5 % of the time (> 0 %)",)


# -- JSON --------------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    load = load_between(snap(0.0), snap(2.0, psi=680_000, steal=3, total=1000, invol=30), cpus=2)
    data = load.to_json()
    assert list(data) == [
        "seconds",
        "cpu_pressure",
        "steal",
        "involuntary_per_s",
        "freq_mhz",
        "loadavg_per_cpu",
        "busy",
        "reasons",
    ]
    assert data["busy"] is True and data["reasons"] == ["CPU pressure 34 % of the time (> 10 %)"]
    assert Load.from_json(json.loads(json.dumps(data))) == load


def test_json_of_nothing_known() -> None:
    load = Load(seconds=0.0)
    assert load.to_json() == {
        "seconds": 0.0,
        "cpu_pressure": None,
        "steal": None,
        "involuntary_per_s": None,
        "freq_mhz": None,
        "loadavg_per_cpu": None,
        "busy": False,
        "reasons": [],
    }
    assert Load.from_json(load.to_json()) == load
    assert Load.from_json({"seconds": 3}) == Load(seconds=3.0)


@pytest.mark.parametrize(
    "data",
    [
        {"seconds": "5"},
        {"seconds": 5, "cpu_pressure": True},
        {"seconds": 5, "busy": "yes"},
        {"seconds": 5, "reasons": "CPU pressure"},
        {"seconds": 5, "reasons": [1]},
    ],
)
def test_json_of_the_wrong_type(data: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="Load"):
        Load.from_json(data)


# -- properties --------------------------------------------------------------------------------------

fractions = st.floats(min_value=0.0, max_value=1.0)
rates = st.floats(min_value=0.0, max_value=10_000.0)
signal = st.sampled_from(["cpu_pressure", "steal", "involuntary_per_s"])


def crafted(seconds: float, pressure: float, steal: float, per_s: float) -> tuple[LoadSnapshot, LoadSnapshot]:
    """Two snapshots ``seconds`` apart with (about) these signals between them."""
    total = 100_000
    a = LoadSnapshot(t=100.0, psi_some_us=7, cpu_ticks=CpuTicks(3, 5, 1000, 2), involuntary_switches=11)
    b = LoadSnapshot(
        t=100.0 + seconds,
        psi_some_us=7 + round(pressure * seconds * 1e6),
        cpu_ticks=CpuTicks(3 + round(steal * total), 5, 1000 + total, 2),
        involuntary_switches=11 + round(per_s * seconds),
    )
    return a, b


@given(
    seconds=st.floats(min_value=0.1, max_value=100.0),
    pressure=fractions,
    steal=fractions,
    per_s=rates,
    which=signal,
    more=st.floats(min_value=0.0, max_value=1.0),
)
def test_busy_is_monotone_in_each_signal(
    seconds: float, pressure: float, steal: float, per_s: float, which: str, more: float
) -> None:
    """More of any one signal never turns a busy measurement quiet."""
    values = {"cpu_pressure": pressure, "steal": steal, "involuntary_per_s": per_s}
    less = load_between(*crafted(seconds, **_args(values)), cpus=2)
    values[which] = values[which] + more * (1.0 - values[which] if which != "involuntary_per_s" else 1000.0)
    higher = load_between(*crafted(seconds, **_args(values)), cpus=2)
    assert higher.busy or not less.busy
    assert len(higher.reasons) >= len(less.reasons)


def _args(values: dict[str, float]) -> dict[str, float]:
    return {"pressure": values["cpu_pressure"], "steal": values["steal"], "per_s": values["involuntary_per_s"]}


@given(
    t0=st.floats(min_value=0.0, max_value=1e6),
    seconds=st.floats(min_value=1e-3, max_value=1e4),
    psi0=st.integers(min_value=0, max_value=2**62),
    waited=st.floats(min_value=0.0, max_value=1.0),
    ticks=st.lists(st.integers(min_value=0, max_value=2**40), min_size=3, max_size=3),
    extra=st.lists(st.integers(min_value=0, max_value=2**40), min_size=3, max_size=3),
)
def test_fractions_stay_in_unit_interval(
    t0: float, seconds: float, psi0: int, waited: float, ticks: list[int], extra: list[int]
) -> None:
    """Consistent counters (pressure within the wall time, steal and idle within the total) give fractions in [0, 1]."""
    steal0, idle0, rest0 = ticks
    d_steal, d_idle, d_rest = extra
    a = LoadSnapshot(t=t0, psi_some_us=psi0, cpu_ticks=CpuTicks(steal0, idle0, steal0 + idle0 + rest0, 4))
    b = LoadSnapshot(
        t=t0 + seconds,
        psi_some_us=psi0 + math.floor(waited * seconds * 1e6),
        cpu_ticks=CpuTicks(steal0 + d_steal, idle0 + d_idle, steal0 + idle0 + rest0 + d_steal + d_idle + d_rest, 4),
    )
    load = load_between(a, b, cpus=4)
    assert load.seconds > 0
    assert load.cpu_pressure is not None and 0.0 <= load.cpu_pressure <= 1.0
    if d_steal + d_idle + d_rest > 0:
        assert load.steal is not None and 0.0 <= load.steal <= 1.0
        others = busy_cpus(a, b)
        assert others is not None and 0.0 <= others <= 4.0


@given(
    seconds=st.floats(min_value=0.0, max_value=1e4, allow_subnormal=False),
    values=st.lists(st.none() | st.floats(min_value=0.0, max_value=1e6, allow_subnormal=False), min_size=5, max_size=5),
    reasons=st.lists(st.text(), max_size=3),
)
def test_json_round_trip_of_any_load(seconds: float, values: list[float | None], reasons: list[str]) -> None:
    pressure, steal, per_s, freq, loadavg = values
    load = Load(seconds, pressure, steal, per_s, freq, loadavg, busy=bool(reasons), reasons=tuple(reasons))
    assert Load.from_json(json.loads(json.dumps(load.to_json()))) == load


# -- waiting for calm --------------------------------------------------------------------------------


class FakeMachine:
    """A clock, a sleep that moves it, and snapshots whose counters follow a script of windows.

    Each window is (CPU pressure, busy CPUs of 2); after the script runs out, its last window repeats.
    """

    def __init__(self, windows: list[tuple[float, float]], signals: bool = True, clock_moves: bool = True):
        self.windows = windows
        self.signals = signals
        self.clock_moves = clock_moves
        self.now = 1000.0
        self.psi = 0
        self.idle = 0
        self.total = 0
        self.slept: list[float] = []
        self.snapshots = 0

    def sleep(self, seconds: float) -> None:
        index = min(len(self.slept), len(self.windows) - 1)
        pressure, busy = self.windows[index]
        self.slept.append(seconds)
        if self.clock_moves:
            self.now += seconds
        self.psi += round(pressure * seconds * 1e6)
        ticks = round(2 * 100 * seconds)
        self.total += ticks
        self.idle += round(ticks * (1 - busy / 2))

    def snapshot(self) -> LoadSnapshot:
        self.snapshots += 1
        if not self.signals:
            return LoadSnapshot(t=self.now, involuntary_switches=5)
        return LoadSnapshot(t=self.now, psi_some_us=self.psi, cpu_ticks=CpuTicks(0, self.idle, self.total, 2))


def test_calm_on_the_third_window() -> None:
    machine = FakeMachine([(0.5, 2.0), (0.3, 1.0), (0.01, 0.05)])
    calm, waited = wait_for_calm(max_wait_s=30.0, window_s=1.0, snapshot=machine.snapshot, sleep=machine.sleep)
    assert (calm, waited) == (True, 3.0)
    assert machine.slept == [1.0, 1.0, 1.0]


def test_calm_at_once() -> None:
    machine = FakeMachine([(0.0, 0.0)])
    assert wait_for_calm(window_s=0.5, snapshot=machine.snapshot, sleep=machine.sleep) == (True, 0.5)


def test_never_calm() -> None:
    machine = FakeMachine([(0.9, 2.0)])
    calm, waited = wait_for_calm(max_wait_s=10.0, window_s=1.0, snapshot=machine.snapshot, sleep=machine.sleep)
    assert not calm
    assert 10.0 <= waited <= 11.0
    assert len(machine.slept) == 10


def test_never_calm_with_a_window_that_does_not_divide() -> None:
    machine = FakeMachine([(0.9, 2.0)])
    calm, waited = wait_for_calm(max_wait_s=2.5, window_s=1.0, snapshot=machine.snapshot, sleep=machine.sleep)
    assert not calm and waited == 3.0  # at most one window past max_wait_s


def test_a_spinning_neighbour_is_not_calm() -> None:
    """No CPU pressure while this process sleeps, but one of two CPUs taken by another process."""
    machine = FakeMachine([(0.0, 1.0), (0.0, 1.0), (0.0, 0.02)])
    calm, waited = wait_for_calm(max_wait_s=30.0, window_s=1.0, snapshot=machine.snapshot, sleep=machine.sleep)
    assert (calm, waited) == (True, 3.0)
    loose = BusyThresholds(others_cpus=1.5)
    machine = FakeMachine([(0.0, 1.0)])
    assert wait_for_calm(thresholds=loose, snapshot=machine.snapshot, sleep=machine.sleep) == (True, 1.0)


def test_no_signals_no_wait() -> None:
    machine = FakeMachine([(0.9, 2.0)], signals=False)
    assert wait_for_calm(snapshot=machine.snapshot, sleep=machine.sleep) == (True, 0.0)
    assert machine.slept == [] and machine.snapshots == 1


def test_a_clock_that_does_not_move() -> None:
    machine = FakeMachine([(0.9, 2.0)], clock_moves=False)
    assert wait_for_calm(max_wait_s=5.0, window_s=1.0, snapshot=machine.snapshot, sleep=machine.sleep) == (False, 0.0)
    assert len(machine.slept) == 5


def test_involuntary_switches_do_not_count_while_waiting() -> None:
    snapshots = iter([snap(0.0, invol=0), snap(1.0, invol=10**6, idle=200, total=200)])
    assert wait_for_calm(snapshot=lambda: next(snapshots), sleep=lambda s: None) == (True, 1.0)


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        wait_for_calm(window_s=0.0, snapshot=lambda: snap(0.0), sleep=lambda s: None)


def test_wait_on_this_machine() -> None:
    calm, waited = wait_for_calm(max_wait_s=0.05, window_s=0.05)
    assert isinstance(calm, bool)
    assert 0.0 <= waited < 5.0
