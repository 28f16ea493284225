"""The plugin's own per-test overhead on two source trees, run alternately in one session.

For a change to the pytest glue (not the measurement), the cost to hold is the time a test takes
beyond its timed calls and warm-up: setup, model handling, the memory call, FLOP counting and the
plugin's bookkeeping. Both trees run the same small benchmark (``plugin_costs.overhead``: a real
pytest run, test times from a JUnit report, timed time from the results file), one after the
other, for several rounds, so that drift of the machine falls on both alike; the figure is the
ratio of the median overhead per test, new over old, for each round, and its median.

    git worktree add /tmp/old <commit before the change>
    python benchmarks/compare_trees.py --old /tmp/old --new . --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def overhead_in(tree: Path, models: str, batch_sizes: str, max_time: str) -> list[float]:
    """Per-test overhead (s) of one run with ``tree``'s plugin (its directory first on the path)."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import plugin_costs as pc; "
        f"print(json.dumps(pc.overhead({models!r}, {batch_sizes!r}, {max_time!r})))"
    )
    env = dict(os.environ, PYTHONPATH=str(tree))
    # cwd: a neutral folder, so that the tree on PYTHONPATH is what "import pytest_dnnbench" finds
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    ).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    return [total - measured for _, total, measured in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, type=Path, help="source tree before the change")
    ap.add_argument("--new", required=True, type=Path, help="source tree after the change")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="squeezenet1_1,resnet18")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--max-time", default="2s")
    args = ap.parse_args()
    for tree in (args.old, args.new):
        check = subprocess.run(
            [sys.executable, "-c", "import pytest_dnnbench; print(pytest_dnnbench.__file__)"],
            env=dict(os.environ, PYTHONPATH=str(tree.resolve())),
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        print(f"{tree}: plugin from {check.stdout.strip()}")
    ratios = []
    print(f"\n{'round':>5} {'old s/test':>11} {'new s/test':>11} {'new/old':>8}")
    for k in range(1, args.rounds + 1):
        order = [("old", args.old), ("new", args.new)] if k % 2 else [("new", args.new), ("old", args.old)]
        medians = {}
        for label, tree in order:
            medians[label] = statistics.median(
                overhead_in(tree.resolve(), args.models, args.batch_sizes, args.max_time)
            )
        ratio = medians["new"] / medians["old"]
        ratios.append(ratio)
        print(f"{k:>5} {medians['old']:>11.3f} {medians['new']:>11.3f} {ratio:>8.3f}")
    print(
        f"\nmedian per-test overhead new/old over {args.rounds} rounds: {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f} .. {max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
