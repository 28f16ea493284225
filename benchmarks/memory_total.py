"""CPU memory of the deployed model: the in-process ``total`` against an isolated child's direct figure.

In process, ``memory_bytes.total`` on the CPU is assembled: the runtime floor (RSS of a fresh
interpreter that imported torch and the model's library, measured in a subprocess) + the model's
parameters and buffers + ``delta`` (the forward pass's working set). Under ``--dnn-isolate=process``
a child that holds only torch, the library, the model and the batch reads its own peak RSS. This
script runs both over the same models and batch sizes (two pytest processes, one after the other:
memory does not drift with machine load as timings do) and prints each pair, their ratio, and the
whole pytest process's peak (``process_total``) for comparison. Exits 1 if any pair differs by more
than ``--limit`` (10 %).

    python benchmarks/memory_total.py [--models resnet18,mobilenet_v2,vgg16] [--batch-sizes 1,8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MiB = 2**20


def run(models: str, batches: str, out: Path, *extra: str) -> dict[tuple[str, int], dict]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--benchmark-disable",
        "--dnn-device=cpu",
        f"--dnn-models={models}",
        f"--dnn-batch-sizes={batches}",
        "--dnn-max-time=1",
        "--dnn-min-samples=3",
        "--dnn-baseline=none",
        f"--dnn-json={out}",
        *extra,
    ]
    subprocess.run(cmd, cwd=out.parent, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {(r["model"], r["batch_size"]): r for r in json.loads(out.read_text())["records"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,mobilenet_v2,vgg16")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--limit", type=float, default=0.10)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inproc = run(a.models, a.batch_sizes, Path(tmp) / "in.json")
        isolated = run(a.models, a.batch_sizes, Path(tmp) / "iso.json", "--dnn-isolate=process")
    print(
        f"{'model':<14} {'batch':>5} {'in-process':>11} {'isolated':>9} {'ratio':>6}  "
        f"{'floor':>6} {'model':>6} {'delta':>6}  {'pytest process':>14}   (MiB)"
    )
    worst = 0.0
    for key in sorted(inproc, key=lambda k: (a.models.split(",").index(k[0]), k[1])):
        m, d = inproc[key]["memory_bytes"], (isolated.get(key) or {}).get("memory_bytes") or {}
        if not d.get("total"):
            print(f"{key[0]:<14} {key[1]:>5}  no isolated figure")
            worst = float("inf")
            continue
        ratio = m["total"] / d["total"]
        worst = max(worst, abs(ratio - 1))
        print(
            f"{key[0]:<14} {key[1]:>5} {m['total'] / MiB:>11.1f} {d['total'] / MiB:>9.1f} {ratio:>6.3f}  "
            f"{m['runtime_floor'] / MiB:>6.1f} {m['model'] / MiB:>6.1f} {m['delta'] / MiB:>6.1f}  "
            f"{m['process_total'] / MiB:>14.1f}"
        )
    ok = worst <= a.limit
    print(f"largest difference {100 * worst:.1f} % (limit {100 * a.limit:g} %): {'held' if ok else 'NOT held'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
