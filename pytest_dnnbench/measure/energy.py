"""Energy per image, from the hardware's energy counters (pure: no torch, no pytest).

A meter (:class:`EnergyMeter`) reads a cumulative energy counter when the timed forward calls
begin (:meth:`~EnergyMeter.start`) and when they end (:meth:`~EnergyMeter.stop`); the
difference, divided by the images processed in between, is the energy per image. Two counters
are read:

- **CPU: RAPL** (:func:`rapl_meter`), the kernel's powercap interface (``/sys/class/powercap``).
  Only the top-level *package* domains ``intel-rapl:N`` (``name`` is ``package-N``) are summed:
  their sub-zones (``intel-rapl:N:M``: core, uncore, dram) are parts of the package or lie
  beside it and are not added, nor are the platform domain (``psys``) and the MMIO copy of the
  package counter (``intel-rapl-mmio:N``), so nothing is counted twice. AMD processors appear
  under the same ``intel-rapl:N`` names. Each ``energy_uj`` counts microjoules and wraps to 0
  past ``max_energy_range_uj``; one wrap per measurement is allowed for. On kernels patched for
  CVE-2020-8694 (November 2020) ``energy_uj`` is readable only by root.
- **NVIDIA GPU: NVML** (:func:`nvml_meter`), ``nvmlDeviceGetTotalEnergyConsumption``: the
  millijoules the GPU used since the driver was loaded (Volta and newer; not on MIG instances).

What is measured is the energy of the **whole hardware unit**, not of this process: a RAPL
package domain is a whole socket (every core, every process on it, and the package's own idle
power), and NVML's counter is the whole GPU (every process on it). The figures are therefore
meaningful on an otherwise idle machine only, and they include the idle power of the unit
during the timed calls. The energy of the host-to-device copies, of DRAM outside the package,
of the power supply and of cooling is not counted.

Where a counter cannot be read (no RAPL tree, as in most VMs and containers; counters readable
only by root; an NVML error; a file that vanished meanwhile) or tells nothing (it did not advance
over a measurement too short for its resolution), :meth:`~EnergyMeter.stop` returns nulls with
the reason, and never raises for it. Every reader is injectable (the powercap root, the file
reader, the NVML object, the clock), so the tests build fake trees and fake devices.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..jsontypes import JsonObject

__all__ = [
    "ENERGY_KEYS",
    "EnergyMeter",
    "NvmlEnergy",
    "POWERCAP",
    "describe",
    "null_meter",
    "nvml_meter",
    "rapl_meter",
    "wrapped_delta",
]

#: The powercap sysfs tree, where the kernel lists the RAPL domains.
POWERCAP = Path("/sys/class/powercap")
#: The JSON keys of the record's ``energy`` object, in the order :meth:`EnergyMeter.stop` writes them.
ENERGY_KEYS = ("joules_per_image", "joules", "watts", "seconds", "source", "scope", "reason")
#: A top-level RAPL domain's directory (its sub-zones, ``intel-rapl:0:0``, do not match).
_RAPL_DOMAIN = re.compile(r"intel-rapl:([0-9]+)")
#: The ``name`` of a package domain (others: ``psys``, the whole platform, which includes the packages).
_PACKAGE_NAME = re.compile(r"package-([0-9]+)")
#: Significant digits of the figures written.
_DIGITS = 6

RAPL_SCOPE = "RAPL package domains: whole sockets, not only this process"
NVML_SCOPE = "the whole GPU (every process on it), not only this benchmark"


class EnergyMeter(Protocol):
    """Measures the energy used between :meth:`start` and :meth:`stop`; can be started again after a stop."""

    def start(self) -> None:
        """Read the counter: the timed calls begin. Never raises for a counter that cannot be read."""

    def stop(self, images: int) -> JsonObject:
        """Read the counter again: the record's ``energy`` object, keys in :data:`ENERGY_KEYS` order.

        ``images`` is the number of images the timed calls processed (calls x batch size).
        ValueError for ``images`` < 1, RuntimeError without a :meth:`start` before.
        """


class NvmlEnergy(Protocol):
    """What :func:`nvml_meter` needs of NVML: the ``pynvml`` module, or a fake in the tests."""

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object, /) -> int:
        """Millijoules the device used since the driver was loaded."""


class _Unreadable(Exception):
    """A counter could not be read; ``reason`` says why, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Counters:
    """A meter's counters, found when it starts: what they cover and how to read them."""

    #: What the counters cover (the ``scope`` written).
    scope: str
    #: One name per counter, for the reasons (a file's path, "NVML").
    labels: tuple[str, ...]
    #: The value past which each counter wraps to 0; None for one that never wraps.
    ranges: tuple[int | None, ...]
    #: Reads the counters' present values, in their unit; raises :class:`_Unreadable`.
    read: Callable[[], tuple[int, ...]]


