"""Baselines that carry the drift between processes (issue 22): what a save says about busy rounds, a
save that leaves nothing but the baseline in its folder (the lock file is removed by its holder), rounds
that record when and in which process they were saved, and the note on rounds saved back to back.

The machine's load is injected (a conftest fixture makes ``measure.load.load_between`` say "busy" for
the models named in ``busy.json``), so that no verdict here depends on what else runs on the machine.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import FAST, TINY_CONFTEST, as_record, load_json

from pytest_dnnbench import baseline_save, gate
from pytest_dnnbench import baseline_store as bl
from pytest_dnnbench.record import Record

RUN = [*FAST, "--dnn-threads=1", "--benchmark-disable", "-p", "no:cacheprovider", "--dnn-calm-wait=0"]
#: Tolerances that the between-process noise of a 0.07 ms model cannot cross: every comparison passes (and
#: none is suspicious), so that each run may save.
LOOSE = ["--dnn-latency-tolerance=1000%", "--dnn-max-slowdown=100x", "--dnn-memory-tolerance=1000%"]

#: The models named in busy.json are measured on a "busy" machine, the others on a quiet one.
BUSY_HOOK = """
import dataclasses
import importlib
import json
import pathlib

import pytest


@pytest.fixture(autouse=True)
def _busy_models(request, monkeypatch):
    script = pathlib.Path(__file__).parent / "busy.json"
    callspec = getattr(request.node, "callspec", None)
    if not script.exists() or callspec is None:
        return
    busy = callspec.params.get("dnn_model") in json.loads(script.read_text())
    load = importlib.import_module("pytest_dnnbench.measure.load")
    real = load.load_between

    def load_between(*args, **kwargs):
        measured = real(*args, **kwargs)
        reasons = ("CPU pressure 50 % of the time (> 10 %)",) if busy else ()
        return dataclasses.replace(measured, busy=busy, reasons=reasons)

    monkeypatch.setattr(load, "load_between", load_between)
