"""Fixtures: ``dnn_device``, ``dnn_model``, ``dnn_batch_size``, ``dnn_bench``.

``dnn_model`` and ``dnn_batch_size`` are parametrized by the plugin
(``pytest_generate_tests``) from ``--dnn-models`` and ``--dnn-batch-sizes``;
a model is built once per session, with random weights, and freed when the
next model replaces it.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import pytest

from .state import RECORDS_KEY, DnnState, get_state


@pytest.fixture(scope="session")
def dnn_device(request: pytest.FixtureRequest) -> str:
    """The resolved device of this session: ``"cpu"`` or ``"cuda:N"``."""
    return get_state(request.config).ensure_device()


@pytest.fixture(scope="session")
def dnn_backend(request: pytest.FixtureRequest, dnn_device: str) -> Any:
    """The measurement backend (timers, memory probes) for ``dnn_device``."""
    return get_state(request.config).backend()


@pytest.fixture(scope="session")
def dnn_model(request: pytest.FixtureRequest, dnn_backend: Any) -> Any:
    """The registry model named by the test's parameter, built with random weights and ready on the device."""
    from .measure.bench import prepare_model
    from .registry import ModelUnavailable, build_model

    state = get_state(request.config)
    name = getattr(request, "param", None)
    if name is None:
        raise pytest.UsageError("dnn_model is parametrized by pytest-dnnbench; do not request it indirectly")
    spec = state.registry.get(name)
    if state.options.isolate == "process":
        # Each test builds the model in its own process: this one never does.
        from .isolated import IsolatedModel

        yield IsolatedModel(spec)
        return
    # The previous model's fixture has been finished by now: return its memory first.
    dnn_backend.release()
    import torch

    from .oom import skip_message

    torch.manual_seed(state.options.seed)
    # --dnn-max-time bounds the build too: the first test of this model is charged for it.
    t_build = time.monotonic()

    def build() -> Any:
        from .accuracy.plugin import load_requested_weights

        built = build_model(spec)
        load_requested_weights(request.config, built, spec)  # --dnn-weights; local files only
        return prepare_model(built, state.settings())

    try:
        model = _skip_on_out_of_memory(
            build, state.options.max_host_memory, dnn_backend,
            lambda oom: skip_message(None, state.settings().device, oom, model=spec.name),
        )
    except ModelUnavailable as exc:
        pytest.skip(str(exc))
    state.build_seconds[spec.name] = time.monotonic() - t_build
    state.remember(model, spec)
    yield model
    del model
    dnn_backend.release()


@pytest.fixture
def dnn_batch_size(request: pytest.FixtureRequest) -> int:
    """The batch size under test (one of ``--dnn-batch-sizes``)."""
    return int(getattr(request, "param", 1))


def _skip_on_out_of_memory(work: Callable[[], Any], max_host_memory: Any, backend: Any,
                           message: Callable[[str], str]) -> Any:
    """Run ``work`` under the host-memory guard; out of memory skips the test, anything else propagates.

    The skip happens outside the ``except`` block, so that the error and its frames (holding the
    input, the activations, a half-built model) are gone before the memory is released: later
    tests are unaffected.
    """
    from .oom import describe, host_memory_guard, is_out_of_memory

    oom = None
    try:
        with host_memory_guard(max_host_memory):
            return work()
    except BaseException as exc:  # noqa: BLE001 - re-raised unless it is out of memory
        if not is_out_of_memory(exc):
            raise
        oom = describe(exc)
    backend.release()
    pytest.skip(message(oom))


