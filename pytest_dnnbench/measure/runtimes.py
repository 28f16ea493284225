"""Loading an exported model into ONNX Runtime or OpenVINO and running it (no torch, no pytest).

The torch side (:mod:`.modes`) exports or converts a model to a file; this module loads that file
into a runtime and runs it on numpy arrays, as a deployed program that has neither torch nor this
plugin's measuring code would. Nothing here imports torch, not even lazily: the child process of
:mod:`.runtime_memory` loads models with it and must hold only the runtime.

- :func:`load_onnxruntime`: an ``.onnx`` file in an ``InferenceSession`` (``intra_op_num_threads``
  = ``threads``, ``inter_op_num_threads`` = 1, ``ORT_ENABLE_ALL``; the CPU execution provider, or
  CUDA's then the CPU's on a CUDA device, with no silent fallback from CUDA to the CPU).
- :func:`load_openvino`: an OpenVINO IR (``.xml`` with its ``.bin``) or an ``.onnx`` file, compiled
  for OpenVINO's ``CPU`` device with ``PERFORMANCE_HINT=LATENCY``, ``INFERENCE_NUM_THREADS`` =
  ``threads`` and ``INFERENCE_PRECISION_HINT`` from the benchmark's precision. The hint is always
  set: OpenVINO's CPU plugin otherwise computes an fp32 model in bf16 on CPUs with AMX (about 4e-3
  relative difference on a small convolutional net), which an fp32 benchmark must not do.
- :func:`load` picks one by name; :func:`missing_extra` says which pip extra a runtime needs.
- :func:`cuda_provider_problem`: whether ONNX Runtime's CUDA execution provider really starts in this
  process, proven once per process and device with a session of a tiny model (``get_available_providers()``
  lists what the wheel was built with, not what can load: a provider whose CUDA libraries are missing is
  left out of the session silently, and only ONNX Runtime's log on stderr names the library).

A :class:`LoadedRuntime`'s ``run`` costs what a deployed program's call costs, nothing more (timed
on a 2-core machine, a 2-conv net on 1x3x32x32, one thread, best of 15 x 500 calls
interleaved):

- ONNX Runtime: ``session.run(outputs, {input: x})`` with the names looked up once (53 us).
  IOBinding with a preallocated output buffer is no faster once the output is copied out of the
  reused buffer (54 us); binding the input once as well saves 3 us but cannot take a new array
  per call, so it is not used.
- OpenVINO: one ``InferRequest``; each call wraps ``x`` in a ``Tensor`` that shares its memory
  (``shared_memory=True``, no copy of the batch), sets it as the input and infers (65-70 us).
  ``req.infer({0: x})`` copies the batch into the request and converts the dictionary on every
  call (105-130 us). The output is copied out of the request's buffer (about 1 us for 1000
  logits): a view would be overwritten by the next call and would outlive :meth:`close`.

Errors loading a file (missing, corrupt, not a model) are a :class:`RuntimeLoadError` that gives
the runtime's own message; a runtime that is not installed, or ONNX Runtime without its CUDA
execution provider on a CUDA device, is a :class:`RuntimeUnavailableError` (a subclass).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

import numpy
from numpy.typing import NDArray

__all__ = [
    "OPENVINO_PRECISION_HINTS",
    "RUNTIME_EXTRAS",
    "EXTRA_MODULES",
    "LoadedRuntime",
    "RuntimeInfo",
    "RuntimeLoadError",
    "RuntimeUnavailableError",
    "cuda_provider_problem",
    "import_runtime",
    "load",
    "load_onnxruntime",
    "load_openvino",
    "missing_extra",
]

#: The pip extra (``pytest-dnnbench[<extra>]``) each runtime needs.
RUNTIME_EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}
#: The modules each runtime's mode imports (ONNX Runtime's mode exports with torch's ONNX exporter,
#: which needs onnx and onnxscript).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnx", "onnxscript", "onnxruntime"),
    "openvino": ("openvino",),
}
#: The benchmark's precision -> OpenVINO's ``INFERENCE_PRECISION_HINT``.
OPENVINO_PRECISION_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}

_T = TypeVar("_T")


class RuntimeLoadError(Exception):
    """The runtime could not load (or compile) the file; the message gives the runtime's own words."""


