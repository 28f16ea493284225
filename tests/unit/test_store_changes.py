"""Change points over a history (:mod:`pytest_dnnbench.store.changes`), the store's read queries the history
command uses, and the command itself (:mod:`pytest_dnnbench.store.history`, :mod:`pytest_dnnbench.store.cli`)
on SQLite stores written through the Store API."""

from __future__ import annotations

import io
import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("ruptures")
pytest.importorskip("sqlalchemy")

from pytest_dnnbench.__main__ import main  # noqa: E402
from pytest_dnnbench.store.changes import ALPHA, MIN_STEP, change_points, noise_scale, trend  # noqa: E402
from pytest_dnnbench.store.cli import format_history, parse_selection  # noqa: E402
from pytest_dnnbench.store.db import Store, open_store  # noqa: E402
from pytest_dnnbench.store.history import Filters, collect, commit_matches, to_json  # noqa: E402
from pytest_dnnbench.store.runmeta import RunMeta  # noqa: E402
from pytest_dnnbench.store.urls import resolve_url  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def noisy(levels: list[float], sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [level * math.exp(rng.gauss(0.0, sigma)) for level in levels]


# -- change_points ------------------------------------------------------------------------------------------------


def test_a_step_is_found_at_its_run_with_its_size_and_significance() -> None:
    values = noisy([10.0] * 25 + [12.0] * 15, 0.03, seed=1)
    [change] = change_points(values)
    assert change.index == 25
    assert change.n_before == 25 and change.n_after == 15
    assert change.before == pytest.approx(10.0, rel=0.03) and change.after == pytest.approx(12.0, rel=0.03)
    assert change.step == pytest.approx(change.after / change.before - 1)
    assert change.p_value < 1e-6


def test_two_steps_each_found_and_tested_between_its_own_neighbours() -> None:
    values = noisy([10.0] * 15 + [15.0] * 15 + [9.0] * 15, 0.02, seed=2)
    changes = change_points(values)
    assert [c.index for c in changes] == [15, 30]
    assert [c.n_before for c in changes] == [15, 15] and [c.n_after for c in changes] == [15, 15]
    assert changes[0].step == pytest.approx(0.5, abs=0.05) and changes[1].step == pytest.approx(-0.4, abs=0.05)


@pytest.mark.parametrize(
    "values",
    [[], [1.0], [1.0, 2.0, 3.0], [5.0] * 40, [1.0, math.nan, 1.0, 1.0, 2.0, 2.0], [1.0, 1.0, math.inf, 2.0, 2.0]],
    ids=["empty", "one", "three", "constant", "nan", "inf"],
)
def test_too_few_constant_or_non_finite_values_give_none(values: list[float]) -> None:
    assert change_points(values) == []


def test_a_step_smaller_than_the_minimum_or_not_significant_is_no_change() -> None:
    small = noisy([10.0] * 20 + [10.3] * 20, 0.001, seed=3)  # +3 %: significant, below 5 %
    assert change_points(small) == []
    assert [c.index for c in change_points(small, min_step=0.02)] == [20]
    short = [10.0, 10.1, 9.9, 10.0, 10.05, 9.95, 10.0, 10.02, 20.0, 20.1]  # 2 runs after: p = 0.044
    assert change_points(short) == []
    assert [c.index for c in change_points(short, alpha=0.05)] == [8]


def test_values_that_are_not_all_positive_are_segmented_as_they_are() -> None:
    before = [-1.0, -1.1, -0.9, -1.05, -0.95, -1.0, -1.02, -0.98, -1.01, -0.99]
    values = before + [5.0, 5.1, 4.9, 5.05, 4.95, 5.0, 5.02, 4.98]
    [change] = change_points(values)
    assert change.index == 10 and change.before == pytest.approx(-1.0) and change.after == pytest.approx(5.0)
    assert change.step == pytest.approx(6.0)  # relative to |before|
    [from_zero] = change_points([0.0, 0.1, -0.1, 0.0, 0.05, -0.05, 0.0, 0.0] + [3.0, 3.1, 2.9, 3.0, 3.05, 2.95])
    assert from_zero.index == 8 and from_zero.step == math.inf


def test_memory_figures_of_identical_values_give_exact_steps() -> None:
    values = [700.0] * 12 + [800.0] * 12 + [700.0] * 12
    changes = change_points(values)
    assert [(c.index, round(c.step, 4)) for c in changes] == [(12, 0.1429), (24, -0.125)]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0.01, 1000.0), min_size=0, max_size=60),
    alpha=st.sampled_from([0.001, 0.01, 0.05]),
    min_step=st.sampled_from([0.0, 0.02, 0.05, 0.2]),
)
def test_every_change_reported_passes_the_test_and_the_minimum_step(
    values: list[float], alpha: float, min_step: float
) -> None:
    changes = change_points(values, alpha=alpha, min_step=min_step)
    indexes = [c.index for c in changes]
    assert indexes == sorted(set(indexes)) and all(0 < i < len(values) for i in indexes)
    for c in changes:
        assert c.p_value < alpha and abs(c.step) >= min_step
        assert c.n_before >= 2 and c.n_after >= 2