class DnnBench:
    """Callable returned by the ``dnn_bench`` fixture: benchmarks a module, returns its record."""

    def __init__(self, request: pytest.FixtureRequest, state: DnnState):
        self._request = request
        self._state = state
        self.records: list[dict] = []

    def __call__(
        self,
        model: Any = None,
        *,
        input_size: Optional[Sequence[int]] = None,
        batch_size: Optional[int] = None,
        name: Optional[str] = None,
        forward: Optional[Callable[[Any], object]] = None,
    ) -> dict:
        """Benchmark ``model`` (default: this test's ``dnn_model``) at the batch size under test.

        ``input_size`` is (channels, height, width) of one image; registry models
        know theirs. Returns the results record (also added to the results file,
        the terminal table and pytest-benchmark's session).
        """
        from .measure.bench import make_input, measure, prepare_model
        from .measure.flops import measure_complexity
        from .oom import skip_message
        from .results import make_record
        from .pbench import attach_to_benchmark_session

        request, state = self._request, self._state
        if model is None:
            if "dnn_model" not in request.fixturenames:
                raise TypeError("dnn_bench() needs a model: pass an nn.Module or use the dnn_model fixture")
            model = request.getfixturevalue("dnn_model")
        backend = request.getfixturevalue("dnn_backend")
        settings = state.settings()
        from .isolated import IsolatedModel

        if isinstance(model, IsolatedModel):  # --dnn-isolate=process: measured in a fresh process
            return _isolated_bench(self, model, batch_size, name)
        spec = state.spec_for(model)
        if input_size is None:
            if spec is None:
                raise TypeError(
                    "dnn_bench(model) needs input_size=(channels, height, width) for a model that is not "
                    "from the registry"
                )
            input_size = spec.input_size
        size = tuple(int(v) for v in input_size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"input_size must be (channels, height, width), got {tuple(input_size)}")
        if batch_size is None:
            batch_size = request.getfixturevalue("dnn_batch_size") if "dnn_batch_size" in request.fixturenames else 1
        if spec is None:
            model = prepare_model(model, settings)
        label = name or (spec.name if spec is not None else type(model).__name__)

        def compute() -> Any:
            return measure_complexity(model, make_input(1, size, settings))

        key = (spec.name, size) if spec is not None else (model, size)
        # The first test of a registry model is charged for building it (a huge model cannot stall
        # a run): its budget starts as long before the timed calls as the build took. (Counting
        # FLOPs, once per model, is not charged: it is the plugin's work, not the model's.)
        build_s = state.build_seconds.pop(spec.name, None) if spec is not None else None

        def run() -> tuple[Any, Any]:
            complexity = state.complexity(key, compute)
            backend.before_measure()
            start = time.monotonic() - build_s if build_s is not None else None
            return complexity, measure(model, int(batch_size), size, settings, backend, forward=forward, start=start)

        complexity, measurement = _skip_on_out_of_memory(
            run, state.options.max_host_memory, backend,
            lambda oom: skip_message(int(batch_size), settings.device, oom),
        )
        record = make_record(
            model=label,
            paper_name=spec.paper_name if spec is not None else None,
            source=spec.source if spec is not None else "custom",
            settings=settings,
            device_name=backend.device_name(),
            threads=_threads(),
            measurement=measurement,
            complexity=complexity,
            extra={"test": _nodeid(request.node), **({"build_s": build_s} if build_s is not None else {})},
        )
        # The record is kept before the hooks run: a check that fails the test (baselines,
        # constraints) must not lose the measurement.
        self.records.append(record)
        attach_to_benchmark_session(request.config, request.node, record)  # shares record["checks"]
        request.config.hook.pytest_dnnbench_record(record=record, item=request.node)
        return record


def _isolated_bench(bench: "DnnBench", model: Any, batch_size: Optional[int], name: Optional[str]) -> dict:
    """``--dnn-isolate=process``: the measurement runs in a fresh subprocess (see :mod:`.isolated`)."""
    from .isolated import IsolatedOutOfMemory, IsolationError, make_request, run_isolated, timeout_for
    from .oom import skip_message
    from .pbench import attach_to_benchmark_session

    request, state = bench._request, bench._state
    settings = state.settings()
    if batch_size is None:
        batch_size = request.getfixturevalue("dnn_batch_size") if "dnn_batch_size" in request.fixturenames else 1
    oom = failure = None
    try:
        req = make_request(model.spec, settings, int(batch_size), _nodeid(request.node),
                           max_host_memory=state.options.max_host_memory)
        record = run_isolated(req, timeout_for(settings))
    except IsolatedOutOfMemory as exc:
        oom = str(exc)
    except IsolationError as exc:
        failure = str(exc)
    if oom is not None:
        pytest.skip(skip_message(int(batch_size), settings.device, oom))
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    if name:
        record["model"] = name
    bench.records.append(record)
    attach_to_benchmark_session(request.config, request.node, record)
    request.config.hook.pytest_dnnbench_record(record=record, item=request.node)
    return record


def _nodeid(item: pytest.Item) -> str:
    """The test's node id, without the ``@group`` suffix pytest-xdist's loadgroup adds to it."""
    nodeid = item.nodeid
    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                     for m in item.iter_markers("xdist_group")})
    suffix = "@" + "_".join(groups)
    if groups and nodeid.endswith(suffix):
        return nodeid[: -len(suffix)]
    return nodeid


def _threads() -> int:
    import torch

    return torch.get_num_threads()


@pytest.fixture
def dnn_bench(request: pytest.FixtureRequest, dnn_backend: Any) -> DnnBench:
    """Benchmark a model: ``record = dnn_bench(model, input_size=(3, 224, 224))``."""
    bench = DnnBench(request, get_state(request.config))
    request.node.stash[RECORDS_KEY] = bench.records
    return bench
