"""The fingerprint of a record (:mod:`pytest_dnnbench.store.fingerprint`): what makes two figures comparable."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.baseline_store import record_key
from pytest_dnnbench.record import Record
from pytest_dnnbench.store.fingerprint import FIELDS, VERSION, comparability, fingerprint


def record(**changes: Any) -> dict[str, Any]:
    """A record's JSON as the results file holds it (CPU, eager, fp32), with ``changes`` applied."""
    data: dict[str, Any] = {
        "model": "resnet18",
        "paper_name": "ResNet-18",
        "source": "torchvision",
        "device": "cpu",
        "device_name": "AMD EPYC 7763 64-Core Processor",
        "precision": "fp32",
        "mode": "eager",
        "channels_last": False,
        "threads": 2,
        "seed": 0,
        "batch_size": 8,
        "input_size": [3, 224, 224],
        "latency_ms": {"median": 180.0, "n": 12, "samples": [180.0] * 12, "ci_median": [178.0, 182.0]},
        "per_image_ms": 22.5,
        "fps": 44.4,
        "memory_bytes": {"total": 700 * 2**20, "delta": 40 * 2**20},
        "macs": 1_814_000_000,
        "flops": 3_628_000_000,
        "params": 11_689_512,
        "accuracy": {"measured": None, "reference": None, "reason": "not evaluated"},
        "checks": [],
        "outcome": "passed",
        "reason": None,
        "test": "pytest_dnnbench/suite/test_models.py::test_model[resnet18-bs8]",
    }
    data.update(changes)
    return data


def cuda_record(**changes: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "tf32": False}
    return record(**{**settings, "cudnn_benchmark": True, **changes})


def shuffled(data: Any, rng: random.Random) -> Any:
    """``data`` with the keys of every object in another order."""
    if isinstance(data, dict):
        items = list(data.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(data, list):
        return [shuffled(v, rng) for v in data]
    return data


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
#: Keys of a record that say nothing about comparability: measured figures, checks, what other plugins add...
IRRELEVANT = (
    "paper_name",
    "seed",
    "latency_ms",
    "per_image_ms",
    "fps",
    "memory_bytes",
    "memory_method",
    "load",
    "energy",
    "gpu_state",
    "macs",
    "flops",
    "params",
    "checks",
    "outcome",
    "reason",
    "test",
    "baseline",
    "tolerances",
    "extra",
    "isolation",
    "build_s",
    "a_key_of_a_later_version",
)


def test_the_fingerprint_is_a_sha256_of_the_documented_fields() -> None:
    fp = fingerprint(record())
    assert len(fp) == 64 and int(fp, 16) >= 0
    fields = comparability(record())
    assert tuple(fields) == FIELDS and fields["version"] == VERSION
    assert fields == {
        "version": VERSION,
        "model": "resnet18",
        "source": "torchvision",
        "weights": "as-built",
        "batch_size": 8,
        "input_size": [3, 224, 224],
        "mode": "eager",
        "precision": "fp32",
        "threads": 2,
        "channels_last": False,
        "tf32": None,
        "cudnn_benchmark": None,
        "platform": "cpu-amd-epyc-7763-64-core-processor-2t-fp32-eager",
    }


@pytest.mark.parametrize("make", [record, cuda_record], ids=["cpu", "cuda"])
def test_the_platform_part_is_the_baseline_files_platform_key(make: Any) -> None:
    data = make()
    assert comparability(data)["platform"] == record_key(Record.from_json(data))


@given(seed=st.integers(0, 2**32), extra=st.dictionaries(st.sampled_from(IRRELEVANT), JSON, max_size=6))
def test_key_order_and_irrelevant_fields_leave_the_fingerprint_alone(seed: int, extra: dict[str, Any]) -> None:
    base = record()
    other = shuffled({**base, **extra}, random.Random(seed))
    assert fingerprint(other) == fingerprint(base)


#: One change of each comparability field (and the environment's part of the platform).
CHANGES: dict[str, dict[str, Any]] = {
    "model": {"model": "resnet34"},
    "source": {"source": "timm"},
    "weights": {"accuracy": {"weights": "pretrained", "weights_file": "/cache/resnet18-f37072fd.pth"}},
    "batch_size": {"batch_size": 16},
    "input_size": {"input_size": [3, 256, 256]},
    "mode": {"mode": "compile"},
    "precision": {"precision": "bf16"},
    "threads": {"threads": 4},
    "channels_last": {"channels_last": True},
    "device_name": {"device_name": "Intel Xeon"},
    "device": {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3"},
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_change_of_a_comparability_field_changes_the_fingerprint(field: str) -> None:
    assert fingerprint(record(**CHANGES[field])) != fingerprint(record())


@pytest.mark.parametrize("change", [{"tf32": True}, {"cudnn_benchmark": False}, {"channels_last": True}])
def test_the_cuda_settings_are_part_of_it_on_cuda(change: dict[str, Any]) -> None:
    assert fingerprint(cuda_record(**change)) != fingerprint(cuda_record())


@given(
    field=st.sampled_from(sorted(CHANGES)),
    seed=st.integers(0, 2**32),
    extra=st.dictionaries(st.sampled_from(IRRELEVANT), JSON, max_size=4),
)
def test_only_the_comparability_fields_count(field: str, seed: int, extra: dict[str, Any]) -> None:
    """Irrelevant noise and key order on both sides: still equal where the fields are, apart where one is not."""
    rng = random.Random(seed)
    a = shuffled({**record(), **extra}, rng)
    b = shuffled({**record(**CHANGES[field]), **extra}, rng)
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(shuffled(copy.deepcopy(a), rng))


def test_a_missing_key_reads_as_the_records_default() -> None:
    explicit = record()
    implicit = {k: v for k, v in explicit.items() if k not in ("device", "precision", "mode", "channels_last")}
    assert fingerprint(implicit) == fingerprint(explicit)


def test_the_weights_are_named_by_their_file_not_its_folder() -> None:
    def weights(kind: str | None, file: str | None = None) -> str:
        accuracy: dict[str, Any] = {"measured": None, "reference": None}
        if kind is not None:
            accuracy["weights"] = kind
        if file is not None:
            accuracy["weights_file"] = file
        return fingerprint(record(accuracy=accuracy))

    as_built = weights(None)
    assert weights("random") == weights("factory") == as_built  # the builder's own weights, seeded
    here = weights("pretrained", "/root/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth")
    there = weights("pretrained", "/home/ci/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth")
    assert here == there != as_built
    assert weights("pretrained", "/x/resnet18-00000000.pth") != here
    assert weights("file", "/x/resnet18-f37072fd.pth") != here


def test_the_environment_gives_the_device_name_and_threads_where_the_record_lacks_them() -> None:
    bare = {k: v for k, v in record().items() if k not in ("device_name", "threads")}
    env = {"device_name": "AMD EPYC 7763 64-Core Processor", "threads": 2}
    assert fingerprint(bare, env) == fingerprint(record())
    assert fingerprint(bare) != fingerprint(record())


def test_wrong_kinds_of_values_do_not_raise() -> None:
    odd = record(batch_size="8", threads=True, input_size="3x224", accuracy=[1], channels_last="yes", model=None)
    assert len(fingerprint(odd)) == 64