@settings(max_examples=60, deadline=None)
@given(
    factors=st.lists(st.floats(0.98, 1.02), min_size=4, max_size=60),
    level=st.floats(0.01, 1e9),
)
def test_a_flat_history_within_the_minimum_step_never_has_a_change(factors: list[float], level: float) -> None:
    """Noise of +-2 %: no two segments' medians can be 5 % apart."""
    assert change_points([level * f for f in factors]) == []


@settings(max_examples=60, deadline=None)
@given(
    before=st.lists(st.floats(0.95, 1.05), min_size=5, max_size=40),
    after=st.lists(st.floats(0.95, 1.05), min_size=5, max_size=40),
    ratio=st.sampled_from([0.5, 1.5, 2.0, 3.0]),
    level=st.floats(0.001, 1e6),
)
def test_a_clear_big_step_is_always_found_at_its_run(
    before: list[float], after: list[float], ratio: float, level: float
) -> None:
    values = [level * f for f in before] + [level * ratio * f for f in after]
    [change] = change_points(values)
    assert change.index == len(before)
    assert ratio * 0.95 / 1.05 <= change.step + 1 <= ratio * 1.05 / 0.95


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 1e3))
def test_the_change_points_do_not_depend_on_the_unit(seed: int, scale: float) -> None:
    values = noisy([10.0] * 20 + [13.0] * 20, 0.05, seed)
    assume(all(v > 0 for v in values))
    ours = change_points(values)
    scaled = change_points([v * scale for v in values])
    assert [(c.index, round(c.step, 9)) for c in ours] == [(c.index, round(c.step, 9)) for c in scaled]


def test_the_noise_is_estimated_robustly_to_steps() -> None:
    rng = random.Random(5)
    flat = [rng.gauss(0.0, 0.05) for _ in range(2000)]
    assert noise_scale(flat) == pytest.approx(0.05, rel=0.1)
    stepped = flat[:1000] + [v + 1.0 for v in flat[1000:]]
    assert noise_scale(stepped) == pytest.approx(noise_scale(flat), rel=0.05)
    assert noise_scale([1.0, 2.0]) == 0.0


def test_the_defaults_are_the_documented_ones() -> None:
    assert (ALPHA, MIN_STEP) == (0.01, 0.05)


def test_trend_compares_the_last_five_with_the_first_five() -> None:
    assert trend([10.0] * 5 + [11.0] * 10 + [12.0] * 5) == pytest.approx(1.2)
    assert trend([10.0, 12.0]) == pytest.approx(1.2)
    assert trend([10.0]) is None and trend([]) is None
    assert trend([0.0, 0.0, 1.0, 1.0]) is None


# -- the store's read queries -------------------------------------------------------------------------------------


