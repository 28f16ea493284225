"""Is the reference workload's time tied to what the model's call did last? Cold (v1) and warm (v2) side by side.

The plugin divides the machine's speed out of a CPU latency by timing a fixed reference workload after every
timed call (pytest_dnnbench/measure/reference.py). That only works if the workload's time follows the machine and
not the model: a model that became slower must not make the workload slower too, or part of a real slowdown is
divided out and missed. This script times, in one process, a small CNN (94.5 k parameters, 64x64 input, one
thread) at batch 1 and 8, each call followed by extra work of a fraction of its own duration -- nothing, a
Python busy loop (+25 %, +100 %: what ``benchmarks/false_alarms.py`` injects), other torch kernels (+50 %), a
sleep (+100 %: a model that waits) -- and then the reference workload two ways, alternating call by call:

- ``cold``: the workload timed once, right after the call (how v1 of the workload was timed);
- ``warm``: the workload run once untimed and timed the second time (v2);
- ``best of 4``: the workload run once untimed and then timed four times, the fastest kept
  (:func:`reference_timer`, v3: the plugin's now).

Conditions are visited round-robin, a few calls each, so that the machine's own drift touches all alike. Printed
per condition: each way's median as a ratio to its median after a call with no extra work (1.00: not tied to the
model), and the model's latency ratio as the gate would see it after dividing by that way's reference (the
injected slowdown should survive: about 1.25, 2.0, 1.5, 2.0).

    python benchmarks/reference_coupling.py [--rounds 30] [--calls 8] [--model small|resnet18]

``--model resnet18`` (random weights, 224x224) takes a few minutes with ``--rounds 4 --calls 2``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from pytest_dnnbench.measure.reference import WORKLOAD, reference_timer

CONDITIONS = [("none", 0.0), ("python loop", 0.25), ("python loop", 1.0), ("torch kernels", 0.5), ("sleep", 1.0)]


def small() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(128, 10),
    ).eval()  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--calls", type=int, default=8, help="calls per condition and way in each round")
    ap.add_argument("--model", choices=("small", "resnet18"), default="small")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.model == "resnet18":
        import torchvision

        net, size = torchvision.models.resnet18(weights=None).eval(), 224
    else:
        net, size = small(), 64
    best = reference_timer()
    gen = torch.Generator().manual_seed(1234)
    rx, rw = torch.randn((1, 32, 32, 32), generator=gen), torch.randn((32, 32, 3, 3), generator=gen) * 0.06

    def cold() -> float:
        t0 = time.perf_counter_ns()
        F.conv2d(rx, rw, padding=1)
        return (time.perf_counter_ns() - t0) / 1e6

    def warm() -> float:
        F.conv2d(rx, rw, padding=1)
        return cold()

    ways = {"cold": cold, "warm": warm, "best of 4": best}
    inputs = {bs: torch.randn(bs, 3, size, size) for bs in (1, 8)}
    mat = torch.randn(64, 64)
    # (batch, condition, way) -> [(model ms including the extra work, reference ms)]
    data: dict[tuple[int, str, float, str], list[tuple[float, float]]] = {}

    def call(bs: int, kind: str, extra: float) -> float:
        t0 = time.perf_counter()
        net(inputs[bs])
        d = time.perf_counter() - t0
        end = time.perf_counter() + extra * d
        if kind == "python loop":
            while time.perf_counter() < end:
                pass
        elif kind == "torch kernels":
            y = mat
            while time.perf_counter() < end:
                y = torch.tanh(y @ mat)
        elif kind == "sleep":
            time.sleep(extra * d)
        return (time.perf_counter() - t0) * 1000

    print(
        f"{args.model}; reference workload: {WORKLOAD}; {torch.get_num_threads()} thread(s), "
        f"{args.rounds} rounds x {args.calls} calls"
    )
    t_start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(3):
            for bs in inputs:
                call(bs, "none", 0.0)
        for _ in range(args.rounds):
            for bs in inputs:
                for kind, extra in CONDITIONS:
                    for _ in range(args.calls):
                        for name, way in ways.items():  # alternating call by call
                            ms = call(bs, kind, extra)
                            data.setdefault((bs, kind, extra, name), []).append((ms, way()))
    print(f"{time.perf_counter() - t_start:.0f} s\n")
    print(
        f"{'batch':>5} {'extra work after each call':<26} {'model':>6}   {'reference / no extra work':>26}   "
        f"{'model / reference, to no extra':>31}"
    )
    print(
        f"{'':>5} {'':<26} {'':>6}   {'cold':>8} {'warm':>8} {'best of 4':>9}   {'cold':>9} {'warm':>9} "
        f"{'best of 4':>9}"
    )
    for bs in inputs:
        base = {
            name: (
                statistics.median(m for m, _ in data[(bs, "none", 0.0, name)]),
                statistics.median(r for _, r in data[(bs, "none", 0.0, name)]),
                statistics.median(m / r for m, r in data[(bs, "none", 0.0, name)]),
            )
            for name in ways
        }
        for kind, extra in CONDITIONS:
            label = "none" if kind == "none" else f"{kind} +{100 * extra:.0f} %"
            model = statistics.median(m for m, _ in data[(bs, kind, extra, "warm")]) / base["warm"][0]
            refs, rels = [], []
            for name in ways:
                rows = data[(bs, kind, extra, name)]
                refs.append(statistics.median(r for _, r in rows) / base[name][1])
                rels.append(statistics.median(m / r for m, r in rows) / base[name][2])
            print(
                f"{bs:>5} {label:<26} {model:>5.2f}x   {refs[0]:>7.2f}x {refs[1]:>7.2f}x {refs[2]:>8.2f}x   "
                f"{rels[0]:>8.2f}x {rels[1]:>8.2f}x {rels[2]:>8.2f}x"
            )
    for bs in inputs:
        print(
            f"batch {bs}, no extra work: reference cold {base_ms(data, bs, 'cold'):.3f} ms, "
            f"warm {base_ms(data, bs, 'warm'):.3f} ms, best of 4 {base_ms(data, bs, 'best of 4'):.3f} ms"
        )


def base_ms(data: dict[tuple[int, str, float, str], list[tuple[float, float]]], bs: int, way: str) -> float:
    return statistics.median(r for _, r in data[(bs, "none", 0.0, way)])


if __name__ == "__main__":
    main()
