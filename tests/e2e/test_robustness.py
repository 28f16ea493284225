"""Faults a long benchmark run must survive: out of memory, interruption, slow builds (issue 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST, TINY_CONFTEST, TINY_MODULE, load_json

from pytest_dnnbench.oom import GUARD_SUPPORTED, describe, host_memory_guard, is_out_of_memory, skip_message

torch = pytest.importorskip("torch")

FAULTY_MODULE = '''
import os
import pathlib
import time

import torch
import torch.nn as nn


class Oomy(nn.Module):
    """Runs out of (injected) GPU memory from batch 8 on."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.shape[0] >= 8:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
        return self.conv(x).mean()


class Hungry(nn.Module):
    """Needs 256 MiB of host memory on every call."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        scratch = torch.ones(256 * 2**20, dtype=torch.uint8)
        return self.conv(x).mean() + scratch[:1].float()


class Sleepy(nn.Module):
    """Fast at batch 1; from batch 2 on, says so in a file and sleeps (to be interrupted)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.shape[0] >= 2:
            pathlib.Path(os.environ["DNN_SLEEP_MARKER"]).write_text("sleeping")
            time.sleep(60)
        return self.conv(x).mean()


def oomy():
    return Oomy()


def hungry():
    return Hungry()


def sleepy():
    return Sleepy()


class Crashy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        import sys

        sys.stderr.write("crashy: the process is about to die\\n")
        sys.stderr.flush()
        os._exit(3)


def crashy():
    return Crashy()


