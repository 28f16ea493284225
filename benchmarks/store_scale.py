"""The results store at scale: ``history`` over a large synthetic store, and what writing one record costs.

The store (SQLite, a temporary folder, or ``--path`` to keep it and reuse it): ``--runs`` runs (10,000) and
``--platforms`` x ``--models`` x 2 batch sizes fingerprints (10 x 15 x 2 = 300). Each run is on one platform
(in turn) and measures that platform's 30 fingerprints: 300,000 records, 1,000 runs per history. The latency
of each history is a level times lognormal 5 % noise, with a +20 % step at a random run in a third of them.
Made through the library (:func:`~pytest_dnnbench.store.db.open_store`: the migrations), then filled with bulk
inserts of SQLAlchemy Core in one transaction (this script's own helper: the library writes record by record).

Timed (wall clock, ``time.perf_counter``):

- ``history``: :func:`pytest_dnnbench.store.history.collect` over every fingerprint, as ``python -m
  pytest_dnnbench history`` runs it (its default window: the last 100 runs of each history; its query, the
  change points of 300 histories), and its text; the first call (cold caches) and the median of ``--repeat``;
  also with ``--last 0`` (every run: 1,000 points per history) and for one model;
- writing: ``Store.add_record`` of a real record (docs/report-example/results.json's first, with its 35
  latency samples) into that store, the median (and 90th percentile) of ``--writes`` (200) writes, each its own
  committed transaction as in a run.

Prints the figures and whether they held (history <= 2 s, a record <= 10 ms). About a minute on the 2-core VM
(most of it making the store; with ``--path`` the next runs reuse it):

    python benchmarks/store_scale.py [--runs 10000] [--platforms 10] [--models 15] [--repeat 3] [--writes 200]
        [--path /tmp/store-scale.sqlite]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from pytest_dnnbench.store import schema  # noqa: E402
from pytest_dnnbench.store.cli import format_history  # noqa: E402
from pytest_dnnbench.store.db import Store, open_store  # noqa: E402
from pytest_dnnbench.store.fingerprint import fingerprint  # noqa: E402
from pytest_dnnbench.store.history import Filters, collect  # noqa: E402
from pytest_dnnbench.store.runmeta import RunMeta  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "report-example" / "results.json"
MODELS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "vgg16", "alexnet", "mobilenet_v2", "mobilenet_v3_large",
    "squeezenet1_0", "densenet121", "googlenet", "inception_v3", "shufflenet_v2_x1_0", "efficientnet_b0",
    "regnet_y_400mf", "convnext_tiny", "vit_b_16", "swin_t", "mnasnet1_0", "wide_resnet50_2",
]  # fmt: skip
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _fill(store: Store, runs: int, platforms: int, models: int, seed: int) -> int:
    """Bulk-insert the synthetic runs and records in one transaction; returns the number of records."""
    rng = random.Random(seed)
    plats = [f"cpu-synthetic-cpu-{p}-2t-fp32-eager" for p in range(platforms)]
    histories = []  # (platform index, fields, fingerprint, level, step run or None)
    for p in range(platforms):
        for m in MODELS[:models]:
            for batch in (1, 8):
                data = {
                    "model": m,
                    "source": "torchvision",
                    "batch_size": batch,
                    "input_size": [3, 224, 224],
                    "device": "cpu",
                    "device_name": f"synthetic cpu {p}",
                    "threads": 2,
                    "precision": "fp32",
                    "mode": "eager",
                }
                step = rng.randrange(runs // platforms) if rng.random() < 1 / 3 else None
                histories.append((p, data, fingerprint(data), rng.uniform(2.0, 400.0) * batch**0.7, step))
    run_rows = [
        {
            "id": r + 1,
            "started_at": T0 + timedelta(minutes=30 * r),
            "finished_at": T0 + timedelta(minutes=30 * r + 20),
            "status": "complete",
            "git_commit": f"{r:08x}" + "0" * 32,
            "git_branch": "main",
            "git_dirty": False,
            "host": f"runner-{r % platforms}",
            "platform_key": plats[r % platforms],
            "plugin_version": "0.1.0",
            "torch_version": "2.11.0",
        }
        for r in range(runs)
    ]
    record_rows: list[dict[str, Any]] = []
    for r in range(runs):
        p = r % platforms
        k = r // platforms  # the run's place in its platform's histories
        for hp, data, fp, level, step in histories:
            if hp != p:
                continue
            median = level * (1.2 if step is not None and k >= step else 1.0) * math.exp(rng.gauss(0.0, 0.05))
            record_rows.append(
                {
                    "run_id": r + 1,
                    "created_at": T0 + timedelta(minutes=30 * r + 1),
                    "fingerprint": fp,
                    "test": f"test_models.py::test_model[{data['model']}-bs{data['batch_size']}]",
                    "model": data["model"],
                    "source": "torchvision",
                    "batch_size": data["batch_size"],
                    "input_size": "3x224x224",
                    "mode": "eager",
                    "precision": "fp32",
                    "device": "cpu",
                    "device_name": data["device_name"],
                    "threads": 2,
                    "channels_last": False,
                    "platform_key": plats[p],
                    "outcome": "passed",
                    "busy": False,
                    "insufficient": False,
                    "capped": False,
                    "accuracy_status": "unavailable",
                    "latency_median_ms": median,
                    "latency_mean_ms": median * 1.01,
                    "per_image_ms": median / data["batch_size"],
                    "fps": 1000.0 * data["batch_size"] / median,
                    "memory_total_bytes": 500 * 2**20,
                    "record_json": {"model": data["model"], "batch_size": data["batch_size"]},
                }
            )
    with store.engine.begin() as conn:
        conn.execute(sa.insert(schema.runs), run_rows)
        conn.execute(sa.insert(schema.records), record_rows)
    return len(record_rows)


def _timed(fn: Any, repeat: int) -> tuple[float, float, float, Any]:
    """(the first call's seconds, the median of the next ``repeat``, their median CPU seconds, the last result)."""
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(repeat):
        start, used = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - used)
    return first, statistics.median(times), statistics.median(cpu), result