class RuntimeUnavailableError(RuntimeLoadError):
    """The runtime, or the part of it the device needs, is not installed here; the message says what to install."""


@dataclass(frozen=True)
class RuntimeInfo:
    """What runs the model: the runtime's name and version, the device, and the options in effect.

    ``options`` holds plain JSON values; for OpenVINO they are read back from the compiled model
    (what it uses, not only what was asked).
    """

    name: str
    version: str
    device: str
    options: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The record's ``runtime`` object."""
        return {"name": self.name, "version": self.version, "device": self.device, "options": dict(self.options)}


class LoadedRuntime(Protocol):
    """A model loaded into a runtime: ``run`` a batch, ``close`` to free it."""

    info: RuntimeInfo

    def run(self, x: NDArray[Any]) -> list[NDArray[Any]]:
        """Every output of the model for the batch ``x`` (in the exported graph's order), as numpy arrays the
        caller owns; a model of one output gives a list of one."""
        ...

    def close(self) -> None:
        """Free the session or compiled model; ``run`` raises afterwards."""
        ...


# -- which runtimes are installed -----------------------------------------------------------------------


def missing_extra(runtime: str) -> str | None:
    """None when ``runtime``'s modules can be imported here (or it needs none: ``eager``, ``compile``),
    else a message that names them and the pip extra that installs them.

    Asks ``importlib.util.find_spec``, which imports nothing.
    """
    modules = EXTRA_MODULES.get(runtime)
    if modules is None:
        return None
    missing = [name for name in modules if not _findable(name)]
    if not missing:
        return None
    return (
        f"{runtime} needs {', '.join(missing)} (not installed): "
        f'pip install "pytest-dnnbench[{RUNTIME_EXTRAS[runtime]}]"'
    )


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that fails, a module without __spec__
        return False


def import_runtime(runtime: str) -> ModuleType:
    """The runtime's module, imported by name (neither library ships type information: its API is ``Any``);
    :class:`RuntimeUnavailableError` with the pip extra where it is not installed."""
    try:
        return importlib.import_module(runtime)
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"{runtime} cannot be imported ({_message(exc)}): "
            f'pip install "pytest-dnnbench[{RUNTIME_EXTRAS.get(runtime, runtime)}]"'
        ) from exc


# -- the runtime's message ---------------------------------------------------------------------------------

#: OpenVINO's messages start with where in its C++ sources they were raised: not the reason.
_SOURCE_LOCATION = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?)$")


