"""Concurrent ``--dnn-save-baseline`` runs to one file, repeated: are all rounds and entries kept?

Each repetition starts 8 whole pytest runs at once, each benchmarking a tiny model at batch 1 and
saving to the same baseline file; case "one model": all 8 run the same model (8 rounds expected
in its entry); case "8 models": each runs its own model (8 entries expected). The read-to-write
window is widened (the project's conftest makes ``save_document`` sleep first) so that savers overlap
for certain.

    python benchmarks/concurrent_saves.py --repetitions 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = """
import torch


def tiny(width: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(width, 10))
"""

CONFTEST = """
import os
import time

import pytest_dnnbench.baseline_save as store

_write = store.save_document


def _slow_write(*args, **kwargs):  # between reading the file and writing it back: where savers race
    time.sleep(float(os.environ.get("CONCURRENT_SAVES_DELAY", "0")))
    return _write(*args, **kwargs)


store.save_document = _slow_write


def pytest_dnnbench_register_models(registry, config):
    for k in range(8):
        registry.register(f"m{k}", "tinymodels:tiny", input_size=(3, 16, 16))
"""


def repetition(root: Path, models: list[str], delay: str) -> tuple[int, int]:
    """Run the savers at once; return (rounds in m0's entry, number of entries)."""
    target = root / "base.json"
    if target.exists():
        target.unlink()
    env = dict(os.environ, CONCURRENT_SAVES_DELAY=delay, PYTHONPATH=str(root))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--dnn-batch-sizes=1",
        "--dnn-max-time=0.3",
        "--dnn-threads=1",
        "--benchmark-disable",
        f"--dnn-save-baseline={target}",
    ]
    procs = [
        subprocess.Popen(
            [*cmd, f"--dnn-models={m}"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for m in models
    ]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"a saver failed (status {p.returncode}):\n{out[-2000:]}")
    doc = json.loads(target.read_text())
    entries = {(e["model"], e["batch_size"]): e for e in doc["entries"]}
    first = entries.get((models[0], 1), {"rounds": []})
    return len(first["rounds"]), len(entries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--savers", type=int, default=8)
    ap.add_argument("--delay", default="0.5", help="seconds between reading and writing the file (test hook)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "tinymodels.py").write_text(MODELS)
        (root / "conftest.py").write_text(CONFTEST)
        print(f"{args.savers} concurrent pytest --dnn-save-baseline runs to one file, {args.repetitions} repetitions")
        for case, models in (
            ("one model", ["m0"] * args.savers),
            (f"{args.savers} models", [f"m{k}" for k in range(args.savers)]),
        ):
            kept = 0
            t0 = time.perf_counter()
            for _ in range(args.repetitions):
                rounds, entries = repetition(root, models, args.delay)
                want = (args.savers, 1) if case == "one model" else (1, args.savers)
                kept += (rounds, entries) == want
            print(
                f"{case:>10}: all rounds and entries kept in {kept} of {args.repetitions} repetitions "
                f"({time.perf_counter() - t0:.0f} s)"
            )


if __name__ == "__main__":
    main()
