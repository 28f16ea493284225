"""The results store on SQLite (:mod:`pytest_dnnbench.store.db`): round trips, the history, the baseline it
gives, and every store that cannot be used (each a clear error naming the store, nothing measured lost)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from store_records import T0, MiB, meta, record, run_with

from pytest_dnnbench import __version__
from pytest_dnnbench.store import schema
from pytest_dnnbench.store.db import FIGURES, Store, StoreError, head_revision, open_store, record_columns
from pytest_dnnbench.store.fingerprint import fingerprint
from pytest_dnnbench.store.runmeta import RunMeta
from pytest_dnnbench.store.schema import VERSION_TABLE
from pytest_dnnbench.store.urls import resolve_url


@pytest.fixture
def url(tmp_path: Path) -> str:
    return resolve_url(None, tmp_path)


@pytest.fixture
def store(url: str) -> Any:
    with open_store(url) as opened:
        yield opened


# -- opening a new store -----------------------------------------------------------------------------------------


def test_a_new_store_is_made_in_its_folder_in_wal_mode(tmp_path: Path, url: str) -> None:
    path = tmp_path / ".dnnbench" / "history.sqlite"
    assert not path.parent.exists()
    with open_store(url) as store:
        assert store.dialect == "sqlite" and store.url == f"sqlite:///{path}"
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("SELECT version_num FROM dnnbench_alembic_version").scalar() == head_revision()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with open_store(url) as again:  # at the newest revision: opened as it is
        assert again.runs() == []


def test_the_migrations_build_the_tables_of_the_schema(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(context, schema.metadata) == []
        assert set(sa.inspect(conn).get_table_names()) == {
            "runs",
            "records",
            "samples",
            "annotations",
            "dnnbench_alembic_version",
        }


def test_every_figure_column_is_read_from_a_record() -> None:
    columns = record_columns(record(energy={"joules_per_image": 0.5, "watts": 30.0}))
    assert set(FIGURES) <= set(columns)
    missing = sorted(name for name in FIGURES if columns[name] is None)
    # a CPU record has no GPU memory figures, no runtime floor of its own and no measured accuracy
    assert missing == [
        "memory_allocator_peak_bytes",
        "memory_context_bytes",
        "memory_model_bytes",
        "memory_process_total_bytes",
        "memory_reserved_peak_bytes",
        "memory_runtime_floor_bytes",
        "top1_pct",
        "top5_pct",
    ]


# -- a run's round trip -----------------------------------------------------------------------------------------


def test_a_run_with_records_round_trips(store: Store) -> None:
    env = {"torch": "2.14.1", "plugin_version": __version__, "threads": 2, "device_name": "Some CPU"}
    run_meta = meta(
        git_dirty=True,
        ci_provider="github",
        ci_job="bench/cpu",
        ci_url="https://github.com/acme/nets/actions/runs/1",
        ci_run_id="1-1",
        platform_key="cpu-some-cpu-2t-fp32-eager",
        environment=env,
        plugin_version=__version__,
        torch_version="2.14.1",
        shard_index=1,
        shard_count=2,
        run_group="github:1-1",
    )
    run_id = store.begin_run(run_meta)
    (run,) = store.runs()
    assert run.status == "incomplete" and run.finished_at is None and run.records == 0
    originals = [record("resnet18", 1, 5.0), record("resnet18", 8, 40.0), record("mobilenet_v2", 1, 3.0)]
    ids = [store.add_record(run_id, data) for data in originals]
    store.finish_run(run_id)

    (run,) = store.runs()
    assert run.status == "complete" and run.finished_at is not None and run.finished_at >= run.started_at
    assert run.records == 3 and run.started_at == T0
    expected = {f.name: getattr(run_meta, f.name) for f in dataclasses.fields(RunMeta) if f.name != "environment"}
    assert {k: getattr(run, k) for k in expected} == expected
    assert store.run_environment(run_id) == env

    for record_id, data in zip(ids, originals, strict=True):
        assert store.record_json(record_id) == data  # the whole record, samples back in place, keys in order
        assert list(store.record_json(record_id)) == list(data)
    (point,) = store.history(fingerprint(originals[1]))
    assert (point.model, point.batch_size, point.run_status, point.git_commit) == ("resnet18", 8, "complete", "a" * 40)
    assert point.latency_median_ms == originals[1]["latency_ms"]["median"]
    assert point.figures["memory_total_bytes"] == 700 * MiB and point.figures["macs_per_image"] == 1_814_000_000
    assert point.figures["latency_ci_low_ms"] == originals[1]["latency_ms"]["ci_median"][0]
    with store.engine.connect() as conn:
        timed = conn.execute(sa.text("SELECT count(*) FROM samples WHERE record_id = :i AND NOT warmup"), {"i": ids[1]})
        assert timed.scalar() == 10
        stored = conn.execute(sa.text("SELECT record_json FROM records WHERE id = :i"), {"i": ids[1]}).scalar()
        assert '"samples": []' in stored  # the samples are rows of their own, not kept twice

    infos = store.fingerprints()
    shown = [(i.model, i.batch_size, i.records) for i in infos]
    assert shown == [("mobilenet_v2", 1, 1), ("resnet18", 1, 1), ("resnet18", 8, 1)]
    assert all(i.platform_key == "cpu-some-cpu-2t-fp32-eager" for i in infos)


def test_the_environment_known_later_is_kept_and_fills_what_records_lack(store: Store) -> None:
    run_id = store.begin_run(meta())
    env = {"torch": "2.14.1", "plugin_version": "9.9", "device_name": "Some CPU", "threads": 2, "x": float("nan")}
    store.set_environment(run_id, env, platform_key="cpu-some-cpu-2t-fp32-eager")
    (run,) = store.runs()
    assert (run.torch_version, run.plugin_version, run.platform_key) == ("2.14.1", "9.9", "cpu-some-cpu-2t-fp32-eager")
    assert store.run_environment(run_id) == {**env, "x": None}
    bare = {k: v for k, v in record().items() if k not in ("device_name", "threads")}
    store.add_record(run_id, bare)
    assert store.history(fingerprint(record()))[0].record_id  # one history with the full record's
    with pytest.raises(StoreError, match="there is no run 7"):
        store.set_environment(7, env)


def test_non_finite_numbers_are_kept_as_null(store: Store) -> None:
    data = record()
    data["fps"] = float("nan")
    data["extra"] = {"ratio": float("inf")}
    run_id = run_with(store, [])
    record_id = store.add_record(run_id, data)
    back = store.record_json(record_id)
    assert back["fps"] is None and back["extra"] == {"ratio": None}


def test_writing_to_a_run_that_is_not_there_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="there is no run 99"):
        store.add_record(99, record())
    with pytest.raises(StoreError, match="there is no run 99"):
        store.finish_run(99)
    with pytest.raises(ValueError, match="complete, interrupted"):
        store.finish_run(run_with(store, []), "done")


# -- the history and the baseline it gives --------------------------------------------------------------------------


def test_the_history_is_in_time_order_whatever_the_order_of_writing(store: Store) -> None:
    for hours, median in ((2, 12.0), (0, 10.0), (1, 11.0)):
        run_with(store, [record(median=median)], at=T0 + timedelta(hours=hours), commit=f"{hours}" * 40)
    points = store.history(fingerprint(record()))
    assert [p.latency_median_ms for p in points] == [10.0, 11.0, 12.0]
    assert [p.git_commit for p in points] == ["0" * 40, "1" * 40, "2" * 40]
    assert store.history("0" * 64) == []


def test_last_complete_leaves_out_what_is_no_baseline(store: Store) -> None:
    fp = fingerprint(record())
    at = iter(T0 + timedelta(hours=h) for h in range(100))

    def run(median: float, status: str | None = "complete", branch: str = "main", **kw: Any) -> None:
        run_with(store, [record(median=median, **kw)], status=status, at=next(at), branch=branch)

    run(1.0)
    run(2.0)
    run(3.0)
    run(90.0, status=None)  # still running, or killed: incomplete
    run(91.0, status="interrupted")
    run(92.0, busy=True)
    run(93.0, insufficient=True)
    run(94.0, branch="feature")
    run(4.0)
    assert [p.latency_median_ms for p in store.last_complete(fp, "main", 3)] == [2.0, 3.0, 4.0]
    assert [p.latency_median_ms for p in store.last_complete(fp, "main", 10)] == [1.0, 2.0, 3.0, 4.0]
    assert [p.latency_median_ms for p in store.last_complete(fp, None, 2)] == [94.0, 4.0]
    assert store.last_complete(fp, "nowhere", 3) == [] and store.last_complete(fp, "main", 0) == []


def test_one_record_per_run_the_last_kept(store: Store) -> None:
    run_with(store, [record(median=1.0), record(median=2.0)])
    assert [p.latency_median_ms for p in store.last_complete(fingerprint(record()), "main", 5)] == [2.0]


def test_an_accepted_change_starts_the_baseline_anew(store: Store) -> None:
    fp = fingerprint(record())
    for hours, median in enumerate((10.0, 10.0, 20.0, 20.5)):
        run_with(store, [record(median=median)], at=T0 + timedelta(hours=hours), commit=f"{hours}" * 40)
    assert len(store.last_complete(fp, "main", 5)) == 4
    note = store.annotate("a bigger head on purpose", fingerprint=fp, commit="2" * 7, author="ada")
    assert [p.latency_median_ms for p in store.last_complete(fp, "main", 5)] == [20.0, 20.5]
    (saved,) = store.annotations(fp)
    assert (saved.id, saved.kind, saved.git_commit, saved.reason, saved.author) == (
        note,
        "accept",
        "2" * 7,
        "a bigger head on purpose",
        "ada",
    )
    # a later accepted change, by time, for a selection: the newest one counts
    store.annotate("new runner", selection={"model": "resnet*", "batch_size": [1, 8]}, at=T0 + timedelta(hours=3))
    assert [p.latency_median_ms for p in store.last_complete(fp, "main", 5)] == [20.5]
    assert len(store.annotations(fp)) == 2 and len(store.annotations()) == 2
    assert store.annotations(fingerprint(record("mobilenet_v2"))) == []  # the selection does not match it


def test_an_ignored_commit_is_no_baseline_and_a_note_changes_nothing(store: Store) -> None:
    fp = fingerprint(record())
    for hours, median in enumerate((10.0, 50.0, 11.0)):
        run_with(store, [record(median=median)], at=T0 + timedelta(hours=hours), commit=f"{hours}" * 40)
    store.annotate("the runner was broken", kind="ignore", fingerprint=fp, commit="1" * 40)
    store.annotate("looked at it", kind="note", fingerprint=fp)
    assert [p.latency_median_ms for p in store.last_complete(fp, "main", 5)] == [10.0, 11.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "bless", "fingerprint": "f"}, "kind is one of"),
        ({}, "one fingerprint or one selection"),
        ({"fingerprint": "f", "selection": {"model": "x"}}, "one fingerprint or one selection"),
        ({"selection": {"host": "x"}}, "selection's keys"),
        ({"fingerprint": "f", "commit": "abc1234", "at": T0}, "not both"),
        ({"kind": "ignore", "fingerprint": "f"}, "names the commit"),
    ],
)
def test_a_bad_annotation_is_refused(store: Store, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.annotate("why", **kwargs)
    with pytest.raises(ValueError, match="needs a reason"):
        store.annotate("  ", fingerprint="f")


# -- stores that cannot be used ----------------------------------------------------------------------------------


def test_a_store_of_a_newer_schema_is_refused(url: str, tmp_path: Path) -> None:
    open_store(url).close()
    path = tmp_path / ".dnnbench" / "history.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE dnnbench_alembic_version SET version_num = 'f00d42'")
    before = path.read_bytes()
    for write in (True, False):
        with pytest.raises(StoreError) as info:
            open_store(url, write=write)
        message = str(info.value)
        assert message.startswith(f"results store sqlite:///{path}: its schema is revision f00d42, ")
        assert f"pytest-dnnbench {__version__} does not know" in message and head_revision() in message
        assert "Upgrade pytest-dnnbench" in message
    assert path.read_bytes() == before


def test_a_corrupt_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{path}")
    assert str(info.value).startswith(f"results store sqlite:///{path}: the file is not an SQLite database")
    assert "Move the file away" in str(info.value)
    assert path.read_bytes() == garbage


def test_a_store_with_a_damaged_schema_page_is_refused(url: str, tmp_path: Path) -> None:
    with open_store(url) as store:
        run_with(store, [record()])
    path = tmp_path / ".dnnbench" / "history.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema's page, after the file header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="not an SQLite database, or it is corrupt"):
        open_store(url)


def test_a_database_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(StoreError, match=r"tables of another application \(users\).*not a pytest-dnnbench store"):
        open_store(f"sqlite:///{path}")


def test_a_folder_and_a_missing_store_for_reading_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not a file"):
        open_store(f"sqlite:///{tmp_path}")
    with pytest.raises(StoreError, match="there is no store at"):
        open_store(f"sqlite:///{tmp_path / 'none.sqlite'}", write=False)
    assert not (tmp_path / "none.sqlite").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot be made"):
        open_store(f"sqlite:///{blocker / 'sub' / 'h.sqlite'}")


def test_a_read_only_sqlite_uri_is_refused_for_writing_and_read_for_reading(url: str, tmp_path: Path) -> None:
    with open_store(url) as store:
        run_with(store, [record()])
    path = tmp_path / ".dnnbench" / "history.sqlite"
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(StoreError) as info:
        open_store(read_only)
    assert "the SQLite file cannot be written" in str(info.value) and str(path) in str(info.value)
    with open_store(read_only, write=False) as store:
        assert [r.records for r in store.runs()] == [1]


CHILD_READ_ONLY = """
import sys
from pytest_dnnbench.store.db import StoreError, open_store
try:
    open_store(sys.argv[1])
