"""Tests of the energy meters (:mod:`pytest_dnnbench.measure.energy`): fake powercap trees, fake NVML, fake clocks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.measure.energy import (
    ENERGY_KEYS,
    EnergyMeter,
    describe,
    null_meter,
    nvml_meter,
    rapl_meter,
    wrapped_delta,
)

#: A typical ``max_energy_range_uj`` (a 32-bit counter of 61 uJ units).
RANGE_UJ = 262143328850


class Clock:
    """A clock that reads the scripted times in turn."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def domain(root: Path, zone: str, name: str, energy_uj: int, max_uj: int = RANGE_UJ) -> Path:
    """One powercap zone (``intel-rapl:0``, ``intel-rapl:0:1``) with its name and counters."""
    write(root / zone / "name", f"{name}\n")
    write(root / zone / "energy_uj", f"{energy_uj}\n")
    write(root / zone / "max_energy_range_uj", f"{max_uj}\n")
    return root / zone / "energy_uj"


def set_uj(path: Path, energy_uj: int) -> None:
    path.write_text(f"{energy_uj}\n")


def two_sockets(root: Path) -> tuple[Path, Path]:
    """Two package domains with sub-zones, a platform domain and an MMIO copy: only the packages count."""
    p0 = domain(root, "intel-rapl:0", "package-0", 1_000_000)
    p1 = domain(root, "intel-rapl:1", "package-1", 7_000_000)
    domain(root, "intel-rapl:0:0", "core", 500)
    domain(root, "intel-rapl:0:1", "uncore", 600)
    domain(root, "intel-rapl:0/intel-rapl:0:2", "dram", 700)
    domain(root, "intel-rapl:2", "psys", 9_000_000)
    domain(root, "intel-rapl-mmio:0", "package-0", 1_000_000)
    return p0, p1


def advance_subzones(root: Path) -> None:
    for zone in ("intel-rapl:0:0", "intel-rapl:0:1", "intel-rapl:2", "intel-rapl-mmio:0"):
        set_uj(root / zone / "energy_uj", 10**9)


# -- wrap arithmetic ---------------------------------------------------------------------------------


def test_wrapped_delta_examples() -> None:
    assert wrapped_delta(100, 350, 1000) == 250
    assert wrapped_delta(900, 100, 1000) == 200  # wrapped once
    assert wrapped_delta(5, 5, 1000) == 0
    assert wrapped_delta(900, 100, None) is None  # a counter that never wraps went backwards
    assert wrapped_delta(100, 2000, 1000) is None  # outside the range
    assert wrapped_delta(-1, 5, 1000) is None
    assert wrapped_delta(7, 10**15, None) == 10**15 - 7


@given(
    wrap=st.integers(min_value=1, max_value=2**64),
    data=st.data(),
)
def test_wrapped_delta_recovers_any_increment_below_the_range(wrap: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(min_value=0, max_value=wrap - 1), label="start")
    increment = data.draw(st.integers(min_value=0, max_value=wrap - 1), label="increment")
    assert wrapped_delta(start, (start + increment) % wrap, wrap) == increment


@given(
    wrap_j=st.integers(min_value=1, max_value=300_000),
    data=st.data(),
)
def test_rapl_meter_recovers_any_increment_below_the_range(
    tmp_path_factory: pytest.TempPathFactory, wrap_j: int, data: st.DataObject
) -> None:
    wrap = wrap_j * 1_000_000
    start = data.draw(st.integers(min_value=0, max_value=wrap - 1), label="start")
    increment = data.draw(st.integers(min_value=1, max_value=wrap - 1), label="increment")
    root = tmp_path_factory.mktemp("powercap")
    path = domain(root, "intel-rapl:0", "package-0", start, wrap)
    meter = rapl_meter(root, Clock(0.0, 1.0))
    meter.start()
    set_uj(path, (start + increment) % wrap)
    energy = meter.stop(1)
    assert energy["reason"] is None
    assert energy["joules"] == pytest.approx(increment / 1e6, rel=1e-5)


# -- RAPL --------------------------------------------------------------------------------------------


def test_rapl_sums_the_package_domains_only(tmp_path: Path) -> None:
    p0, p1 = two_sockets(tmp_path)
    meter = rapl_meter(tmp_path, Clock(10.0, 12.0))
    meter.start()
    set_uj(p0, 1_000_000 + 3_000_000)  # 3 J
    set_uj(p1, 7_000_000 + 5_000_000)  # 5 J
    advance_subzones(tmp_path)
    energy = meter.stop(10)
    assert energy == {
        "joules_per_image": 0.8,
        "joules": 8.0,
        "watts": 4.0,
        "seconds": 2.0,
        "source": "rapl",
        "scope": "CPU packages 0,1 (RAPL package domains: whole sockets, not only this process)",
        "reason": None,
    }
    assert tuple(energy) == ENERGY_KEYS
    json.dumps(energy)


