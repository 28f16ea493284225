"""Tests of the host memory probe (:mod:`pytest_dnnbench.measure.memory`)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

from pytest_dnnbench.measure import memory
from pytest_dnnbench.measure.memory import CpuMemoryProbe, malloc_trim, peak_rss_bytes, read_status, reset_peak_rss

MiB = 2**20
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status is Linux-only")


class FakeProc:
    """Scripted status readings and a log of what the probe did, in order."""

    def __init__(self, statuses: list[dict[str, int]], resettable: bool = True):
        self.statuses = list(statuses)
        self.resettable = resettable
        self.log: list[str] = []

    def status(self) -> dict[str, int]:
        self.log.append("status")
        return self.statuses.pop(0)

    def reset(self) -> bool:
        self.log.append("reset")
        return self.resettable

    def trim(self) -> bool:
        self.log.append("trim")
        return True

    def collect(self) -> int:
        self.log.append("collect")
        return 0

    def probe(self) -> CpuMemoryProbe:
        return CpuMemoryProbe(status=self.status, reset=self.reset, trim=self.trim, collect=self.collect)


# -- CpuMemoryProbe --------------------------------------------------------------------------


def test_start_collects_trims_resets_then_reads_rss() -> None:
    proc = FakeProc([{"VmRSS": 100 * MiB, "VmHWM": 900 * MiB}])
    proc.probe().start()
    assert proc.log == ["collect", "trim", "reset", "status"]


def test_stop_reports_the_reset_peak_and_the_delta() -> None:
    proc = FakeProc(
        [
            {"VmRSS": 100 * MiB, "VmHWM": 100 * MiB},  # at start, just after the reset
            {"VmRSS": 120 * MiB, "VmHWM": 250 * MiB},  # at stop: the peak was during the calls
        ]
    )
    probe = proc.probe()
    probe.start()
    mem, method = probe.stop()
    assert mem == {"total": 250 * MiB, "delta": 150 * MiB}
    assert "VmHWM" in method and "clear_refs" in method
    assert "lower bound" not in method


def test_stop_never_reports_a_negative_delta() -> None:
    proc = FakeProc([{"VmRSS": 300 * MiB}, {"VmRSS": 200 * MiB, "VmHWM": 250 * MiB}])
    probe = proc.probe()
    probe.start()
    mem, _ = probe.stop()
    assert mem == {"total": 250 * MiB, "delta": 0}


def test_stop_falls_back_to_an_rss_lower_bound_when_reset_fails() -> None:
    proc = FakeProc(
        [
            {"VmRSS": 100 * MiB, "VmHWM": 2000 * MiB},  # an old peak that cannot be cleared
            {"VmRSS": 130 * MiB, "VmHWM": 2000 * MiB},
        ],
        resettable=False,
    )
    probe = proc.probe()
    probe.start()
    mem, method = probe.stop()
    # The stale VmHWM must not be reported as this test's peak.
    assert mem == {"total": 130 * MiB, "delta": 30 * MiB}
    assert "lower bound" in method
    assert "could not be reset" in method


def test_fallback_total_is_at_least_the_level_before() -> None:
    proc = FakeProc([{"VmRSS": 150 * MiB}, {"VmRSS": 140 * MiB}], resettable=False)
    probe = proc.probe()
    probe.start()
    mem, _ = probe.stop()
    assert mem == {"total": 150 * MiB, "delta": 0}


def test_stop_without_status_is_unavailable() -> None:
    proc = FakeProc([{}, {}])
    probe = proc.probe()
    probe.start()
    mem, method = probe.stop()
    assert mem == {"total": None, "delta": None}
    assert "unavailable" in method


def test_stop_without_rss_at_start_has_no_delta() -> None:
    proc = FakeProc([{}, {"VmRSS": 10 * MiB, "VmHWM": 20 * MiB}])
    probe = proc.probe()
    probe.start()
    mem, _ = probe.stop()
    assert mem == {"total": 20 * MiB, "delta": None}


# -- read_status -----------------------------------------------------------------------------

STATUS_TEXT = """Name:\tpython3
Umask:\t0022
State:\tR (running)
Pid:\t4242
VmPeak:\t  900000 kB
VmSize:\t  800000 kB
VmHWM:\t   123456 kB
VmRSS:\t    65432 kB
RssAnon:\t   50000 kB
VmSwap:\t       0 kB
Threads:\t4
"""


def test_read_status_parses_vm_lines_into_bytes(tmp_path: Path) -> None:
    p = tmp_path / "status"
    p.write_text(STATUS_TEXT, encoding="ascii")
    st = read_status(str(p))
    assert st["VmHWM"] == 123456 * 1024
    assert st["VmRSS"] == 65432 * 1024
    assert st["VmPeak"] == 900000 * 1024
    assert st["VmSwap"] == 0
    assert "Threads" not in st and "Pid" not in st and "Name" not in st
    assert "RssAnon" not in st  # only Vm* lines


def test_read_status_survives_a_non_ascii_process_name(tmp_path: Path) -> None:
    # The kernel prints the thread name as raw bytes (prctl/setproctitle can set anything).
    p = tmp_path / "status"
    p.write_bytes("Name:\tbenchm\u00e4rk\n".encode("utf-8") + STATUS_TEXT.split("\n", 1)[1].encode("ascii"))
    st = read_status(str(p))
    assert st["VmRSS"] == 65432 * 1024


def test_read_status_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_status(str(tmp_path / "nope")) == {}


@linux_only
def test_real_proc_status_has_rss_and_hwm() -> None:
    st = read_status()
    assert st["VmRSS"] > MiB
    assert st["VmHWM"] >= st["VmRSS"] // 2  # HWM may have been reset; it is still of the same order
    assert peak_rss_bytes() == read_status()["VmHWM"] or peak_rss_bytes() > 0


def test_reset_peak_rss_reports_failure(tmp_path: Path) -> None:
    assert reset_peak_rss(str(tmp_path / "missing-dir" / "clear_refs")) is False


def test_malloc_trim_does_not_fail() -> None:
    assert malloc_trim() in (True, False)


@linux_only
@pytest.mark.skipif(not os.access(memory.CLEAR_REFS_PATH, os.W_OK), reason="/proc/self/clear_refs is not writable")
def test_reset_peak_rss_lowers_the_real_high_water_mark() -> None:
    big = b"\x01" * (256 * MiB)  # filled, so its pages are resident
    peak_with = read_status()["VmHWM"]
    del big
    gc.collect()
    malloc_trim()
    assert reset_peak_rss() is True
    peak_after = read_status()["VmHWM"]
    assert peak_after < peak_with - 128 * MiB


@linux_only
@pytest.mark.skipif(not os.access(memory.CLEAR_REFS_PATH, os.W_OK), reason="/proc/self/clear_refs is not writable")
def test_real_probe_sees_an_allocation_between_start_and_stop() -> None:
    probe = CpuMemoryProbe()
    probe.start()
    big = b"\x02" * (64 * MiB)
    del big
    mem, method = probe.stop()
    assert "VmHWM" in method
    assert isinstance(mem["total"], int) and isinstance(mem["delta"], int)
    assert mem["delta"] >= 48 * MiB
    assert mem["total"] >= mem["delta"]


# -- CpuMemoryPass: the dedicated memory call ------------------------------------------------


def test_memory_pass_sets_exact_thresholds_runs_the_call_and_restores() -> None:
    from pytest_dnnbench.measure.memory import (
        EXACT_MMAP_THRESHOLD,
        EXACT_TRIM_THRESHOLD,
        PINNED_MMAP_THRESHOLD,
        PINNED_TRIM_THRESHOLD,
        CpuMemoryPass,
    )

    log: list = []

    class Hooks:
        def remove(self) -> None:
            log.append("hooks.remove")

    probe = CpuMemoryProbe(
        status=lambda: {"VmRSS": 100, "VmHWM": 160},
        reset=lambda: log.append("reset") or True,
        trim=lambda: log.append("trim") or True,
        collect=lambda: log.append("collect"),
    )
    mem_pass = CpuMemoryPass(
        call=lambda: log.append("call"),
        probe=probe,
        set_thresholds=lambda mmap, trim: log.append(("thresholds", mmap, trim)) or True,
        passes=2,
        trim_after_modules=lambda: log.append("hooks") or Hooks(),
    )
    mem_pass.start()
    assert log == []  # nothing happens before the timed calls
    memory, method = mem_pass.stop()
    assert memory == {"total": 160, "delta": 60}
    assert log[0] == ("thresholds", EXACT_MMAP_THRESHOLD, EXACT_TRIM_THRESHOLD)
    assert log.count("call") == 2
    assert log.index("reset") < log.index("call")
    assert ("thresholds", PINNED_MMAP_THRESHOLD, PINNED_TRIM_THRESHOLD) in log[log.index("call") :]
    assert "hooks.remove" in log
    assert "over 2 dedicated call(s)" in method and "128 KiB" in method


def test_memory_pass_restores_thresholds_when_the_call_fails() -> None:
    from pytest_dnnbench.measure.memory import PINNED_MMAP_THRESHOLD, PINNED_TRIM_THRESHOLD, CpuMemoryPass

    seen: list = []

    class Hooks:
        def remove(self) -> None:
            seen.append("removed")

    def boom() -> None:
        raise RuntimeError("model failed")

    mem_pass = CpuMemoryPass(
        call=boom,
        probe=CpuMemoryProbe(
            status=lambda: {"VmRSS": 1, "VmHWM": 1}, reset=lambda: True, trim=lambda: True, collect=lambda: None
        ),
        set_thresholds=lambda mmap, trim: seen.append((mmap, trim)) or True,
        trim_after_modules=lambda: Hooks(),
    )
    with pytest.raises(RuntimeError, match="model failed"):
        mem_pass.stop()
    assert (PINNED_MMAP_THRESHOLD, PINNED_TRIM_THRESHOLD) in seen
    assert "removed" in seen


def test_trim_hook_does_not_change_module_outputs() -> None:
    """A forward hook that returned malloc_trim()'s value would replace every module's output."""
    torch = pytest.importorskip("torch")
    from pytest_dnnbench.measure.memory import _trim_after_every_module

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = torch.ones(1, 4)
    expected = net(x)
    handle = _trim_after_every_module()
    try:
        out = net(x)
    finally:
        handle.remove()
    assert torch.equal(out, expected)
