"""Benchmark mode under pytest-xdist: where the workers run, and what the run allows them (no pytest here).

Read at the controller in ``pytest_configure``, after pytest-xdist's ``pytest_cmdline_main`` has set
``dist`` and before its ``pytest_sessionstart`` starts the workers: parallel CPU timings only when
asked for (``--dnn-allow-parallel-cpu``), no two workers on one GPU unasked, and all tests of a model on
one worker (``loadgroup``) unless the user chose a ``--dist`` mode.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .problems import UsageProblem

__all__ = ["Workers", "plan_workers", "user_chose_dist", "worker_index"]


@dataclass(frozen=True)
class Workers:
    """pytest-xdist's ``--dist`` mode and its ``--tx`` execution specs (``popen``: a process on this machine)."""

    dist: str
    tx: tuple[str, ...]

    @property
    def active(self) -> bool:
        return bool(self.dist and self.dist != "no" and self.tx)

    @property
    def local_only(self) -> bool:
        return all(t.startswith("popen") or t.split("*", 1)[-1].startswith("popen") for t in self.tx)

    @property
    def elsewhere(self) -> bool:
        """Whether the tests run on other machines (``--tx ssh=...``): their devices are not this one's, so
        nothing about the device is resolved here."""
        return self.active and not self.local_only


def plan_workers(
    workers: Workers,
    device: str,
    resolve_device: Callable[[], str],
    gpu_count: Callable[[], int],
    *,
    allow_parallel_cpu: bool,
    allow_shared_gpu: bool,
    chose_dist: bool,
) -> bool:
    """Check the workers against the device; whether the tests are to be grouped by model (``loadgroup``).
    Raises :class:`.outputs.UsageProblem` for workers that would disturb each other's figures."""
    if not workers.active:
        return False
    on_cpu = device == "cpu"
    if device == "auto" and workers.local_only:
        on_cpu = resolve_device() == "cpu"  # workers on this machine see the same devices
    n = len(workers.tx)
    if on_cpu and not allow_parallel_cpu:
        raise UsageProblem(
            f"pytest-dnnbench: {n} pytest-xdist workers would benchmark on the CPU at the same time "
            "(--dnn-device=" + device + "), and parallel workers disturb each other's timings and memory "
            "figures. Run without -n/--tx, use GPUs (--dnn-device=cuda pins one GPU per worker), or pass "
            "--dnn-allow-parallel-cpu to accept the interference (and consider --dnn-threads to share the cores)"
        )
    if not on_cpu and not allow_shared_gpu and not (device in ("auto", "cuda") and not workers.local_only):
        # (remote workers: their GPUs cannot be counted from here)
        from .device import gpu_sharing_problem

        count = gpu_count() if device in ("auto", "cuda") else 0
        problem = gpu_sharing_problem(n, device, count)
        if problem is not None:
            raise UsageProblem(f"pytest-dnnbench: {problem}")
    # All tests of a model on one worker: it is built, profiled and evaluated once.
    return workers.dist == "load" and not chose_dist


def user_chose_dist(args: Sequence[str], addopts_env: str, ini_addopts: Sequence[str]) -> bool:
    """Whether ``--dist``/``-d`` was given (command line, ``PYTEST_ADDOPTS`` or the ini's addopts).

    pytest-xdist turns ``-n N`` into ``--dist load`` when no mode was given, so the value alone
    cannot tell a choice from the default.
    """
    given = list(args)
    try:
        given += shlex.split(addopts_env)
    except ValueError:
        pass
    given += ini_addopts
    return any(a in ("--dist", "-d") or a.startswith("--dist=") for a in given)


def worker_index(worker_id: str | None) -> int | None:
    """pytest-xdist's ``gwN`` -> N (GPUs are pinned round robin over the workers)."""
    if worker_id and worker_id.startswith("gw") and worker_id[2:].isdigit():
        return int(worker_id[2:])
    return None
