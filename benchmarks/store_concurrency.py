"""Concurrent ``--dnn-store`` runs to one store, repeated: is every record of every run there?

Each repetition starts ``--runs`` (default 8) whole pytest runs at once, each benchmarking its own tiny
model at two batch sizes and writing to the same new store: an SQLite file, and a database on a real
PostgreSQL server started for the purpose (as the ``postgres`` user where this runs as root, as the test
suite does: tests/store_server.py). A new store per repetition, so that the runs also race to create its
tables. Checked per repetition: every run exited 0, the store holds ``--runs`` runs, all ``complete``, with
2 records each, and every (model, batch size) once.

    python benchmarks/store_concurrency.py --repetitions 10
    python benchmarks/store_concurrency.py --repetitions 3 --backend sqlite
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

MODELS = """
import torch


def tiny(width: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(width, 10))
"""

CONFTEST = """
def pytest_dnnbench_register_models(registry, config):
    for k in range(32):
        registry.register(f"tiny{k}", "storemodels:tiny", input_size=(3, 16, 16), kwargs={"width": 4 + k})
"""

RUN = [
    "--dnn-device=cpu",
    "--dnn-max-time=0.3",
    "--dnn-min-samples=3",
    "--dnn-warmup=1",
    "--dnn-threads=1",
    "--dnn-batch-sizes=1,2",
    "-p",
    "no:cacheprovider",
    "-q",
]


def repetition(project: Path, url: str, runs: int) -> tuple[bool, str, float]:
    from pytest_dnnbench.store.db import open_store

    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", *RUN, f"--dnn-models=tiny{k}", f"--dnn-store={url}"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(runs)
    ]
    outputs = [p.communicate()[0] for p in procs]
    seconds = time.monotonic() - t0
    failed = [k for k, p in enumerate(procs) if p.returncode != 0]
    if failed:
        return False, f"runs {failed} failed: {outputs[failed[0]][-800:]}", seconds
    with open_store(url, write=False) as store:
        found = store.runs(limit=None)
        per_run = Counter(r.records for r in found)
        status = Counter(r.status for r in found)
        tests = Counter((f.model, f.batch_size) for f in store.fingerprints() for _ in range(f.records))
    expected = {(f"tiny{k}", b) for k in range(runs) for b in (1, 2)}
    ok = (
        len(found) == runs
        and status == Counter({"complete": runs})
        and per_run == Counter({2: runs})
        and set(tests) == expected
        and all(n == 1 for n in tests.values())
    )
    summary = f"{len(found)} runs ({dict(status)}), records per run {dict(per_run)}, {sum(tests.values())} records"
    return ok, summary, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--runs", type=int, default=8, help="pytest runs started at once (at most 32)")
    ap.add_argument("--backend", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    a = ap.parse_args()
    held = True
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "storemodels.py").write_text(MODELS)
        (project / "conftest.py").write_text(CONFTEST)
        (project / "pytest.ini").write_text("[pytest]\n")
        for backend in a.backend:
            server: AbstractContextManager[object]
            if backend == "postgresql":
                from store_server import postgres_server

                server = postgres_server()
            else:
                server = nullcontext()
            with server as pg:
                make_url: Callable[[int], str]
                if pg is None:

                    def make_url(k: int) -> str:
                        return f"sqlite:///{project / f'store-{k}.sqlite'}"
                else:

                    def make_url(k: int) -> str:
                        return pg.create_database(f"concurrency_{k}")  # type: ignore[attr-defined,no-any-return]

                kept = 0
                for k in range(a.repetitions):
                    ok, summary, seconds = repetition(project, make_url(k), a.runs)
                    kept += ok
                    print(f"{backend} repetition {k + 1}: {'all kept' if ok else 'LOST'}: {summary} ({seconds:.0f} s)")
                print(
                    f"{backend}: every record of every run kept in {kept} of {a.repetitions} repetitions\n", flush=True
                )
                held &= kept == a.repetitions
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
