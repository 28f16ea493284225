"""Shards for fleets and clusters (``--dnn-shard=K/N``, ``--dnn-run-group``): pure, no pytest, no torch.

A shard is a deterministic share of the selected benchmark tests: whole models (every batch size and mode of a
model runs in the same shard, which builds it once), balanced by an estimated cost. Every process that collects
the same tests makes the same choice -- the shards of a fleet, and the pytest-xdist workers of one shard -- since
the choice depends on nothing but the models, their costs and N: not on the order of the tests, the hash seed or
the machine.

- :func:`parse_shard`: ``K/N`` (1-based), ``auto`` (a Slurm array task: K and N from ``SLURM_ARRAY_*``) or
  ``auto/N`` (a Kubernetes Indexed Job: K from ``JOB_COMPLETION_INDEX``, 0-based; N from the option).
- :func:`assign`: models with their costs -> the shard of each (greedy, largest first, ties by name).
- :func:`model_weight`: one image's work of a model: the paper's Titan Xp time per image at batch 1 (Table 1(a);
  the transcript keeps no MACs), else a default scaled by the input's pixels.
- :func:`take`: a collection's tests split into this shard's and the others' (what the session deselects).
- :func:`stamp`: the shard and the run group written into the results file's environment (what ``merge`` checks).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from .jsontypes import JsonObject
from .nodeids import model_of, params_of
from .problems import UsageProblem, bad_value

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "MAX_SHARDS",
    "OPTION",
    "RUN_GROUP_OPTION",
    "Shard",
    "assign",
    "collected_line",
    "model_weight",
    "parse_run_group",
    "parse_shard",
    "stamp",
    "take",
]

#: The option's flag, as messages name it.
OPTION = "--dnn-shard"
RUN_GROUP_OPTION = "--dnn-run-group"
#: Most shards accepted (far more than any fleet; keeps absurd values out).
MAX_SHARDS = 10_000
#: Longest run group accepted (the store's column holds 255 characters).
MAX_RUN_GROUP = 200

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based); ``source`` says where the numbers came from (for messages)."""

    index: int
    count: int
    source: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# -- the option --------------------------------------------------------------------------------------------

_FIX = (
    "Give K/N with 1 <= K <= N (e.g. --dnn-shard=2/3), auto in a Slurm array job, or auto/N in a Kubernetes "
    "Indexed Job (N = its completions)"
)
_NUMBER = re.compile(r"[0-9]{1,9}")


def parse_shard(text: str | None, environ: Mapping[str, str], option: str = OPTION) -> Shard | None:
    """The shard ``text`` names (None: no sharding, the option not given).

    - ``K/N``: shard K of N, 1-based (``1/3``, ``2/3``, ``3/3``);
    - ``auto``: a Slurm array task: K from ``SLURM_ARRAY_TASK_ID`` counted from ``SLURM_ARRAY_TASK_MIN`` (in steps
      of ``SLURM_ARRAY_TASK_STEP``), N from ``SLURM_ARRAY_TASK_COUNT`` (else from ``SLURM_ARRAY_TASK_MAX``);
    - ``auto/N``: the same, N given: a Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX`` (0-based: index 0 is
      shard 1), or a Slurm array task whose count must then be N.

    Raises :class:`~.problems.UsageProblem` (``--dnn-shard=VALUE: why. Fix``)."""
    if text is None:
        return None
    value = text.strip()
    lowered = value.lower()
    if not value:
        raise bad_value(option, text, "no shard given", _FIX)
    if lowered == "auto" or lowered.startswith("auto/"):
        count = _count(text, value[5:], option) if "/" in value else None
        return _auto(text, count, environ, option)
    parts = value.split("/")
    if len(parts) != 2 or not all(_NUMBER.fullmatch(p.strip()) for p in parts):
        raise bad_value(option, text, "not K/N, auto or auto/N", _FIX)
    count = _count(text, parts[1], option)
    index = int(parts[0])
    if not 1 <= index <= count:
        raise bad_value(option, text, f"shard {index} is not between 1 and {count}", _FIX + " (shards count from 1)")
    return Shard(index, count, f"{option}={value}")


def _count(text: str, part: str, option: str) -> int:
    part = part.strip()
    if not _NUMBER.fullmatch(part):
        raise bad_value(option, text, "the number of shards is not a whole number", _FIX)
    count = int(part)
    if not 1 <= count <= MAX_SHARDS:
        raise bad_value(option, text, f"the number of shards must be from 1 to {MAX_SHARDS:,}", _FIX)
    return count


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise UsageProblem(f"{name}={raw[:40]!r} is not a whole number: {OPTION}=auto cannot read it")
    return int(raw)