def test_rapl_one_package_scope_and_rounding(tmp_path: Path) -> None:
    path = domain(tmp_path, "intel-rapl:0", "package-0", 0)
    meter = rapl_meter(tmp_path, Clock(0.0, 3.0))
    meter.start()
    set_uj(path, 1_000_000)  # 1 J over 3 s, 7 images
    energy = meter.stop(7)
    assert energy["joules_per_image"] == 0.142857
    assert energy["watts"] == 0.333333
    assert energy["joules"] == 1.0
    assert energy["scope"] == "CPU package 0 (RAPL package domains: whole sockets, not only this process)"


def test_rapl_wraps_around(tmp_path: Path) -> None:
    path = domain(tmp_path, "intel-rapl:0", "package-0", 999_000_000, max_uj=1_000_000_000)
    meter = rapl_meter(tmp_path, Clock(0.0, 0.5))
    meter.start()
    set_uj(path, 1_500_000)  # 1 J to the wrap, then 1.5 J
    energy = meter.stop(5)
    assert energy["joules"] == 2.5
    assert energy["joules_per_image"] == 0.5
    assert energy["watts"] == 5.0
    assert energy["reason"] is None


def test_rapl_wraps_in_one_package_only(tmp_path: Path) -> None:
    p0 = domain(tmp_path, "intel-rapl:0", "package-0", 9_000_000, max_uj=10_000_000)
    p1 = domain(tmp_path, "intel-rapl:1", "package-1", 2_000_000, max_uj=10_000_000)
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0))
    meter.start()
    set_uj(p0, 1_000_000)  # 2 J through the wrap
    set_uj(p1, 4_000_000)  # 2 J
    assert meter.stop(4)["joules_per_image"] == 1.0


def test_rapl_no_tree(tmp_path: Path) -> None:
    missing = tmp_path / "powercap"
    meter = rapl_meter(missing, Clock(0.0, 1.0))
    meter.start()
    energy = meter.stop(3)
    assert energy == {
        "joules_per_image": None,
        "joules": None,
        "watts": None,
        "seconds": 1.0,
        "source": None,
        "scope": None,
        "reason": f"no RAPL energy counters under {missing} (common in VMs and containers)",
    }


def test_rapl_tree_without_packages(tmp_path: Path) -> None:
    domain(tmp_path, "intel-rapl:0:0", "core", 5)  # a sub-zone alone
    domain(tmp_path, "intel-rapl:1", "psys", 5)
    write(tmp_path / "intel-rapl:2" / "energy_uj", "5\n")  # no name
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0))
    meter.start()
    reason = meter.stop(1)["reason"]
    assert isinstance(reason, str) and reason.startswith("no RAPL energy counters under")


def denying(*denied: Path) -> Callable[[Path], str]:
    """A file reader that raises PermissionError for ``denied``, as the kernel does for energy_uj."""

    def read(path: Path) -> str:
        if path in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text(encoding="ascii")

    return read


def test_rapl_readable_only_by_root(tmp_path: Path) -> None:
    p0, _ = two_sockets(tmp_path)
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0), read=denying(p0))
    meter.start()
    energy = meter.stop(2)
    reason = energy["reason"]
    assert isinstance(reason, str)
    assert "readable only by root" in reason and "CVE-2020-8694" in reason
    assert f"sudo chmod a+r {tmp_path}/intel-rapl:*/energy_uj" in reason and "run as root" in reason
    assert energy["joules"] is None and energy["joules_per_image"] is None and energy["watts"] is None
    assert energy["source"] is None and energy["seconds"] == 1.0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_rapl_mode_000_file(tmp_path: Path) -> None:
    p0, _ = two_sockets(tmp_path)
    p0.chmod(0o000)
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0))
    meter.start()
    reason = meter.stop(2)["reason"]
    assert isinstance(reason, str) and "readable only by root" in reason


def test_rapl_permission_lost_mid_measurement(tmp_path: Path) -> None:
    p0, p1 = two_sockets(tmp_path)
    denied: list[Path] = []

    def read(path: Path) -> str:
        if path in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text(encoding="ascii")

    meter = rapl_meter(tmp_path, Clock(0.0, 1.0), read=read)
    meter.start()
    denied.append(p1)
    energy = meter.stop(2)
    assert isinstance(energy["reason"], str) and "readable only by root" in energy["reason"]
    assert energy["source"] == "rapl" and energy["joules"] is None