"""


@pytest.fixture
def project(tiny_project: pytest.Pytester) -> pytest.Pytester:
    tiny_project.makeconftest(TINY_CONFTEST + BUSY_HOOK)
    (tiny_project.path / "busy.json").write_text("[]")  # quiet, whatever else runs on the machine
    return tiny_project


def run(p: pytest.Pytester, *args: str, models: str = "tiny") -> pytest.RunResult:
    return p.runpytest(*RUN, f"--dnn-models={models}", "--dnn-batch-sizes=1", *args)


def rounds_of(path: Path) -> dict[str, list[dict]]:
    return {e["model"]: e["rounds"] for e in load_json(path)["entries"]}


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def rounds_at(*seconds: float, busy: tuple[bool, ...] = ()) -> list[dict]:
    """Rounds saved at these times (seconds since the epoch); ``busy`` flags them."""
    flags = busy or (False,) * len(seconds)
    return [
        {"created": iso(t), "median_ms": 1.0, **({"busy": True} if b else {})}
        for t, b in zip(seconds, flags, strict=True)
    ]


T0 = 1_790_000_000.0


# -- the note on rounds saved back to back (pure) ------------------------------------------------------------


def test_rounds_saved_within_a_minute_are_noted() -> None:
    note = gate.rounds_note(rounds_at(T0, T0 + 10, T0 + 20, T0 + 30, T0 + 40))
    assert note == (
        "its 5 rounds were all saved within a minute: rounds saved back to back share one machine state and "
        "understate the drift between processes; space them (docs/baselines.md)"
    )


def test_the_note_says_within_how_many_minutes() -> None:
    # Five rounds 45 s apart: 3 minutes in all, less than a minute apart on average.
    note = gate.rounds_note(rounds_at(*(T0 + 45 * k for k in range(5))))
    assert note is not None and note.startswith("its 5 rounds were all saved within 3 minutes:")


@pytest.mark.parametrize(
    "times",
    [
        [T0 + 60 * k for k in range(5)],  # a minute apart on average: spaced (the documented loop's sleep 60)
        [T0, T0 + 86_400, T0 + 2 * 86_400],  # on different days
        [T0, T0 + 5, T0 + 10, T0 + 3600],  # three back to back, then one an hour later: 20 minutes apart on average
    ],
)
def test_spaced_rounds_say_nothing(times: list[float]) -> None:
    assert gate.rounds_note(rounds_at(*times)) is None


def test_fewer_than_two_rounds_with_a_time_say_nothing() -> None:
    assert gate.rounds_note([]) is None
    assert gate.rounds_note(rounds_at(T0)) is None
    # Hand-made rounds without a readable time are left out.
    hand_made = [{"median_ms": 1.0}, {"created": "yesterday", "median_ms": 1.0}, {"created": 5, "median_ms": 1.0}]
    assert gate.rounds_note(hand_made + rounds_at(T0)) is None
    assert gate.rounds_note(hand_made + rounds_at(T0, T0 + 1)) is not None


def test_the_rounds_the_gate_compares_with_are_judged() -> None:
    # Four quiet rounds back to back and a busy one a day earlier: the gate compares with the quiet ones.
    rounds = rounds_at(T0 - 86_400, T0, T0 + 1, T0 + 2, T0 + 3, busy=(True, False, False, False, False))
    note = gate.rounds_note(rounds)
    assert note is not None and note.startswith("its 4 rounds")
    # Busy rounds only: those are what it compares with.
    assert gate.rounds_note(rounds_at(T0, T0 + 1, busy=(True, True))) is not None


def test_times_without_a_zone_are_read_as_utc_and_zones_are_honoured() -> None:
    # 12:00 in UTC+2 and 10:00:30 UTC are 30 s apart: back to back.
    rounds = [
        {"created": "2026-11-26T12:00:00+02:00", "median_ms": 1.0},
        {"created": "2026-11-26T10:00:30", "median_ms": 1.0},
    ]
    assert gate.rounds_note(rounds) is not None
    rounds[1]["created"] = "2026-11-26T12:00:30"  # UTC: two hours later
    assert gate.rounds_note(rounds) is None


def test_the_latency_check_carries_the_note_and_the_summary_says_it_once_per_file(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    recs = [_record("a"), _record("b")]
    plat = bl.platform_from_record(as_record(recs[0]))
    doc = baseline_save.merge_records(None, [as_record(r) for r in recs], plat, created=iso(T0))
    doc = baseline_save.merge_records(doc, [as_record(r) for r in recs], plat, created=iso(T0 + 20))
    baseline_save.save_document(path, doc)
    source = gate.BaselineSource(str(path), tmp_path)
    records = []
    for rec in recs:
        checks, info = gate.baseline_checks(source, as_record(rec), gate.Tolerances())
        latency = next(c for c in checks if c.metric == "latency")
        assert latency.get("rounds_note") == gate.rounds_note(doc["entries"][0]["rounds"])
        assert all(c.get("rounds_note") is None for c in checks if c.metric != "latency")
        records.append({**rec, "checks": [c.to_json() for c in checks], "baseline": info})
    lines = [line for line in gate.summary_lines([as_record(r) for r in records], [], False) if "back to back" in line]
    assert lines == [
        "baseline base.json: its 2 rounds were all saved within a minute: rounds saved back to back share one "
        "machine state and understate the drift between processes; space them (docs/baselines.md); so were the "
        "rounds of 1 other result(s) compared with it"
    ]
    # Spaced rounds: no note, no line.
    for entry in doc["entries"]:
        entry["rounds"][1]["created"] = iso(T0 + 3600)
    baseline_save.save_document(path, doc)
    source = gate.BaselineSource(str(path), tmp_path)
    checks, _ = gate.baseline_checks(source, as_record(recs[0]), gate.Tolerances())
    assert all(c.get("rounds_note") is None for c in checks)


def _record(model: str) -> dict:
    return {
        "model": model,
        "batch_size": 1,
        "device": "cpu",
        "device_name": "Test CPU",
        "threads": 1,
        "precision": "fp32",
        "mode": "eager",
        "input_size": [3, 8, 8],
        "macs": 10,
        "params": 5,
        "latency_ms": {"median": 2.0, "samples": [1.9, 2.0, 2.1], "ci_median": [1.9, 2.1], "n": 3},
        "memory_bytes": {"total": 1000},
        "accuracy": {"measured": None, "reference": None},
    }


# -- rounds record when and in which process they were saved (pure) -------------------------------------------


def test_a_round_records_its_time_process_and_host() -> None:
    rnd = baseline_save.round_from_record(as_record(_record("a")), "2026-11-26T03:33:49+00:00")
    assert rnd["created"] == "2026-11-26T03:33:49+00:00"
    assert rnd["pid"] == os.getpid() and rnd["host"] == socket.gethostname()
    # A file whose rounds lack them (saved by an earlier version) is read, compared and merged into.
    old = baseline_save.merge_records(
        None, [as_record(r) for r in [_record("a")]], bl.platform_from_record(as_record(_record("a")))
    )
    for r in old["entries"][0]["rounds"]:
        del r["pid"], r["host"]
    merged = baseline_save.merge_records(
        bl.baseline_from_document(old).document, [as_record(r) for r in [_record("a")]], old["platform"]
    )
    assert [("pid" in r) for r in merged["entries"][0]["rounds"]] == [False, True]


# -- the save line counts busy rounds (pure) ------------------------------------------------------------------


def test_the_save_line_counts_the_busy_rounds(tmp_path: Path) -> None:
    busy = {**_record("a"), "load": {"busy": True}}
    out = baseline_save.save_run(
        [Record.from_json(r) for r in [busy, _record("b"), {**_record("c"), "load": {"busy": False}}]],
        None,
        choice=str(tmp_path / "base.json"),
        root=tmp_path,
        max_rounds=10,
        force=False,
        regressions=0,
        interrupted=False,
    )
    assert out.notes == [
        "baseline saved: base.json (3 entries updated, 0 kept; rounds per updated entry: 1 of at most 10); "
        "1 of the 3 new round(s) was measured on a busy machine and will not be compared against (re-record "
        "them on a quiet machine); 1 entry holds busy rounds only (a at batch 1): its latency comparisons will "
        "be inconclusive"
    ]
    # A quiet round of "a" later: its busy round is left out, and no entry holds busy rounds only.
    assert (
        baseline_save.busy_rounds_note(
            [as_record(r) for r in [_record("a")]], load_json(tmp_path / "base.json")["entries"][:1]
        )
        == ""
    )
    again = baseline_save.busy_rounds_note(
        [as_record(r) for r in [busy]], [{"model": "a", "batch_size": 1, "rounds": [{"busy": True}, {}]}]
    )
    assert again == (
        "; 1 of the 1 new round(s) was measured on a busy machine and will not be compared against "
        "(re-record them on a quiet machine)"
    )


# -- the lock file is removed by its holder (pure) ------------------------------------------------------------


def test_the_lock_file_is_there_while_held_and_removed_after(tmp_path: Path) -> None:
    target = tmp_path / "base.json"
    lock = baseline_save.lock_path(target)
    assert lock == tmp_path / ".base.json.lock"  # one place names it (the results file's lock note reads it)
    with baseline_save.file_lock(target):
        assert lock.exists()
        # Another holder waits, and gives up naming the lock file.
        with pytest.raises(baseline_save.LockTimeout, match=f"another run has held the lock {lock} for over 0.2 s"):
            with baseline_save.file_lock(target, 0.2):
                pass
    assert list(tmp_path.iterdir()) == []
    with baseline_save.file_lock(target, 0.2):  # free again
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_lock_file_that_cannot_be_made_fails_the_save_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    target = tmp_path / "taken" / "base.json"
    out = baseline_save.save_run(
        [Record.from_json(_record("a"))],
        None,
        choice=str(target),
        root=tmp_path,
        max_rounds=10,
        force=False,
        regressions=0,
        interrupted=False,
    )
    assert out.failed and not out.saved
    assert out.notes[0].startswith(
        f"baseline not saved to taken/base.json: cannot make the lock file {baseline_save.lock_path(target)} ("
    )


def test_holders_of_a_lock_whose_file_is_removed_never_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each holder removes the lock file as it lets go; a waiter that then locks the removed file must not
    hold the lock along with a process that made a new one (flock locks open files: threads of one process
    compete like processes). Without the check that the path still names the locked file, 8 threads
    overlap."""
    monkeypatch.setattr(baseline_save, "LOCK_POLL_S", 0.001, raising=False)
    target = tmp_path / "base.json"
    inside, worst, errors = [0], [0], []
    guard = threading.Lock()

    def hold() -> None:
        try:
            for _ in range(25):
                with baseline_save.file_lock(target, 60):
                    with guard:
                        inside[0] += 1
                        worst[0] = max(worst[0], inside[0])
                    time.sleep(0.0005)
                    with guard:
                        inside[0] -= 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and worst[0] == 1
    assert list(tmp_path.iterdir()) == []