def _message(exc: BaseException, limit: int = 400) -> str:
    """The runtime's message on one line: ONNX Runtime's first line; OpenVINO's lines after its
    source locations (``Exception from src/...cpp:84:``), joined."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    kept = [line for line in lines if not _SOURCE_LOCATION.match(line)]
    if not kept:
        return type(exc).__name__
    text = " ".join(kept) if len(kept) < len(lines) else kept[0]
    return text[:limit]


def _load_error(runtime: str, path: Path, exc: BaseException) -> RuntimeLoadError:
    return RuntimeLoadError(f"{runtime} could not load {path}: {_message(exc)}")


def _check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, not {threads!r}")
    return threads


def _closed(runtime: str) -> RuntimeError:
    return RuntimeError(f"this {runtime} model was closed")


# -- ONNX Runtime ------------------------------------------------------------------------------------------


def _cuda_index(device: str) -> int | None:
    """``cpu`` -> None, ``cuda``/``cuda:N`` -> N (0 for plain ``cuda``); anything else is a ValueError."""
    if device == "cpu":
        return None
    if device == "cuda":
        return 0
    head, _, index = device.partition(":")
    if head == "cuda" and index.isdigit():
        return int(index)
    raise ValueError(f"device {device!r}: onnxruntime runs on cpu, cuda or cuda:N")


class OnnxRuntimeModel:
    """An ``onnxruntime.InferenceSession`` and the names of its first input and first output."""

    def __init__(self, session: Any, info: RuntimeInfo):
        self.info = info
        self._session: Any = session
        self._input: str = session.get_inputs()[0].name
        self._outputs: list[str] = [output.name for output in session.get_outputs()]

    def run(self, x: NDArray[Any]) -> list[NDArray[Any]]:
        if self._session is None:
            raise _closed("onnxruntime")
        out: list[NDArray[Any]] = list(self._session.run(self._outputs, {self._input: x}))
        return out  # new arrays per call

    def close(self) -> None:
        self._session = None


def load_onnxruntime(path: Path, *, device: str, threads: int, tf32: bool = False) -> OnnxRuntimeModel:
    """Load the ``.onnx`` file at ``path`` into an ONNX Runtime session for ``device`` (``cpu``, ``cuda[:N]``).

    On CUDA the session asks for CUDA's execution provider, then the CPU's (for the operators CUDA
    has none for), with ONNX Runtime's fallback off: if CUDA's provider is missing (the
    ``onnxruntime`` distribution has none: ``onnxruntime-gpu`` has) or cannot start, this raises
    :class:`RuntimeUnavailableError` instead of running the whole model on the CPU. CUDA's provider
    computes fp32 convolutions and matrix products in TF32 unless told otherwise (its ``use_tf32``
    defaults to on): ``tf32`` (the run's ``--dnn-tf32``) is passed to it, so "fp32" means IEEE fp32
    as it does for eager.
    """
    threads = _check_threads(threads)
    cuda = _cuda_index(device)
    ort = import_runtime("onnxruntime")
    version = str(ort.__version__)
    providers: list[Any] = ["CPUExecutionProvider"]
    if cuda is not None:
        available = list(ort.get_available_providers())
        if "CUDAExecutionProvider" not in available:
            raise RuntimeUnavailableError(_no_cuda_provider(version, available))
        providers = [("CUDAExecutionProvider", {"device_id": cuda, "use_tf32": int(tf32)}), "CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers, enable_fallback=0)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error classes (InvalidProtobuf, NoSuchFile, Fail)
        raise _load_error("onnxruntime", path, exc) from exc
    used = [str(p) for p in session.get_providers()]
    if cuda is not None and "CUDAExecutionProvider" not in used:
        raise RuntimeUnavailableError(
            f"onnxruntime {version} did not start its CUDA execution provider on {device} (the session "
            f"has {', '.join(used)}): CUDA or cuDNN libraries it needs may be missing; it needs the "
            "onnxruntime-gpu distribution built for this CUDA version"
        )
    info = RuntimeInfo(
        name="onnxruntime",
        version=version,
        device=device,
        options={
            "providers": used,
            "intra_op_num_threads": threads,
            "inter_op_num_threads": 1,
            "graph_optimization_level": "ORT_ENABLE_ALL",
            **({"use_tf32": tf32} if cuda is not None else {}),
        },
    )
    return OnnxRuntimeModel(session, info)


def _no_cuda_provider(version: str, available: list[str]) -> str:
    return (
        f"onnxruntime {version} has no CUDA execution provider (it has {', '.join(available) or 'none'}): "
        "running ONNX Runtime on CUDA needs the onnxruntime-gpu distribution instead of onnxruntime "
        "(pip uninstall onnxruntime && pip install onnxruntime-gpu)"
    )


# -- ONNX Runtime's CUDA provider, proven once per process ------------------------------------------------

#: CUDA device index -> :func:`cuda_provider_problem`'s answer there (None: the provider runs).
_CUDA_PROOFS: dict[int, str | None] = {}
#: What every proof that fails ends with.
_OR_LEAVE_IT_OUT = "or leave onnxruntime out of --dnn-modes (or run it with --dnn-device=cpu)"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: ONNX Runtime's log when the provider's library does not load (``dlopen``'s error after "with error: ").
_LOAD_FAILED = re.compile(r"Failed to load library (\S+) with error: ([^\n]+)")
#: The library the dynamic loader could not find, in its error.
_MISSING_LIBRARY = re.compile(r"([\w.+-]+\.so[\w.]*): cannot open shared object file")
#: The versions ONNX Runtime says its provider requires (``Require cuDNN 9.* and CUDA 12.*``).
_REQUIRES = re.compile(r"Require (cuDNN [\w.*]+ and CUDA [\w.*]+)")
#: A line ONNX Runtime logged at error or warning severity: ``... [E:onnxruntime:Default, file.cc:12 fn] text``.
_LOGGED = re.compile(r"\[([EW]):onnxruntime:[^\]]*\]\s*(.+)")


def cuda_provider_problem(device: str, *, torch_cuda: str | None = None) -> str | None:
    """None where ONNX Runtime's CUDA execution provider starts and runs on ``device`` (``cuda``, ``cuda:N``) in
    this process, else what is wrong and what to do.

    Proven, not read from ``get_available_providers()`` (the providers the wheel was built with): a session of
    a tiny model (a 4x4 matrix product) is made with CUDA's provider, then the CPU's, as
    :func:`load_onnxruntime` makes one, and run once. ONNX Runtime leaves a provider that cannot start out of
    the session without an error (``enable_fallback=0`` notwithstanding) and writes why on the process's
    stderr from its C++ logger, typically ``Failed to load library libonnxruntime_providers_cuda.so with error:
    libcublasLt.so.12: cannot open shared object file``; that text is read here (file descriptor 2, for the
    moment the session is made) and the message names the library that is missing.

    Asked once per process and device: the answer is kept (the libraries a process can load do not change
    while it runs). Run it in the process that will run the sessions, after torch is imported: torch loads
    CUDA libraries that ONNX Runtime then finds. ``torch_cuda`` (``torch.version.cuda``) only tells the
    message which CUDA the onnxruntime-gpu build should match.
    """
    index = _cuda_index(device)
    if index is None:
        raise ValueError(f"device {device!r}: the CUDA provider is proven on cuda or cuda:N")
    if index not in _CUDA_PROOFS:
        _CUDA_PROOFS[index] = _prove_cuda_provider(index, torch_cuda)
    return _CUDA_PROOFS[index]


def _prove_cuda_provider(index: int, torch_cuda: str | None) -> str | None:
    where = f"cuda:{index}"
    try:
        ort = import_runtime("onnxruntime")
    except RuntimeUnavailableError as exc:
        return str(exc)
    version = str(getattr(ort, "__version__", "?"))
    available = [str(p) for p in ort.get_available_providers()]
    if "CUDAExecutionProvider" not in available:
        return f"{_no_cuda_provider(version, available)}, {_OR_LEAVE_IT_OUT}"
    name, built_for = _ort_build(ort)
    try:
        model = _matmul_model()
    except Exception as exc:  # noqa: BLE001 - onnx missing or refusing: said, never raised
        return f"the ONNX model that proves ONNX Runtime's CUDA provider could not be made ({_message(exc)})"
    (started, failure), log = _native_stderr(lambda: _start_and_run(ort, model, index))
    if failure is None and "CUDAExecutionProvider" in started:
        return None
    return _cuda_provider_failure(
        f"{name} {version}", where, started, failure, log, built_for=built_for, torch_cuda=torch_cuda
    )


def _ort_build(ort: ModuleType) -> tuple[str, str | None]:
    """The installed distribution's name (``onnxruntime-gpu``) and the CUDA version it was built for (``12.8``)."""
    try:
        info = importlib.import_module(f"{ort.__name__}.capi.build_and_package_info")
    except Exception:  # noqa: BLE001 - an older or a faked onnxruntime
        return "onnxruntime", None
    built_for = getattr(info, "cuda_version", None)
    return str(getattr(info, "package_name", "onnxruntime")), str(built_for) if built_for else None


def _matmul_model() -> bytes:
    """An ONNX model of one node, ``y = x @ I`` on 1x4 fp32 (IR 8, opset 17: any ONNX Runtime of the last
    years loads it); on CUDA the product runs in cuBLAS, whose library ONNX Runtime's provider needs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(numpy.eye(4, dtype=numpy.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "dnnbench_cuda_provider_proof",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _start_and_run(ort: ModuleType, model: bytes, index: int) -> tuple[list[str], str | None]:
    """The providers the session started, and what failed (None where it ran and computed the product)."""
    providers: list[Any] = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(model, providers=providers, enable_fallback=0)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error classes
        return [], f"the session could not be made ({_message(exc)})"
    started = [str(p) for p in session.get_providers()]
    if "CUDAExecutionProvider" not in started:
        return started, None
    x = numpy.arange(1, 5, dtype=numpy.float32).reshape(1, 4)
    try:
        (y,) = session.run(["y"], {"x": x})
    except Exception as exc:  # noqa: BLE001 - a kernel the GPU cannot run (no image for its architecture)
        return started, f"a 4x4 matrix product on it failed ({_message(exc)})"
    if not numpy.allclose(numpy.asarray(y), x, rtol=1e-2):
        return started, f"a 4x4 matrix product on it computed {numpy.asarray(y).tolist()}, not {x.tolist()}"
    return started, None


def _native_stderr(step: Callable[[], _T]) -> tuple[_T, str]:
    """``step()``'s result and what native code wrote on file descriptor 2 meanwhile (ONNX Runtime's C++ logger
    writes there, past ``sys.stderr``). Where the descriptor cannot be redirected, the text is empty."""
    with contextlib.suppress(Exception):  # a closed or replaced sys.stderr: nothing of ours to flush
        sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        try:
            saved = os.dup(2)
        except OSError:
            return step(), ""
        try:
            os.dup2(sink.fileno(), 2)
            result = step()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode("utf-8", errors="replace")
    return result, _ANSI.sub("", text)


def _cuda_provider_failure(
    runtime: str,
    where: str,
    started: list[str],
    failure: str | None,
    log: str,
    *,
    built_for: str | None,
    torch_cuda: str | None,
) -> str:
    """Why CUDA's provider did not run (the library it lacks, in ONNX Runtime's words), and what to do."""
    loaded = _LOAD_FAILED.search(log)
    missing = _MISSING_LIBRARY.search(loaded.group(2) if loaded else log)
    requires = _REQUIRES.search(log)
    if failure is not None:
        why = failure
    elif missing is not None:
        why = f"it lacks {missing.group(1)}"
    else:
        why = f"the session started {', '.join(started) or 'no provider'} only"
    said = []
    if loaded is not None:
        said.append(f'"Failed to load library {Path(loaded.group(1)).name} with error: {loaded.group(2).strip()}"')
    elif failure is None:
        lines = [m.group(2).strip() for m in _LOGGED.finditer(log)]
        errors = [m.group(2).strip() for m in _LOGGED.finditer(log) if m.group(1) == "E"]
        shown = (errors or lines)[:1]
        said.append(f'"{shown[0][:300]}"' if shown else "nothing on stderr about why")
    if requires is not None:
        said.append(f"it requires {requires.group(1).rstrip('.')}")
    if failure is not None and "CUDAExecutionProvider" in started:
        text = f"{runtime} started its CUDA execution provider on {where}, but {failure}"
    else:
        text = f"{runtime} could not start its CUDA execution provider on {where}: {why}"
    if said:
        text += f" (ONNX Runtime says {'; '.join(said)})"
    return f"{text}. {_cuda_fix(built_for, torch_cuda, library=missing is not None)}"


def _cuda_fix(built_for: str | None, torch_cuda: str | None, *, library: bool) -> str:
    """What to do: a build for torch's CUDA where the two differ, else the libraries the build needs."""
    if built_for and torch_cuda and _major(built_for) != _major(torch_cuda):
        return (
            f"This onnxruntime-gpu is built for CUDA {built_for} and torch here uses CUDA {torch_cuda}: install an "
            f"onnxruntime-gpu build for CUDA {_major(torch_cuda)}, {_OR_LEAVE_IT_OUT}"
        )
    cuda = _major(built_for or torch_cuda)
    if library:
        return (
            f"Make the CUDA{f' {cuda}' if cuda else ''} and cuDNN libraries it needs loadable "
            f'(pip install "onnxruntime-gpu[cuda,cudnn]" installs them as packages), {_OR_LEAVE_IT_OUT}'
        )
    return (
        f"Install an onnxruntime-gpu build for the CUDA of torch{f' ({torch_cuda})' if torch_cuda else ''} "
        f"that supports this GPU, {_OR_LEAVE_IT_OUT}"
    )


