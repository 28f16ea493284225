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
) -> dict:
    """One record in the results file's shape; ``ms`` is the per-image time."""
    return {
        "model": model,
        "paper_name": paper_name,
        "source": "custom",
        "device": device,
        "device_name": device_name,
        "precision": "fp32",
        "mode": "eager",
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
        "param_file_mb": file_mb,
        "accuracy": {
            "top1": top1,
            "top5": None,
            "status": status if top1 is not None else "unavailable",
            "source": "test",
            "n_images": None,
        },
        "checks": [],
        "outcome": outcome,
        "reason": reason,
    }


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