# -- end to end --------------------------------------------------------------------------------------------


def test_a_save_leaves_nothing_in_the_baselines_folder_but_the_baseline(project: pytest.Pytester) -> None:
    result = run(project, "--dnn-save-baseline", "--dnn-baseline=none")
    result.assert_outcomes(passed=1)
    names = sorted(p.name for p in (project.path / "baselines").iterdir())
    assert len(names) == 1 and names[0].startswith("cpu-") and names[0].endswith("-eager.json"), names
    # A named file in a folder of its own, and a second save to it: no lock, no temporary file.
    folder = project.mkdir("kept")
    for _ in range(2):
        run(project, "--dnn-save-baseline=kept/base.json", *LOOSE).assert_outcomes(passed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["base.json"]
    assert len(rounds_of(folder / "base.json")["tiny"]) == 2


def test_the_save_line_says_how_many_new_rounds_were_busy(project: pytest.Pytester) -> None:
    (project.path / "busy.json").write_text(json.dumps(["tiny"]))
    result = run(project, "--dnn-save-baseline=base.json", models="tiny,tiny_wide")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*dnnbench: files written*",
            "baseline saved: base.json (2 entries updated, 0 kept; rounds per updated entry: 1 of at most 10); "
            "1 of the 2 new round(s) was measured on a busy machine and will not be compared against (re-record "
            "them on a quiet machine); 1 entry holds busy rounds only (tiny at batch 1): its latency comparisons "
            "will be inconclusive",
        ]
    )
    rounds = rounds_of(project.path / "base.json")
    assert rounds["tiny"][0]["busy"] is True and "busy" not in rounds["tiny_wide"][0]
    # A quiet save: nothing to say.
    (project.path / "busy.json").write_text("[]")
    result = run(project, "--dnn-save-baseline=base.json", *LOOSE, models="tiny,tiny_wide")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["baseline saved: base.json (2 entries updated, 0 kept; rounds per updated entry: 2 *"])
    assert "busy machine and will not be compared against" not in result.stdout.str()


