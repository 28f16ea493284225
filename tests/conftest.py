"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Iterator

import pytest
from helpers import TINY_CONFTEST, TINY_MODULE
from hypothesis import settings

# CI runs the same examples every time and gives no deadline on a loaded 2-core machine: a red
# build then means a real failure, reproducible by running the suite again. Locally, Hypothesis
# explores new examples on every run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def tiny_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project whose conftest registers small custom models (fast to benchmark)."""
    pytester.makepyfile(tinymodels=TINY_MODULE)
    pytester.makeconftest(TINY_CONFTEST)
    pytester.syspathinsert()
    return pytester


#: What pytest-xdist puts in a worker's environment. The suite runs on two workers (scripts/test); the pytest
#: runs its tests start in-process or as children would inherit these, and pytest-benchmark reads
#: ``PYTEST_XDIST_WORKER`` to turn itself off "because xdist is on" in runs that use no xdist at all.
XDIST_ENVIRONMENT = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


@pytest.fixture(scope="session", autouse=True)
def _runs_inside_know_nothing_of_the_suites_workers() -> Iterator[None]:
    before = {name: os.environ.pop(name) for name in XDIST_ENVIRONMENT if name in os.environ}
    yield
    os.environ.update(before)


@pytest.fixture(scope="session", autouse=True)
def _share_runtime_floors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The many pytest processes of this suite (pytester, pytest-xdist workers) measure each CPU runtime
    floor once between them (a few seconds of a core each time otherwise); test_floor.py measures for real."""
    from pytest_dnnbench.measure.floor import FLOOR_CACHE_ENV

    before = os.environ.get(FLOOR_CACHE_ENV)
    os.environ[FLOOR_CACHE_ENV] = str(tmp_path_factory.mktemp("floors"))
    yield
    if before is None:
        del os.environ[FLOOR_CACHE_ENV]
    else:
        os.environ[FLOOR_CACHE_ENV] = before


@pytest.fixture(scope="session", autouse=True)
def _own_change_point_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The history and publish commands of this suite keep their change points in a cache of the suite's own,
    not the user's (tests/unit/test_store_changes.py tests the cache with one of its own)."""
    from pytest_dnnbench.store.change_cache import ENV_VAR

    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(tmp_path_factory.mktemp("change-points"))
    yield
    if before is None:
        del os.environ[ENV_VAR]
    else:
        os.environ[ENV_VAR] = before


@pytest.fixture(scope="session", autouse=True)
def _preload_model_libraries() -> None:
    """Import the model libraries once, before any pytester run.

    In-process pytester runs restore ``sys.modules`` afterwards; a library first
    imported inside one of them would be imported again by the next, and torch
    refuses to register its operator libraries twice. (A session fixture, not a
    configure hook: a benchmark run started from this repository must not pay
    for these imports in its memory figures.)
    """
    import importlib

    for name in (
        "torch",
        "torchvision",
        "timm",
        "thop",
        "pretrainedmodels",
        "torch.utils.flop_counter",
        "pygal",
        "pytest_benchmark.histogram",
        # the deployment modes' exporters and runtimes (torch.onnx registers its exporter's ops once)
        "torch.onnx",
        "torch._dynamo",
        "torch._inductor.compile_fx",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "openvino",
        # the results store's libraries (SQLAlchemy registers its dialects' SQL functions once per process)
        "sqlalchemy",
        "sqlalchemy.dialects.postgresql",
        "sqlalchemy.dialects.sqlite",
        "alembic.command",
        "alembic.config",
        "alembic.runtime.migration",
        "alembic.script",
        "psycopg",
    ):
        try:
            # Deprecation notices of the libraries' own imports (torch 2.11's torch._inductor warns about
            # torch.jit.script_method, which its own modules use) are theirs, not this suite's to fail on.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                importlib.import_module(name)
        except ImportError:
            pass
    # Everything imported so far lives as long as the process: out of the garbage collector's sight, so that
    # each full collection (the plugin runs one when a model is replaced) does not walk torch's, the
    # compilers' and the runtimes' module objects again (0.5 s a collection once torch.compile is loaded).
    gc.freeze()