def _fresh(url: str, cache: Path) -> float:
    """Wall seconds of one ``python -m pytest_dnnbench history --store URL`` process, as a user runs it."""
    env = {**os.environ, "DNNBENCH_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest_dnnbench", "history", "--store", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"history failed: {done.stderr[-2000:]}")
    return took


def _fresh_commands(url: str, repeat: int) -> dict[str, list[float]]:
    """A fresh ``history`` process: with no change point cached (the first command after the cache is deleted),
    then ``repeat`` more with every one cached (every later command until new runs arrive)."""
    with tempfile.TemporaryDirectory() as cache:
        cold = [_fresh(url, Path(cache))]
        warm = [_fresh(url, Path(cache)) for _ in range(repeat)]
    print(
        f"a fresh `python -m pytest_dnnbench history` process: with no change point cached {cold[0]:.2f} s; "
        f"with the change points cached (the next {repeat}): {', '.join(f'{t:.2f}' for t in warm)} s"
    )
    return {"cold": cold, "warm": warm}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--platforms", type=int, default=10)
    parser.add_argument("--models", type=int, default=15, help=f"models per platform (at most {len(MODELS)})")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", type=Path, default=None, help="keep the store in this file (reused if there)")
    args = parser.parse_args(argv)
    # The change points found here go to a cache of this run's own, not the user's: the first call is cold.
    os.environ["DNNBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="dnnbench-scale-cache-")

    with tempfile.TemporaryDirectory() as tmp:
        path = args.path or Path(tmp) / "history.sqlite"
        url = f"sqlite:///{path}"
        start = time.perf_counter()
        reused = path.exists()
        with open_store(url) as store:
            if not reused:
                n = _fill(store, args.runs, args.platforms, args.models, args.seed)
            with store.engine.connect() as conn:
                runs = conn.execute(sa.select(sa.func.count()).select_from(schema.runs)).scalar_one()
                n = conn.execute(sa.select(sa.func.count()).select_from(schema.records)).scalar_one()
        made = time.perf_counter() - start
        print(
            f"store: {runs} runs, {n} records, {path.stat().st_size / 2**20:.0f} MiB "
            f"({'reused' if reused else f'made in {made:.1f} s'}) at {path}"
        )

        with open_store(url, write=False) as store:
            fingerprints = len(store.fingerprints())
            first, median, cpu, history = _timed(lambda: format_history(collect(store)), args.repeat)
            print(
                f"history, {fingerprints} fingerprints, last 100 runs each: first {first:.2f} s (with the imports of "
                f"numpy, scipy, ruptures), median of {args.repeat} {median:.2f} s ({cpu:.2f} s CPU)"
            )
            rows = collect(store)
            changes = sum(len(e.changes) for e in rows.entries)
            print(f"  {len(rows.entries)} histories shown, {changes} change points, {len(history)} characters")
            all_first, all_median, all_cpu, _ = _timed(lambda: collect(store, last=None), args.repeat)
            print(
                f"history --last 0 (every run: 1000 per history): first {all_first:.2f} s, median {all_median:.2f} s "
                f"({all_cpu:.2f} s CPU)"
            )
            one_first, one_median, _, _ = _timed(lambda: collect(store, filters=Filters(model="resnet50")), args.repeat)
            print(f"history --model resnet50: first {one_first:.3f} s, median {one_median:.3f} s")

        fresh = _fresh_commands(url, args.repeat)

        example = json.loads(EXAMPLE.read_text())
        record = example["records"][0]
        with open_store(url) as store:
            run_id = store.begin_run(RunMeta(git_commit="f" * 40, git_branch="main", host="bench"))
            store.set_environment(run_id, example["environment"])
            times, cpu_times = [], []
            for _ in range(args.writes):
                start, used = time.perf_counter(), time.process_time()
                store.add_record(run_id, record)
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - used)
            store.finish_run(run_id)
        times.sort()
        write_median = statistics.median(times)
        p90 = times[int(0.9 * (len(times) - 1))]
        samples = len(record["latency_ms"].get("samples") or [])
        print(
            f"add_record ({len(json.dumps(record))} bytes of JSON, {samples} samples), {args.writes} writes: "
            f"median {write_median * 1e3:.2f} ms ({statistics.median(cpu_times) * 1e3:.2f} ms CPU), "
            f"p90 {p90 * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms"
        )

    held_history = max(first, median) <= 2.0 and max(fresh["warm"]) <= 2.0
    held_write = write_median <= 0.010
    print(f"history <= 2 s (in this process, and a fresh process with the change points cached): "
          f"{'held' if held_history else 'NOT held'}; a record <= 10 ms: "
          f"{'held' if held_write else 'NOT held'}")  # fmt: skip
    return 0 if held_history and held_write else 1


if __name__ == "__main__":
    sys.exit(main())