def _major(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


# -- OpenVINO ----------------------------------------------------------------------------------------------


class OpenVinoModel:
    """A model compiled for OpenVINO's CPU device, and the one ``InferRequest`` every call uses."""

    def __init__(self, ov: ModuleType, compiled: Any, info: RuntimeInfo):
        self.info = info
        self._tensor: Any = ov.Tensor
        self._compiled: Any = compiled
        self._request: Any = compiled.create_infer_request()
        self._n_outputs = len(compiled.outputs)

    def run(self, x: NDArray[Any]) -> list[NDArray[Any]]:
        if self._request is None:
            raise _closed("openvino")
        # The request reads the batch in place: a C-contiguous array (ascontiguousarray copies any other),
        # which must stay alive until infer() returns (the request does not hold a reference to it).
        batch = numpy.ascontiguousarray(x)
        tensor = self._tensor(batch, shared_memory=True)
        self._request.set_input_tensor(0, tensor)
        self._request.infer()
        # Copies: the request's output buffers are overwritten by the next call.
        return [numpy.array(self._request.get_output_tensor(i).data, copy=True) for i in range(self._n_outputs)]

    def close(self) -> None:
        self._request = None
        self._compiled = None


def load_openvino(path: Path, *, threads: int, precision: str, device: str = "cpu") -> OpenVinoModel:
    """Compile the OpenVINO IR (``.xml`` next to its ``.bin``) or ``.onnx`` file at ``path`` for OpenVINO's CPU device.

    ``precision`` (``fp32``, ``fp16``, ``bf16``) sets ``INFERENCE_PRECISION_HINT`` (``f32``, ``f16``,
    ``bf16``). The info's options are read back from the compiled model: the precision it computes
    in (a CPU without fp16 arithmetic may not honour ``f16``), its threads and streams.
    """
    threads = _check_threads(threads)
    if device != "cpu":
        raise ValueError(
            f"openvino runs on OpenVINO's CPU device only, not on {device!r}: use device 'cpu' "
            "(OpenVINO's GPU device is Intel's GPUs, which this plugin does not measure)"
        )
    hint = OPENVINO_PRECISION_HINTS.get(precision)
    if hint is None:
        raise ValueError(f"precision {precision!r}: openvino runs {', '.join(OPENVINO_PRECISION_HINTS)}")
    ov = import_runtime("openvino")
    config: dict[str, object] = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": hint,
    }
    try:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with its C++ message
        raise _load_error("openvino", path, exc) from exc
    used = _read_back(
        compiled, ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS")
    )
    options: dict[str, object] = {"device": "CPU", **used}
    if used.get("INFERENCE_PRECISION_HINT") not in (None, hint):
        options["requested_precision_hint"] = hint
    version = str(ov.get_version()).split("-")[0] if hasattr(ov, "get_version") else str(ov.__version__)
    return OpenVinoModel(ov, compiled, RuntimeInfo(name="openvino", version=version, device="cpu", options=options))


def _read_back(compiled: Any, keys: tuple[str, ...]) -> dict[str, object]:
    """The compiled model's properties as plain values (an element type as its short name, ``f32``)."""
    out: dict[str, object] = {}
    for key in keys:
        try:
            value = compiled.get_property(key)
        except Exception:  # noqa: BLE001 - a property this version does not have
            continue
        if hasattr(value, "get_type_name"):  # openvino.Type
            out[key] = str(value.get_type_name())
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = str(value)
    return out


# -- by name -------------------------------------------------------------------------------------------------


def load(runtime: str, path: Path, *, device: str, threads: int, precision: str, tf32: bool = False) -> LoadedRuntime:
    """Load ``path`` into ``runtime`` (``onnxruntime`` or ``openvino``).

    ONNX Runtime computes in the precision the exported file was written in: ``precision`` is not
    passed to it; ``tf32`` is, on CUDA.
    """
    if runtime == "onnxruntime":
        return load_onnxruntime(path, device=device, threads=threads, tf32=tf32)
    if runtime == "openvino":
        return load_openvino(path, threads=threads, precision=precision, device=device)
    raise ValueError(f"unknown runtime {runtime!r}: use {', '.join(RUNTIME_EXTRAS)}")
