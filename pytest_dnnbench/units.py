"""Byte counts for people: the two ways this project writes them (pure).

- :func:`format_bytes` gives both readings, decimal and binary (``1.2 GB (1.12 GiB)``), where a
  figure is held against a limit the user wrote in either unit (constraint messages);
- :func:`format_mib` gives one short cell with its unit (``870 MiB``; GiB from 10 GiB up), for
  tables, where every cell of a column is read the same way.
"""

from __future__ import annotations

MIB = 2**20
GIB = 2**30

__all__ = ["GIB", "MIB", "format_bytes", "format_mib"]


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
