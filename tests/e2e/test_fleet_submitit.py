"""docs/fleet.md's Slurm recipe, run as it is written there, with submitit's local executor.

The script (``bench_fleet.py``, the Python block after its marker in docs/fleet.md) submits one job per shard
and merges their results files; ``DNN_CLUSTER=local`` runs each job as a process of this machine, as submitit
does for a dry run. Three shards of tiny models: every test once in the merged file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FAST, load_json

pytest.importorskip("torch")
pytest.importorskip("submitit")

DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"
MARKER = "<!-- bench_fleet.py: run by tests/e2e/test_fleet_submitit.py -->"


def recipe() -> str:
    """The script as docs/fleet.md shows it."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r"\n```python\n(.*?)\n```\n", text, re.DOTALL)
    assert found is not None, f"docs/fleet.md has no python block after {MARKER!r}"
    return found.group(1) + "\n"


def test_the_recipe_is_the_docs_script() -> None:
    script = recipe()
    compile(script, "bench_fleet.py", "exec")
    assert "submitit.AutoExecutor" in script and "map_array(run_shard" in script and "merge.main(" in script


def test_the_submitit_recipe_runs_three_shards_and_merges_them(tiny_project: pytest.Pytester) -> None:
    root = tiny_project.path
    (root / "bench_fleet.py").write_text(recipe(), encoding="utf-8")
    out = root / "fleet-results"
    models = "tiny,tiny_wide,broken"
    env = {
        **os.environ,
        "DNN_CLUSTER": "local",
        "DNN_SHARDS": "3",
        "DNN_GPUS": "0",
        "DNN_OUT": str(out),
        "DNN_RUN_GROUP": "submitit-e2e",
        "DNN_PYTEST_ARGS": " ".join(
            [f"--dnn-models={models}", "--dnn-batch-sizes=1", "--dnn-threads=1", "-p", "no:cacheprovider", *FAST]
        ),
    }
    for name in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "bench_fleet.py"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    logs = "\n".join(p.read_text(errors="replace") for p in sorted((out / "submitit").glob("*_log.*")))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    assert "merged 3 file(s) (1/3, 2/3, 3/3; run group submitit-e2e): 2 record(s) of 2 test(s)" in done.stdout
    assert "missing: 1 test(s) left no record:\n  broken bs1" in done.stdout
    merged = load_json(out / "merged.json")
    ids = sorted([r["test"] for r in merged["records"]] + [m["test"] for m in merged["missing"]])
    assert ids == [f"pytest_dnnbench/suite/bench_models.py::test_dnn[{m}-bs1]" for m in sorted(models.split(","))]
    assert sorted(s["shard"] for s in merged["shards"]) == ["1/3", "2/3", "3/3"]
    assert {s["run_group"] for s in merged["shards"]} == {"submitit-e2e"}
