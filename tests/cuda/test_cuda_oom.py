"""Out of memory from the CUDA libraries (issue item 10): their allocation failures skip, other errors do not.

The messages are those torch raises (``RuntimeError``, or its subclass
``torch.AcceleratorError``, with the library's status name).
"""

from __future__ import annotations

import pytest

from pytest_dnnbench.oom import describe, is_out_of_memory

LIBRARY_OOM = [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasLtMatmul(...)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "cuDNN error: CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
    "cuDNN Frontend error: [cudnn_frontend] Error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED",
    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED",
    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR (failed to allocate workspace memory)",
    "CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`: not enough memory",
    "cusolver error: CUSOLVER_STATUS_ALLOC_FAILED, when calling `cusolverDnCreate(handle)`",
]

NOT_OOM = [
    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR",
    "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input.",
    "CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`",
    "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, opb, m, n, k, ...)`",
    "CUDA error: an illegal memory access was encountered",
    "cuDNN error: CUDNN_STATUS_BAD_PARAM",
]


@pytest.mark.parametrize("message", LIBRARY_OOM)
def test_library_allocation_failures_are_out_of_memory(message: str) -> None:
    assert is_out_of_memory(RuntimeError(message))


@pytest.mark.parametrize("message", NOT_OOM)
def test_other_library_errors_are_not(message: str) -> None:
    assert not is_out_of_memory(RuntimeError(message))


def test_only_runtime_errors_count() -> None:
    assert not is_out_of_memory(ValueError("CUBLAS_STATUS_ALLOC_FAILED"))


def test_accelerator_error_with_a_library_status() -> None:
    torch = pytest.importorskip("torch")
    accel = getattr(torch, "AcceleratorError", None)
    if accel is None:
        pytest.skip("this torch has no AcceleratorError")
    try:
        exc = accel("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
    except TypeError:
        pytest.skip("AcceleratorError cannot be built from Python here")
    assert is_out_of_memory(exc)
    assert describe(exc).startswith("AcceleratorError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED")
