"""Byte counts and other counts for people: the ways this project writes them (pure).

- :func:`format_bytes` gives both readings, decimal and binary (``1.2 GB (1.12 GiB)``), where a
  figure is held against a limit the user wrote in either unit (constraint messages);
- :func:`format_mib` gives one short cell with its unit (``870 MiB``; GiB from 10 GiB up), for
  tables, where every cell of a column is read the same way;
- :func:`format_count` gives a count (FLOPs, parameters) to 3 significant digits with the decimal
  prefix that suits it (``5.51 k``, ``11.7 M``, ``3.65 G``), so that a small model does not read
  ``0.01`` in a column scaled for large ones.
"""

from __future__ import annotations

import math

MIB = 2**20
GIB = 2**30

#: Decimal prefixes of :func:`format_count`, from none (below 1000) up.
PREFIXES = ("", "k", "M", "G", "T")

__all__ = ["GIB", "MIB", "PREFIXES", "format_bytes", "format_count", "format_mib"]


def format_bytes(n: float | None) -> str:
    """Both the decimal and the binary reading, so that no one has to guess: ``1.20 GB (1.12 GiB)``."""
    if n is None:
        return "unknown"
    n = float(n)
    if n >= 10**9:
        return f"{n / 1e9:.3g} GB ({n / GIB:.3g} GiB)"
    return f"{n / 1e6:.4g} MB ({n / MIB:.4g} MiB)"


def format_mib(n: int | None) -> str:
    """Bytes as MiB (or GiB from 10 GiB up), always with the unit; ``-`` where unknown."""
    if n is None:
        return "-"
    if n >= 10 * GIB:
        return f"{n / GIB:.1f} GiB"
    return f"{n / MIB:.0f} MiB"


def format_count(n: float | None) -> str:
    """A count to 3 significant digits with a decimal prefix: ``11.0 k``, ``5.51 k``, ``11.7 M``,
    ``3.65 G``; integers below 1000 as they are (``314``, ``0``); ``-`` where unknown.

    The prefix is chosen after rounding (999,600 is ``1.00 M``, not ``1000 k``); from 1000 T up
    the figure stays in T, rounded to a whole number. A positive figure never reads as zero: one
    below 1 keeps 3 significant digits (``0.00412``). Read back, a cell is within 0.5 % of the
    count.
    """
    if n is None:
        return "-"
    x = float(n)
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return str(x)
    if x < 0:
        return "-" + format_count(-x)
    if x < 1000 and x == int(x):
        return str(int(x))
    if x < 1:
        return f"{x:.3g}"
    for k, prefix in enumerate(PREFIXES):
        mantissa = float(f"{x / 1000**k:.3g}")  # rounded to 3 significant digits
        if mantissa < 1000:
            decimals = 2 if mantissa < 10 else 1 if mantissa < 100 else 0
            text = f"{mantissa:.{decimals}f}"
            return f"{text} {prefix}" if prefix else text
    return f"{x / 1000 ** (len(PREFIXES) - 1):.0f} {PREFIXES[-1]}"