def wrapped_delta(before: int, after: int, wrap: int | None) -> int | None:
    """How much a counter advanced from ``before`` to ``after``, allowing for one wrap to 0 past ``wrap``.

    RAPL's ``energy_uj`` counts up to ``max_energy_range_uj`` and starts again from 0: a smaller
    value after means it wrapped once, and the advance is ``wrap - before + after``. None where
    the values cannot come from one counter that wrapped at most once: a counter that never
    wraps (``wrap`` None) went backwards, or a value lies outside ``[0, wrap]``.
    """
    if wrap is not None and not (0 <= before <= wrap and 0 <= after <= wrap):
        return None
    if after >= before:
        return after - before
    if wrap is None:
        return None
    return wrap - before + after


def _round(value: float) -> float:
    """``value`` to :data:`_DIGITS` significant digits."""
    return float(f"{value:.{_DIGITS}g}")


def _energy(
    joules: float | None,
    seconds: float | None,
    images: int,
    source: str | None,
    scope: str | None,
    reason: str | None,
) -> JsonObject:
    """The ``energy`` object: measured where ``joules`` is given (and time passed), else nulls and the reason."""
    if joules is None or seconds is None or not seconds > 0:
        per_image = total = watts = None
    else:
        per_image, total, watts, reason = _round(joules / images), _round(joules), _round(joules / seconds), None
    return {
        "joules_per_image": per_image,
        "joules": total,
        "watts": watts,
        "seconds": None if seconds is None else _round(seconds),
        "source": source,
        "scope": scope,
        "reason": reason,
    }


def _check_images(images: int) -> None:
    if images < 1:
        raise ValueError(f"energy: images must be at least 1, got {images}")


class _CounterMeter:
    """An :class:`EnergyMeter` over cumulative counters: finds and reads them at start, reads them at stop."""

    def __init__(
        self,
        source: str,
        joules_per_unit: float,
        find: Callable[[], _Counters],
        clock: Callable[[], float],
    ) -> None:
        self._source = source
        self._joules_per_unit = joules_per_unit
        self._find = find
        self._clock = clock
        self._started = False
        self._counters: _Counters | None = None
        self._before: tuple[int, ...] = ()
        self._failure: str | None = None
        self._t0 = 0.0

    def start(self) -> None:
        self._counters, self._before, self._failure = None, (), None
        try:
            self._counters = self._find()
            self._before = self._counters.read()
        except _Unreadable as error:
            self._failure = error.reason
        self._t0 = self._clock()
        self._started = True

    def stop(self, images: int) -> JsonObject:
        _check_images(images)
        if not self._started:
            raise RuntimeError("energy: stop() without start()")
        self._started = False
        counters = self._counters
        if counters is None or self._failure is not None:
            return _energy(None, self._clock() - self._t0, images, None, None, self._failure)
        try:
            after = counters.read()
            failure = None
        except _Unreadable as error:
            after, failure = (), error.reason
        seconds = self._clock() - self._t0
        if failure is not None:
            return _energy(None, seconds, images, self._source, counters.scope, failure)
        if not seconds > 0:
            reason = f"the clock did not advance between start and stop ({seconds:g} s)"
            return _energy(None, seconds, images, self._source, counters.scope, reason)
        total = 0
        for label, wrap, before, now in zip(counters.labels, counters.ranges, self._before, after, strict=True):
            delta = wrapped_delta(before, now, wrap)
            if delta is None:
                reason = (
                    f"the energy counter {label} went backwards ({before} then {now})"
                    if wrap is None
                    else f"the energy counter {label} read {before} then {now}, outside its range 0..{wrap}"
                )
                return _energy(None, seconds, images, self._source, counters.scope, reason)
            total += delta
        if total == 0:
            reason = f"the energy counter did not advance over {seconds:.3g} s: too short for the counter's resolution"
            return _energy(None, seconds, images, self._source, counters.scope, reason)
        return _energy(total * self._joules_per_unit, seconds, images, self._source, counters.scope, None)


class _NullMeter:
    """An :class:`EnergyMeter` that measures nothing and says why."""

    def __init__(self, reason: str, clock: Callable[[], float]) -> None:
        self._reason = reason
        self._clock = clock
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = self._clock()

    def stop(self, images: int) -> JsonObject:
        _check_images(images)
        if self._t0 is None:
            raise RuntimeError("energy: stop() without start()")
        seconds, self._t0 = self._clock() - self._t0, None
        return _energy(None, seconds, images, None, None, self._reason)


def null_meter(reason: str, clock: Callable[[], float] = time.monotonic) -> EnergyMeter:
    """A meter that measures nothing: :meth:`~EnergyMeter.stop` gives nulls and ``reason``."""
    return _NullMeter(reason, clock)