def rec(model: str = "resnet18", batch: int = 8, median: float | None = 10.0, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": model,
        "source": "torchvision",
        "batch_size": batch,
        "input_size": [3, 224, 224],
        "device": "cpu",
        "device_name": "Some CPU",
        "threads": 2,
        "precision": "fp32",
        "mode": "eager",
        "latency_ms": {"median": median, "n": 20} if median is not None else {},
        "memory_bytes": {"total": 700 * 2**20},
    }
    data.update(extra)
    return data


def add_run(
    store: Store,
    k: int,
    records: list[dict[str, Any]],
    *,
    status: str | None = "complete",
    branch: str = "main",
    commit: str | None = None,
) -> int:
    run_id = store.begin_run(
        RunMeta(started_at=T0 + timedelta(hours=k), git_commit=commit or f"{k:04x}" + "c" * 36, git_branch=branch)
    )
    for data in records:
        store.add_record(run_id, data)
    if status is not None:
        store.finish_run(run_id, status)
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with open_store(resolve_url(None, tmp_path)) as opened:
        yield opened


def fp_of(store: Store, model: str = "resnet18", batch: int | None = None) -> str:
    [fp] = [
        fp
        for fp, facts in store.selection_facts().items()
        if facts["model"] == model and batch in (None, facts["batch_size"])
    ]
    return fp


def test_series_is_one_point_per_run_in_time_order_the_last_record_of_each(store: Store) -> None:
    add_run(store, 2, [rec(median=12.0)])
    add_run(store, 0, [rec(median=10.0), rec(median=10.5)])  # written later, begun earlier; two records
    add_run(store, 1, [rec(median=11.0), rec("vgg16", median=50.0)])
    series = store.series("latency_median_ms")
    assert sorted(series) == sorted([fp_of(store), fp_of(store, "vgg16")])
    assert [p.value for p in series[fp_of(store)]] == [10.5, 11.0, 12.0]
    assert [p.git_commit[:4] for p in series[fp_of(store)] if p.git_commit] == ["0000", "0001", "0002"]
    assert [
        p.value for p in store.series("latency_median_ms", fingerprints=[fp_of(store, "vgg16")])[fp_of(store, "vgg16")]
    ] == [50.0]


def test_series_keeps_the_last_runs_even_where_runs_hold_several_records(store: Store) -> None:
    for k in range(6):
        add_run(store, k, [rec(median=float(k))] * (3 if k % 2 else 1))
    [points] = store.series("latency_median_ms", last=4).values()
    assert [p.value for p in points] == [2.0, 3.0, 4.0, 5.0]
    assert store.series("latency_median_ms", last=0) == {}


def test_series_leaves_out_what_is_no_baseline_unless_asked(store: Store) -> None:
    add_run(store, 0, [rec(median=1.0)])
    add_run(store, 1, [rec(median=2.0)], status=None)  # incomplete
    add_run(store, 2, [rec(median=3.0)], status="interrupted")
    add_run(store, 3, [rec(median=4.0, load={"busy": True})])
    add_run(store, 4, [rec(median=5.0, latency_ms={"median": 5.0, "insufficient": True})])
    add_run(store, 5, [rec(median=None)])  # no latency: no point of it
    add_run(store, 6, [rec(median=7.0)], branch="feature")
    [usable] = store.series("latency_median_ms").values()
    assert [p.value for p in usable] == [1.0, 7.0]
    [every] = store.series("latency_median_ms", usable=False).values()
    assert [p.value for p in every] == [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]
    assert [p.run_status for p in every][:3] == ["complete", "incomplete", "interrupted"]
    assert [p.busy for p in every][3] is True and [p.insufficient for p in every][4] is True
    [main_only] = store.series("latency_median_ms", branch="main").values()
    assert [p.value for p in main_only] == [1.0]
    [memory] = store.series("memory_total_bytes", usable=False).values()
    assert len(memory) == 7
    with pytest.raises(ValueError, match="a figure is one of"):
        store.series("nope")


