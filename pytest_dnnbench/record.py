"""The results record as frozen dataclasses, with ``to_json``/``from_json`` at the process boundaries.

A record crosses three boundaries as plain JSON data: the results file, pytest-xdist's reports
(workers to controller) and pytest-benchmark's ``extra_info``. Inside the process it is a
:class:`Record`: immutable, so nothing shared by reference can be changed behind a reader's back;
a stage of the pipeline that adds to it makes a new one (``dataclasses.replace``).

Every part keeps the keys it does not know (``unknown``) and the order its keys came in
(``order``), so ``Part.from_json(d).to_json() == d`` for any JSON object ``d`` of the current shape
with the part's required keys: files written by later versions are read and written back unchanged.
A record of an earlier version is upgraded as it is read (:mod:`.upgrade`: ``param_file_mib``, the
accuracy's ``measured`` and ``reference`` apart); its other keys and their order are kept. A part
built in this process emits its keys in the documented order (``docs/usage.md``, the results file).

No torch, no pytest here.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

from .jsontypes import JsonMapping, JsonObject
from .upgrade import is_cuda, upgrade_accuracy, upgrade_record

if TYPE_CHECKING:
    from .measure.bench import BenchSettings, Measurement
    from .measure.flops import Complexity
    from .models.spec import ModelSpec

__all__ = [
    "Accuracy",
    "Check",
    "JsonMapping",
    "JsonObject",
    "Latency",
    "MeasuredAccuracy",
    "Record",
    "ReferenceAccuracy",
    "RECORD_KEYS",
    "LATENCY_KEYS",
    "make_record",
    "timed_record",
    "record_problems",
    "unavailable_accuracy",
]

P = TypeVar("P", bound="_Part")


@dataclass(frozen=True)
class _Part:
    """Base of the record's parts: typed fields, plus the unknown keys and the key order of the source.

    Subclasses list their JSON keys in ``_KEYS`` (documented order), the keys always written even
    when None in ``_ALWAYS``, the JSON name of a field where it differs in ``_JSON_NAMES``, and
    the nested parts in ``_NESTED`` (a part) and ``_NESTED_LISTS`` (a tuple of parts).
    """

    unknown: JsonMapping = field(default_factory=dict, compare=True, kw_only=True)
    order: tuple[str, ...] = field(default=(), compare=False, kw_only=True)

    _KEYS: ClassVar[tuple[str, ...]] = ()
    _ALWAYS: ClassVar[frozenset[str]] = frozenset()
    _JSON_NAMES: ClassVar[Mapping[str, str]] = {}
    _NESTED: ClassVar[Mapping[str, type[_Part]]] = {}
    _NESTED_LISTS: ClassVar[Mapping[str, type[_Part]]] = {}
    _TUPLES: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _field_of(cls) -> dict[str, str]:
        """JSON key -> field name, for the typed fields."""
        names = {f.name for f in dataclasses.fields(cls)} - {"unknown", "order"}
        return {cls._JSON_NAMES.get(n, n): n for n in names}

    @classmethod
    def _upgrade(cls, data: JsonMapping) -> JsonMapping:
        """``data`` of an earlier version in the current shape (parts that changed override this)."""
        return data

    @classmethod
    def from_json(cls: type[P], data: JsonMapping) -> P:
        """Read a part (upgraded where an earlier version wrote it); unknown keys are kept (deep-copied),
        and so is the order of the keys."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        data = cls._upgrade(data)
        fields = cls._field_of()
        kwargs: JsonObject = {}  # JSON values, and the parts made from them
        unknown: JsonObject = {}
        for key, value in data.items():
            name = fields.get(key)
            if name is None:
                unknown[key] = copy.deepcopy(value)
            elif key in cls._NESTED and value is not None:
                kwargs[name] = cls._NESTED[key].from_json(value)
            elif key in cls._NESTED_LISTS and value is not None:
                kwargs[name] = tuple(cls._NESTED_LISTS[key].from_json(v) for v in value)
            elif key in cls._TUPLES and isinstance(value, list):
                kwargs[name] = tuple(value)
            else:
                kwargs[name] = copy.deepcopy(value)
        return cls(**kwargs, unknown=unknown, order=tuple(data))

    def _value(self, key: str) -> object:
        name = self._field_of().get(key)
        if name is None:
            return copy.deepcopy(self.unknown[key])
        value = getattr(self, name)
        if isinstance(value, _Part):
            return value.to_json()
        if key in self._NESTED_LISTS and value is not None:
            return [v.to_json() for v in value]
        if isinstance(value, tuple):
            return list(value)
        return copy.deepcopy(value)

    def to_json(self) -> JsonObject:
        """Plain JSON data (new objects: changing them changes nothing here)."""
        fields = self._field_of()
        out: JsonObject = {}
        if self.order:  # read from JSON: its keys, in its order; a typed field set later, after them
            for key in self.order:
                if key in fields or key in self.unknown:
                    out[key] = self._value(key)
            always: frozenset[str] = frozenset()
        else:  # built here: the documented keys, in the documented order
            always = self._ALWAYS
        for key in self._KEYS:
            if key not in out and (key in always or getattr(self, fields[key]) is not None):
                out[key] = self._value(key)
        for key in self.unknown:
            if key not in out:
                out[key] = self._value(key)
        return out

    def get(self, key: str, default: object = None) -> object:
        """The JSON value under ``key`` (typed field or unknown key), as ``dict.get`` would give it."""
        fields = self._field_of()
        if key in fields:
            value = getattr(self, fields[key])
            return default if value is None else self._value(key)
        return copy.deepcopy(self.unknown[key]) if key in self.unknown else default


