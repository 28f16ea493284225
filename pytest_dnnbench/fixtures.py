"""Fixtures: ``dnn_device``, ``dnn_backend``, ``dnn_model``, ``dnn_batch_size``, ``dnn_mode``, ``dnn_bench``.

Thin: each asks this run's :class:`~.session.DnnSession`. ``dnn_model``, ``dnn_batch_size`` and
``dnn_mode`` are parametrized by the session (``pytest_generate_tests``) from ``--dnn-models``,
``--dnn-batch-sizes`` and ``--dnn-modes``; a model is built once per session, with random weights,
and freed (with what its modes prepared) when the next model replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import pytest

from .isolated import IsolatedModel
from .jsontypes import JsonObject
from .session import session_of

if TYPE_CHECKING:
    import torch

    from .measure.backends import Backend


@pytest.fixture(scope="session")
def dnn_device(request: pytest.FixtureRequest) -> str:
    """The resolved device of this session: ``"cpu"`` or ``"cuda:N"``."""
    return session_of(request.config).ensure_device()


@pytest.fixture(scope="session")
def dnn_backend(request: pytest.FixtureRequest, dnn_device: str) -> Backend:
    """The measurement backend (timers, memory probes) for ``dnn_device``."""
    return session_of(request.config).runner.backend()


@pytest.fixture(scope="session")
def dnn_model(request: pytest.FixtureRequest, dnn_device: str) -> Iterator[torch.nn.Module | IsolatedModel]:
    """The registry model named by the test's parameter, built with random weights and ready on the device."""
    yield from session_of(request.config).model(getattr(request, "param", None))


@pytest.fixture
def dnn_batch_size(request: pytest.FixtureRequest) -> int:
    """The batch size under test (one of ``--dnn-batch-sizes``)."""
    return int(getattr(request, "param", 1))


@pytest.fixture
def dnn_mode(request: pytest.FixtureRequest) -> str:
    """The deployment mode under test (one of ``--dnn-modes``; ``eager`` unless several are asked for)."""
    return str(getattr(request, "param", "eager"))


class DnnBench:
    """Callable returned by the ``dnn_bench`` fixture: benchmarks a module, returns its record."""

    def __init__(self, request: pytest.FixtureRequest):
        self._request = request

    def __call__(
        self,
        model: torch.nn.Module | IsolatedModel | None = None,
        *,
        input_size: Sequence[int] | None = None,
        batch_size: int | None = None,
        name: str | None = None,
        forward: Callable[[torch.Tensor], object] | None = None,
        mode: str | None = None,
    ) -> JsonObject:
        """Benchmark ``model`` (default: this test's ``dnn_model``) at the batch size, in the mode under test.

        ``input_size`` is (channels, height, width) of one image; registry models know theirs.
        ``mode`` (default: this test's ``dnn_mode``) is a deployment mode such as ``compile`` or
        ``onnxruntime``: the model is prepared for it, timed, and its output checked against eager.
        Returns the results record as a plain dict (also added to the results file, the terminal
        table and pytest-benchmark's session).
        """
        request = self._request
        session = session_of(request.config)
        if model is None:
            if "dnn_model" not in request.fixturenames:
                raise TypeError("dnn_bench() needs a model: pass an nn.Module or use the dnn_model fixture")
            model = request.getfixturevalue("dnn_model")
        if batch_size is None:
            batch_size = request.getfixturevalue("dnn_batch_size") if "dnn_batch_size" in request.fixturenames else 1
        if mode is None:
            mode = str(request.getfixturevalue("dnn_mode")) if "dnn_mode" in request.fixturenames else "eager"
        else:
            session.check_call_mode(mode)
        return session.bench(
            request.node,
            model,  # checked by the session: a torch module, or an isolated one
            input_size=input_size,
            batch_size=int(str(batch_size)),
            name=name,
            forward=forward,
            mode=mode,
        )


@pytest.fixture
def dnn_bench(request: pytest.FixtureRequest, dnn_device: str, dnn_mode: str) -> DnnBench:
    """Benchmark a model: ``record = dnn_bench(model, input_size=(3, 224, 224))``."""
    return DnnBench(request)
