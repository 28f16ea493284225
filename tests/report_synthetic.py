"""Synthetic records and results files for the report tests (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_dnnbench.results import SCHEMA

MIB = 2**20


def rec(
    model: str,
    bs: int,
    ms: float | None,
    mem_mib: float | None,
    *,
    top1: float | None = None,
    status: str = "unavailable",
    paper_name: str | None = None,
    gflops: float = 1.0,
    params_m: float = 5.0,
    file_mb: float = 20.0,
    outcome: str = "passed",
    reason: str | None = None,
    device: str = "cpu",
    device_name: str = "Test CPU",
    mode: str = "eager",
    prepare_s: float | None = None,
    runtime: dict | None = None,
    energy: dict | None = None,
    output: dict | None = None,
) -> dict:
    """One record in the results file's shape; ``ms`` is the per-image time. ``prepare_s``,
    ``runtime`` and ``energy`` are written only when given (as in files of older versions), and
    ``output`` (see :func:`output_check`) is added to the checks."""
    out = {
        "model": model,
        "paper_name": paper_name,
        "source": "custom",
        "device": device,
        "device_name": device_name,
        "precision": "fp32",
        "mode": mode,
        "batch_size": bs,
        "input_size": [3, 224, 224],
        "latency_ms": {
            "median": None if ms is None else ms * bs,
            "n": 10,
            "capped": False,
            "ci_median": [0.0, 0.0],
            "samples": [1.0, 2.0],
        },
        "per_image_ms": ms,
        "fps": None if ms is None else 1000.0 / ms,
        "memory_bytes": {"total": None if mem_mib is None else int(mem_mib * MIB), "delta": 1},
        "macs": int(gflops * 5e8),
        "flops": int(gflops * 1e9),
        "params": int(params_m * 1e6),
        "param_file_mib": file_mb,
        "accuracy": accuracy(top1, status),
        "checks": [] if output is None else [output],
        "outcome": outcome,
        "reason": reason,
    }
    if prepare_s is not None:
        out["prepare_s"] = prepare_s
    if runtime is not None:
        out["runtime"] = runtime
    if energy is not None:
        out["energy"] = energy
    return out


def accuracy(top1: float | None, status: str = "measured") -> dict:
    """A record's ``accuracy``: ``top1`` as measured, or as a published reference figure (``status``)."""
    if top1 is not None and status == "measured":
        return {
            "measured": {"top1": top1, "top5": None, "n_images": 100, "source": "test"},
            "reference": None,
            "reason": None,
        }
    if top1 is not None and status == "reference":
        return {"measured": None, "reference": {"top1": top1, "top5": None, "source": "test"}, "reason": "test"}
    return {"measured": None, "reference": None, "reason": "test"}


NO_RAPL = "no RAPL energy counters under /sys/class/powercap (common in VMs and containers)"


def energy(joules_per_image: float | None = None, watts: float | None = None, *, reason: str = NO_RAPL) -> dict:
    """A record's ``energy``: figures from RAPL, or none with ``reason`` (this VM has no RAPL)."""
    if joules_per_image is None:
        return {
            "joules_per_image": None,
            "joules": None,
            "watts": None,
            "seconds": None,
            "source": None,
            "scope": None,
            "reason": reason,
        }
    return {
        "joules_per_image": joules_per_image,
        "joules": joules_per_image * 10,
        "watts": watts,
        "seconds": 1.0,
        "source": "rapl",
        "scope": "package-0",
        "reason": None,
    }


def runtime(name: str, version: str = "1.0.0", device: str = "cpu") -> dict:
    return {"name": name, "version": version, "device": device, "options": {"threads": 1}}


def output_check(rel: float, *, limit: float = 1e-3, top1_agreement: float = 1.0) -> dict:
    """The check of a non-eager mode's outputs against eager's (``measured``: the relative difference)."""
    passed = rel <= limit
    return {
        "kind": "output",
        "metric": "output",
        "limit": limit,
        "measured": rel,
        "passed": passed,
        "message": f"max relative difference to eager {rel:.1e} ({'within' if passed else 'over'} {limit:g})",
        "top1_agreement": top1_agreement,
        "max_abs_diff": rel * 12.0,
        "max_eager_logit": 12.0,
    }


def mode_records(scales: dict[str, float], device_name: str = "Test CPU", *, with_energy: bool = False) -> list[dict]:
    """:func:`platform_records` in each mode of ``scales`` (mode -> time factor against eager):
    non-eager records carry a preparation time, a runtime and an output check; every record an
    energy entry (figures when ``with_energy``, else none with the reason of a VM without RAPL)."""
    out = []
    for mode, scale in scales.items():
        for r in platform_records(scale, device_name):
            r["mode"] = mode
            if mode != "eager":
                r["prepare_s"] = 2.5
                r["runtime"] = runtime(mode)
                r["checks"] = [output_check(2e-7)]
            else:
                r["prepare_s"] = None
                r["runtime"] = None
            r["energy"] = energy(0.05 * r["per_image_ms"], 30.0) if with_energy else energy()
            out.append(r)
    return out


def platform_records(scale: float = 1.0, device_name: str = "Test CPU") -> list[dict]:
    """Four models x batch 1, 2; fast_net has no batch 2 (a missing cell)."""
    out = []
    spec = [
        ("fast_net", 4.0, 500, 70.0, "measured", 0.5, 2.0, 8.0),
        ("mid_net", 20.0, 800, 75.0, "reference", 4.0, 25.0, 98.0),
        ("big_net", 60.0, 1300, 80.0, "measured", 12.0, 60.0, 230.0),
        ("nameless", 10.0, 600, None, "unavailable", 1.0, 4.0, 15.0),
    ]
    for model, ms, mem, top1, status, gflops, params, file_mb in spec:
        for bs in (1, 2):
            if model == "fast_net" and bs == 2:
                continue
            out.append(
                rec(
                    model,
                    bs,
                    ms * scale / bs**0.5,
                    mem + 10 * bs,
                    top1=top1,
                    status=status,
                    gflops=gflops,
                    params_m=params,
                    file_mb=file_mb,
                    device_name=device_name,
                )
            )
    return out


def write_results(path: Path, records: list[dict], device_name: str = "Test CPU", missing=None) -> Path:
    doc = {
        "schema": SCHEMA,
        "environment": {"device": "cpu", "device_name": device_name, "precision": "fp32"},
        "records": records,
    }
    if missing:
        doc["missing"] = missing
    Path(path).write_text(json.dumps(doc), encoding="utf-8")
    return Path(path)
