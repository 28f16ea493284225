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
:class:`PrepareTimedOut`. :func:`output_figures` and :func:`output_check` compare every tensor of a mode's
output with eager's on the same input.
torch is imported lazily; the runtimes' loaders live in :mod:`.runtimes` (no torch there).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    import torch

    from ..jsontypes import JsonObject
    from ..record import Check
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
    "OutputFigures",
    "worst_figures",
    "copy_tensors",
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

        # What the wheel was built with: a provider listed here may still fail to load its CUDA libraries,
        # which Runner.mode_proof finds out with a session, once the device's backend is made.
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


class _Preparation(threading.Thread):
    """One preparation, run in a worker thread that the caller waits for with a timeout.

    Nothing is ever raised into running code (a signal handler's exception lands wherever the main
    thread happens to be: a garbage-collector callback, a ``finally``, a runtime's C code, and may be
    swallowed there). A preparation past its deadline is *abandoned*: it runs to its end in the
    background, and then frees what it made (the compiled model, the exported files).
    """

    def __init__(self, mode: str, step: Callable[[], Prepared]):
        super().__init__(name=f"dnnbench-prepare-{mode}", daemon=True)
        self.mode = mode
        self._step: Callable[[], Prepared] | None = step
        self._lock = threading.Lock()
        self._abandoned = False
        self.result: Prepared | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        step, self._step = self._step, None
        assert step is not None
        try:
            result = step()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which decides
            with self._lock:
                abandoned = self._abandoned
                if not abandoned:
                    self.error = exc
            if abandoned:
                _reset_compiler(self.mode)
            return
        with self._lock:
            abandoned = self._abandoned
            if not abandoned:
                self.result = result
        if abandoned:
            with contextlib.suppress(Exception):  # nobody waits for it any more: nothing to report to
                result.close()

    def abandon(self) -> None:
        """The caller gave up waiting: whatever this preparation makes is freed as soon as it exists."""
        with self._lock:
            self._abandoned = True
            result, self.result, self.error = self.result, None, None
        if result is not None:
            result.close()
        if self.is_alive():
            with _ABANDONED_LOCK:
                _ABANDONED.append(self)


#: Preparations given up on that may still run (threads); :func:`wait_for_abandoned` waits for them.
_ABANDONED: list[_Preparation] = []
_ABANDONED_LOCK = threading.Lock()


def abandoned_running() -> list[str]:
    """The modes whose abandoned preparation is still running in the background."""
    with _ABANDONED_LOCK:
        _ABANDONED[:] = [p for p in _ABANDONED if p.is_alive()]
        return [p.mode for p in _ABANDONED]


def wait_for_abandoned(timeout_s: float) -> list[str]:
    """Wait up to ``timeout_s`` for abandoned preparations to end (so that they do not disturb the next
    measurement); the modes of those still running afterwards."""
    end = time.monotonic() + max(0.0, timeout_s)
    with _ABANDONED_LOCK:
        pending = list(_ABANDONED)
    for worker in pending:
        worker.join(max(0.0, min(end - time.monotonic(), threading.TIMEOUT_MAX)))
    return abandoned_running()