def test_rapl_file_vanishes_mid_measurement(tmp_path: Path) -> None:
    p0, _ = two_sockets(tmp_path)
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0))
    meter.start()
    p0.unlink()
    energy = meter.stop(2)
    assert isinstance(energy["reason"], str) and energy["reason"].startswith(f"cannot read {p0}")
    assert energy["joules_per_image"] is None and energy["seconds"] == 1.0


def test_rapl_malformed_counter(tmp_path: Path) -> None:
    p0, _ = two_sockets(tmp_path)
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0))
    meter.start()
    p0.write_text("garbage\n")
    reason = meter.stop(2)["reason"]
    assert reason == f"{p0} does not hold an integer: 'garbage'"


def test_rapl_counter_outside_its_range(tmp_path: Path) -> None:
    path = domain(tmp_path, "intel-rapl:0", "package-0", 100, max_uj=1000)
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0))
    meter.start()
    set_uj(path, 5000)
    reason = meter.stop(1)["reason"]
    assert reason == f"the energy counter {path} read 100 then 5000, outside its range 0..1000"


def test_rapl_counter_did_not_advance(tmp_path: Path) -> None:
    two_sockets(tmp_path)
    meter = rapl_meter(tmp_path, Clock(0.0, 0.012))
    meter.start()
    energy = meter.stop(1)
    assert energy["reason"] == (
        "the energy counter did not advance over 0.012 s: too short for the counter's resolution"
    )
    assert energy["joules"] is None and energy["source"] == "rapl" and energy["seconds"] == 0.012


def test_rapl_clock_did_not_advance(tmp_path: Path) -> None:
    p0, _ = two_sockets(tmp_path)
    meter = rapl_meter(tmp_path, Clock(5.0, 5.0))
    meter.start()
    set_uj(p0, 2_000_000)
    energy = meter.stop(1)
    assert energy["reason"] == "the clock did not advance between start and stop (0 s)"
    assert energy["joules"] is None and energy["watts"] is None and energy["seconds"] == 0.0


def test_rapl_meter_restarts(tmp_path: Path) -> None:
    p0, p1 = two_sockets(tmp_path)
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0, 5.0, 7.0))
    meter.start()
    set_uj(p0, 2_000_000)  # +1 J
    assert meter.stop(1)["joules"] == 1.0
    meter.start()
    set_uj(p0, 4_000_000)  # +2 J
    set_uj(p1, 9_000_000)  # +2 J
    energy = meter.stop(8)
    assert (energy["joules"], energy["watts"], energy["joules_per_image"]) == (4.0, 2.0, 0.5)


def test_rapl_sees_a_package_that_appears_between_measurements(tmp_path: Path) -> None:
    p0 = domain(tmp_path, "intel-rapl:0", "package-0", 0)
    meter = rapl_meter(tmp_path, Clock(0.0, 1.0, 2.0, 3.0))
    meter.start()
    p1 = domain(tmp_path, "intel-rapl:1", "package-1", 0)  # not counted in this measurement
    set_uj(p0, 1_000_000)
    set_uj(p1, 1_000_000)
    first = meter.stop(1)
    assert first["joules"] == 1.0 and first["scope"] is not None and "package 0 " in first["scope"]
    meter.start()
    set_uj(p0, 2_000_000)
    set_uj(p1, 3_000_000)
    second = meter.stop(1)
    assert second["joules"] == 3.0 and second["scope"] is not None and "packages 0,1 " in second["scope"]


# -- NVML --------------------------------------------------------------------------------------------


class FakeNvml:
    """NVML's energy call, answering scripted millijoules (or raising a scripted exception) in turn."""

    def __init__(self, values: Iterable[int | Exception]) -> None:
        self.values = list(values)
        self.handles: list[object] = []

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object, /) -> int:
        self.handles.append(handle)
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return value


class NVMLError(Exception):
    """Like pynvml's errors: their text is the NVML error string."""


def test_nvml_measures_the_whole_gpu() -> None:
    nvml = FakeNvml([123_456_000, 123_456_000 + 60_000])  # 60 J
    meter = nvml_meter(nvml, "handle-0", Clock(100.0, 102.5))
    meter.start()
    energy = meter.stop(120)
    assert energy == {
        "joules_per_image": 0.5,
        "joules": 60.0,
        "watts": 24.0,
        "seconds": 2.5,
        "source": "nvml",
        "scope": "the whole GPU (every process on it), not only this benchmark",
        "reason": None,
    }
    assert nvml.handles == ["handle-0", "handle-0"]