def test_rounds_record_when_and_where_they_were_saved(project: pytest.Pytester) -> None:
    before = time.time()
    run(project, "--dnn-save-baseline=base.json").assert_outcomes(passed=1)
    (rnd,) = rounds_of(project.path / "base.json")["tiny"]
    assert before - 1 <= datetime.fromisoformat(rnd["created"]).timestamp() <= time.time() + 1
    assert isinstance(rnd["pid"], int) and rnd["pid"] > 0
    assert rnd["host"] == socket.gethostname()


def test_the_summary_says_when_the_rounds_were_saved_back_to_back(project: pytest.Pytester) -> None:
    for _ in range(2):  # two rounds, saved back to back
        run(project, "--dnn-save-baseline=base.json", *LOOSE, models="tiny,tiny_wide").assert_outcomes(passed=2)
    result = run(project, "--dnn-baseline=base.json", "--dnn-json=out.json", *LOOSE, models="tiny,tiny_wide")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*dnnbench: baselines and deployment constraints*",
            "baseline base.json: its 2 rounds were all saved within a minute: rounds saved back to back share one "
            "machine state and understate the drift between processes; space them (docs/baselines.md); so were "
            "the rounds of 1 other result(s) compared with it",
        ]
    )
    assert result.stdout.str().count("rounds saved back to back") == 1  # once per baseline file
    for rec in load_json(project.path / "out.json")["records"]:
        latency = next(c for c in rec["checks"] if c["metric"] == "latency")
        assert latency["rounds_note"].startswith("its 2 rounds were all saved within a minute")
    # The same rounds, their times spread over two days: nothing to say.
    path = project.path / "base.json"
    doc = load_json(path)
    for entry in doc["entries"]:
        for k, rnd in enumerate(entry["rounds"]):
            rnd["created"] = f"2026-11-2{k}T10:00:00+00:00"
    path.write_text(json.dumps(doc))
    result = run(project, "--dnn-baseline=base.json", "--dnn-json=out.json", *LOOSE, models="tiny,tiny_wide")
    result.assert_outcomes(passed=2)
    assert "back to back" not in result.stdout.str()
    for rec in load_json(project.path / "out.json")["records"]:
        assert all("rounds_note" not in c for c in rec["checks"])