LATENCY_KEYS = ("median", "mean", "stdev", "min", "max", "p90", "p99", "n", "ci_median", "warmup", "capped", "samples")


@dataclass(frozen=True)
class Reference(_Part):
    """``latency_ms.reference``: the reference workload timed after each call (the machine's speed) and the
    model's latency in units of it (``relative``: the median of the per-call ratios)."""

    workload: str
    median: float
    relative: float
    relative_ci: tuple[float, float] | None = None
    samples: tuple[float, ...] = ()

    _KEYS: ClassVar[tuple[str, ...]] = ("workload", "median", "relative", "relative_ci", "samples")
    _ALWAYS: ClassVar[frozenset[str]] = frozenset({"workload", "median", "relative"})
    _TUPLES: ClassVar[frozenset[str]] = frozenset({"relative_ci", "samples"})


@dataclass(frozen=True)
class Latency(_Part):
    """``latency_ms``: per-call statistics in milliseconds, every sample kept."""

    median: float
    mean: float | None = None
    stdev: float | None = None
    min: float | None = None
    max: float | None = None
    p90: float | None = None
    p99: float | None = None
    n: int = 0
    ci_median: tuple[float, float] | None = None
    warmup: int = 0
    capped: bool = False
    stop_reason: str | None = None
    #: Fewer samples than ``--dnn-min-samples`` (the hard ceiling of 3x the budget stopped sampling first).
    insufficient: bool | None = None
    ci_target: float | None = None
    samples: tuple[float, ...] = ()
    warmup_samples: tuple[float, ...] = ()
    #: The machine's speed beside the model (CPU): None where it was not measured (GPU, earlier versions).
    reference: Reference | None = None

    _KEYS: ClassVar[tuple[str, ...]] = LATENCY_KEYS[:-1] + (
        "stop_reason",
        "insufficient",
        "ci_target",
        "samples",
        "warmup_samples",
        "reference",
    )
    _NESTED: ClassVar[Mapping[str, type[_Part]]] = {"reference": Reference}
    _ALWAYS: ClassVar[frozenset[str]] = frozenset(LATENCY_KEYS)
    _TUPLES: ClassVar[frozenset[str]] = frozenset({"ci_median", "samples", "warmup_samples"})


