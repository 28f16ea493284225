"""The change-point cache (pytest_dnnbench/store/change_cache.py): addressed by content, never stale, never an
error; a warm ``history`` in a fresh process imports neither ruptures nor scipy."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dnnbench.store.change_cache import ENV_VAR, MAX_ENTRIES, ChangeCache, cache_path
from pytest_dnnbench.store.changes import ALPHA, MIN_STEP, change_points


def stepped(seed: int, n: int = 40, at: int = 25, step: float = 1.2) -> list[float]:
    rng = random.Random(seed)
    return [10.0 * (step if i >= at else 1.0) * rng.lognormvariate(0, 0.05) for i in range(n)]


def test_a_hit_gives_what_was_found_and_is_kept_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    values = stepped(1)
    first = ChangeCache(path)
    found = first.find(values, alpha=ALPHA, min_step=MIN_STEP)
    assert found == change_points(values) and found and (first.hits, first.misses) == (0, 1)
    assert first.save() and path.is_file()
    again = ChangeCache(path)  # as the next command reads it
    assert again.find(values, alpha=ALPHA, min_step=MIN_STEP) == found
    assert (again.hits, again.misses) == (1, 0)
    assert again.save() and not [p for p in tmp_path.iterdir() if p.name != "c.json"]  # no temporary left


def test_a_new_point_or_other_settings_are_another_key(tmp_path: Path) -> None:
    cache = ChangeCache(tmp_path / "c.json")
    values = stepped(2)
    cache.find(values, alpha=ALPHA, min_step=MIN_STEP)
    cache.find([*values, values[-1]], alpha=ALPHA, min_step=MIN_STEP)
    cache.find(values, alpha=0.001, min_step=MIN_STEP)
    cache.find(values, alpha=ALPHA, min_step=0.3)
    assert (cache.hits, cache.misses) == (0, 4)
    assert cache.find(values, alpha=0.001, min_step=MIN_STEP) == change_points(values, alpha=0.001)
    assert cache.find(values, alpha=ALPHA, min_step=0.3) == []  # a 20 % step is below a 30 % minimum


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.5, 2.0), min_size=0, max_size=30), st.integers(0, 3))
def test_the_cache_never_changes_an_answer(
    tmp_path_factory: pytest.TempPathFactory, values: list[float], k: int
) -> None:
    path = tmp_path_factory.mktemp("c") / "c.json"
    series = [*values, *[v * 1.5 for v in values[:k]]]
    first = ChangeCache(path).find(series, alpha=ALPHA, min_step=MIN_STEP)
    c = ChangeCache(path)
    c.find(series, alpha=ALPHA, min_step=MIN_STEP)
    c.save()
    assert ChangeCache(path).find(series, alpha=ALPHA, min_step=MIN_STEP) == first == change_points(series)


@pytest.mark.parametrize(
    "content",
    ["", "{not json", '{"version": 0, "entries": {}}', "[1, 2]", '{"version": 1, "entries": {"k": [1, [["x"]]]}}'],
)
def test_a_cache_that_cannot_be_read_is_started_afresh(tmp_path: Path, content: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")
    values = stepped(3)
    cache = ChangeCache(path)
    assert cache.find(values, alpha=ALPHA, min_step=MIN_STEP) == change_points(values)
    assert cache.save()
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == 1


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    cache = ChangeCache(blocker / "c.json")  # its folder would be a file
    assert cache.find(stepped(4), alpha=ALPHA, min_step=MIN_STEP)
    assert cache.save() is False


def test_the_oldest_entries_go_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_dnnbench.store.change_cache.MAX_ENTRIES", 3)
    clock = iter(range(1000, 2000, 10))
    monkeypatch.setattr("pytest_dnnbench.store.change_cache.time.time", lambda: float(next(clock)))
    cache = ChangeCache(tmp_path / "c.json")
    for k in range(5):
        cache.find([1.0, 1.0, float(k)], alpha=ALPHA, min_step=MIN_STEP)
    cache.save()
    kept = ChangeCache(tmp_path / "c.json")
    assert len(kept._entries) == 3 and MAX_ENTRIES > 3
    assert kept.find([1.0, 1.0, 4.0], alpha=ALPHA, min_step=MIN_STEP) == [] and kept.hits == 1
    assert kept.find([1.0, 1.0, 0.0], alpha=ALPHA, min_step=MIN_STEP) == [] and kept.misses == 1


def test_the_folder_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    assert cache_path() == tmp_path / "mine" / "change-points.json"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_path() == tmp_path / "xdg" / "pytest-dnnbench" / "change-points.json"


def sha(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


WARM = """
import sys
from pytest_dnnbench.__main__ import main
code = main(["history", "--store", sys.argv[1]])
print("IMPORTED", "ruptures" in sys.modules, "scipy.stats" in sys.modules, code)
"""


def test_a_warm_history_command_imports_neither_ruptures_nor_scipy(tmp_path: Path) -> None:
    from datetime import timedelta

    from store_records import T0, record, run_with

    from pytest_dnnbench.store.db import open_store
    from pytest_dnnbench.store.urls import resolve_url

    url = resolve_url(None, tmp_path)
    with open_store(url) as store:
        for i, v in enumerate(stepped(5, n=14, at=8, step=1.5)):
            run_with(store, [record("resnet18", 1, v)], at=T0 + timedelta(hours=i), commit=sha(i))
    env = {**os.environ, ENV_VAR: str(tmp_path / "cache")}
    runs = [
        subprocess.run([sys.executable, "-c", WARM, url], capture_output=True, text=True, env=env, timeout=120)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert "IMPORTED True True 0" in runs[0].stdout  # cold: the change points were found
    assert "IMPORTED False False 0" in runs[1].stdout  # warm: read from the cache
    assert runs[0].stdout.split("IMPORTED")[0] == runs[1].stdout.split("IMPORTED")[0]  # the same words
    assert sha(8)[:7] in runs[1].stdout  # the change point, at the commit of its first run
