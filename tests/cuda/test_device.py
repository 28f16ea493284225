"""Tests of device resolution and precision checks (:mod:`pytest_dnnbench.device`) with a fake probe."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.device import DeviceError, TorchProbe, check_precision, gpu_sharing_problem, resolve_device


def probe(gpus: int | None, cpu_ok: bool = True) -> TorchProbe:
    """``gpus=None``: no CUDA at all; else CUDA available with that many devices."""
    return TorchProbe(
        cuda_available=lambda: gpus is not None,
        device_count=lambda: gpus or 0,
        torch_version=lambda: "2.99.0+cpu (CUDA build: none)",
        cpu_supports=lambda precision: cpu_ok,
    )


def exploding() -> TorchProbe:
    def boom(*args: object) -> bool:
        raise AssertionError("the probe must not be asked")

    return TorchProbe(cuda_available=boom, device_count=boom, torch_version=boom, cpu_supports=boom)


# -- resolve_device --------------------------------------------------------------------------


def test_cpu_is_cpu_without_asking_torch() -> None:
    assert resolve_device("cpu", exploding()) == "cpu"
    assert resolve_device("cpu", probe(4)) == "cpu"


def test_auto_without_cuda_is_cpu() -> None:
    assert resolve_device("auto", probe(None)) == "cpu"


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_auto_and_cuda_with_cuda_are_the_first_gpu(requested: str) -> None:
    assert resolve_device(requested, probe(1)) == "cuda:0"
    assert resolve_device(requested, probe(4)) == "cuda:0"


def test_cuda_index_in_range() -> None:
    assert resolve_device("cuda:0", probe(2)) == "cuda:0"
    assert resolve_device("cuda:1", probe(2)) == "cuda:1"


@pytest.mark.parametrize(("requested", "gpus"), [("cuda:2", 2), ("cuda:1", 1), ("cuda:7", 4)])
def test_cuda_index_out_of_range_names_the_count(requested: str, gpus: int) -> None:
    with pytest.raises(DeviceError) as exc:
        resolve_device(requested, probe(gpus))
    msg = str(exc.value)
    assert requested in msg
    assert f"{gpus} CUDA device(s)" in msg
    assert f"0 to {gpus - 1}" in msg


@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_gpu_says_how_to_fix_it(requested: str) -> None:
    with pytest.raises(DeviceError) as exc:
        resolve_device(requested, probe(None))
    msg = str(exc.value)
    assert f"--dnn-device={requested}" in msg
    assert "--dnn-device=cpu" in msg
    assert "2.99.0+cpu" in msg  # which torch build was found
    assert isinstance(exc.value, ValueError)


def test_worker_index_round_robin() -> None:
    assert resolve_device("cuda", probe(2), worker_index=3) == "cuda:1"
    assert resolve_device("auto", probe(2), worker_index=2) == "cuda:0"
    assert resolve_device("cuda", probe(1), worker_index=5) == "cuda:0"
    # An explicit index is never moved; no GPU means cpu whatever the worker.
    assert resolve_device("cuda:0", probe(2), worker_index=3) == "cuda:0"
    assert resolve_device("auto", probe(None), worker_index=3) == "cpu"


@given(gpus=st.integers(1, 16), worker=st.integers(0, 200), requested=st.sampled_from(["auto", "cuda"]))
def test_worker_index_round_robin_property(gpus: int, worker: int, requested: str) -> None:
    assert resolve_device(requested, probe(gpus), worker_index=worker) == f"cuda:{worker % gpus}"


# -- check_precision -------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda:0", "cuda:3"])
def test_fp32_is_always_fine(device: str) -> None:
    check_precision("fp32", device, exploding())


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(DeviceError) as exc:
        check_precision("fp16", "cpu", probe(None, cpu_ok=True))
    msg = str(exc.value)
    assert "--dnn-precision=fp16" in msg
    assert "--dnn-precision=fp32" in msg and "--dnn-device=cuda" in msg


def test_bf16_on_cpu_depends_on_the_cpu() -> None:
    check_precision("bf16", "cpu", probe(None, cpu_ok=True))
    with pytest.raises(DeviceError) as exc:
        check_precision("bf16", "cpu", probe(None, cpu_ok=False))
    assert "--dnn-precision=bf16" in str(exc.value) and "fp32" in str(exc.value)


def test_bf16_probe_is_asked_about_bf16() -> None:
    asked: list[str] = []
    p = TorchProbe(lambda: False, lambda: 0, lambda: "x", lambda prec: asked.append(prec) or True)
    check_precision("bf16", "cpu", p)
    assert asked == ["bf16"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_on_cuda_is_not_refused(precision: str) -> None:
    check_precision(precision, "cuda:0", exploding())


# -- gpu_sharing_problem (issue item 6: xdist workers sharing one GPU) ----------------------------


@pytest.mark.parametrize(
    ("workers", "device", "gpus"),
    [
        (0, "cuda", 1),
        (1, "cuda", 1),
        (1, "cuda:0", 4),  # a single process never shares
        (4, "cpu", 0),
        (4, "cpu", 2),  # CPU runs
        (4, "auto", 0),  # auto without a GPU runs on the CPU
        (2, "cuda", 2),
        (2, "auto", 4),
        (8, "cuda", 8),  # at most one worker per GPU
    ],
)
def test_no_sharing(workers: int, device: str, gpus: int) -> None:
    assert gpu_sharing_problem(workers, device, gpus) is None


@pytest.mark.parametrize(("workers", "device", "gpus"), [(2, "cuda", 1), (4, "auto", 2), (3, "cuda", 2)])
def test_more_workers_than_gpus(workers: int, device: str, gpus: int) -> None:
    msg = gpu_sharing_problem(workers, device, gpus)
    assert msg is not None
    assert "--dnn-allow-shared-gpu" in msg
    assert f"{workers} pytest-xdist workers" in msg and f"{gpus} visible" in msg
    assert f"-n {gpus}" in msg


@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_every_worker_pinned_to_one_named_gpu(gpus: int) -> None:
    msg = gpu_sharing_problem(2, "cuda:1", gpus)
    assert msg is not None
    assert "--dnn-device=cuda:1" in msg and "same GPU" in msg
    assert "--dnn-allow-shared-gpu" in msg and "--dnn-device=cuda" in msg


@given(
    workers=st.integers(0, 64),
    gpus=st.integers(0, 16),
    device=st.sampled_from(["cpu", "auto", "cuda", "cuda:0", "cuda:3"]),
)
def test_sharing_property(workers: int, gpus: int, device: str) -> None:
    """A problem exactly when two workers would land on one GPU under resolve_device's round robin."""
    msg = gpu_sharing_problem(workers, device, gpus)
    if workers <= 1 or device == "cpu" or (device in ("auto", "cuda") and gpus == 0):
        assert msg is None
    elif device.startswith("cuda:"):
        assert msg is not None
    else:
        landed = [resolve_device(device, probe(gpus), worker_index=w) for w in range(workers)]
        assert (msg is not None) == (len(set(landed)) < len(landed))
