"""How well does the reference workload carry the machine's drift? Fresh processes, each timing a model and the
reference workload (pytest_dnnbench/measure/reference.py) call after call, as the plugin does.

For each of ``--processes`` fresh processes (``--pause`` seconds apart, one torch thread): the model's median,
the reference's median, and the model's latency in units of it (the median of the per-call ratios). Printed:
each process's figures, then the spread (slowest / fastest process) of the raw medians and of the relative
latencies, side by side from the same processes. Also the cost of the reference in one process: the model's
median with and without it interleaved (blocks of calls alternating, so that both see the same states).

    python benchmarks/reference_drift.py [--model small|resnet18] [--processes 12] [--seconds 2] [--pause 3]

The model ``small`` is the ~1 ms CNN of benchmarks/false_alarms.py's small-model mode (94,538 parameters).
"""

from __future__ import annotations

import argparse
import json
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
name, seconds = sys.argv[2], float(sys.argv[3])
if name == "resnet18":
    import torchvision
    net, x = torchvision.models.resnet18(weights=None).eval(), torch.randn(1, 3, 224, 224)
else:
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(128, 10)).eval()
    x = torch.randn(1, 3, 64, 64)
ref = reference_timer()
def model():
    with torch.inference_mode():
        t0 = time.perf_counter_ns(); net(x); return (time.perf_counter_ns() - t0) / 1e6
for _ in range(10):
    model()
m, r = [], []
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    m.append(model()); r.append(ref())
# The cost of the reference: blocks of 10 calls with it and 10 without, alternating.
w, wo = [], []
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    for _ in range(10):
        w.append(model()); ref()
    for _ in range(10):
        wo.append(model())
med = statistics.median
print(json.dumps({"model": med(m), "reference": med(r), "relative": med([a / b for a, b in zip(m, r)]),
                  "n": len(m), "with": med(w), "without": med(wo)}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("small", "resnet18"), default="small")
    ap.add_argument("--processes", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--pause", type=float, default=3.0)
    a = ap.parse_args(argv)
    print(f"{a.model}, {a.processes} fresh processes, {a.seconds:g} s each, one thread; "
          f"load average before {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    rows = []
    for i in range(a.processes):
        if i:
            time.sleep(a.pause)
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(ROOT), a.model, str(a.seconds)], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  process {i + 1:2}: model {row['model']:.3f} ms, reference {row['reference']:.3f} ms, "
              f"relative {row['relative']:.3f} ({row['n']} calls); with/without the reference "
              f"{row['with'] / row['without']:.3f}", flush=True)  # fmt: skip

    def spread(key: str) -> float:
        values = [r[key] for r in rows]
        return max(values) / min(values)

    cost = statistics.median(r["with"] / r["without"] for r in rows)
    print(f"spread over the processes (slowest / fastest): model {spread('model'):.2f}x, reference "
          f"{spread('reference'):.2f}x, relative {spread('relative'):.2f}x; the model with the reference "
          f"interleaved / without: {cost:.3f} (median); load average after {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
