"""How long collecting the paper's matrix takes: no measurement may run at collection (issue 22, item 9).

Runs ``pytest --collect-only -q --dnn-device=cpu --dnn-models=paper --dnn-batch-sizes=1,2,4,8,16,32,64``
(308 tests) in a fresh process from an empty folder, ``--runs`` times, and prints each wall time and
the median. Exits 1 if the median is above ``--limit`` seconds (3 s: what collection took before the
CPU runtime floors existed). ``--tree PATH`` runs another checkout of the plugin instead (put first on
``PYTHONPATH``), for a before/after comparison on the same machine.

    python benchmarks/collect_time.py [--runs 3] [--limit 3] [--tree /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMAND = [
    "-m",
    "pytest",
    "-p",
    "no:cacheprovider",
    "--collect-only",
    "-q",
    "--dnn-device=cpu",
    "--dnn-models=paper",
    "--dnn-batch-sizes=1,2,4,8,16,32,64",
]


def collect_once(tree: str | None) -> tuple[float, int]:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([tree, *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, *COMMAND], cwd=folder, env=env, capture_output=True, text=True, check=True
        ).stdout
        seconds = time.perf_counter() - start
    return seconds, sum(1 for line in out.splitlines() if "::test_dnn[" in line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", type=float, default=3.0, help="seconds the median may take (default 3)")
    ap.add_argument("--tree", help="another checkout of the plugin to time instead of the installed one")
    args = ap.parse_args()
    times = []
    for i in range(args.runs):
        seconds, count = collect_once(args.tree)
        times.append(seconds)
        print(f"run {i + 1}: {count} tests collected in {seconds:.2f} s (wall, fresh process)")
    median = statistics.median(times)
    verdict = "held" if median <= args.limit else "NOT held"
    print(f"median of {args.runs}: {median:.2f} s (limit {args.limit:g} s): {verdict}")
    return 0 if median <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