def _run_with_deadline(mode: str, step: Callable[[], Prepared], timeout_s: float) -> tuple[Prepared, float]:
    """``step()`` in a worker thread, waited for at most ``timeout_s``: (its result, seconds it took).

    Raises :class:`PrepareTimedOut` past the deadline (the worker is abandoned), the step's own
    exception otherwise. Ctrl-C (or SIGTERM) while waiting abandons the worker and propagates.
    """
    worker = _Preparation(mode, step)
    start = time.perf_counter()
    worker.start()
    try:
        worker.join(min(timeout_s, threading.TIMEOUT_MAX))
    except BaseException:
        worker.abandon()
        raise
    elapsed = time.perf_counter() - start
    if worker.is_alive():
        worker.abandon()
        raise PrepareTimedOut(
            f"preparing {mode} took longer than {timeout_s:g} s (--dnn-prepare-timeout); it was left to finish "
            "in the background and its result is discarded"
        )
    error, result = worker.error, worker.result
    worker.error = worker.result = None
    if error is not None:
        raise error
    assert result is not None
    return result, elapsed


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
    step = steps[mode]
    if example.device.type == "cuda":  # the worker thread's current device is the example's, as the caller's is
        device, plain = example.device, step

        def on_device() -> Prepared:
            import torch

            with torch.cuda.device(device):
                return plain()

        step = on_device
    try:
        prepared, elapsed = _run_with_deadline(mode, step, timeout_s)
    except PrepareTimedOut:
        raise
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or is_out_of_memory(exc):
            raise
        _reset_compiler(mode)
        raise PrepareFailed(f"{mode}: {first_line(exc)}") from exc
    if elapsed > timeout_s:  # it ended just as the deadline passed: the limit holds all the same
        prepared.close()
        raise PrepareTimedOut(
            f"preparing {mode} took {elapsed:.1f} s, longer than {timeout_s:g} s (--dnn-prepare-timeout)"
        )
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
        loaded = load(
            "onnxruntime",
            path,
            device=settings.device,
            threads=threads,
            precision=settings.precision,
            tf32=settings.tf32,
        )
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

#: Shown for the one tensor of an output that is a single tensor; the others are ``output[1]``, ``output['boxes']``...
ROOT = "output"
#: Why an output check compares nothing (the check is kept, passed, with ``skipped: true``).
NO_TENSOR = "no tensor output to compare"


class OutputFigures(TypedDict):
    """What :func:`output_figures` found: the worst tensor's figures, or why they could not be made."""

    #: max |mode - eager| of the worst tensor (inf where the mode's is not finite).
    max_abs_diff: float | None
    #: max |eager| of that tensor.
    max_eager_logit: float | None
    #: their ratio, the check's figure (None where a side is not finite or nothing was compared).
    relative: float | None
    #: the share of the batch's rows whose arg-max agree, from the first tensor of two dimensions or more.
    top1_agreement: float | None
    #: the worst tensor: ``output`` (a single tensor), ``output[1]``, ``output['boxes']``, ``output[0]['x']``.
    worst_output: str | None
    #: how many tensors were compared.
    outputs: int
    #: the side whose ``worst_output`` is not finite: ``"eager"`` or ``"mode"`` (None when every value is finite).
    non_finite: str | None
    #: what is not finite there: ``NaN``, ``inf`` or ``NaN and inf``.
    non_finite_kind: str | None
    #: what differs between the two outputs' structures (keys, lengths, shapes...), or None.
    mismatch: str | None
    #: why nothing was compared (:data:`NO_TENSOR`), or None.
    skipped: str | None


