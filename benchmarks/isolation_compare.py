"""``--dnn-isolate=process`` against in-process measurement, on the CPU.

Each round runs the same pytest command twice in fresh processes, once in process and once with
``--dnn-isolate=process``, alternating which goes first (things compared for speed are
interleaved, and the ratio is the median over rounds). Per round and batch size it takes the
ratio isolated / in-process of the median latency and of the memory ``delta``, and the difference
of the memory ``total``; it prints every round and the medians.

    python benchmarks/isolation_compare.py                       # resnet18, batch 1 and 8, 5 rounds
    python benchmarks/isolation_compare.py --rounds 3 --max-time 2s
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 2**20


def run(mode: str, args: argparse.Namespace, tmp: Path, k: int) -> dict:
    out = tmp / f"{mode}-{k}.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--dnn-device=cpu",
        f"--dnn-models={args.model}",
        f"--dnn-batch-sizes={args.batch_sizes}",
        f"--dnn-max-time={args.max_time}",
        f"--dnn-json={out}",
    ]
    if mode == "isolated":
        cmd.append("--dnn-isolate=process")
    subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    return {r["batch_size"]: r for r in data["records"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-time", default="3s")
    args = ap.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    lat: dict[int, list[float]] = {b: [] for b in sizes}
    delta: dict[int, list[float]] = {b: [] for b in sizes}
    total: dict[int, list[float]] = {b: [] for b in sizes}
    t0 = time.monotonic()
    print(f"{args.model}, batch sizes {args.batch_sizes}, CPU, {args.rounds} rounds, --dnn-max-time={args.max_time}")
    print("round  batch  in-process ms  isolated ms  ratio   delta in/iso MiB  ratio   total in/iso MiB  diff")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for k in range(args.rounds):
            order = ("inprocess", "isolated") if k % 2 == 0 else ("isolated", "inprocess")
            got = {mode: run(mode, args, tmp, k) for mode in order}
            for b in sizes:
                a, i = got["inprocess"][b], got["isolated"][b]
                la, li = a["latency_ms"]["median"], i["latency_ms"]["median"]
                da, di = a["memory_bytes"]["delta"], i["memory_bytes"]["delta"]
                ta, ti = a["memory_bytes"]["total"], i["memory_bytes"]["total"]
                lat[b].append(li / la)
                delta[b].append(di / da if da else float("nan"))
                total[b].append((ti - ta) / MIB)
                print(
                    f"{k + 1:5d}  {b:5d}  {la:13.2f}  {li:11.2f}  {li / la:5.3f}   {da / MIB:7.1f}/{di / MIB:<7.1f}  "
                    f"{delta[b][-1]:5.3f}   {ta / MIB:7.0f}/{ti / MIB:<7.0f}  {total[b][-1]:+6.0f}"
                )
    print("\nmedians over rounds (isolated / in-process):")
    ok = True
    for b in sizes:
        ml, md, mt = statistics.median(lat[b]), statistics.median(delta[b]), statistics.median(total[b])
        lat_ok, delta_ok = abs(ml - 1) <= 0.15, abs(md - 1) <= 0.10
        ok &= lat_ok and delta_ok
        print(
            f"  batch {b}: latency ratio {ml:.3f} ({'within' if lat_ok else 'OUTSIDE'} +/-15 %), "
            f"delta ratio {md:.3f} ({'within' if delta_ok else 'OUTSIDE'} 10 %), total {mt:+.0f} MiB"
        )
    print(f"{'PASS' if ok else 'FAIL'} in {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