def pid_tiny():
    with open(os.environ["DNN_PID_FILE"], "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())


def slow_build():
    time.sleep(float(os.environ.get("DNN_BUILD_SLEEP", "0.8")))
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
'''

FAULTY_CONFTEST = (
    TINY_CONFTEST
    + """
    import torch.nn as nn

    registry.register("local", lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), input_size=(3, 16, 16))
    for name in ("oomy", "hungry", "sleepy", "slow_build", "crashy", "pid_tiny"):
        registry.register(name, "faultymodels:" + name, input_size=(3, 16, 16))
"""
)


@pytest.fixture
def faulty_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(tinymodels=TINY_MODULE, faultymodels=FAULTY_MODULE)
    pytester.makeconftest(FAULTY_CONFTEST)
    pytester.syspathinsert()
    return pytester


# -- out of memory ---------------------------------------------------------------------------------


def test_injected_oom_at_batch_8_skips_and_the_next_test_runs(faulty_project: pytest.Pytester) -> None:
    out = faulty_project.path / "r.json"
    result = faulty_project.runpytest(
        *FAST, "--dnn-models=oomy,tiny", "--dnn-batch-sizes=1,8", "-rs", "-v", f"--dnn-json={out}"
    )
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*test_dnn?oomy-bs1? PASSED*",
            "*test_dnn?oomy-bs8? SKIPPED*",
            "*test_dnn?tiny-bs1? PASSED*",
            "*test_dnn?tiny-bs8? PASSED*",
            "SKIPPED [[]1[]] *out of memory at batch 8 on cpu (OutOfMemoryError: CUDA out of memory. "
            "Tried to allocate 20.00 GiB (injected))",
        ]
    )
    records = load_json(out)["records"]
    assert [(r["model"], r["batch_size"]) for r in records] == [("oomy", 1), ("tiny", 1), ("tiny", 8)]
    assert all(r["outcome"] == "passed" for r in records)


def test_oom_is_a_missing_cell_of_the_report(faulty_project: pytest.Pytester) -> None:
    pytest.importorskip("matplotlib")
    result = faulty_project.runpytest(*FAST, "--dnn-models=oomy", "--dnn-batch-sizes=1,8", "--dnn-report=rep")
    result.assert_outcomes(passed=1, skipped=1)
    missing = load_json(faulty_project.path / "rep" / "results.json")["missing"]
    assert [(m["model"], m["batch_size"], m["outcome"]) for m in missing] == [("oomy", 8, "skipped")]
    assert missing[0]["reason"].startswith("out of memory at batch 8 on cpu (OutOfMemoryError: CUDA out of memory")
    assert "out of memory at batch 8 on cpu" in (faulty_project.path / "rep" / "report.md").read_text("utf-8")


@pytest.mark.skipif(not GUARD_SUPPORTED, reason="the host-memory guard needs Linux RLIMIT_DATA")
def test_host_memory_guard_skips_the_hungry_test_only(faulty_project: pytest.Pytester) -> None:
    out = faulty_project.path / "r.json"
    result = faulty_project.runpytest(
        *FAST,
        "--dnn-models=hungry,tiny",
        "--dnn-batch-sizes=1",
        "-rs",
        "--dnn-max-host-memory=64MiB",
        f"--dnn-json={out}",
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *out of memory at batch 1 on cpu (RuntimeError: *can't allocate memory*"])
    assert [r["model"] for r in load_json(out)["records"]] == ["tiny"]
    # Without the guard the same model runs: the guard, not the machine, refused it.
    result = faulty_project.runpytest(*FAST, "--dnn-models=hungry", "--dnn-batch-sizes=1")
    result.assert_outcomes(passed=1)


def test_bad_host_memory_limit_is_a_usage_error(faulty_project: pytest.Pytester) -> None:
    result = faulty_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-max-host-memory=lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-max-host-memory=lots: *not a size*"])


def test_out_of_memory_errors_are_recognised() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
            "to allocate 209715200 bytes. Error code 12 (Cannot allocate memory)"
        )
    )
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only the allocators' errors
    assert describe(RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: x")) == (
        "RuntimeError: err == 0. DefaultCPUAllocator: x"
    )
    assert describe(MemoryError()) == "MemoryError"
    assert (
        skip_message(8, "cuda:1", "OutOfMemoryError: boom")
        == "out of memory at batch 8 on cuda:1 (OutOfMemoryError: boom)"
    )


@pytest.mark.skipif(not GUARD_SUPPORTED, reason="the host-memory guard needs Linux RLIMIT_DATA")
def test_host_memory_guard_refuses_and_restores_the_limit() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_DATA)
    with pytest.raises((RuntimeError, MemoryError)) as info:
        with host_memory_guard(32 * 2**20):
            torch.ones(512 * 2**20, dtype=torch.uint8)
    assert is_out_of_memory(info.value)
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    with host_memory_guard(None):
        assert resource.getrlimit(resource.RLIMIT_DATA) == before


# -- the time budget covers the build --------------------------------------------------------------


def test_max_time_charges_the_build_to_the_first_test(faulty_project: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("DNN_BUILD_SLEEP", "0.8")
    out = faulty_project.path / "r.json"
    result = faulty_project.runpytest(
        "--dnn-device=cpu",
        "--dnn-max-time=0.5",
        "--dnn-min-samples=3",
        "--dnn-warmup=3",
        "--dnn-models=slow_build",
        "--dnn-batch-sizes=1,2",
        f"--dnn-json={out}",
    )
    result.assert_outcomes(passed=2)
    first, second = load_json(out)["records"]
    assert first["latency_ms"]["capped"] and first["latency_ms"]["stop_reason"] == "budget"
    # The build spent the budget: one warm-up call, then the minimum of samples (a floor the budget
    # does not cut), no more.
    assert first["latency_ms"]["n"] == 3 and first["latency_ms"]["warmup"] == 1
    assert first["latency_ms"]["insufficient"] is False
    assert first["build_s"] >= 0.8 and "build_s" not in second
    assert second["latency_ms"]["n"] >= 3  # the next test has its whole budget


# -- interruption ----------------------------------------------------------------------------------


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _signals_as_from_a_shell() -> None:
    """In the child, before exec: SIGINT and SIGTERM at their defaults and not blocked, whatever this test
    process inherited or was left with (a Python started with SIGINT ignored never raises KeyboardInterrupt)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_valid_results(faulty_project: pytest.Pytester, signum: int) -> None:
    out = faulty_project.path / "r.json"
    marker = faulty_project.path / "sleeping"
    env = dict(
        os.environ,
        DNN_SLEEP_MARKER=str(marker),
        PYTHONPATH=os.pathsep.join([str(faulty_project.path), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            *FAST,
            "--dnn-models=tiny,sleepy",
            "--dnn-batch-sizes=1,2",
            f"--dnn-json={out}",
            "-p",
            "no:cacheprovider",
        ],
        cwd=faulty_project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_signals_as_from_a_shell,
    )
    try:
        _wait_for(marker.exists)  # tiny-bs1, tiny-bs2, sleepy-bs1 done; sleepy-bs2 sleeping
        proc.send_signal(signum)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()  # also when it timed out: no open pipe left for a later test's warnings
    text = stdout.decode(errors="replace")
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "KeyboardInterrupt" in text
    data = load_json(out)  # valid JSON
    assert [(r["model"], r["batch_size"]) for r in data["records"]] == [("tiny", 1), ("tiny", 2), ("sleepy", 1)]
    assert data["environment"]["device"] == "cpu"
    assert not list(Path(faulty_project.path).glob(".r.json.*.tmp"))  # no half-written file left


def test_sigterm_handler_is_restored_after_the_run(faulty_project: pytest.Pytester) -> None:
    before = signal.getsignal(signal.SIGTERM)
    result = faulty_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1")
    result.assert_outcomes(passed=1)
    assert signal.getsignal(signal.SIGTERM) is before


# -- --dnn-isolate=process ---------------------------------------------------------------------------


def test_isolated_runs_measure_in_fresh_processes(faulty_project: pytest.Pytester, monkeypatch) -> None:
    from pytest_dnnbench.results import LATENCY_KEYS, RECORD_KEYS

    pids = faulty_project.path / "pids"
    monkeypatch.setenv("DNN_PID_FILE", str(pids))
    out = faulty_project.path / "r.json"
    result = faulty_project.runpytest(
        *FAST, "--dnn-isolate=process", "--dnn-models=pid_tiny", "--dnn-batch-sizes=1,2", f"--dnn-json={out}"
    )
    result.assert_outcomes(passed=2)
    built_in = [int(p) for p in pids.read_text().split()]
    assert len(set(built_in)) == 2 and os.getpid() not in built_in  # one fresh process per test, never here
    records = load_json(out)["records"]
    assert [(r["model"], r["batch_size"], r["isolation"]) for r in records] == [
        ("pid_tiny", 1, "process"),
        ("pid_tiny", 2, "process"),
    ]
    for rec in records:
        assert set(RECORD_KEYS) <= set(rec) and set(LATENCY_KEYS) <= set(rec["latency_ms"])
        assert rec["outcome"] == "passed" and rec["memory_bytes"]["total"] > 0 and rec["params"] > 0
        assert rec["test"].endswith(f"test_dnn[pid_tiny-bs{rec['batch_size']}]")


def test_isolated_process_that_dies_fails_its_test(faulty_project: pytest.Pytester) -> None:
    result = faulty_project.runpytest(*FAST, "--dnn-isolate=process", "--dnn-models=crashy,tiny", "--dnn-batch-sizes=1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*isolated measurement of crashy at batch 1: the process exited with status 3; stderr (last lines):*",
            "*crashy: the process is about to die*",
        ]
    )


def test_isolated_oom_skips(faulty_project: pytest.Pytester) -> None:
    result = faulty_project.runpytest(
        *FAST, "--dnn-isolate=process", "--dnn-models=oomy", "--dnn-batch-sizes=1,8", "-rs"
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *out of memory at batch 8 on cpu (OutOfMemoryError: CUDA out of memory*"])


def test_isolated_timeout_kills_the_process(faulty_project: pytest.Pytester, monkeypatch) -> None:
    import importlib

    # The module the plugin will import (pytester's runs restore sys.modules, so not the package attribute).
    monkeypatch.setattr(importlib.import_module("pytest_dnnbench.isolated"), "STARTUP_MARGIN_S", 8.0)
    monkeypatch.setenv("DNN_SLEEP_MARKER", str(faulty_project.path / "sleeping"))
    t0 = time.monotonic()
    result = faulty_project.runpytest(*FAST, "--dnn-isolate=process", "--dnn-models=sleepy", "--dnn-batch-sizes=2")
    assert time.monotonic() - t0 < 40  # the sleeping child (60 s) was not waited for
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*isolated measurement of sleepy at batch 2 timed out after 8.6 s*was killed*"])


def test_isolating_a_callable_registered_model_is_a_clear_error(faulty_project: pytest.Pytester) -> None:
    result = faulty_project.runpytest(*FAST, "--dnn-isolate=process", "--dnn-models=local", "--dnn-batch-sizes=1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model 'local' was registered with a Python callable*importable name*"])


def test_bad_isolate_value_is_a_usage_error(faulty_project: pytest.Pytester) -> None:
    result = faulty_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-isolate=thread")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-isolate=thread: unknown isolation. Use none or process*"])
