"""Loading exported models into ONNX Runtime and OpenVINO, and the memory of a process that deploys them."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import ORT_CUDA_LOAD_FAILURE_LOG, fake_cuda_sessions

from pytest_dnnbench.measure import runtime_memory, runtimes
from pytest_dnnbench.measure.runtime_memory import (
    RuntimeMemoryError,
    make_request,
    measure_runtime_memory,
    memory_of,
    run_child,
)
from pytest_dnnbench.measure.runtimes import (
    RuntimeLoadError,
    RuntimeUnavailableError,
    cuda_provider_problem,
    load,
    load_onnxruntime,
    load_openvino,
    missing_extra,
)

SHAPE = (1, 3, 32, 32)
#: Largest |runtime - torch| accepted, relative to the largest |torch| output, in fp32.
FP32_TOLERANCE = 1e-4


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters print progress lines and warn about torch's internals (warnings are errors here)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, np.ndarray, np.ndarray]:
    """A 2-conv net with random weights, an input and its eager output."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, stride=2, padding=1)
    ).eval()
    x = torch.randn(*SHAPE)
    with torch.no_grad():
        y = model(x)
    return model, x.numpy(), y.numpy()


@pytest.fixture(scope="module")
def onnx_file(tiny: tuple[Any, np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    for name in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(name)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    with quiet(), torch.no_grad():
        torch.onnx.export(tiny[0], (torch.from_numpy(tiny[1]),), str(path), dynamo=True, verbose=False)
    return path


@pytest.fixture(scope="module")
def ir_file(tiny: tuple[Any, np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    ov = pytest.importorskip("openvino")
    path = tmp_path_factory.mktemp("openvino") / "tiny.xml"
    with quiet(), torch.no_grad():
        converted = ov.convert_model(tiny[0], example_input=torch.from_numpy(tiny[1]))
        # fp32 weights: OpenVINO's default (compress_to_fp16=True) stores them in fp16, 2e-4 off here.
        ov.save_model(converted, str(path), compress_to_fp16=False)
    return path


def relative(out: np.ndarray, ref: np.ndarray) -> float:
    assert out.shape == ref.shape
    return float(np.abs(out - ref).max() / np.abs(ref).max())


# -- running ----------------------------------------------------------------------------------------------


def test_onnxruntime_matches_torch(onnx_file: Path, tiny: tuple[Any, np.ndarray, np.ndarray]) -> None:
    _, x, y = tiny
    loaded = load_onnxruntime(onnx_file, device="cpu", threads=1)
    (first,) = loaded.run(x)  # every output, here one
    assert first.dtype == np.float32 and relative(first, y) < FP32_TOLERANCE
    (second,) = loaded.run(2 * x)
    assert relative(first, y) < FP32_TOLERANCE and not np.array_equal(first, second)  # the caller owns each output
    info = loaded.info.to_json()
    assert info["name"] == "onnxruntime" and info["version"] == importlib.import_module("onnxruntime").__version__
    assert info["device"] == "cpu"
    assert info["options"] == {
        "providers": ["CPUExecutionProvider"],
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        "graph_optimization_level": "ORT_ENABLE_ALL",
    }
    loaded.close()
    with pytest.raises(RuntimeError, match="closed"):
        loaded.run(x)


def test_openvino_matches_torch_in_fp32(ir_file: Path, tiny: tuple[Any, np.ndarray, np.ndarray]) -> None:
    _, x, y = tiny
    loaded = load("openvino", ir_file, device="cpu", threads=1, precision="fp32")
    (first,) = loaded.run(x)
    assert first.dtype == np.float32 and relative(first, y) < FP32_TOLERANCE
    (second,) = loaded.run(2 * x)
    # A copy, not the request's output buffer (which the second call overwrote).
    assert relative(first, y) < FP32_TOLERANCE and not np.array_equal(first, second)
    assert loaded.run(np.asfortranarray(x))[0].tobytes() == first.tobytes()  # any memory layout
    info = loaded.info
    assert info.name == "openvino" and info.device == "cpu" and info.version[:4].isdigit()
    assert info.options["INFERENCE_PRECISION_HINT"] == "f32"  # not the bf16 default of CPUs with AMX
    assert info.options["PERFORMANCE_HINT"] == "LATENCY" and info.options["INFERENCE_NUM_THREADS"] == 1
    assert info.options["device"] == "CPU" and "requested_precision_hint" not in info.options
    loaded.close()
    with pytest.raises(RuntimeError, match="closed"):
        loaded.run(x)


def test_openvino_reads_onnx_and_reports_the_precision_it_uses(
    onnx_file: Path, tiny: tuple[Any, np.ndarray, np.ndarray]
) -> None:
    _, x, y = tiny
    loaded = load_openvino(onnx_file, threads=1, precision="bf16")
    options = loaded.info.options
    # bf16 where the CPU computes it; a CPU that cannot says f32 and what was asked.
    assert options["INFERENCE_PRECISION_HINT"] == "bf16" or options["requested_precision_hint"] == "bf16"
    assert relative(loaded.run(x)[0], y) < 5e-2
    loaded.close()


def test_openvino_runs_on_the_cpu_only() -> None:
    with pytest.raises(ValueError, match="OpenVINO's CPU device only, not on 'cuda:0'"):
        load("openvino", Path("model.xml"), device="cuda:0", threads=1, precision="fp32")
    with pytest.raises(ValueError, match="precision 'int8'"):
        load_openvino(Path("model.xml"), threads=1, precision="int8")
    with pytest.raises(ValueError, match="unknown runtime 'tvm'"):
        load("tvm", Path("model.so"), device="cpu", threads=1, precision="fp32")
    with pytest.raises(ValueError, match="threads"):
        load_onnxruntime(Path("model.onnx"), device="cpu", threads=0)
    with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
        load_onnxruntime(Path("model.onnx"), device="mps", threads=1)


# -- errors --------------------------------------------------------------------------------------------------


def test_a_corrupt_or_missing_file_is_a_load_error_with_the_runtimes_message(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    ov_installed = importlib.util.find_spec("openvino") is not None
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(RuntimeLoadError, match=r"onnxruntime could not load .*bad\.onnx: .*INVALID_PROTOBUF"):
        load_onnxruntime(bad, device="cpu", threads=1)
    with pytest.raises(RuntimeLoadError, match="NO_SUCHFILE"):
        load_onnxruntime(tmp_path / "missing.onnx", device="cpu", threads=1)
    if not ov_installed:
        return
    xml = tmp_path / "bad.xml"
    xml.write_text("<net garbage")
    with pytest.raises(RuntimeLoadError) as info:
        load_openvino(xml, threads=1, precision="fp32")
    message = str(info.value)
    # OpenVINO's message without the C++ source locations it starts with, on one line.
    assert "Unable to read the model" in message and "Exception from" not in message and "\n" not in message
    with pytest.raises(RuntimeLoadError, match='Could not open the file: "[^"]*missing.xml"'):
        load_openvino(tmp_path / "missing.xml", threads=1, precision="fp32")


def test_onnxruntime_on_cuda_needs_the_cuda_provider(monkeypatch: pytest.MonkeyPatch, onnx_file: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(RuntimeUnavailableError, match="no CUDA execution provider.*onnxruntime-gpu"):
        load_onnxruntime(onnx_file, device="cuda", threads=1)


def test_onnxruntime_on_cuda_does_not_fall_back_to_the_cpu(monkeypatch: pytest.MonkeyPatch, onnx_file: Path) -> None:
    """The CUDA provider is listed but the session did not start it (its libraries missing): an error."""
    asked = fake_cuda_sessions(monkeypatch, started=["CPUExecutionProvider"])
    with pytest.raises(RuntimeUnavailableError, match="did not start its CUDA execution provider on cuda:1"):
        load_onnxruntime(onnx_file, device="cuda:1", threads=2)
    assert asked["providers"] == [("CUDAExecutionProvider", {"device_id": 1, "use_tf32": 0}), "CPUExecutionProvider"]
    assert asked["enable_fallback"] == 0 and asked["sess_options"].intra_op_num_threads == 2


@pytest.mark.parametrize("tf32", [False, True])
def test_onnxruntime_on_cuda_computes_fp32_as_the_run_says(
    monkeypatch: pytest.MonkeyPatch, onnx_file: Path, tf32: bool
) -> None:
    """CUDA's provider defaults to TF32 (use_tf32 on): the run's --dnn-tf32 is passed, and recorded."""
    asked = fake_cuda_sessions(monkeypatch, started=["CUDAExecutionProvider", "CPUExecutionProvider"])
    loaded = load("onnxruntime", onnx_file, device="cuda:0", threads=1, precision="fp32", tf32=tf32)
    assert asked["providers"][0] == ("CUDAExecutionProvider", {"device_id": 0, "use_tf32": int(tf32)})
    assert loaded.info.options["use_tf32"] is tf32


# -- ONNX Runtime's CUDA provider, proven once per process ---------------------------------------------------


def test_the_cuda_provider_is_proven_by_a_session_of_a_tiny_model_that_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_cuda_sessions(monkeypatch, started=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert cuda_provider_problem("cuda:1", torch_cuda="13.0") is None
    assert asked["providers"] == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert asked["enable_fallback"] == 0 and isinstance(asked["model"], bytes)  # made in memory, no file
    assert cuda_provider_problem("cuda:1") is None and asked["made"] == 1  # once per process and device
    assert cuda_provider_problem("cuda:0") is None and asked["made"] == 2
    with pytest.raises(ValueError, match="cuda or cuda:N"):
        cuda_provider_problem("cpu")


def test_the_tiny_model_of_the_proof_runs_in_the_real_onnxruntime() -> None:
    """The model's bytes are a valid ONNX model that ONNX Runtime loads and computes (y = x @ I) on the CPU."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    session = ort.InferenceSession(runtimes._matmul_model(), providers=["CPUExecutionProvider"])
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 4)
    np.testing.assert_array_equal(session.run(["y"], {"x": x})[0], x)


def test_a_cuda_provider_that_falls_back_to_the_cpu_names_the_library_it_lacks(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """ONNX Runtime makes the session with the CPU's provider only and says why on stderr alone: the message
    names the library, in ONNX Runtime's words, and what to install (a build for torch's CUDA 13)."""
    asked = fake_cuda_sessions(monkeypatch, started=["CPUExecutionProvider"], log=ORT_CUDA_LOAD_FAILURE_LOG)
    problem = cuda_provider_problem("cuda", torch_cuda="13.0")
    assert problem == (
        "onnxruntime-gpu 1.32.0 could not start its CUDA execution provider on cuda:0: it lacks libcublasLt.so.12 "
        '(ONNX Runtime says "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: '
        'cannot open shared object file: No such file or directory"; it requires cuDNN 9.* and CUDA 12.*). '
        "This onnxruntime-gpu is built for CUDA 12.8 and torch here uses CUDA 13.0: install an onnxruntime-gpu "
        "build for CUDA 13, or leave onnxruntime out of --dnn-modes (or run it with --dnn-device=cpu)"
    ).replace("1.32.0", runtimes.import_runtime("onnxruntime").__version__)
    assert "cannot open shared object file" not in capfd.readouterr().err  # read, not shown as well
    assert cuda_provider_problem("cuda:0") == problem and asked["made"] == 1  # the failure is kept too


def test_a_build_for_torchs_cuda_that_lacks_a_library_is_told_to_install_the_libraries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_cuda_sessions(monkeypatch, started=["CPUExecutionProvider"], log=ORT_CUDA_LOAD_FAILURE_LOG, built_for="12.8")
    problem = cuda_provider_problem("cuda", torch_cuda="12.6")
    assert problem is not None and "it lacks libcublasLt.so.12" in problem
    assert problem.endswith(
        'Make the CUDA 12 and cuDNN libraries it needs loadable (pip install "onnxruntime-gpu[cuda,cudnn]" installs '
        "them as packages), or leave onnxruntime out of --dnn-modes (or run it with --dnn-device=cpu)"
    )


def test_a_silent_fallback_without_a_log_still_says_what_started(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda_sessions(monkeypatch, started=["CPUExecutionProvider"], built_for=None)
    problem = cuda_provider_problem("cuda")
    assert problem is not None
    assert "could not start its CUDA execution provider on cuda:0: the session started CPUExecutionProvider only" in (
        problem
    )
    assert "(ONNX Runtime says nothing on stderr about why)" in problem
    assert "leave onnxruntime out of --dnn-modes" in problem


def test_a_cuda_provider_that_starts_but_cannot_compute_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda_sessions(
        monkeypatch,
        started=["CUDAExecutionProvider", "CPUExecutionProvider"],
        run_error="CUDA failure 209: no kernel image is available for execution on the device",
        built_for="13.0",
    )
    problem = cuda_provider_problem("cuda", torch_cuda="13.0")
    assert problem is not None
    assert "started its CUDA execution provider on cuda:0, but a 4x4 matrix product on it failed (CUDA failure " in (
        problem
    )
    assert "Install an onnxruntime-gpu build for the CUDA of torch (13.0) that supports this GPU" in problem


def test_onnxruntime_without_the_cuda_provider_is_told_to_install_onnxruntime_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CPU distribution (the one installed here) lists no CUDA provider: no session is made to learn that."""
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(runtimes, "_CUDA_PROOFS", {})
    monkeypatch.setattr(ort, "InferenceSession", None)  # never called
    problem = cuda_provider_problem("cuda")
    assert problem is not None and "has no CUDA execution provider (it has CPUExecutionProvider)" in problem
    assert "pip install onnxruntime-gpu" in problem and problem.endswith("(or run it with --dnn-device=cpu)")


def test_missing_extra_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    absent = {"onnxscript", "openvino"}

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name in absent else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    onnx = missing_extra("onnxruntime")
    assert onnx is not None and "onnxscript" in onnx and 'pip install "pytest-dnnbench[onnx]"' in onnx
    assert "onnxruntime," not in onnx  # only what is missing is named
    vino = missing_extra("openvino")
    assert vino is not None and vino.endswith('pip install "pytest-dnnbench[openvino]"')
    assert missing_extra("eager") is None and missing_extra("compile") is None
    absent.clear()
    for runtime, modules in runtimes.EXTRA_MODULES.items():
        installed = all(real(m) is not None for m in modules)
        assert (missing_extra(runtime) is None) == installed


def test_a_runtime_that_is_not_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str) -> Any:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(runtimes.importlib, "import_module", refuse)
    with pytest.raises(RuntimeUnavailableError, match=r"No module named .openvino.*pytest-dnnbench\[openvino\]"):
        load_openvino(Path("m.xml"), threads=1, precision="fp32")


def test_the_runtime_modules_never_import_torch() -> None:
    for module in (runtimes, runtime_memory):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {str(node.module) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not any(name == "torch" or name.startswith("torch.") for name in imported), module.__name__


# -- the memory of a deployed process ---------------------------------------------------------------------


def test_the_memory_of_an_onnxruntime_process(onnx_file: Path) -> None:
    # (the exported file has the batch size of the example it was exported with)
    request = make_request("onnxruntime", onnx_file, input_shape=SHAPE, precision="fp32", threads=1, calls=3)
    answer = run_child(request, timeout_s=120)
    assert answer["torch_imported"] is False and "error" not in answer
    assert answer["peak_reset"] is True  # /proc/self/clear_refs works on Linux
    memory, method = memory_of(answer)
    assert set(memory) == {"total", "runtime_floor", "model", "delta", "warmup"}
    total, floor, model, delta = (memory[k] for k in ("total", "runtime_floor", "model", "delta"))
    assert total is not None and floor is not None and model is not None and delta is not None
    assert total >= floor + model and total == floor + model + delta
    assert 20 * 2**20 < floor < total < 2**30  # the runtime and numpy: tens of MiB
    assert method.startswith("direct: peak RSS (VmHWM) of a fresh process running onnxruntime ")
    assert "no torch" in method and "batch 1x3x32x32 float32, 1 thread(s)" in method


def test_the_memory_of_an_openvino_process(ir_file: Path) -> None:
    memory, method = measure_runtime_memory("openvino", ir_file, input_shape=SHAPE, precision="fp32", threads=1)
    total, floor, model = memory["total"], memory["runtime_floor"], memory["model"]
    assert total is not None and floor is not None and model is not None
    assert total >= floor + model
    assert method.startswith("direct: ") and "openvino" in method and "loading its CPU plugin" in method


def test_a_failing_child_is_a_runtime_memory_error(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    with pytest.raises(RuntimeMemoryError, match=r"RuntimeLoadError: onnxruntime could not load .*NO_SUCHFILE"):
        measure_runtime_memory("onnxruntime", tmp_path / "missing.onnx", input_shape=SHAPE, precision="fp32", threads=1)


def test_a_child_past_its_timeout_is_killed(onnx_file: Path) -> None:
    request = make_request("onnxruntime", onnx_file, input_shape=SHAPE, precision="fp32", threads=1)
    with pytest.raises(RuntimeMemoryError, match="timed out after 0.05 s"):
        run_child(request, timeout_s=0.05)


def test_without_proc_nothing_is_measured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("no child process without /proc")

    monkeypatch.setattr(runtime_memory, "STATUS_PATH", str(tmp_path / "no-proc" / "status"))
    monkeypatch.setattr(subprocess, "run", no_child)
    memory, method = measure_runtime_memory(
        "openvino", tmp_path / "m.xml", input_shape=SHAPE, precision="fp32", threads=1
    )
    assert set(memory.values()) == {None} and {"total", "runtime_floor", "model", "delta"} <= set(memory)
    assert method.startswith("not measured:") and "needs Linux /proc" in method


def test_memory_figures_below_zero_are_clamped_and_said() -> None:
    answer = {
        "readings": {"start": 10, "runtime_floor": 100, "loaded": 90, "warm": 95, "peak": 120},
        "peak_reset": False,
        "runtime": {"name": "onnxruntime", "version": "1.0", "device": "cpu", "options": {}},
        "calls": 10,
        "threads": 2,
        "input_shape": [1, 3, 8, 8],
    }
    memory, method = memory_of(answer)
    assert memory == {"total": 120, "runtime_floor": 100, "model": 0, "delta": 30, "warmup": 5}
    assert "model below 0 (memory returned to the system) counted as 0" in method
    assert "NOT reset" in method and "transient peaks" in method