@dataclass(frozen=True)
class MeasuredAccuracy(_Part):
    """``accuracy.measured``: Top-1/Top-5 (percent) measured in this run on ``n_images`` images.

    The measurement's details (data set, layout, preprocessing, seconds...) are in ``unknown``."""

    top1: float | None = None
    top5: float | None = None
    n_images: int | None = None
    #: What was measured on what, in words.
    source: str | None = None

    _KEYS: ClassVar[tuple[str, ...]] = ("top1", "top5", "n_images", "source")
    _ALWAYS: ClassVar[frozenset[str]] = frozenset(("top1", "top5", "n_images"))


@dataclass(frozen=True)
class ReferenceAccuracy(_Part):
    """``accuracy.reference``: the published Top-1/Top-5 (percent) of these weights; never measured here."""

    top1: float | None = None
    top5: float | None = None
    #: Where the figure is published.
    source: str | None = None

    _KEYS: ClassVar[tuple[str, ...]] = ("top1", "top5", "source")
    _ALWAYS: ClassVar[frozenset[str]] = frozenset(_KEYS)


@dataclass(frozen=True)
class Accuracy(_Part):
    """``accuracy``: the figure measured in this run and the published one, apart, either or both None.

    ``reason``: why nothing was measured (None when ``measured`` is given). Other keys (``unit``,
    ``paper_top1``, the weights used) are in ``unknown``.
    """

    measured: MeasuredAccuracy | None = None
    reference: ReferenceAccuracy | None = None
    reason: str | None = None

    _KEYS: ClassVar[tuple[str, ...]] = ("measured", "reference", "reason")
    _ALWAYS: ClassVar[frozenset[str]] = frozenset(_KEYS)
    _NESTED: ClassVar[Mapping[str, type[_Part]]] = {"measured": MeasuredAccuracy, "reference": ReferenceAccuracy}

    @classmethod
    def _upgrade(cls, data: JsonMapping) -> JsonMapping:
        return upgrade_accuracy(data)

    @property
    def status(self) -> str:
        """``measured`` (a figure measured in this run), ``reference`` (a published one only) or ``unavailable``."""
        if self.measured is not None and self.measured.top1 is not None:
            return "measured"
        if self.reference is not None and self.reference.top1 is not None:
            return "reference"
        return "unavailable"


def unavailable_accuracy(reason: str) -> Accuracy:
    """No accuracy known, and why."""
    return Accuracy(reason=reason)


@dataclass(frozen=True)
class Check(_Part):
    """One check of a record: a deployment constraint or a comparison with the baseline.

    The details that depend on the metric (baseline, ratio, tolerance, source of a limit...) are in
    ``unknown``, in the order they were made.
    """

    kind: str
    metric: str
    passed: bool
    limit: float | None = None
    measured: float | None = None
    message: str = ""

    _KEYS: ClassVar[tuple[str, ...]] = ("kind", "metric", "limit", "measured", "passed", "message")
    _ALWAYS: ClassVar[frozenset[str]] = frozenset(_KEYS)

    @classmethod
    def make(cls, **items: object) -> Check:
        """A check from keyword items in the order they are written (details kept in that order)."""
        return cls.from_json(items)

    def with_details(self, **items: object) -> Check:
        """This check with more detail keys (added after the existing ones)."""
        return dataclasses.replace(
            self, unknown={**self.unknown, **items}, order=self.order + tuple(k for k in items if k not in self.order)
        )