def test_nvml_not_supported() -> None:
    meter = nvml_meter(FakeNvml([NVMLError("Not Supported")]), object(), Clock(0.0, 1.0))
    meter.start()
    energy = meter.stop(4)
    assert energy["reason"] == "nvmlDeviceGetTotalEnergyConsumption: Not Supported"
    assert energy["joules_per_image"] is None and energy["source"] is None and energy["scope"] is None


def test_nvml_error_mid_measurement() -> None:
    meter = nvml_meter(FakeNvml([5_000, NVMLError("GPU is lost")]), 0, Clock(0.0, 1.0))
    meter.start()
    energy = meter.stop(4)
    assert energy["reason"] == "nvmlDeviceGetTotalEnergyConsumption: GPU is lost"
    assert energy["source"] == "nvml" and energy["joules"] is None


def test_nvml_error_without_text() -> None:
    meter = nvml_meter(FakeNvml([RuntimeError()]), 0, Clock(0.0, 1.0))
    meter.start()
    assert meter.stop(1)["reason"] == "nvmlDeviceGetTotalEnergyConsumption: RuntimeError"


def test_nvml_counter_went_backwards() -> None:
    meter = nvml_meter(FakeNvml([5_000, 4_000]), 0, Clock(0.0, 1.0))
    meter.start()
    assert meter.stop(1)["reason"] == "the energy counter NVML total energy went backwards (5000 then 4000)"


def test_nvml_counter_did_not_advance() -> None:
    meter = nvml_meter(FakeNvml([5_000, 5_000]), 0, Clock(0.0, 0.004))
    meter.start()
    energy = meter.stop(1)
    assert energy["reason"] == "the energy counter did not advance over 0.004 s: too short for the counter's resolution"


def test_nvml_not_a_number() -> None:
    nvml = FakeNvml([])
    nvml.values = ["lots"]  # type: ignore[list-item]
    meter = nvml_meter(nvml, 0, Clock(0.0, 1.0))
    meter.start()
    assert meter.stop(1)["reason"] == "nvmlDeviceGetTotalEnergyConsumption returned 'lots', not millijoules"


# -- the null meter and the protocol -----------------------------------------------------------------


def test_null_meter() -> None:
    meter = null_meter("energy is measured on CPUs and NVIDIA GPUs only", clock=Clock(0.0, 0.25))
    meter.start()
    assert meter.stop(2) == {
        "joules_per_image": None,
        "joules": None,
        "watts": None,
        "seconds": 0.25,
        "source": None,
        "scope": None,
        "reason": "energy is measured on CPUs and NVIDIA GPUs only",
    }


def meters(tmp_path: Path) -> list[EnergyMeter]:
    two_sockets(tmp_path)
    clock = Clock(*[float(t) for t in range(100)])
    return [rapl_meter(tmp_path, clock), nvml_meter(FakeNvml([1, 2, 3, 4]), 0, clock), null_meter("no", clock)]


def test_stop_without_start_raises(tmp_path: Path) -> None:
    for meter in meters(tmp_path):
        with pytest.raises(RuntimeError, match="without start"):
            meter.stop(1)
        meter.start()
        meter.stop(1)
        with pytest.raises(RuntimeError, match="without start"):
            meter.stop(1)  # each start allows one stop


@pytest.mark.parametrize("images", [0, -3])
def test_images_below_one_raise(tmp_path: Path, images: int) -> None:
    for meter in meters(tmp_path):
        meter.start()
        with pytest.raises(ValueError, match="images must be at least 1"):
            meter.stop(images)


# -- for people --------------------------------------------------------------------------------------


def test_describe() -> None:
    measured = {
        "joules_per_image": 0.8,
        "joules": 8.0,
        "watts": 4.0,
        "seconds": 2.0,
        "source": "rapl",
        "scope": "CPU package 0 (RAPL package domains: whole sockets, not only this process)",
        "reason": None,
    }
    assert describe(measured) == (
        "0.8 J/image (4 W over 2 s; rapl: CPU package 0 (RAPL package domains: whole sockets, not only this process))"
    )
    assert describe({**measured, "joules_per_image": None, "reason": "no counter"}) == "energy not measured: no counter"
    assert describe({}) == "energy not measured: no reason given"