def test_facts_counts_commits_and_when_annotations_take_effect(store: Store) -> None:
    add_run(store, 0, [rec(), rec(batch=1)], commit="a" * 40)
    add_run(store, 3, [rec()], commit="b" * 40)
    eight, one = fp_of(store, batch=8), fp_of(store, batch=1)
    assert store.record_counts() == {eight: 2, one: 1}
    facts = store.selection_facts()[eight]
    assert facts == {
        "model": "resnet18",
        "batch_size": 8,
        "mode": "eager",
        "precision": "fp32",
        "device": "cpu",
        "platform_key": "cpu-some-cpu-2t-fp32-eager",
        "source": "torchvision",
    }
    assert store.has_commit("bbbbbbb") and store.has_commit("b" * 40) and not store.has_commit("ccccccc")
    store.annotate("new runner", fingerprint=eight, commit="bbbbbbbb")
    store.annotate("later", fingerprint=eight, commit="d" * 40)
    store.annotate("then", fingerprint=one, at=T0 + timedelta(days=3))
    notes = store.annotations()
    effect = store.takes_effect(notes)
    assert effect[notes[0].id] == T0 + timedelta(hours=3)
    assert effect[notes[1].id] == notes[1].created_at  # no run of it yet
    assert effect[notes[2].id] == T0 + timedelta(days=3)


# -- the history's core -------------------------------------------------------------------------------------------


def stepped_store(store: Store, *, runs: int = 30, at: int = 18, ratio: float = 1.3) -> list[str]:
    """``runs`` runs of resnet18 (a step at run ``at``) and of vgg16 (flat); returns their commits."""
    commits = []
    values = noisy([10.0] * at + [10.0 * ratio] * (runs - at), 0.02, seed=7)
    flat = noisy([50.0] * runs, 0.02, seed=8)
    for k in range(runs):
        commit = f"{k:04x}" + "e" * 36
        commits.append(commit)
        add_run(store, k, [rec(median=values[k]), rec("vgg16", 1, median=flat[k])], commit=commit)
    return commits


def test_collect_finds_the_change_and_its_commit_and_leaves_flat_histories_alone(store: Store) -> None:
    commits = stepped_store(store)
    history = collect(store)
    assert history.total == 2 and [e.info.model for e in history.entries] == ["resnet18", "vgg16"]
    resnet, vgg = history.entries
    [change] = resnet.changes
    assert change.run_number == 19 and change.git_commit == commits[18] and change.accepted_by is None
    assert change.point.step == pytest.approx(0.3, abs=0.05) and change.worse("latency_median_ms")
    assert not change.worse("fps")
    assert resnet.trend == pytest.approx(1.3, abs=0.06) and len(resnet.points) == 30
    assert vgg.changes == [] and resnet.latest is not None and resnet.latest.git_commit == commits[-1]
    assert [e.info.model for e in collect(store, filters=Filters(model="vgg*")).entries] == ["vgg16"]
    assert [e.info.model for e in collect(store, filters=Filters(batch_size=8)).entries] == ["resnet18"]
    prefix = fp_of(store)[:6]
    assert [e.info.model for e in collect(store, filters=Filters(fingerprint=prefix.upper())).entries] == ["resnet18"]
    assert collect(store, filters=Filters(mode="compile")).entries == []
    assert len(collect(store, last=10).entries[0].points) == 10


def test_an_accepted_change_covers_the_change_and_an_ignored_commit_is_left_out(store: Store) -> None:
    commits = stepped_store(store)
    accept = store.annotate("new input pipeline", selection={"model": "resnet*"}, commit=commits[18][:8], author="ada")
    ignore = store.annotate("broken build", kind="ignore", fingerprint=fp_of(store), commit=commits[3])
    store.annotate("a note", kind="note", fingerprint=fp_of(store, "vgg16"))
    history = collect(store)
    resnet, vgg = history.entries
    [change] = resnet.changes
    assert change.accepted_by == accept and change.git_commit == commits[18]
    assert resnet.ignored == 1 and len(resnet.points) == 29 and commits[3] not in [p.git_commit for p in resnet.points]
    assert [a.id for a in resnet.annotations] == [accept, ignore] and [a.kind for a in vgg.annotations] == ["note"]
    data = to_json(history)
    assert json.loads(json.dumps(data)) == data
    [cp] = data["histories"][0]["change_points"]
    assert cp["accepted_by"] == accept and cp["git_commit"] == commits[18] and cp["run_number"] == 18  # one left out
    assert data["histories"][0]["annotations"][0]["takes_effect"] == (T0 + timedelta(hours=18)).isoformat()
    text = format_history(history)
    assert f"change at run 18 of 29 ({commits[18][:7]}" in text and "; accepted (#1)" in text
    assert f"accepted #1 from commit {commits[18][:7]} (2026-11-01 18:00 UTC): new input pipeline (ada)" in text
    assert (
        f"ignored #2: commit {commits[3][:7]}: broken build" in text and "note #3 at 20" in text and ": a note" in text
    )
    assert "1 run(s) of ignored commits left out" in text


