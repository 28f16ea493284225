"""Deployment modes: the same model as it is deployed, prepared, timed and checked against eager (no pytest).

A mode says how a model's forward pass runs:

- ``eager``: the PyTorch module as it is (the paper's way);
- ``compile``: ``torch.compile`` (inductor; ``compile_mode`` passes ``reduce-overhead`` or ``max-autotune``);
- ``cudagraph``: one forward captured on a static input as a CUDA graph, replayed (CUDA only);
- ``onnxruntime``: exported with torch's ONNX exporter, run by ONNX Runtime;
- ``openvino``: converted with OpenVINO's converter, run on OpenVINO's CPU device.

:func:`prepare` does the export, compilation or conversion (bounded by a timeout, outside the
latency budget) and returns a :class:`Prepared` whose ``forward`` the timing loop calls. An error
raised by that preparation, or by loading its result into the runtime, is a :class:`PrepareFailed`
(the test is skipped with the runtime's first error line); a preparation past its timeout is a
:class:`PrepareTimedOut`. :func:`output_check` compares a mode's output with eager's on the same input.
torch is imported lazily; the runtimes' loaders live in :mod:`.runtimes` (no torch there).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..record import Check, JsonObject
    from .bench import BenchSettings

__all__ = [
    "MODES",
    "GPU_ONLY",
    "CPU_ONLY",
    "RUNTIME_MODES",
    "COMPILE_MODES",
    "OUTPUT_TOLERANCE",
    "Prepared",
    "PrepareFailed",
    "PrepareTimedOut",
    "mode_problem",
    "prepare",
    "output_check",
    "output_figures",
]

#: Every mode, in the order tables list them.
MODES = ("eager", "compile", "cudagraph", "onnxruntime", "openvino")
#: Modes that need a CUDA device.
GPU_ONLY = frozenset({"cudagraph"})
#: Modes that run on the CPU only (OpenVINO's CPU device).
CPU_ONLY = frozenset({"openvino"})
#: Modes run by another runtime than torch, from an exported file.
RUNTIME_MODES = frozenset({"onnxruntime", "openvino"})
#: ``torch.compile`` modes (``--dnn-compile-mode``); ``default`` is torch's default.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Largest |mode - eager| relative to the largest |eager| output accepted, per precision.
OUTPUT_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 5e-2}


class PrepareFailed(Exception):
    """The export, compilation or conversion failed (or its result could not be loaded): skip the test."""


class PrepareTimedOut(PrepareFailed):
    """The preparation ran past its timeout (``--dnn-prepare-timeout``): skip the test."""


def mode_problem(mode: str, device: str) -> str | None:
    """Why ``mode`` cannot run on ``device`` here (a missing extra, a device it does not support), or None."""
    from .runtimes import missing_extra

    on_cuda = device.startswith("cuda")
    if mode not in MODES:
        return f"unknown mode {mode!r}: use {', '.join(MODES)}"
    if mode in GPU_ONLY and not on_cuda:
        return f"mode {mode} needs a CUDA device (this run is on {device}): use --dnn-device=cuda, or leave {mode} out"
    if mode in CPU_ONLY and on_cuda:
        return f"mode {mode} runs on OpenVINO's CPU device only: use --dnn-device=cpu for it"
    if mode in RUNTIME_MODES:
        missing = missing_extra(mode)
        if missing is not None or mode != "onnxruntime" or not on_cuda:
            return missing
        import onnxruntime

        providers: list[str] = list(onnxruntime.get_available_providers())
        if "CUDAExecutionProvider" not in providers:
            return (
                "mode onnxruntime on CUDA needs ONNX Runtime's CUDA execution provider (the onnxruntime-gpu "
                "distribution): pip install onnxruntime-gpu, or run onnxruntime with --dnn-device=cpu"
            )
    return None


@dataclass
class Prepared:
    """A model prepared for one mode: ``forward(x)`` runs it on a batch like ``x``; ``close()`` frees it."""

    mode: str
    forward: Callable[[torch.Tensor], object]
    #: Seconds the export, compilation or conversion took (loading into the runtime and its first calls included).
    prepare_s: float
    #: What ran the model: name, version, device and options (None for eager).
    runtime: JsonObject | None = None
    #: The exported file a runtime loads (for the direct measurement of a deployed process's memory).
    artifact: Path | None = None
    workdir: Path | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Free the runtime's session or the compiled model, and delete the exported files."""
        while self._closers:
            with contextlib.suppress(Exception):
                self._closers.pop()()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.forward = _closed