# -- RAPL --------------------------------------------------------------------------------------------


def _read_file(path: Path) -> str:
    return path.read_text(encoding="ascii")


def _permission_reason(path: Path, root: Path) -> str:
    return (
        f"the RAPL energy counters are readable only by root ({path}: permission denied; kernels patched"
        " for CVE-2020-8694 restrict them): run as root, or allow reading until the next reboot with"
        f" `sudo chmod a+r {root}/intel-rapl:*/energy_uj`"
    )


def _read_int(path: Path, root: Path, read: Callable[[Path], str]) -> int:
    """The integer in a sysfs file; :class:`_Unreadable` where it cannot be read or is not one."""
    try:
        text = read(path)
    except PermissionError:
        raise _Unreadable(_permission_reason(path, root)) from None
    except (OSError, ValueError) as error:
        raise _Unreadable(f"cannot read {path}: {error}") from None
    try:
        value = int(text.strip())
    except ValueError:
        raise _Unreadable(f"{path} does not hold an integer: {text.strip()[:40]!r}") from None
    if value < 0:
        raise _Unreadable(f"{path} holds a negative value: {value}")
    return value


def _packages(root: Path, read: Callable[[Path], str]) -> list[tuple[int, Path]]:
    """The RAPL package domains under ``root``: (package number, directory), by number."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    found: list[tuple[int, Path]] = []
    for entry in entries:
        if not _RAPL_DOMAIN.fullmatch(entry.name):
            continue
        try:
            name = read(entry / "name").strip()
        except (OSError, ValueError):
            continue
        match = _PACKAGE_NAME.fullmatch(name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _rapl_scope(numbers: list[int]) -> str:
    listed = ",".join(str(n) for n in numbers)
    return f"CPU package{'s' if len(numbers) > 1 else ''} {listed} ({RAPL_SCOPE})"


def rapl_meter(
    root: Path = POWERCAP,
    clock: Callable[[], float] = time.monotonic,
    *,
    read: Callable[[Path], str] = _read_file,
) -> EnergyMeter:
    """A meter of the CPU packages' energy: the sum of the RAPL package domains under ``root``.

    The domains are found, and their ``max_energy_range_uj`` read, at each start; ``read``
    reads one file (the tests inject permission errors through it).
    """

    def find() -> _Counters:
        packages = _packages(root, read)
        if not packages:
            raise _Unreadable(f"no RAPL energy counters under {root} (common in VMs and containers)")
        paths = tuple(directory / "energy_uj" for _, directory in packages)
        ranges = tuple(_read_int(directory / "max_energy_range_uj", root, read) for _, directory in packages)

        def read_all() -> tuple[int, ...]:
            return tuple(_read_int(path, root, read) for path in paths)

        return _Counters(_rapl_scope([n for n, _ in packages]), tuple(str(p) for p in paths), ranges, read_all)

    return _CounterMeter("rapl", 1e-6, find, clock)


# -- NVML --------------------------------------------------------------------------------------------


def nvml_meter(nvml: NvmlEnergy, handle: object, clock: Callable[[], float] = time.monotonic) -> EnergyMeter:
    """A meter of a whole NVIDIA GPU's energy: NVML's total energy counter of ``handle``, in millijoules.

    Any exception from NVML (``NVMLError_NotSupported`` on MIG instances and GPUs older than
    Volta, say) makes the measurement null, with the error's text as the reason.
    """

    def read_one() -> tuple[int, ...]:
        try:
            value: object = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception as error:  # NVML's errors share no importable base class here
            text = str(error) or type(error).__name__
            raise _Unreadable(f"nvmlDeviceGetTotalEnergyConsumption: {text}") from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _Unreadable(f"nvmlDeviceGetTotalEnergyConsumption returned {value!r}, not millijoules")
        return (value,)

    def find() -> _Counters:
        return _Counters(NVML_SCOPE, ("NVML total energy",), (None,), read_one)

    return _CounterMeter("nvml", 1e-3, find, clock)


# -- for people --------------------------------------------------------------------------------------


def describe(energy: Mapping[str, object]) -> str:
    """One line for people about an ``energy`` object: "0.8 J/image (4 W over 2 s; rapl: ...)" or why not."""
    per_image, watts, seconds = energy.get("joules_per_image"), energy.get("watts"), energy.get("seconds")
    if not isinstance(per_image, (int, float)) or isinstance(per_image, bool):
        return f"energy not measured: {energy.get('reason') or 'no reason given'}"
    line = f"{per_image:.3g} J/image"
    if isinstance(watts, (int, float)) and isinstance(seconds, (int, float)):
        line += f" ({watts:.3g} W over {seconds:.3g} s"
        line += f"; {energy.get('source')}: {energy.get('scope')})"
    return line
