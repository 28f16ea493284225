"""The plugin's median latency against a minimal hand-written loop, measured side by side.

Both time the same prepared model on the same device, interleaved call by
call (the order alternates every call), so that machine noise hits both
alike. The plugin side is the real measurement path (``measure()``: the
adaptive sampler, the backend's timer, inference mode, the memory probe);
the loop side is ``perf_counter`` around ``model(x)`` on CPU, or two CUDA
events and a synchronize on GPU. Each round prints the ratio of the two
medians over the same number of calls; the summary is the median ratio
over the rounds.

    python benchmarks/plugin_vs_loop.py                    # resnet18, batch 1 and 8, CPU
    python benchmarks/plugin_vs_loop.py --device cuda --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any


def hand_timer(device: str, fn: Callable[[], object]) -> Callable[[], float]:
    """The minimal loop body: one call, timed the plainest way for the device."""
    if device == "cpu":

        def once() -> float:
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3

        return once
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def once_cuda() -> float:
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)

    return once_cuda


class Interleaved:
    """Wraps the plugin's backend: every timed call of the plugin is paired with one loop call."""

    def __init__(self, backend: Any, loop_call: Callable[[], float]):
        self.backend = backend
        self.loop_call = loop_call
        self.loop_samples: list[float] = []
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def timer(self, fn: Callable[[], object]) -> Callable[[], float]:
        plugin_timer = self.backend.timer(fn)

        def once() -> float:
            self.calls += 1
            if self.calls % 2:
                self.loop_samples.append(self.loop_call())
                return plugin_timer()
            value = plugin_timer()
            self.loop_samples.append(self.loop_call())
            return value

        return once


def one_round(model: Any, batch: int, size: tuple, settings: Any, backend: Any) -> tuple[float, float, int]:
    import torch

    from pytest_dnnbench.measure.bench import make_input, measure

    x_loop = make_input(batch, size, settings)
    with torch.inference_mode():
        loop = hand_timer(settings.device, lambda: model(x_loop))
        wrapped = Interleaved(backend, loop)
        m = measure(model, batch, size, settings, wrapped)
    n = m.timing.stats.n
    loop_timed = wrapped.loop_samples[-n:]  # the same calls as the plugin's timed samples
    return m.timing.stats.median, statistics.median(loop_timed), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-time", type=float, default=8.0, help="plugin budget per round, seconds")
    args = ap.parse_args()

    import torch

    from pytest_dnnbench.device import resolve_device
    from pytest_dnnbench.measure.backends import make_backend
    from pytest_dnnbench.measure.bench import BenchSettings, apply_process_settings, prepare_model
    from pytest_dnnbench.measure.timing import SamplingPolicy
    from pytest_dnnbench.registry import REGISTRY, build_model

    device = resolve_device(args.device)
    settings = BenchSettings(device=device, policy=SamplingPolicy(max_time_s=args.max_time))
    apply_process_settings(settings)
    backend = make_backend(device)
    spec = REGISTRY.get(args.model)
    torch.manual_seed(settings.seed)
    model = prepare_model(build_model(spec), settings)
    print(
        f"{args.model} on {device} ({backend.device_name()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.rounds} rounds"
    )
    print(f"{'batch':>5} {'round':>5} {'n':>5} {'plugin ms':>10} {'loop ms':>10} {'ratio':>7}")
    summary = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        ratios = []
        for r in range(args.rounds):
            plugin_ms, loop_ms, n = one_round(model, batch, spec.input_size, settings, backend)
            ratios.append(plugin_ms / loop_ms)
            print(f"{batch:>5} {r + 1:>5} {n:>5} {plugin_ms:>10.3f} {loop_ms:>10.3f} {ratios[-1]:>7.3f}", flush=True)
        summary.append((batch, statistics.median(ratios), min(ratios), max(ratios)))
    print("\nmedian ratio plugin/loop over rounds (range):")
    for batch, med, lo, hi in summary:
        print(f"  batch {batch}: {med:.3f}  ({lo:.3f} .. {hi:.3f})")


if __name__ == "__main__":
    main()