except StoreError as exc:
    print(exc)
else:
    print("opened")
"""


def _without_root_powers() -> list[str] | None:
    """A command prefix that runs a child as root without the capabilities that let root write a read-only
    file (setpriv, util-linux), so that file permissions hold for it; None where there is none."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    probe = subprocess.run([setpriv, "--bounding-set=-all", "--inh-caps=-all", "true"], capture_output=True)
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all"] if probe.returncode == 0 else None


def test_a_read_only_file_and_folder_are_refused(url: str, tmp_path: Path) -> None:
    """chmod 0444 on the file, 0555 on its folder: the store is refused, naming it, and the file is unchanged.
    As root (where chmod does not stop writes) the check runs in a child process without root's powers."""
    with open_store(url) as store:
        run_with(store, [record()])
    path = tmp_path / ".dnnbench" / "history.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.read_bytes()
    prefix: list[str] = []
    if os.geteuid() == 0:
        found = _without_root_powers()
        if found is None:
            reason = "runs as root, and setpriv cannot drop root's powers here: chmod would not stop a write"
            if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
                pytest.fail(f"under CI this must be checked: {reason}")
            pytest.skip(reason)
        prefix = found
    path.chmod(0o444)
    path.parent.chmod(0o555)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", CHILD_READ_ONLY, url], capture_output=True, text=True, check=True
        )
    finally:
        path.parent.chmod(0o755)
        path.chmod(0o644)
    out = done.stdout.strip()
    assert out.startswith(f"results store sqlite:///{path}: the SQLite file cannot be written"), out
    assert "Make the file and its folder writable" in out
    assert path.read_bytes() == before


