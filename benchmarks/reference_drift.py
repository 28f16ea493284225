"""How well does the reference workload carry the machine's drift? Fresh processes, each timing a model and the
reference workload (pytest_dnnbench/measure/reference.py) call after call, as the plugin does.

For each of ``--processes`` fresh processes (``--pause`` seconds apart, one torch thread): the model's median,
the reference's median, and the model's latency in units of it (the median of the per-call ratios), for the
workload timed as v2 did (the second of two runs after each call) and as the plugin does now (v3: the best of
four runs after an untimed one), the two ways alternating call by call.
Also, in the same processes, the machine's speed measured in blocks away from the model's calls (before its
warm-up and after its timed calls, averaged): the reference workload run back to back, and a memory-bound
workload (an add of two 32 MB tensors); the model's median in units of each, and of their geometric mean.
Printed: each process's figures, then the spread (slowest / fastest process) of the raw medians and of each relative
latency, side by side from the same processes. Also the cost of the reference in one process: the model's
median with and without it interleaved (blocks of calls alternating, so that both see the same states).

    python benchmarks/reference_drift.py [--model small|resnet18] [--batch 1] [--processes 12] [--seconds 2]
        [--pause 3]

The model ``small`` is the ~1 ms CNN of benchmarks/false_alarms.py's small-model mode (94,538 parameters).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, statistics, sys, time
import torch, torch.nn as nn
sys.path.insert(0, sys.argv[1])
from pytest_dnnbench.measure.reference import reference_timer
torch.set_num_threads(1)
torch.manual_seed(0)
name, seconds, batch = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
if name == "resnet18":
    import torchvision
    net, x = torchvision.models.resnet18(weights=None).eval(), torch.randn(batch, 3, 224, 224)
else:
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(128, 10)).eval()
    x = torch.randn(batch, 3, 64, 64)
ref = reference_timer()  # the plugin's (v3: the best of four runs after an untimed one)
gen = torch.Generator().manual_seed(1234)
rx, rw = torch.randn((1, 32, 32, 32), generator=gen), torch.randn((32, 32, 3, 3), generator=gen) * 0.06
def v2():
    # The workload as v2 timed it: once untimed, then the second run.
    with torch.inference_mode():
        torch.nn.functional.conv2d(rx, rw, padding=1)
        t0 = time.perf_counter_ns(); torch.nn.functional.conv2d(rx, rw, padding=1)
        return (time.perf_counter_ns() - t0) / 1e6
for _ in range(3):
    v2()
# A memory-bound workload: an add of two 32 MB tensors into a third (96 MB of traffic, past the caches).
a, b = torch.randn(8 << 20), torch.randn(8 << 20)
c = torch.empty_like(a)
def mem():
    t0 = time.perf_counter_ns(); torch.add(a, b, out=c); return (time.perf_counter_ns() - t0) / 1e6
def block():
    # Back-to-back runs away from the model's calls: the process's machine speed (compute, memory).
    med = statistics.median
    return med([ref() for _ in range(60)]), med([mem() for _ in range(15)])
def model():
    with torch.inference_mode():
        t0 = time.perf_counter_ns(); net(x); return (time.perf_counter_ns() - t0) / 1e6
before = block()
for _ in range(3 if name == "resnet18" else 10):
    model()
m, r, m4, r4 = [], [], [], []
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    # The two ways alternate call by call, each right after a call of the model.
    m.append(model()); r.append(v2())
    m4.append(model()); r4.append(ref())
after = block()
# The cost of the reference: blocks of 10 calls with it and 10 without, alternating.
w, wo = [], []
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    for _ in range(10):
        w.append(model()); ref()
    for _ in range(10):
        wo.append(model())
med = statistics.median
print(json.dumps({"model": med(m + m4), "reference": med(r), "relative": med([a / b for a, b in zip(m, r)]),
                  "best4": med(r4), "relative_best4": med([a / b for a, b in zip(m4, r4)]),
                  "n": len(m), "block": (before[0] + after[0]) / 2, "memory": (before[1] + after[1]) / 2,
                  "block_drift": after[0] / before[0], "memory_drift": after[1] / before[1],
                  "with": med(w), "without": med(wo)}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("small", "resnet18"), default="small")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--processes", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--pause", type=float, default=3.0)
    a = ap.parse_args(argv)
    print(f"{a.model} at batch {a.batch}, {a.processes} fresh processes, {a.seconds:g} s each, one thread; "
          f"load average before {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    rows = []
    for i in range(a.processes):
        if i:
            time.sleep(a.pause)
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(ROOT), a.model, str(a.seconds), str(a.batch)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["per_block"] = row["model"] / row["block"]
        row["per_memory"] = row["model"] / row["memory"]
        row["per_both"] = row["model"] / math.sqrt(row["block"] * row["memory"])
        rows.append(row)
        print(f"  process {i + 1:2}: model {row['model']:.3f} ms ({row['n']} calls); per call, v2: reference "
              f"{row['reference']:.3f} ms, relative {row['relative']:.3f}; v3: reference {row['best4']:.3f} ms, "
              f"relative {row['relative_best4']:.3f}; blocks: reference {row['block']:.3f} ms "
              f"(after/before {row['block_drift']:.2f}), memory {row['memory']:.2f} ms (after/before "
              f"{row['memory_drift']:.2f}); with/without the reference {row['with'] / row['without']:.3f}",
              flush=True)  # fmt: skip

    def spread(key: str) -> float:
        values = [r[key] for r in rows]
        return float(max(values) / min(values))

    cost = statistics.median(r["with"] / r["without"] for r in rows)
    print(f"spread over the processes (slowest / fastest): model {spread('model'):.2f}x; per call, v2: reference "
          f"{spread('reference'):.2f}x, relative {spread('relative'):.2f}x; per call, v3 (best of 4): reference "
          f"{spread('best4'):.2f}x, relative {spread('relative_best4'):.2f}x; blocks: reference "
          f"{spread('block'):.2f}x, model/reference {spread('per_block'):.2f}x, memory {spread('memory'):.2f}x, "
          f"model/memory {spread('per_memory'):.2f}x, model/both (geometric mean) {spread('per_both'):.2f}x; "
          f"the model with the reference interleaved / without: {cost:.3f} (median); "
          f"load average after {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