def output_figures(reference: object, output: object, *, mode: str = "the mode") -> OutputFigures:
    """Compare every tensor of ``output`` with eager's ``reference``; the figures are the worst tensor's.

    Both are flattened to (path, leaf) pairs: tuples and lists by index, dicts by key, nested
    (``output[0]['x']``); a tensor, a numpy array or a Python number is a tensor leaf, anything else
    (None, a str) is not. Equal structures are compared path by path. A runtime returns its outputs
    as a flat list (or one array) in the exporters' flattening order (torch's pytree order: dicts in
    insertion order, None left out): such an ``output`` is compared with eager's tensors in that order.
    ``mode`` names the mode's side in what differs.
    """
    figures = OutputFigures(
        max_abs_diff=None,
        max_eager_logit=None,
        relative=None,
        top1_agreement=None,
        worst_output=None,
        outputs=0,
        non_finite=None,
        non_finite_kind=None,
        mismatch=None,
        skipped=None,
    )
    ref_leaves = [(path, _as_tensor(leaf), leaf) for path, leaf in _leaves(reference, ROOT)]
    out_leaves = [(path, _as_tensor(leaf), leaf) for path, leaf in _leaves(output, ROOT)]
    ref_tensors = [(path, t) for path, t, _ in ref_leaves if t is not None]
    if not ref_tensors and all(t is None for _, t, _ in out_leaves):
        figures["skipped"] = NO_TENSOR
        return figures
    pairs: list[tuple[str, object, object]] = []  # (eager's path, eager's leaf, the mode's leaf)
    difference = _difference(reference, output, ROOT, mode)
    if difference is None:
        found = {path: leaf for path, _, leaf in out_leaves}
        pairs = [(path, leaf, found[path]) for path, _, leaf in ref_leaves]
    elif _flat(output):
        outs = [leaf for _, t, leaf in out_leaves if t is not None]
        if len(outs) == len(ref_tensors):
            pairs = [(path, t, o) for (path, t), o in zip(ref_tensors, outs, strict=True)]
        else:
            names = ", ".join(path for path, _ in ref_tensors[:6]) + (", ..." if len(ref_tensors) > 6 else "")
            figures["mismatch"] = (
                f"{mode} gave {_count(len(outs), 'tensor')}, eager {len(ref_tensors)} ({names})"
                if ref_tensors
                else f"{mode} gave {_count(len(outs), 'tensor')}, eager none"
            )
    else:
        figures["mismatch"] = difference
    eager_bad = next(((path, t) for path, t in ref_tensors if not _all_finite(t)), None)
    if eager_bad is not None:
        figures["non_finite"], figures["worst_output"] = "eager", eager_bad[0]
        figures["non_finite_kind"] = _non_finite_kind(eager_bad[1])
    if figures["mismatch"] is not None:
        return figures
    compared: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for path, ref_leaf, out_leaf in pairs:
        ref, out = _as_tensor(ref_leaf), _as_tensor(out_leaf)
        if ref is None and out is None:
            continue  # None, a str...: not compared
        if ref is None or out is None:
            figures["mismatch"] = f"{path} is {_kind(out_leaf)}, eager's {_kind(ref_leaf)}"
            return figures
        if tuple(ref.shape) != tuple(out.shape):
            figures["mismatch"] = f"{path} has shape {tuple(out.shape)}, eager's {tuple(ref.shape)}"
            return figures
        compared.append((path, _floats(ref), _floats(out)))
    figures["outputs"] = len(compared)
    if eager_bad is not None:
        return figures
    worst: tuple[float, float, float, str] | None = None  # (relative, max |diff|, max |eager|, path)
    for path, ref, out in compared:
        if not _all_finite(out):
            figures["non_finite"], figures["non_finite_kind"] = "mode", _non_finite_kind(out)
            figures["worst_output"], figures["max_abs_diff"] = path, float("inf")
            figures["max_eager_logit"] = _max_abs(ref)
            return figures
        max_diff = float((out - ref).abs().max()) if ref.numel() else 0.0  # both finite here
        scale = float(ref.abs().max()) if ref.numel() else 0.0
        relative = max_diff / scale if scale > 0 else (0.0 if max_diff == 0 else float("inf"))
        if worst is None or relative > worst[0]:
            worst = (relative, max_diff, scale, path)
    if worst is None:
        figures["skipped"] = NO_TENSOR
        return figures
    figures["relative"], figures["max_abs_diff"], figures["max_eager_logit"], figures["worst_output"] = worst
    logits = next(((ref, out) for _, ref, out in compared if ref.dim() >= 2 and ref.shape[0] > 0), None)
    if logits is not None:
        ref, out = logits
        rows_ref = ref.reshape(ref.shape[0], -1).argmax(dim=1)
        rows_out = out.reshape(out.shape[0], -1).argmax(dim=1)
        figures["top1_agreement"] = float((rows_ref == rows_out).double().mean())
    return figures


