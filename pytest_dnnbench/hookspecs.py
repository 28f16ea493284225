"""Hooks that other plugins and ``conftest.py`` files can implement."""

from __future__ import annotations

import pytest

hookspec = pytest.hookspec


@hookspec
def pytest_dnnbench_register_models(registry, config):
    """Add models to this session's registry.

    Called once at configure time with the session's
    :class:`pytest_dnnbench.registry.Registry`. Implement it in a
    ``conftest.py`` at the rootdir (or in a plugin) and call
    ``registry.register(name, factory, input_size=...)``; a factory given as
    ``"package.module:callable"`` also works where models are rebuilt in other
    processes. Registered names are then selectable with ``--dnn-models``.
    """


@hookspec
def pytest_dnnbench_record(record, item):
    """Called on the process that ran ``item`` with each record it produced, before the report.

    Implementations may add to ``record`` (it must stay plain JSON data): accuracy fills
    ``record["accuracy"]`` (``tryfirst``), baseline and constraint checks append to
    ``record["checks"]`` and may fail the test (``trylast``). The record is already kept when
    this runs, so a failing check does not lose it.
    """