def test_an_unknown_database_or_a_missing_driver_is_a_store_error_with_the_password_masked() -> None:
    with pytest.raises(StoreError) as info:
        open_store("nosuchdb://ada:s3cretpw@host/db")
    assert "s3cretpw" not in str(info.value) and "nosuchdb://ada:***@host/db" in str(info.value)
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("::not a url::")


def test_an_unreachable_server_is_a_store_error_with_the_password_masked() -> None:
    pytest.importorskip("psycopg")
    url = resolve_url("postgresql://ada:s3cretpw@127.0.0.1:1/bench", Path("."))
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert message.startswith("results store postgresql://ada:***@127.0.0.1:1/bench: cannot connect to the server")
    assert "s3cretpw" not in message and "s3cretpw" not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no traceback repeats the URL


# -- writing never loses a measurement --------------------------------------------------------------------------

CHILD_KILLED = """
import json, sys, time
from pytest_dnnbench.store.db import open_store
from pytest_dnnbench.store.runmeta import RunMeta
store = open_store(sys.argv[1])
run_id = store.begin_run(RunMeta(git_branch="main"))
for data in json.loads(sys.argv[2]):
    store.add_record(run_id, data)
print(run_id, flush=True)
time.sleep(60)
"""


def test_a_killed_run_keeps_its_records_and_stays_incomplete(url: str, tmp_path: Path) -> None:
    import json

    records = [record(batch=b) for b in (1, 2, 4)]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_KILLED, url, json.dumps(records)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        run_id = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with open_store(url) as store:
        (run,) = store.runs()
        assert (run.id, run.status, run.finished_at, run.records) == (run_id, "incomplete", None, 3)
        assert [store.history(fingerprint(r))[0].batch_size for r in records] == [1, 2, 4]
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert store.last_complete(fingerprint(records[0]), "main", 3) == []  # an incomplete run is no baseline


