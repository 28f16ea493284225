"""Test node ids of benchmark tests: the one place that reads them (pure).

A benchmark test's id ends in ``[<model>-bs<N>]`` (the shipped suite; ``[<model>-bs<N>-<mode>]`` for a
deployment mode other than eager) or has the model among the
dash-separated parts of its parameter id (a project's own tests that use ``dnn_model``).
pytest-xdist's ``loadgroup`` may append ``@<group>`` to an id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["argnames_of", "model_of", "params_of", "strip_group", "suite_cell", "suite_mode", "scope_of"]

_MODES = ("eager", "compile", "cudagraph", "onnxruntime", "openvino")
_SUITE_RE = re.compile(r"\[(?P<model>.+)-bs(?P<bs>\d+)(?:-(?P<mode>" + "|".join(_MODES) + r"))?\]$")


def suite_cell(nodeid: str) -> tuple[str, int] | None:
    """(model, batch size) of a ``...[<model>-bs<N>]`` or ``...[<model>-bs<N>-<mode>]`` id, else None."""
    m = _SUITE_RE.search(nodeid)
    return (m.group("model"), int(m.group("bs"))) if m else None


def suite_mode(nodeid: str) -> str | None:
    """The deployment mode of a shipped-suite id (``eager`` where the id names none), else None."""
    m = _SUITE_RE.search(nodeid)
    return (m.group("mode") or "eager") if m else None


def model_of(nodeid: str, names: Iterable[str]) -> str | None:
    """The registry model in ``nodeid``'s parameter id, if any (longest name first)."""
    open_at = nodeid.find("[")
    if open_at < 0 or not nodeid.endswith("]"):
        return None
    params = nodeid[open_at + 1 : -1]
    for name in sorted(names, key=len, reverse=True):
        if re.search(rf"(^|-){re.escape(name)}(-|$)", params):
            return name
    return None


def scope_of(nodeid: str, names: Iterable[str]) -> str:
    """The pytest-xdist scheduling scope: an ``@group`` suffix, else the model, else the id itself."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid.split("@")[-1]
    model = model_of(nodeid, names)
    return f"dnn-model:{model}" if model is not None else nodeid


def strip_group(nodeid: str, groups: Iterable[str]) -> str:
    """``nodeid`` without the ``@<group>`` suffix pytest-xdist's loadgroup adds for ``groups``."""
    names = sorted(set(groups))
    suffix = "@" + "_".join(names)
    if names and nodeid.endswith(suffix):
        return nodeid[: -len(suffix)]
    return nodeid


def params_of(item: object) -> dict[str, object]:
    """A collected test's parameters (its ``callspec``), by name; empty for a test without any."""
    return dict(getattr(getattr(item, "callspec", None), "params", {}) or {})


def argnames_of(marker: object) -> list[str]:
    """The argument names a ``parametrize`` mark sets (``"a, b"`` or a sequence of names)."""
    args = getattr(marker, "args", ()) or ()
    names = args[0] if args else (getattr(marker, "kwargs", {}) or {}).get("argnames", ())
    if isinstance(names, str):
        return [n.strip() for n in names.split(",")]
    return [str(n) for n in names]