def test_an_accepted_change_before_a_later_step_leaves_that_step_open(store: Store) -> None:
    commits = stepped_store(store, runs=40, at=30)
    store.annotate("earlier", fingerprint=fp_of(store), commit=commits[10])
    [change] = collect(store).entries[0].changes
    assert change.git_commit == commits[30] and change.accepted_by is None


def test_commit_matching_takes_a_prefix_of_seven_or_the_whole_hash() -> None:
    full = "1a2b3c4d" + "0" * 32
    assert commit_matches(full, "1A2B3C4") and commit_matches(full, full) and not commit_matches(full, "1a2b3c")
    assert not commit_matches(None, "1a2b3c4") and not commit_matches(full, "1a2b3c5")


# -- the command line ---------------------------------------------------------------------------------------------


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_history_prints_a_table_per_fingerprint_with_its_change_points(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commits = stepped_store(store)
    code, out, err = cli(["history", "--store", str(tmp_path / ".dnnbench" / "history.sqlite")], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"results store sqlite:///{tmp_path}/.dnnbench/history.sqlite"
    assert lines[1].startswith("latency_median_ms (ms) · the last 100 runs of each history · complete runs")
    assert lines[2] == "2 of 2 histories"
    header = lines[4].split()
    assert header == ["model", "batch", "mode", "precision", "platform", "fingerprint", "runs", "latest", "trend"]
    row = lines[5].split()
    assert row[:7] == ["resnet18", "8", "eager", "fp32", "cpu-some-cpu-2t", fp_of(store)[:12], "30"]
    assert row[8:11] == ["ms", "@", commits[-1][:7]] and row[11].startswith("×1.")
    assert lines[6].startswith(f"    change at run 19 of 30 ({commits[18][:7]}, 2026-11-01 18:00 UTC): 10.")
    assert "(worse), p = " in lines[6] and "18 runs before, 12 after" in lines[6]
    assert lines[8] == "    no change point"


def test_history_json_filters_metric_and_window(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stepped_store(store)
    url = f"sqlite:///{tmp_path}/.dnnbench/history.sqlite"
    code, out, _ = cli(["history", "--store", url, "--json", "--model", "vgg16", "--metric", "fps"], capsys)
    data = json.loads(out)
    assert code == 0 and data["metric"] == "fps"
    assert [(h["model"], h["points"], h["latest"]) for h in data["histories"]] == [("vgg16", [], None)]  # no fps
    code, out, _ = cli(["history", "--store", url, "--json", "--batch-size", "8", "--last", "12"], capsys)
    data = json.loads(out)
    [h] = data["histories"]
    assert h["model"] == "resnet18" and len(h["points"]) == 12 and h["records"] == 30
    assert h["latest"] == h["points"][-1] and data["last"] == 12
    code, out, _ = cli(["history", "--store", url, "--json", "--last", "0", "--min-step", "50"], capsys)
    assert [len(h["points"]) for h in json.loads(out)["histories"]] == [30, 30]
    assert all(h["change_points"] == [] for h in json.loads(out)["histories"])
    code, out, _ = cli(["history", "--store", url, "--model", "nope"], capsys)
    assert code == 0 and "none of the 2 histories in the store matches the filters" in out


def test_history_reads_the_environment_variable_then_the_embedded_store(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_run(store, 0, [rec()])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DNNBENCH_STORE", raising=False)
    code, out, _ = cli(["history"], capsys)
    assert code == 0 and f"sqlite:///{tmp_path}/.dnnbench/history.sqlite" in out
    monkeypatch.setenv("DNNBENCH_STORE", str(tmp_path / "elsewhere.sqlite"))
    code, _, err = cli(["history"], capsys)
    assert code == 2 and err == (
        f"error: results store sqlite:///{tmp_path}/elsewhere.sqlite: there is no store at "
        f"{tmp_path}/elsewhere.sqlite. Run pytest with --dnn-store first\n"
    )
    assert not (tmp_path / "elsewhere.sqlite").exists()


def test_an_empty_store_says_so_and_a_bad_one_is_exit_2_with_the_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/empty.sqlite"
    open_store(url).close()
    code, out, _ = cli(["history", "--store", url], capsys)
    assert code == 0 and "the store holds no record yet" in out
    code, out, _ = cli(["history", "--store", url, "--json"], capsys)
    assert code == 0 and json.loads(out)["histories"] == [] and json.loads(out)["histories_in_store"] == 0
    (tmp_path / "corrupt.sqlite").write_bytes(b"not a database" * 100)
    code, _, err = cli(["history", "--store", str(tmp_path / "corrupt.sqlite")], capsys)
    assert code == 2 and "is not an SQLite database, or it is corrupt" in err
    code, _, err = cli(["history", "--store", "postgresql://ada:s3cret@127.0.0.1:1/db"], capsys)
    assert code == 2 and "s3cret" not in err and "postgresql://ada:***@127.0.0.1:1/db" in err
    code, _, err = cli(["history", "--store", url, "--metric", "speed"], capsys)
    assert code == 2 and "--metric speed: the store has no such figure" in err


def test_accept_and_ignore_record_annotations_the_next_history_shows(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commits = stepped_store(store)
    url = f"sqlite:///{tmp_path}/.dnnbench/history.sqlite"
    code, out, err = cli(
        ["history", "accept", "model=resnet18,batch=8", "--reason", "new input pipeline", "--commit", commits[18][:9],
         "--author", "ada", "--store", url],
        capsys,
    )  # fmt: skip
    assert code == 0 and err == ""
    assert out == (
        f"accepted change #1 recorded for model=resnet18,batch=8 (1 history) from commit {commits[18][:7]}: "
        "new input pipeline\n"
    )
    code, out, err = cli(
        ["history", "--store", url, "ignore", fp_of(store, "vgg16")[:10], "--commit", commits[2], "--reason", "bad"],
        capsys,
    )
    assert code == 0 and out.startswith(f"ignored commit {commits[2]} (#2) recorded for fingerprint ")
    code, out, err = cli(
        ["history", "accept", "all", "--reason", "new runner", "--commit", "f" * 12, "--store", url], capsys
    )
    assert code == 0 and "(2 histories)" in out
    assert err == f"note: the store has no run of commit {'f' * 12} yet: it takes effect from its first run\n"
    notes = store.annotations()
    assert [(n.kind, n.selection, n.fingerprint is not None, n.author) for n in notes][:2] == [
        ("accept", {"model": "resnet18", "batch_size": 8}, False, "ada"),
        ("ignore", None, True, notes[1].author),
    ]
    assert notes[2].selection == {"model": "*"}
    code, out, _ = cli(["history", "--store", url], capsys)
    assert "; accepted (#1)" in out and "ignored #2: commit" in out and "accepted #3 from commit ffffff" in out
    [resnet, vgg] = json.loads(cli(["history", "--store", url, "--json"], capsys)[1])["histories"]
    assert resnet["change_points"][0]["accepted_by"] == 1 and vgg["ignored_points"] == 1


def test_accept_at_a_time_and_from_now(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_run(store, 0, [rec()])
    url = f"sqlite:///{tmp_path}/.dnnbench/history.sqlite"
    code, out, _ = cli(
        ["history", "accept", "model=resnet*", "--reason", "r", "--at", "2026-11-05T10:00:00+01:00", "--store", url],
        capsys,
    )
    assert code == 0 and "from 2026-11-05 09:00 UTC" in out
    code, out, _ = cli(["history", "accept", "batch_size=8|16", "--reason", "r", "--store", url], capsys)
    assert code == 0 and "from now" in out
    first, second = store.annotations()
    assert first.at == datetime(2026, 11, 5, 9, tzinfo=timezone.utc) and first.git_commit is None
    assert second.selection == {"batch_size": [8, 16]} and second.at is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["accept", "model=nope", "--reason", "r"], "it matches none of the 1 histories"),
        (["accept", "ffff", "--reason", "r"], "no histories of the store have a fingerprint starting so"),
        (["accept", "resnet18", "--reason", "r"], "give KEY=VALUE[,KEY=VALUE...]"),
        (["accept", "speed=3", "--reason", "r"], "is not KEY=VALUE with a key among"),
        (["accept", "batch=eight", "--reason", "r"], "batch_size='eight' is not a whole number"),
        (["accept", "all", "--reason", " "], "--reason: say why"),
        (["accept", "all", "--reason", "r", "--commit", "12ab"], "give a commit hash"),
        (["accept", "all", "--reason", "r", "--at", "yesterday"], "is not a time"),
    ],
)
def test_a_bad_annotation_is_exit_2_and_records_nothing(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    add_run(store, 0, [rec()])
    code, out, err = cli(["history", "--store", f"{tmp_path}/.dnnbench/history.sqlite", *argv], capsys)
    assert code == 2 and out == "" and message in err
    assert store.annotations() == []


def test_ignore_needs_a_commit_and_an_annotation_needs_a_store_that_is_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["history", "ignore", "all", "--reason", "r"])
    assert exc.value.code == 2 and "--commit" in capsys.readouterr().err
    code, _, err = cli(["history", "accept", "all", "--reason", "r", "--store", str(tmp_path / "none.sqlite")], capsys)
    assert code == 2 and "there is no store at" in err and not (tmp_path / "none.sqlite").exists()


def test_parse_selection() -> None:
    assert parse_selection("model=resnet*, batch=1|8,platform=cpu-*") == {
        "model": "resnet*",
        "batch_size": [1, 8],
        "platform_key": "cpu-*",
    }
    assert parse_selection("all") == {"model": "*"} and parse_selection("3F2A9C") is None


def test_the_report_command_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report"])
    assert "RESULTS.json" in capsys.readouterr().err


def test_the_parser_imports_neither_sqlalchemy_nor_ruptures() -> None:
    import subprocess
    import sys

    code = (
        "import sys, argparse; from pytest_dnnbench.store.cli import add_parser; "
        "p = argparse.ArgumentParser(); add_parser(p.add_subparsers()); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'ruptures', 'scipy', 'numpy')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    out = io.StringIO()
    assert out.getvalue() == ""


def test_a_history_of_busy_runs_only_says_why_it_has_no_point(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_run(store, 0, [rec(load={"busy": True}), rec("vgg16")])
    add_run(store, 1, [rec(load={"busy": True}), rec("vgg16", median=None)])
    url = f"sqlite:///{tmp_path}/.dnnbench/history.sqlite"
    code, out, _ = cli(["history", "--store", url], capsys)
    assert code == 0 and out.splitlines()[2:4] == [
        "1 of 2 histories",
        "1 more with no usable point: their 2 run(s) measured on a busy machine, with too few samples, or not "
        "complete (--all shows them)",
    ]
    [resnet, vgg] = json.loads(cli(["history", "--store", url, "--json"], capsys)[1])["histories"]
    assert (resnet["points"], resnet["unusable_points"], len(vgg["points"]), vgg["unusable_points"]) == ([], 2, 1, 0)
    code, out, _ = cli(["history", "--store", url, "--all", "--model", "resnet18"], capsys)
    assert "1 of 2 histories" in out and "complete runs" not in out and "every run's record" in out
    code, out, _ = cli(["history", "--store", url, "--metric", "fps"], capsys)
    assert "0 of 2 histories\n2 more without a point of fps here" in out