def _auto(text: str, count: int | None, environ: Mapping[str, str], option: str) -> Shard:
    try:
        task = _env_int(environ, "SLURM_ARRAY_TASK_ID")
        if task is not None:
            return _slurm(text, task, count, environ, option)
        job_index = _env_int(environ, "JOB_COMPLETION_INDEX")
    except UsageProblem as exc:
        raise bad_value(option, text, str(exc), "Give K/N instead") from None
    if job_index is not None:
        if count is None:
            raise bad_value(
                option,
                text,
                f"JOB_COMPLETION_INDEX={job_index} gives this pod's index, not the number of shards",
                "Give auto/N with N = the Indexed Job's completions (e.g. --dnn-shard=auto/4)",
            )
        if job_index >= count:
            raise bad_value(
                option,
                text,
                f"JOB_COMPLETION_INDEX={job_index} is not below the {count} shards given (the index counts from 0)",
                "Give auto/N with N = the Indexed Job's completions",
            )
        return Shard(job_index + 1, count, f"JOB_COMPLETION_INDEX={job_index}")
    raise bad_value(
        option,
        text,
        "neither SLURM_ARRAY_TASK_ID (a Slurm array job) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set",
        "Run it as a task of one, or give K/N (e.g. --dnn-shard=2/3)",
    )