def worst_figures(first: OutputFigures, *others: OutputFigures) -> OutputFigures:
    """The worst of several comparisons (of the same model, e.g. on two calls): a structure that differs, then
    values that are not finite, then the largest relative difference; a skipped comparison last."""

    def badness(f: OutputFigures) -> tuple[int, float]:
        if f.get("mismatch") is not None:
            return (3, 0.0)
        if f.get("non_finite") is not None:
            return (2, 0.0)
        if f.get("skipped") is not None:
            return (0, 0.0)
        relative = f.get("relative")
        return (1, float("inf") if relative is None or relative != relative else relative)

    worst = first
    for f in others:
        if badness(f) > badness(worst):
            worst = f
    return worst


def copy_tensors(value: object) -> object:
    """``value`` with each tensor copied, through tuples, lists and dicts (an output that holds a buffer of the
    model, which a later call changes in place)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, Mapping):
        return {key: copy_tensors(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [copy_tensors(item) for item in value] if isinstance(value, list) else tuple(map(copy_tensors, value))
    return value


def _leaves(value: object, path: str) -> list[tuple[str, object]]:
    """(path, leaf) pairs of ``value`` in torch's pytree order: tuples and lists by index, dicts by key."""
    if isinstance(value, Mapping):
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{path}[{key!r}]")]
    if isinstance(value, (tuple, list)):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{path}[{i}]")]
    return [(path, value)]


def _is_container(value: object) -> bool:
    return isinstance(value, (Mapping, tuple, list))


def _flat(value: object) -> bool:
    """A runtime's answer: a list of arrays (or one array), no dicts or nesting."""
    return not _is_container(value) or (isinstance(value, list) and not any(map(_is_container, value)))


def _difference(reference: object, output: object, path: str, mode: str) -> str | None:
    """What differs between the two structures (dict keys, lengths, a container against a leaf); None if nothing.

    Leaves are not looked at here (their kinds and shapes are compared pair by pair)."""
    if isinstance(reference, Mapping) and isinstance(output, Mapping):
        if set(reference) != set(output):
            return f"{path}'s keys differ: eager has {_keys(reference)}, {mode} has {_keys(output)}"
        for key in reference:
            found = _difference(reference[key], output[key], f"{path}[{key!r}]", mode)
            if found is not None:
                return found
        return None
    ref_seq, out_seq = isinstance(reference, (tuple, list)), isinstance(output, (tuple, list))
    if ref_seq and out_seq:
        assert isinstance(reference, (tuple, list)) and isinstance(output, (tuple, list))
        if len(reference) != len(output):
            return f"{path} has {_count(len(output), 'item')}, eager's {len(reference)}"
        for i, (ref, out) in enumerate(zip(reference, output, strict=True)):
            found = _difference(ref, out, f"{path}[{i}]", mode)
            if found is not None:
                return found
        return None
    if _is_container(reference) or _is_container(output):
        return f"{path} is {_kind(output)}, eager's {_kind(reference)}"
    return None


