"""Constants and helpers shared by the plugin's own tests."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

#: Options that keep a benchmark test to a fraction of a second: a test measured on a busy machine (the suite
#: beside other jobs, or two of its own runs side by side) is measured again at once rather than after waiting up
#: to 30 s for calm; the tests of that wait give their own --dnn-calm-wait, which comes later and wins.
FAST = ["--dnn-device=cpu", "--dnn-max-time=0.3", "--dnn-min-samples=3", "--dnn-warmup=1", "--dnn-calm-wait=0"]

TINY_MODULE = """
import os
import pathlib

import torch.nn as nn


def tiny(width=8):
    marker = os.environ.get("DNN_BUILD_MARKER")
    if marker:
        pathlib.Path(marker).write_text("built")
    return nn.Sequential(
        nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)
    )


def broken():
    raise RuntimeError("this model cannot be built")
"""

TINY_CONFTEST = """
def pytest_dnnbench_register_models(registry, config):
    registry.register("tiny", "tinymodels:tiny", input_size=(3, 32, 32))
    registry.register("tiny_wide", "tinymodels:tiny", input_size=(3, 24, 24), kwargs={"width": 16})
    registry.register("broken", "tinymodels:broken", input_size=(3, 32, 32))
"""


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def as_record(data: dict):  # -> pytest_dnnbench.record.Record
    """A record from a test's JSON dict (a latency of 1 ms where the dict has none: the checks need one)."""
    from pytest_dnnbench.record import Record

    return Record.from_json({"latency_ms": {"median": 1.0}, **data})


#: What onnxruntime-gpu writes on stderr (its C++ logger, file descriptor 2, colours included) when its CUDA
#: provider cannot load a CUDA library, as onnxruntime-gpu 1.31.1 wrote it on a machine without them; here with
#: the library of a CUDA 12 build. The session is made all the same, with the CPU's provider only.
ORT_CUDA_LOAD_FAILURE_LOG = (
    "\x1b[0;93m2026-12-07 09:15:04.323385943 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:856 operator()] "
    "No registered plugin EP device found for 'CUDAExecutionProvider' with device_id=0\x1b[m\n"
    "\x1b[1;31m2026-12-07 09:15:04.326805484 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] "
    "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& "
    "onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library "
    "/venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so with error: "
    "libcublasLt.so.12: cannot open shared object file: No such file or directory\n\x1b[m\n"
    "\x1b[0;93m2026-12-07 09:15:04.326823689 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:1295 "
    "CreateExecutionProviderFactoryInstance] Failed to create CUDAExecutionProvider. Require cuDNN 9.* and "
    "CUDA 12.*. Please install all dependencies as mentioned in the GPU requirements page "
    "(https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements), make sure "
    "they're in the PATH, and that your GPU is supported.\x1b[m\n"
)


def fake_cuda_sessions(
    monkeypatch: pytest.MonkeyPatch,
    started: list[str],
    *,
    log: str = "",
    run_error: str | None = None,
    built_for: str | None = "12.8",
) -> dict[str, Any]:
    """The installed ONNX Runtime, patched: an onnxruntime-gpu built for CUDA ``built_for`` that lists CUDA's
    provider, whose sessions start the providers ``started`` and write ``log`` on file descriptor 2 as they are
    made (as ONNX Runtime's C++ logger does), and whose ``run`` gives its input back (``y = x @ I``), or raises
    ``run_error``. The proofs of the CUDA provider kept so far are forgotten.

    Returns what the last session was asked for (its keyword arguments and ``model``, the path or bytes it
    was given), with ``made``: how many sessions were made."""
    ort = pytest.importorskip("onnxruntime")
    from pytest_dnnbench.measure import runtimes

    build = importlib.import_module("onnxruntime.capi.build_and_package_info")
    asked: dict[str, Any] = {"made": 0}

    class Session:
        def __init__(self, path_or_bytes: object, **kwargs: Any):
            asked.update(kwargs, model=path_or_bytes)
            asked["made"] += 1
            if log:
                os.write(2, log.encode())

        def get_providers(self) -> list[str]:
            return list(started)

        def get_inputs(self) -> list[Any]:
            return [type("Arg", (), {"name": "x"})()]

        def get_outputs(self) -> list[Any]:
            return [type("Arg", (), {"name": "y"})()]

        def run(self, names: list[str], feeds: dict[str, Any]) -> list[Any]:
            if run_error is not None:
                raise RuntimeError(run_error)
            import numpy

            return [numpy.array(next(iter(feeds.values())), copy=True)]

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setattr(build, "package_name", "onnxruntime-gpu")
    monkeypatch.setattr(build, "cuda_version", built_for, raising=False)
    monkeypatch.setattr(runtimes, "_CUDA_PROOFS", {})
    return asked


#: The machine's load said quiet (as tests/e2e/test_confirm.py does): the history leaves busy records out by
#: default, and what this test is about must not depend on what else the machine runs.
QUIET_LOAD = """

import dataclasses
import importlib

import pytest


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    load = importlib.import_module("pytest_dnnbench.measure.load")
    real = load.load_between

    def load_between(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), busy=False, reasons=())

    monkeypatch.setattr(load, "load_between", load_between)
"""


def git(path: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=path,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def runs_on_commits(pytester: pytest.Pytester, args: list[str], n: int = 3) -> list[tuple[str, pytest.RunResult]]:
    """A git repository on ``main`` in the project, then ``n`` commits, each followed by a pytest run with
    ``args`` that must pass: (the commit, the run's result) per run."""
    root = pytester.path
    git(root, "init", "-q", "-b", "main")
    done = []
    for k in range(n):
        (root / "version.txt").write_text(f"{k}\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"change {k}")
        result = pytester.runpytest(*args)
        assert result.ret == 0, result.stdout.str()
        done.append((git(root, "rev-parse", "HEAD"), result))
    return done


def reap(procs: Iterable[subprocess.Popen[str]]) -> None:
    """Kill what is still running of ``procs`` and close their pipes: also after a failure or a timeout, so that
    no process or open pipe is left for a later test's warnings."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