CHILD_WRITER = """
import sys
from pytest_dnnbench.store.db import open_store
from pytest_dnnbench.store.runmeta import RunMeta
store = open_store(sys.argv[1])
run_id = store.begin_run(RunMeta(host=sys.argv[2]))
for i in range(5):
    store.add_record(run_id, {"model": "m" + sys.argv[2], "batch_size": i + 1, "latency_ms": {"median": 1.0}})
store.finish_run(run_id)
"""


def test_processes_writing_to_one_new_store_at_once_all_get_through(url: str) -> None:
    children = [subprocess.Popen([sys.executable, "-c", CHILD_WRITER, url, str(i)]) for i in range(3)]
    assert [c.wait(timeout=120) for c in children] == [0, 0, 0]
    with open_store(url) as store:
        runs = store.runs()
        assert sorted(r.host or "" for r in runs) == ["0", "1", "2"]
        assert all(r.status == "complete" and r.records == 5 for r in runs)


def test_an_older_store_is_upgraded_when_opened_for_writing(url: str) -> None:
    """Taken back to before the first migration (the version table left, empty), a store is refused for reading
    and made again when opened for writing."""
    from alembic import command

    from pytest_dnnbench.store.db import alembic_config

    with open_store(url) as store:
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        with store.engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == [VERSION_TABLE]
    with pytest.raises(StoreError, match="the store is empty. Open it for writing once"):
        open_store(url, write=False)
    with open_store(url) as store:
        run_with(store, [record()])
        assert store.runs()[0].records == 1


def test_the_revisions_the_plugin_checks_without_alembic_are_alembics_own() -> None:
    from pytest_dnnbench.store import db
    from pytest_dnnbench.store.migrations import HEAD, REVISIONS

    script = db._script()
    assert tuple(reversed([s.revision for s in script.walk_revisions()])) == REVISIONS
    assert script.get_current_head() == HEAD == head_revision()
