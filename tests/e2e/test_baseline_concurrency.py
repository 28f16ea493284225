"""Concurrent baseline saves: 8 processes saving to one file at once keep every round and entry.

Each saver is a real process running ``baseline_save.save_run``, the function the session calls at
the end of a ``--dnn-save-baseline`` run; each makes ``save_document`` sleep first, which widens the
window between reading the file and writing it back, where savers without a lock lose each other's
rounds.
The ten-repetition check with whole pytest runs is ``benchmarks/concurrent_saves.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_dnnbench.baseline_save import file_lock, save_run
from pytest_dnnbench.baseline_store import load_baseline
from pytest_dnnbench.record import Record

SAVER = r"""
import json, sys, time
from pathlib import Path
import pytest_dnnbench.baseline_save as store
from pytest_dnnbench.baseline_save import save_run
from pytest_dnnbench.record import Record

path, model, start_at, delay = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
write = store.save_document


def slow_write(*args, **kwargs):  # between reading the file and writing it back: the window savers race in
    time.sleep(delay)
    return write(*args, **kwargs)


store.save_document = slow_write
record = {"model": model, "batch_size": 1, "device": "cpu", "device_name": "Test CPU", "threads": 2,
          "precision": "fp32", "mode": "eager", "input_size": [3, 8, 8], "macs": 10, "params": 5,
          "latency_ms": {"median": 2.0, "samples": [1.9, 2.0, 2.1], "ci_median": [1.9, 2.1], "n": 3},
          "memory_bytes": {"total": 1000}, "accuracy": {"top1": None, "status": "unavailable"}}
while time.time() < start_at:
    time.sleep(0.005)
out = save_run([Record.from_json(record)], None, choice=str(path), root=path.parent, max_rounds=20, force=False,
               regressions=0, interrupted=False)
print(json.dumps({"notes": out.notes, "failed": out.failed}))
"""


def run_savers(tmp_path: Path, models: list[str], delay: str = "0.3") -> list[dict]:
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    target = tmp_path / "base.json"
    start_at = time.time() + 3.0  # every process has imported what it needs by then
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(target), m, str(start_at), delay],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in models
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def test_eight_concurrent_savers_of_one_model_keep_all_eight_rounds(tmp_path: Path) -> None:
    outs = run_savers(tmp_path, ["m"] * 8)
    assert all(not o["failed"] and o["notes"][0].startswith("baseline saved") for o in outs)
    entry = load_baseline(tmp_path / "base.json").entry("m", 1)
    assert entry is not None and len(entry["rounds"]) == 8


def test_eight_concurrent_savers_of_different_models_keep_every_entry(tmp_path: Path) -> None:
    models = [f"m{k}" for k in range(8)]
    run_savers(tmp_path, models)
    assert sorted(m for m, _ in load_baseline(tmp_path / "base.json").entries) == models


def test_a_lock_held_past_the_bounded_wait_is_an_error_naming_the_file(tmp_path: Path) -> None:
    target = tmp_path / "base.json"
    record = {"model": "m", "batch_size": 1, "device": "cpu", "device_name": "X", "latency_ms": {"median": 1.0}}
    with file_lock(target):
        out = save_run(
            [Record.from_json(record)],
            None,
            choice=str(target),
            root=tmp_path,
            max_rounds=5,
            force=False,
            regressions=0,
            interrupted=False,
            lock_timeout_s=0.2,
        )
    assert out.failed and not target.exists()
    assert "baseline not saved to base.json" in out.notes[0] and f"{tmp_path}/.base.json.lock" in out.notes[0]
    assert "left untouched" in out.notes[0]


@pytest.mark.parametrize("delay", ["0"])
def test_one_saver_leaves_only_the_file(tmp_path: Path, delay: str) -> None:
    run_savers(tmp_path, ["m"], delay=delay)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.json", "saver.py"]  # no lock, no temporary file