def _closed(x: object) -> object:
    raise RuntimeError("this prepared model was closed (its model was replaced)")


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (the deepest cause's, where the exporter wrapped it)."""
    inner: BaseException = exc
    seen = {id(inner)}
    while inner.__cause__ is not None and id(inner.__cause__) not in seen:
        inner = inner.__cause__
        seen.add(id(inner))
    outer_text = _first(exc)
    inner_text = _first(inner) if inner is not exc else ""
    text = f"{type(exc).__name__}: {outer_text}" if outer_text else type(exc).__name__
    if inner_text and inner_text not in text:
        text += f" (caused by {type(inner).__name__}: {inner_text})"
    return text[:500]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first(exc: BaseException) -> str:
    for line in _ANSI.sub("", str(exc)).splitlines():
        if line.strip():
            return line.strip()
    return ""


# -- the deadline ----------------------------------------------------------------------------------


@contextlib.contextmanager
def deadline(seconds: float, what: str, state: dict[str, bool]) -> Iterator[None]:
    """Raise :class:`PrepareTimedOut` in the block once ``seconds`` have passed (SIGALRM, main thread on Unix).

    Elsewhere nothing interrupts the block; the caller compares the time it took with the limit.
    ``state["fired"]`` says whether the alarm went off (an exporter or compiler may wrap the exception).
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        state["fired"] = True
        raise PrepareTimedOut(f"{what} took longer than {seconds:g} s (--dnn-prepare-timeout)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- preparation -------------------------------------------------------------------------------------


def prepare(
    mode: str,
    model: torch.nn.Module,
    example: torch.Tensor,
    settings: BenchSettings,
    *,
    compile_mode: str = "default",
    timeout_s: float = 300.0,
    threads: int = 1,
    is_out_of_memory: Callable[[BaseException], bool] = lambda exc: False,
) -> Prepared:
    """Prepare ``model`` (already in eval mode, on the device, in the precision) to run in ``mode``.

    ``example`` is a batch of the shape and dtype the timed calls use. Out-of-memory errors
    (``is_out_of_memory``) propagate as they are, for the caller's guard; any other error of the
    preparation is a :class:`PrepareFailed` with the runtime's first error line.
    """
    if mode == "eager":
        return Prepared("eager", model, 0.0)
    steps: dict[str, Callable[[], Prepared]] = {
        "compile": lambda: _compile(model, example, compile_mode),
        "cudagraph": lambda: _cudagraph(model, example),
        "onnxruntime": lambda: _onnxruntime(model, example, settings, threads),
        "openvino": lambda: _openvino(model, example, settings, threads),
    }
    if mode not in steps:
        raise ValueError(f"unknown mode {mode!r}: use {', '.join(MODES)}")
    what = f"preparing {mode}"
    alarm = {"fired": False}
    start = time.perf_counter()
    try:
        with deadline(timeout_s, what, alarm):
            prepared = steps[mode]()
    except BaseException as exc:
        if alarm["fired"]:
            _reset_compiler(mode)
            raise PrepareTimedOut(f"{what} took longer than {timeout_s:g} s (--dnn-prepare-timeout)") from exc
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or is_out_of_memory(exc):
            raise
        _reset_compiler(mode)
        raise PrepareFailed(f"{mode}: {first_line(exc)}") from exc
    elapsed = time.perf_counter() - start
    if elapsed > timeout_s:  # no alarm off the main thread: the limit still holds, after the fact
        prepared.close()
        raise PrepareTimedOut(f"{what} took {elapsed:.1f} s, longer than {timeout_s:g} s (--dnn-prepare-timeout)")
    prepared.prepare_s = elapsed
    return prepared


def _reset_compiler(mode: str) -> None:
    """After a failed or interrupted compilation, forget dynamo's half-made state."""
    if mode == "compile":
        import torch

        with contextlib.suppress(Exception):
            torch._dynamo.reset()


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """The exporters print progress lines and warn about their own internals: kept out of the test's output."""
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")
        yield out


def _compile(model: torch.nn.Module, example: torch.Tensor, compile_mode: str) -> Prepared:
    import torch

    compiled = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
    with _quiet(), torch.inference_mode():
        # Compilation happens at the first call; reduce-overhead records its CUDA graphs over the next ones.
        for _ in range(3):
            compiled(example)
    runtime = {
        "name": "torch.compile",
        "version": str(torch.__version__),
        "device": str(example.device),
        "options": {"backend": "inductor", "mode": compile_mode},
    }
    prepared = Prepared("compile", compiled, 0.0, runtime=runtime)
    prepared._closers.append(torch._dynamo.reset)
    return prepared


def _cudagraph(model: torch.nn.Module, example: torch.Tensor) -> Prepared:
    import torch

    if example.device.type != "cuda":
        raise ValueError(f"cudagraph needs a CUDA device, the input is on {example.device}")
    static_x = example.clone()
    stream = torch.cuda.Stream(device=example.device)  # type: ignore[no-untyped-call]
    stream.wait_stream(torch.cuda.current_stream(example.device))
    with torch.inference_mode():
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            for _ in range(3):
                model(static_x)
        torch.cuda.current_stream(example.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = model(static_x)
    torch.cuda.synchronize(example.device)

    def replay(x: torch.Tensor) -> object:
        # A deployed replay copies each new batch into the captured input (device to device).
        if x is not static_x:
            static_x.copy_(x)
        graph.replay()
        return static_out

    runtime = {
        "name": "cuda graph",
        "version": str(torch.version.cuda),
        "device": str(example.device),
        "options": {"input": "copied into the captured input before each replay"},
    }
    prepared = Prepared("cudagraph", replay, 0.0, runtime=runtime)
    prepared._closers.append(graph.reset)
    return prepared


def _workdir(mode: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"dnnbench-{mode}-"))


def _onnxruntime(model: torch.nn.Module, example: torch.Tensor, settings: BenchSettings, threads: int) -> Prepared:
    import torch

    from .runtimes import load

    workdir = _workdir("onnx")
    path = workdir / "model.onnx"
    try:
        with _quiet(), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(model, (example,), str(path), dynamo=True)
        loaded = load("onnxruntime", path, device=settings.device, threads=threads, precision=settings.precision)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return _runtime_prepared("onnxruntime", loaded, path, workdir, example)


def _openvino(model: torch.nn.Module, example: torch.Tensor, settings: BenchSettings, threads: int) -> Prepared:
    import torch

    from .runtimes import load

    workdir = _workdir("openvino")
    path = workdir / "model.xml"
    try:
        import openvino as ov

        with _quiet(), torch.inference_mode(False), torch.no_grad():
            converted = ov.convert_model(model, example_input=example)
            # Keep the weights as they are: OpenVINO's default would store them in fp16.
            ov.save_model(converted, str(path), compress_to_fp16=False)
        del converted
        loaded = load("openvino", path, device=settings.device, threads=threads, precision=settings.precision)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return _runtime_prepared("openvino", loaded, path, workdir, example)


def _runtime_prepared(mode: str, loaded: Any, path: Path, workdir: Path, example: torch.Tensor) -> Prepared:
    import torch

    on_host = example.device.type == "cpu"

    def forward(x: torch.Tensor) -> object:
        # On the CPU the runtime reads torch's buffer in place; from a GPU the batch goes in as a host array
        # (the copy is part of the time, as it is for a program that feeds the runtime host arrays).
        return loaded.run(x.numpy() if on_host else x.cpu().numpy())

    with torch.inference_mode():
        forward(example)  # the runtime's first call (its lazy set-up) is preparation, not latency
    prepared = Prepared(mode, forward, 0.0, runtime=loaded.info.to_json(), artifact=path, workdir=workdir)
    prepared._closers.append(loaded.close)
    return prepared


# -- the output check ----------------------------------------------------------------------------------


def output_figures(reference: object, output: object) -> dict[str, float | None]:
    """max |output - reference|, max |reference|, their ratio, and the share of rows whose arg-max agree."""
    import torch

    ref = _as_tensor(reference).detach().float().cpu()
    out = _as_tensor(output).detach().float().cpu()
    if ref.shape != out.shape:
        raise ValueError(f"the output has shape {tuple(out.shape)}, eager's {tuple(ref.shape)}")
    diff = (out - ref).abs()
    max_diff = float(diff.max()) if diff.numel() else 0.0
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    if not torch.isfinite(out).all():
        max_diff = float("inf")
    relative = max_diff / scale if scale > 0 else (0.0 if max_diff == 0 else float("inf"))
    agree = None
    if ref.dim() >= 2 and ref.shape[0] > 0:
        rows_ref = ref.reshape(ref.shape[0], -1).argmax(dim=1)
        rows_out = out.reshape(out.shape[0], -1).argmax(dim=1)
        agree = float((rows_ref == rows_out).float().mean())
    return {"max_abs_diff": max_diff, "max_eager_logit": scale, "relative": relative, "top1_agreement": agree}


def _as_tensor(value: object) -> torch.Tensor:
    import torch

    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(value)


def output_check(mode: str, precision: str, figures: dict[str, float | None]) -> Check:
    """The record's ``output`` check: fails when the relative difference is above the precision's tolerance.

    Top-1 agreement is recorded, not gated: with random weights the logits of many images lie near ties.
    """
    from ..record import Check

    limit = OUTPUT_TOLERANCE.get(precision, OUTPUT_TOLERANCE["fp32"])
    relative = figures["relative"]
    passed = relative is not None and relative <= limit
    shown = "not finite" if relative is None or relative != relative or relative == float("inf") else f"{relative:.3g}"
    agreement = figures.get("top1_agreement")
    message = (
        f"{mode} output differs from eager by {shown} of the largest eager output "
        f"(max |diff| {_g(figures['max_abs_diff'])}, max |eager| {_g(figures['max_eager_logit'])}; "
        f"limit {limit:g} in {precision})"
        + (
            f"; Top-1 agrees on {100 * agreement:.0f} % of the batch (recorded, not gated)"
            if agreement is not None
            else ""
        )
    )
    return Check.make(
        kind="output",
        metric="output",
        limit=limit,
        measured=relative if relative is not None and relative == relative and relative != float("inf") else None,
        passed=passed,
        message=message,
        reference="eager",
        max_abs_diff=_finite(figures["max_abs_diff"]),
        max_eager_logit=_finite(figures["max_eager_logit"]),
        top1_agreement=agreement,
    )


def _finite(v: float | None) -> float | None:
    return v if v is not None and v == v and v not in (float("inf"), float("-inf")) else None


def _g(v: float | None) -> str:
    return "not finite" if _finite(v) is None else f"{v:.3g}"
