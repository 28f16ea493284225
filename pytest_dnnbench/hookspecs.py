"""Hooks that other plugins and ``conftest.py`` files can implement."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .jsontypes import JsonObject
    from .registry import Registry

hookspec = pytest.hookspec


@hookspec
def pytest_dnnbench_register_models(registry: Registry, config: pytest.Config) -> None:
    """Add models to this session's registry.

    Called once at configure time with the session's
    :class:`pytest_dnnbench.registry.Registry`. Implement it in a
    ``conftest.py`` at the rootdir (or in a plugin) and call
    ``registry.register(name, factory, input_size=...)``; a factory given as
    ``"package.module:callable"`` also works where models are rebuilt in other
    processes. Registered names are then selectable with ``--dnn-models``.
    """


@hookspec
def pytest_dnnbench_record(record: JsonObject, item: pytest.Item) -> None:
    """Called once for each finished record, on the process that ran ``item``, before the verdict.

    ``record`` is a copy of the finished record as plain JSON data: measurements, accuracy, and
    the constraint and baseline checks. An implementation may fail the test by raising (for
    example ``pytest.fail(...)``), and may add data of its own under ``record["extra"]`` (a dict of
    plain JSON data, created by the first implementation that needs it): that is kept in the
    record (results file, terminal table, reports); any other change to
    ``record`` is ignored. The record is already kept when this runs, so a failing hook does not
    lose it.
    """