#: Every key a record may have, in the order the results file writes them.
RECORD_ORDER: tuple[str, ...] = (
    "model",
    "paper_name",
    "source",
    "device",
    "device_name",
    "precision",
    "mode",
    "channels_last",
    "threads",
    "cudnn_benchmark",
    "tf32",
    "seed",
    "batch_size",
    "input_size",
    "latency_ms",
    "per_image_ms",
    "fps",
    "memory_bytes",
    "memory_method",
    "gpu_state",
    "load",
    "energy",
    "macs",
    "flops",
    "macs_check",
    "counters_disagree",
    "params",
    "param_file_mib",
    "param_file_bytes",
    "complexity_error",
    "accuracy",
    "checks",
    "outcome",
    "reason",
    "test",
    "isolation",
    "build_s",
    "prepare_s",
    "runtime",
    "baseline",
    "tolerances",
    "extra",
)
#: Keys not every record has: written only where they apply (CUDA settings on CUDA runs, complexity errors,
#: isolation, a build charged to the test, a mode's preparation, what the gate and other plugins add).
OPTIONAL_KEYS = frozenset(
    {
        "cudnn_benchmark",
        "tf32",
        "gpu_state",
        "load",
        "energy",
        "prepare_s",
        "runtime",
        "complexity_error",
        "isolation",
        "build_s",
        "baseline",
        "tolerances",
        "extra",
        "memory_method",
        "param_file_bytes",
        "test",
    }
)
#: Keys every record has (``docs/usage.md``, the results file); tests hold records against this list.
RECORD_KEYS = tuple(k for k in RECORD_ORDER if k not in OPTIONAL_KEYS)


@dataclass(frozen=True)
class Record(_Part):
    """One (model, batch size, settings) measurement and what was concluded from it."""

    model: str
    batch_size: int
    latency: Latency
    paper_name: str | None = None
    source: str = "custom"
    device: str = "cpu"
    device_name: str | None = None
    precision: str = "fp32"
    mode: str = "eager"
    channels_last: bool = False
    threads: int | None = None
    #: On CUDA: cuDNN's autotuner (``--dnn-cudnn-benchmark``); None (not written) on the CPU.
    cudnn_benchmark: bool | None = None
    #: On CUDA: whether fp32 work was allowed to run in TF32 (``--dnn-tf32``); None on the CPU.
    tf32: bool | None = None
    seed: int | None = None
    input_size: tuple[int, ...] = ()
    per_image_ms: float | None = None
    fps: float | None = None
    memory: Mapping[str, int | None] = field(default_factory=dict)
    memory_method: str | None = None
    #: On CUDA: clocks, power and throttle reasons sampled while the timed calls ran.
    gpu_state: JsonMapping | None = None
    #: The machine's load while the timed calls ran (``measure.load.Load.to_json``), with its ``busy`` flag.
    load: JsonMapping | None = None
    #: Energy over the timed calls: joules per image, watts, the counter (RAPL, NVML) and its scope, or the reason
    #: it could not be measured (``measure.energy``).
    energy: JsonMapping | None = None
    macs: int | None = None
    flops: int | None = None
    macs_check: int | None = None
    counters_disagree: bool | None = None
    params: int | None = None
    #: The serialized ``state_dict``'s size in MiB (2**20 bytes; ``param_file_bytes`` / 2**20).
    param_file_mib: float | None = None
    param_file_bytes: int | None = None
    complexity_error: str | None = None
    accuracy: Accuracy = field(default_factory=lambda: unavailable_accuracy("accuracy was not evaluated in this run"))
    checks: tuple[Check, ...] = ()
    outcome: str | None = None
    reason: str | None = None
    test: str | None = None
    isolation: str | None = None
    build_s: float | None = None
    #: Seconds the mode's preparation took (export, compilation, conversion; outside the latency budget).
    prepare_s: float | None = None
    #: What ran a mode other than eager: name, version, device, options.
    runtime: JsonMapping | None = None
    #: What the record says about its baseline: key, path, status, rounds, reason.
    baseline: JsonMapping | None = None
    #: The tolerances the baseline checks used.
    tolerances: Mapping[str, float] | None = None
    #: Additions of other plugins and conftest files (``pytest_dnnbench_record``).
    extra: JsonMapping | None = None

    _KEYS: ClassVar[tuple[str, ...]] = RECORD_ORDER
    _ALWAYS: ClassVar[frozenset[str]] = frozenset(RECORD_KEYS) | {"memory_method", "param_file_bytes", "test"}
    _JSON_NAMES: ClassVar[Mapping[str, str]] = {"latency": "latency_ms", "memory": "memory_bytes"}
    _NESTED: ClassVar[Mapping[str, type[_Part]]] = {"latency_ms": Latency, "accuracy": Accuracy}
    _NESTED_LISTS: ClassVar[Mapping[str, type[_Part]]] = {"checks": Check}
    _TUPLES: ClassVar[frozenset[str]] = frozenset({"input_size"})

    @classmethod
    def _upgrade(cls, data: JsonMapping) -> JsonMapping:
        return upgrade_record(data)


