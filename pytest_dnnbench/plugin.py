"""The pytest plugin entry point (``pytest11``): options, hook specs, and the session.

Importing this module imports no torch: pytest loads every installed plugin in every project, and
a project that does not ask for benchmarks must not pay for them. All hooks but the ones that run
before configuration live on :class:`~.session.DnnSession`, registered here.
"""

from __future__ import annotations

import pytest

from . import hookspecs
from .registry import REGISTRY, Registry
from .session import SESSION_KEY, DnnSession
from .settings import Settings, addoptions

#: The fixtures (no hooks in that module).
pytest_plugins = ["pytest_dnnbench.fixtures"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    addoptions(parser)


def _registry(config: pytest.Config) -> Registry:
    """This run's registry: the built-in models and those that conftest files and plugins register."""
    registry = REGISTRY.copy()
    config.hook.pytest_dnnbench_register_models(registry=registry, config=config)
    return registry


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Parse every option (usage errors now, before anything is built) and register the session.

    ``tryfirst``: pytest-benchmark asks for ``pytest_benchmark_update_machine_info`` (a hook of the
    session) in its own ``pytest_configure``, when it loads a run to compare.
    """
    session = DnnSession(config, Settings.from_config(config), _registry(config))
    session.start()
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "dnnbench-session")


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--dnn-list-models``: print the registry and exit (before any test is collected)."""
    if not config.getoption("dnn_list_models", default=False):
        return None
    registry = _registry(config)
    rows = [("name", "paper name", "source", "input")]
    for spec in registry:
        rows.append((spec.name, spec.paper_name or "", spec.describe_source(), "x".join(map(str, spec.input_size))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    paper = len(registry.paper_names())
    print(f"\n{len(registry)} models, {paper} from the paper; default set: {', '.join(registry.default)}")
    return 0