def _slurm(text: str, task: int, count: int | None, environ: Mapping[str, str], option: str) -> Shard:
    first = _env_int(environ, "SLURM_ARRAY_TASK_MIN")
    last = _env_int(environ, "SLURM_ARRAY_TASK_MAX")
    step = _env_int(environ, "SLURM_ARRAY_TASK_STEP") or 1
    tasks = _env_int(environ, "SLURM_ARRAY_TASK_COUNT")
    fix = "Submit a plain range (sbatch --array=1-N), or give K/N"
    if first is None:
        raise bad_value(option, text, f"SLURM_ARRAY_TASK_ID={task} without SLURM_ARRAY_TASK_MIN", fix)
    if tasks is None and last is not None:
        tasks = (last - first) // step + 1
    if tasks is None:
        if count is None:
            raise bad_value(
                option, text, "neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is set", "Give auto/N or K/N"
            )
        tasks = count
    offset = task - first
    if offset < 0 or offset % step or offset // step >= tasks:
        raise bad_value(
            option,
            text,
            f"SLURM_ARRAY_TASK_ID={task} is not one of {tasks} tasks from {first} in steps of {step} "
            "(an array given as a list, or with a % limit only, cannot be read as shards)",
            fix,
        )
    if count is not None and count != tasks:
        raise bad_value(
            option, text, f"the Slurm array has {tasks} tasks, not {count}", "Give auto, or auto/" + str(tasks)
        )
    if tasks > MAX_SHARDS:
        raise bad_value(option, text, f"the Slurm array has {tasks} tasks, more than {MAX_SHARDS:,}", fix)
    return Shard(offset // step + 1, tasks, f"SLURM_ARRAY_TASK_ID={task}")


def parse_run_group(text: str, option: str = RUN_GROUP_OPTION) -> str:
    """A run group as given: printable, at most :data:`MAX_RUN_GROUP` characters, not empty."""
    value = text.strip()
    if not value:
        raise bad_value(
            option, text, "no run group given", "Name the run (e.g. nightly-2024-05-01), or leave the option out"
        )
    if len(value) > MAX_RUN_GROUP:
        raise bad_value(option, text, f"longer than {MAX_RUN_GROUP} characters", "Give a shorter name")
    if not value.isprintable():
        raise bad_value(option, text, "holds control characters", "Give a name of printable characters")
    return value


# -- the assignment ----------------------------------------------------------------------------------------


def assign(models_with_cost: Mapping[str, float] | Iterable[tuple[str, float]], n: int) -> dict[str, int]:
    """Each model's shard, 1 to ``n``: the largest cost first (ties by name), each to the shard that holds the
    least so far (ties: the lowest index). Whole models; deterministic; the largest shard holds at most the best
    possible plus the largest cost. A model named twice: its costs are added."""
    if n < 1:
        raise ValueError(f"the number of shards must be at least 1, not {n}")
    costs: dict[str, float] = {}
    pairs = models_with_cost.items() if isinstance(models_with_cost, Mapping) else models_with_cost
    for name, cost in pairs:
        if not cost >= 0:
            raise ValueError(f"the cost of {name!r} must be zero or more, not {cost!r}")
        costs[name] = costs.get(name, 0) + cost
    loads = [0.0] * n
    out: dict[str, int] = {}
    for name in sorted(costs, key=lambda m: (-costs[m], m)):
        k = min(range(n), key=lambda i: (loads[i], i))
        loads[k] += costs[name]
        out[name] = k + 1
    return out


#: The paper's models' weight where the registry knows none better: the median of theirs (µs).
DEFAULT_WEIGHT = 8_900
#: Pixels of the image the default weight is for (224 x 224).
DEFAULT_PIXELS = 224 * 224


@functools.lru_cache(maxsize=1)
def _paper_weights() -> dict[str, int]:
    """Short name -> the paper's Titan Xp time per image at batch 1, in µs (a cell every row has)."""
    from .paperdata import PAPER_TO_NAME, TITAN_XP_MS

    out: dict[str, int] = {}
    for paper, row in TITAN_XP_MS.items():
        first = row[0]
        if first is not None:
            out[PAPER_TO_NAME[paper]] = max(1, round(first * 1000))
    return out


def model_weight(name: str, input_size: Sequence[int] | None = None) -> int:
    """One image's estimated work of model ``name`` (a whole number, so that sums are exact on every machine):
    the paper's Titan Xp time per image at batch 1 in µs; for another model :data:`DEFAULT_WEIGHT` scaled by the
    pixels of its input (``input_size``: channels, height, width)."""
    known = _paper_weights().get(name)
    if known is not None:
        return known
    if input_size is not None and len(input_size) >= 2:
        pixels = int(input_size[-1]) * int(input_size[-2])
        return max(1, (DEFAULT_WEIGHT * pixels + DEFAULT_PIXELS // 2) // DEFAULT_PIXELS)
    return DEFAULT_WEIGHT


# -- a collection split ------------------------------------------------------------------------------------


def _cell(item: object) -> tuple[str | None, int]:
    """(the model a test benchmarks, its batch size: 1 where it has none) from its parameters."""
    params = params_of(item)
    model = params.get("dnn_model")
    batch = params.get("dnn_batch_size")
    try:
        size = max(1, int(str(batch))) if batch is not None else 1
    except ValueError:
        size = 1
    return (str(model) if model is not None else None), size


def take(
    items: Sequence[T],
    shard: Shard,
    registry: Registry | None,
    deselected: Callable[..., object] | None = None,
) -> tuple[list[T], str]:
    """This shard's tests of ``items`` and the line that says so; the others go to ``deselected(items=...)``
    (pytest's ``pytest_deselected`` hook). Each model's cost: its weight times the batch sizes of its tests
    (every mode counted); a test that benchmarks no model (no ``dnn_model`` parameter) is no shard's: every
    shard runs it."""
    cells = [_cell(item) for item in items]
    sums: dict[str, int] = {}
    for model, size in cells:
        if model is not None:
            sums[model] = sums.get(model, 0) + size
    costs = {m: model_weight(m, _input_size(registry, m)) * s for m, s in sums.items()}
    where = assign(costs, shard.count)
    kept: list[T] = []
    dropped: list[T] = []
    for item, (model, _) in zip(items, cells, strict=True):
        (dropped if model is not None and where[model] != shard.index else kept).append(item)
    if dropped and deselected is not None:
        deselected(items=dropped)
    mine = sorted(m for m, k in where.items() if k == shard.index)
    tests = sum(1 for model, _ in cells if model is not None and where[model] == shard.index)
    others = len(where) - len(mine)
    line = f"dnnbench: shard {shard}: {_tests_of(tests, mine)}"
    unsharded = sum(1 for model, _ in cells if model is None)
    if unsharded:
        line += f"; {unsharded} test(s) that benchmark no model run in every shard"
    line += f"; {len(dropped)} test(s) of {others} model(s) left to the other shards"
    return kept, line + (f" ({shard.source})" if shard.source and not shard.source.startswith("--") else "")


def _input_size(registry: Registry | None, name: str) -> tuple[int, int, int] | None:
    return registry.get(name).input_size if registry is not None and name in registry else None


def _tests_of(tests: int, models: Sequence[str]) -> str:
    names = ", ".join(models[:8]) + (f", ... ({len(models) - 8} more)" if len(models) > 8 else "")
    return f"{tests} test(s) of {len(models)} model(s)" + (f" ({names})" if models else "")


def collected_line(shard: Shard | None, ids: Sequence[str], names: Iterable[str]) -> str | None:
    """At a pytest-xdist controller (which does not collect): the shard line from the test ids a worker
    collected, this shard's only (None: no sharding)."""
    if shard is None:
        return None
    known = list(names)
    models = sorted({m for m in (model_of(nodeid, known) for nodeid in ids) if m is not None})
    return f"dnnbench: shard {shard}: {_tests_of(len(ids), models)}"


def stamp(environment: JsonObject | None, shard: Shard | None, run_group: str | None) -> JsonObject | None:
    """``environment`` with the shard (``"2/3"``) and the run group written into it (in place; a new one where
    there is none yet and something to write, so that a shard that ran no test says which it was): what
    ``python -m pytest_dnnbench merge`` checks the files against."""
    if shard is None and run_group is None:
        return environment
    env: JsonObject = environment if environment is not None else {}
    if shard is not None:
        env["shard"] = str(shard)
    if run_group is not None:
        env["run_group"] = run_group
    return env
