"""Change points on synthetic histories: how often a real step is found at the right run, how often a flat
history gives one (:func:`pytest_dnnbench.store.changes.change_points`, as ``history`` runs it).

Each history is ``--runs`` points (40) at a level of 10 ms, a step at run ``--at`` (25: points 0..24 before,
25..39 after, 0-based) or none, times noise drawn with a seeded RNG (numpy's PCG64, ``--seed``):

``5 %``
    lognormal: each point times exp(N(0, 0.05)).
``CPU``
    the between-process spread measured on the 2-core CPU here (run medians up to 1.45x apart,
    benchmarks/false_alarms.py): a two-state mixture, each run at the fast state (1.0) or, with
    probability 0.3, the slow one (1.4), times lognormal 3 %.

A step is *found at the right run* when a change point lies within ``--tolerance`` (1) runs of ``--at``
with a step of the right sign (``exact``: at run ``--at`` itself); a flat history *gives a change point* when
it has any. Prints one line per case: histories with the step found, found exactly, with a change point
elsewhere, with any change point, the median step and p-value of those found, the mean time of one
``change_points`` call (the first case's includes importing ruptures and scipy), and whether the acceptance
figures held (``--trials`` 20):

- +20 % under 5 % noise: found at the right run in >= 19 of 20;
- flat under 5 % noise: a change point in <= 1 of 20;
- 2x under CPU noise: found at the right run in >= 19 of 20.

The other lines (flat and +20 % under CPU noise, +10 % under 5 %) are there to show the limits. Seconds:

    python benchmarks/change_points.py [--trials 20] [--seed 0] [--runs 40] [--at 25] [--tolerance 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_dnnbench.store.changes import change_points  # noqa: E402

Noise = Callable[[np.random.Generator, int], "np.ndarray[tuple[int], np.dtype[np.float64]]"]


def lognormal(sigma: float) -> Noise:
    return lambda rng, n: np.exp(rng.normal(0.0, sigma, n))


def cpu_like(rng: np.random.Generator, n: int) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """The CPU's between-process spread: fast (1.0) or, with probability 0.3, slow (1.4), times 3 % noise."""
    state = np.where(rng.random(n) < 0.3, 1.4, 1.0)
    return state * np.exp(rng.normal(0.0, 0.03, n))


#: (name, noise, step: the ratio after/before, or None for a flat history, the figure it must meet or None)
CASES: list[tuple[str, Noise, float | None, str | None]] = [
    ("+20 % step, 5 % noise", lognormal(0.05), 1.20, "found >= 19/20"),
    ("flat, 5 % noise", lognormal(0.05), None, "change point <= 1/20"),
    ("2x step, CPU noise", cpu_like, 2.0, "found >= 19/20"),
    ("+10 % step, 5 % noise", lognormal(0.05), 1.10, None),
    ("+20 % step, CPU noise", cpu_like, 1.20, None),
    ("+50 % step, CPU noise", cpu_like, 1.50, None),
    ("flat, CPU noise", cpu_like, None, None),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--at", type=int, default=25)
    parser.add_argument("--tolerance", type=int, default=1)
    args = parser.parse_args(argv)

    print(
        f"{args.trials} histories per case, {args.runs} runs, step at run {args.at} (+-{args.tolerance}), "
        f"seed {args.seed}; change_points() defaults"
    )
    header = (
        f"{'case':<24} {'found':>9} {'exact':>6} {'elsewhere':>9} {'any':>5} {'step':>8} {'p (median)':>10} "
        f"{'ms/call':>8}  held"
    )
    print(header)
    print("-" * len(header))
    all_held = True
    for i, (name, noise, ratio, figure) in enumerate(CASES):
        rng = np.random.default_rng([args.seed, i])
        found = exact = elsewhere = anything = 0
        steps: list[float] = []
        pvalues: list[float] = []
        elapsed = 0.0
        for _ in range(args.trials):
            level = np.full(args.runs, 10.0)
            if ratio is not None:
                level[args.at :] *= ratio
            values = (level * noise(rng, args.runs)).tolist()
            start = time.perf_counter()
            changes = change_points(values)
            elapsed += time.perf_counter() - start
            anything += bool(changes)
            right = [
                c
                for c in changes
                if ratio is not None and abs(c.index - args.at) <= args.tolerance and (c.step > 0) == (ratio > 1)
            ]
            found += bool(right)
            exact += any(c.index == args.at for c in right)
            elsewhere += any(c not in right for c in changes)
            steps += [c.step for c in right]
            pvalues += [c.p_value for c in right]
        if figure is None:
            held = "-"
        elif ratio is None:
            ok = anything <= args.trials // 20
            held = "yes" if ok else "NO"
            all_held &= ok
        else:
            ok = found >= args.trials - args.trials // 20
            held = "yes" if ok else "NO"
            all_held &= ok
        step = f"{statistics.median(steps):+.1%}" if steps else "-"
        p = f"{statistics.median(pvalues):.1e}" if pvalues else "-"
        found_text = f"{found}/{args.trials}" if ratio is not None else "-"
        exact_text = str(exact) if ratio is not None else "-"
        print(
            f"{name:<24} {found_text:>9} {exact_text:>6} {elsewhere:>9} {anything:>5} {step:>8} {p:>10} "
            f"{elapsed / args.trials * 1e3:>8.2f}  {held}{f' ({figure})' if figure else ''}"
        )
    print(f"acceptance figures {'held' if all_held else 'NOT held'}")
    return 0 if all_held else 1


if __name__ == "__main__":
    sys.exit(main())
