"""What the plugin itself costs: collecting the paper's matrix, and time per test beyond the measurement.

1. Collection: ``pytest --dnn-models=paper --collect-only`` (44 models x 7 batch sizes = 308
   tests) in a fresh process, median of three runs. No model is built at collection.
2. Per-test overhead: a small real run; for each test, its whole duration (setup, call and
   teardown, from a JUnit XML report) over the time spent in timed calls and warm-up (the sum of
   the record's samples and warm-up calls). The rest is model building (first test of a model),
   FLOP counting (once per model), the memory call, and the plugin's bookkeeping.

    python benchmarks/plugin_costs.py
    python benchmarks/plugin_costs.py --models squeezenet1_1,resnet18 --batch-sizes 1,8
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]


def collection_time(runs: int = 3) -> tuple[float, int]:
    times, count = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            t0 = time.perf_counter()
            out = subprocess.run(
                pytest_cmd("--dnn-models=paper", "--collect-only"), cwd=tmp, capture_output=True, text=True, check=True
            ).stdout
            times.append(time.perf_counter() - t0)
            count = sum(1 for line in out.splitlines() if "::test_dnn[" in line)
    return statistics.median(times), count


def overhead(models: str, batch_sizes: str, max_time: str) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        results, junit = Path(tmp) / "r.json", Path(tmp) / "j.xml"
        subprocess.run(
            pytest_cmd(
                f"--dnn-models={models}",
                f"--dnn-batch-sizes={batch_sizes}",
                f"--dnn-max-time={max_time}",
                f"--dnn-json={results}",
                f"--junitxml={junit}",
                "--benchmark-disable",
            ),
            cwd=tmp,
            capture_output=True,
            check=True,
        )
        records = {f"{r['model']}-bs{r['batch_size']}": r for r in json.loads(results.read_text())["records"]}
        rows = []
        for case in ET.parse(junit).getroot().iter("testcase"):
            key = case.get("name", "").split("[", 1)[-1].rstrip("]")
            rec = records[key]
            lat = rec["latency_ms"]
            measured_s = (sum(lat["samples"]) + sum(lat["warmup_samples"])) / 1000.0
            rows.append((key, float(case.get("time", "0")), measured_s))
        return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="squeezenet1_1,resnet18")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--max-time", default="3s")
    args = ap.parse_args()

    seconds, count = collection_time()
    print(f"collection of --dnn-models=paper: {count} tests in {seconds:.2f} s (median of 3 fresh processes)")
    print(f"\nper-test time over time in timed calls and warm-up ({args.models}, batches {args.batch_sizes}):")
    print(f"{'test':<24} {'test s':>8} {'timed s':>8} {'ratio':>7}")
    rows = overhead(args.models, args.batch_sizes, args.max_time)
    for key, total, measured in rows:
        print(f"{key:<24} {total:>8.2f} {measured:>8.2f} {total / measured:>7.2f}")
    later = [t / m for k, t, m in rows if not k.endswith("-bs" + args.batch_sizes.split(",")[0])]
    if later:
        print(
            f"\nmedian ratio for tests after a model's first (no build, no FLOP count): {statistics.median(later):.2f}"
        )


if __name__ == "__main__":
    main()