def _as_tensor(value: object) -> torch.Tensor | None:
    """A leaf as a tensor (a tensor, a numpy array, a Python number), or None (None, a str, another object)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if value is None or isinstance(value, (str, bytes)) or _is_container(value):
        return None
    try:
        return torch.as_tensor(value)
    except (TypeError, RuntimeError, ValueError):
        return None


def _floats(t: torch.Tensor) -> torch.Tensor:
    import torch

    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    return t.to(device="cpu", dtype=torch.float64 if t.dtype == torch.float64 else torch.float32)


def _all_finite(t: torch.Tensor) -> bool:
    import torch

    return bool(torch.isfinite(t).all()) if (t.is_floating_point() or t.is_complex()) else True


def _non_finite_kind(t: torch.Tensor) -> str:
    import torch

    t = _floats(t)
    nan, inf = bool(torch.isnan(t).any()), bool(torch.isinf(t).any())
    return "NaN and inf" if nan and inf else "NaN" if nan else "inf"


def _max_abs(t: torch.Tensor) -> float:
    """max |t| over its finite values (0 when it has none)."""
    import torch

    values = t[torch.isfinite(t)].abs()
    return float(values.max()) if values.numel() else 0.0


def _kind(value: object) -> str:
    import torch

    if value is None:
        return "None"
    if isinstance(value, Mapping):
        return f"a dict of {_count(len(value), 'item')}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {_count(len(value), 'item')}"
    if isinstance(value, torch.Tensor):
        return "a tensor"
    if _as_tensor(value) is not None:
        return f"a {type(value).__name__}"  # an ndarray, an int...: compared as a tensor
    return f"a {type(value).__name__} ({_short(value)})"


def _keys(mapping: Mapping[Any, object]) -> str:
    return ", ".join(_short(key) for key in mapping) or "no keys"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def output_check(mode: str, precision: str, figures: OutputFigures) -> Check:
    """The record's ``output`` check: fails when the worst tensor's relative difference is above the precision's
    tolerance, when a value of either side is not finite, or when the structures differ; passes, marked
    ``skipped``, when neither side has a tensor.

    Top-1 agreement is recorded, not gated: with random weights the logits of many images lie near ties.
    """
    from ..record import Check

    limit = OUTPUT_TOLERANCE.get(precision, OUTPUT_TOLERANCE["fp32"])
    skipped = figures.get("skipped")
    if skipped is not None:
        return Check.make(
            kind="output",
            metric="output",
            limit=limit,
            measured=None,
            passed=True,
            message=f"output check skipped: {skipped}",
            reference="eager",
            skipped=True,
        )
    relative = figures["relative"]
    leaf = figures.get("worst_output") or ROOT
    count = figures.get("outputs", 1)
    side, what = figures.get("non_finite"), figures.get("non_finite_kind") or "NaN"
    mismatch = figures.get("mismatch")
    agreement = figures.get("top1_agreement")
    figure = _finite(relative)
    if mismatch is not None:
        message = f"{mode} output does not match eager's: {mismatch}"
        if side == "eager":
            message += f"; eager's own {leaf} is not finite ({what})"
        figure = agreement = None
    elif side == "eager":
        message = f"eager's own {leaf} is not finite ({what}): the {mode} output cannot be checked against it"
        figure = agreement = None
    elif side is not None or (relative is not None and relative != relative):
        message = f"the {mode} {leaf} has non-finite values where eager's is finite ({what})"
        figure = agreement = None
    else:
        scale = figures["max_eager_logit"]
        if relative is not None and figure is None and not scale:
            head = f"{mode} {leaf} differs from eager's, which is all zeros"
        else:
            head = f"{mode} {leaf} differs from eager by {_g(relative)} of the largest eager {leaf}"
        message = (
            f"{head} (max |diff| {_g(figures['max_abs_diff'])}, max |eager| {_g(scale)}; "
            f"limit {limit:g} in {precision}{f'; the worst of {count} outputs' if count > 1 else ''})"
            + (
                f"; Top-1 agrees on {100 * agreement:.0f} % of the batch (recorded, not gated)"
                if agreement is not None
                else ""
            )
        )
    passed = mismatch is None and side is None and figure is not None and figure <= limit
    details: dict[str, object] = {}
    if side is not None:
        details["non_finite"] = "eager" if side == "eager" else mode
    if mismatch is not None:
        details["mismatch"] = mismatch
    return Check.make(
        kind="output",
        metric="output",
        limit=limit,
        measured=figure,
        passed=passed,
        message=message,
        reference="eager",
        max_abs_diff=_finite(figures["max_abs_diff"]) if mismatch is None else None,
        max_eager_logit=_finite(figures["max_eager_logit"]) if mismatch is None else None,
        top1_agreement=agreement,
        worst_output=leaf,
        outputs=count,
        **details,
    )


def _finite(v: float | None) -> float | None:
    return v if v is not None and v == v and v not in (float("inf"), float("-inf")) else None


def _g(v: float | None) -> str:
    return "not finite" if _finite(v) is None else f"{v:.3g}"
