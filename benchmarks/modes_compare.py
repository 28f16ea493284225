"""Deployment modes side by side on the CPU: each mode's latency as a ratio to eager, measured interleaved.

For each model and batch size, the model is built once (random weights, seed 0) and prepared for every
mode with the plugin's own preparation (``pytest_dnnbench.measure.modes.prepare``: torch.compile,
ONNX export + ONNX Runtime, OpenVINO conversion + its CPU device). Then, round after round, each mode
(eager included) runs a block of calls, in a shuffled order per round; a round's ratio is the mode's
median over its block divided by eager's median in the same round, so that the machine's drift between
rounds cancels. It prints every (model, batch, mode) with the median ratio over rounds, its range, and
the preparation time; the output check against eager is printed too.

    python benchmarks/modes_compare.py                                  # resnet18, mobilenet_v2; batch 1, 8
    python benchmarks/modes_compare.py --models resnet18 --batch-sizes 1 --rounds 5 --calls 10
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable

import torch

from pytest_dnnbench.measure.bench import BenchSettings, apply_process_settings, make_input, prepare_model
from pytest_dnnbench.measure.modes import output_check, output_figures, prepare
from pytest_dnnbench.registry import REGISTRY, build_model


def block(forward: Callable[[torch.Tensor], object], x: torch.Tensor, calls: int) -> float:
    """Median milliseconds of ``calls`` consecutive calls."""
    times = []
    with torch.inference_mode():
        for _ in range(calls):
            t = time.perf_counter_ns()
            forward(x)
            times.append((time.perf_counter_ns() - t) / 1e6)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--modes", default="compile,onnxruntime,openvino")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=15, help="timed calls per mode per round")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls per mode before the first round")
    args = ap.parse_args()
    modes = ["eager", *[m for m in args.modes.split(",") if m and m != "eager"]]
    settings = BenchSettings(device="cpu")
    restore = apply_process_settings(settings)
    threads = torch.get_num_threads()
    rng = random.Random(0)
    print(f"torch {torch.__version__}, {threads} threads, {args.rounds} rounds x {args.calls} calls per mode")
    print(
        f"{'model':<14}{'batch':>6}  {'mode':<12}{'eager ms':>10}{'mode ms':>10}{'ratio':>8}{'range':>16}"
        f"{'prepare s':>11}  output vs eager"
    )
    started = time.monotonic()
    try:
        for name in args.models.split(","):
            spec = REGISTRY.get(name)
            torch.manual_seed(0)
            model = prepare_model(build_model(spec), settings)
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                x = make_input(batch, spec.input_size, settings)
                prepared = {mode: prepare(mode, model, x, settings, threads=threads) for mode in modes}
                checks = {}
                with torch.inference_mode():
                    reference = model(x)
                    for mode in modes[1:]:
                        checks[mode] = output_check(mode, "fp32", output_figures(reference, prepared[mode].forward(x)))
                for mode in modes:
                    block(prepared[mode].forward, x, args.warmup)
                medians: dict[str, list[float]] = {m: [] for m in modes}
                for _ in range(args.rounds):
                    order = modes[:]
                    rng.shuffle(order)
                    for mode in order:
                        medians[mode].append(block(prepared[mode].forward, x, args.calls))
                for mode in modes[1:]:
                    ratios = [m / e for m, e in zip(medians[mode], medians["eager"], strict=True)]
                    check = checks[mode]
                    print(
                        f"{name:<14}{batch:>6}  {mode:<12}{statistics.median(medians['eager']):>10.2f}"
                        f"{statistics.median(medians[mode]):>10.2f}{statistics.median(ratios):>7.2f}x"
                        f"{f'{min(ratios):.2f}-{max(ratios):.2f}x':>16}{prepared[mode].prepare_s:>11.1f}  "
                        f"{'ok' if check.passed else 'MISMATCH'} {check.measured:.1e}",
                        flush=True,
                    )
                for p in prepared.values():
                    p.close()
    finally:
        restore()
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