def make_record(
    *,
    model: str,
    paper_name: str | None,
    source: str,
    settings: BenchSettings,
    device_name: str,
    threads: int,
    measurement: Measurement,
    complexity: Complexity,
    test: str | None = None,
    build_s: float | None = None,
    isolation: str | None = None,
) -> Record:
    """Assemble one record from a :class:`~.measure.bench.Measurement` and a :class:`~.measure.flops.Complexity`.

    The CUDA settings (``cudnn_benchmark``, ``tf32``) are recorded on CUDA runs only."""
    on_cuda = is_cuda(settings.device)
    return Record(
        model=model,
        paper_name=paper_name,
        source=source,
        device=settings.device,
        device_name=device_name,
        precision=settings.precision,
        mode=settings.mode,
        channels_last=settings.channels_last,
        threads=threads,
        cudnn_benchmark=settings.cudnn_benchmark if on_cuda else None,
        tf32=settings.tf32 if on_cuda else None,
        seed=settings.seed,
        batch_size=measurement.batch_size,
        input_size=tuple(measurement.input_size),
        latency=Latency.from_json(measurement.timing.latency_dict()),
        per_image_ms=measurement.per_image_ms,
        fps=measurement.fps,
        memory=dict(measurement.memory),
        memory_method=measurement.memory_method,
        gpu_state=measurement.gpu_state,
        load=measurement.load,
        energy=measurement.energy,
        macs=complexity.macs,
        flops=complexity.flops,
        macs_check=complexity.macs_check,
        counters_disagree=complexity.counters_disagree,
        params=complexity.params,
        param_file_mib=complexity.param_file_bytes / 2**20,
        param_file_bytes=complexity.param_file_bytes,
        complexity_error=complexity.error or None,
        test=test,
        isolation=isolation,
        build_s=build_s,
    )


def record_problems(data: object) -> list[str]:
    """What makes ``data`` unusable as a record (empty when it is one): the fields every table needs."""
    if not isinstance(data, Mapping):
        return [f"not a JSON object but {type(data).__name__}"]
    problems = []
    if not isinstance(data.get("model"), str) or not data["model"]:
        problems.append("'model' must be a non-empty string")
    bs = data.get("batch_size")
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        problems.append(f"'batch_size' must be a positive integer, not {bs!r:.40}")
    lat = data.get("latency_ms")
    median = lat.get("median") if isinstance(lat, Mapping) else None
    if not isinstance(median, (int, float)) or isinstance(median, bool) or not median > 0 or median != median:
        problems.append("'latency_ms.median' must be a positive number")
    for key in ("memory_bytes", "accuracy"):
        if key in data and data[key] is not None and not isinstance(data[key], Mapping):
            problems.append(f"'{key}' must be an object")
    return problems


def timed_record(
    *,
    model: str,
    spec: ModelSpec | None,
    settings: BenchSettings,
    device_name: str,
    threads: int,
    measurement: Measurement,
    complexity: Complexity,
    test: str | None,
    build_s: float | None,
    isolation: str | None = None,
) -> Record:
    """The record of one timed measurement of ``spec`` (None: a user's own module), assembled the same way in
    process (:mod:`.runner`) and in an isolated child (:mod:`.isolated`)."""
    return make_record(
        model=model,
        paper_name=spec.paper_name if spec is not None else None,
        source=spec.source if spec is not None else "custom",
        settings=settings,
        device_name=device_name,
        threads=threads,
        measurement=measurement,
        complexity=complexity,
        test=test,
        build_s=build_s,
        isolation=isolation,
    )
