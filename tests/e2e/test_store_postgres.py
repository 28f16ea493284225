"""The results store on a real PostgreSQL server (tests/store_server.py starts one for the session).

Skipped where PostgreSQL is not installed, with the reason; failed under CI (``CI`` set), where the team
server's path must be proved.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from store_server import PostgresServer, postgres_server

from pytest_dnnbench import __version__
from pytest_dnnbench.store.db import CONNECT_TIMEOUT_S, StoreError, head_revision, open_store
from pytest_dnnbench.store.fingerprint import fingerprint
from pytest_dnnbench.store.runmeta import RunMeta
from pytest_dnnbench.store.schema import VERSION_TABLE, metadata
from pytest_dnnbench.store.urls import resolve_url

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A new empty database's store URL (``postgresql+psycopg://``, as :func:`resolve_url` makes it)."""
    return resolve_url(pg_server.create_database(f"store_{uuid.uuid4().hex[:12]}"), Path("."))


def record(model: str = "resnet18", batch: int = 8, median: float = 10.0, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": model,
        "source": "torchvision",
        "device": "cpu",
        "device_name": "Some CPU",
        "precision": "fp32",
        "mode": "eager",
        "channels_last": False,
        "threads": 2,
        "batch_size": batch,
        "input_size": [3, 224, 224],
        "latency_ms": {
            "median": median,
            "n": 3,
            "ci_median": [median * 0.99, median * 1.01],
            "samples": [median, median * 1.01, median * 0.99],
            "warmup_samples": [3 * median],
        },
        "memory_bytes": {"total": 700 * 2**20, "delta": 40 * 2**20},
        "macs": 23_000_000_000,  # beyond 32 bits: a BIGINT
        "load": {"busy": False},
        "outcome": "passed",
    }
    data.update(changes)
    return data


def test_a_run_round_trips_on_postgresql(pg_url: str) -> None:
    with open_store(pg_url) as store:
        assert store.dialect == "postgresql" and store.url.startswith("postgresql://postgres:***@127.0.0.1:")
        run_id = store.begin_run(RunMeta(started_at=T0, git_commit="a" * 40, git_branch="main", environment={"x": 1}))
        originals = [record(batch=1, median=5.0), record(batch=8), record("mobilenet_v2", 1, 3.0)]
        ids = [store.add_record(run_id, data) for data in originals]
        store.finish_run(run_id)
        for hours, median in ((2, 12.0), (1, 11.0)):
            later = store.begin_run(RunMeta(started_at=T0 + timedelta(hours=hours), git_branch="main"))
            store.add_record(later, record(median=median))
            store.finish_run(later)

        (first, *_) = store.runs()[::-1]
        assert (first.status, first.records, first.started_at) == ("complete", 3, T0)
        for record_id, data in zip(ids, originals, strict=True):
            back = store.record_json(record_id)
            assert back == data and list(back) == list(data)
        fp = fingerprint(record())
        assert [p.latency_median_ms for p in store.history(fp)] == [10.0, 11.0, 12.0]
        assert store.history(fp)[0].figures["macs_per_image"] == 23_000_000_000
        store.annotate("new runner", fingerprint=fp, at=T0 + timedelta(minutes=30))
        assert [p.latency_median_ms for p in store.last_complete(fp, "main", 5)] == [11.0, 12.0]
        assert {i.model for i in store.fingerprints()} == {"resnet18", "mobilenet_v2"}

        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []


CHILD_WRITER = """
import sys
from pytest_dnnbench.store.db import open_store
from pytest_dnnbench.store.runmeta import RunMeta
store = open_store(sys.argv[1])
run_id = store.begin_run(RunMeta(host=sys.argv[2], git_branch="main"))
for batch in range(1, 6):
    store.add_record(run_id, {"model": "m", "batch_size": batch, "threads": 1, "latency_ms": {"median": 1.0,
                              "samples": [1.0] * 20}})
store.finish_run(run_id)
store.close()
"""


def test_eight_processes_write_to_one_new_database_at_once(pg_url: str) -> None:
    """Eight writers open one empty database together (the migration runs once, under the advisory lock) and
    each writes its run: every record is there."""
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD_WRITER, pg_url, str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    errors = [c.communicate(timeout=120)[1] for c in children]
    assert [c.returncode for c in children] == [0] * 8, errors
    with open_store(pg_url) as store:
        runs = store.runs()
        assert sorted(r.host or "" for r in runs) == [str(i) for i in range(8)]
        assert all(r.status == "complete" and r.records == 5 for r in runs)
        fp = fingerprint({"model": "m", "batch_size": 3, "threads": 1})
        assert len(store.history(fp)) == 8
        assert len(store.record_json(store.history(fp)[0].record_id)["latency_ms"]["samples"]) == 20


def test_a_wrong_password_is_a_store_error_with_the_password_masked(pg_server: PostgresServer, pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    url = resolve_url(pg_server.url(database, password="Wr0ng-pass"), Path("."))
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert message.startswith(f"results store postgresql://postgres:***@127.0.0.1:{pg_server.port}/{database}: ")
    assert "refused the user name or password" in message and "DNNBENCH_STORE" in message
    assert "Wr0ng-pass" not in message and "Wr0ng-pass" not in repr(info.value)
    assert pg_server.password not in message


def test_an_unreachable_port_is_a_store_error_at_once(pg_server: PostgresServer) -> None:
    with pytest.raises(StoreError) as info:
        start = time.monotonic()
        open_store(resolve_url(pg_server.url("bench", port=1), Path(".")))
    assert time.monotonic() - start < CONNECT_TIMEOUT_S + 2
    message = str(info.value)
    assert message.startswith("results store postgresql://postgres:***@127.0.0.1:1/bench: cannot connect")
    assert pg_server.password not in message


def test_a_missing_database_is_a_store_error(pg_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match=r"/no_such_db: the database does not exist .*Create it"):
        open_store(resolve_url(pg_server.url("no_such_db"), Path(".")))


def test_a_newer_schema_on_the_server_is_refused(pg_server: PostgresServer, pg_url: str) -> None:
    open_store(pg_url).close()
    database = pg_url.rsplit("/", 1)[1]
    import psycopg

    with psycopg.connect(
        host=pg_server.socket_dir, port=pg_server.port, user="postgres", dbname=database, autocommit=True
    ) as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = 'f00d42'".encode())
    with pytest.raises(StoreError) as info:
        open_store(pg_url)
    message = str(info.value)
    assert f"revision f00d42, which pytest-dnnbench {__version__} does not know" in message
    assert head_revision() in message and "Upgrade pytest-dnnbench" in message and "***" in message


def test_a_user_who_may_only_read_is_refused_for_writing(pg_server: PostgresServer, pg_url: str) -> None:
    with open_store(pg_url) as store:
        store.begin_run(RunMeta(git_branch="main"))
    database = pg_url.rsplit("/", 1)[1]
    reader = f"reader_{database}"
    pg_server.admin(f"CREATE ROLE {reader} LOGIN PASSWORD 'read-only-pw'")
    import psycopg

    with psycopg.connect(
        host=pg_server.socket_dir, port=pg_server.port, user="postgres", dbname=database, autocommit=True
    ) as conn:
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}".encode())
    url = resolve_url(f"postgresql://{reader}:read-only-pw@127.0.0.1:{pg_server.port}/{database}", Path("."))
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert "refuses this user's writes" in str(info.value) and "read-only-pw" not in str(info.value)
    with open_store(url, write=False) as store:
        assert len(store.runs()) == 1


def test_three_real_runs_to_a_team_server_are_three_points_of_the_history(
    tiny_project: pytest.Pytester, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptance's PostgreSQL case, as a team's CI would type it: the URL (with its password) in
    DNNBENCH_STORE, three runs on three commits, then ``history`` on the same URL."""
    pytest.importorskip("torch")
    import json

    from helpers import FAST, QUIET_LOAD, runs_on_commits

    url = pg_server.create_database(f"team_{uuid.uuid4().hex[:12]}")  # postgresql://postgres:PASSWORD@...
    monkeypatch.setenv("DNNBENCH_STORE", url)
    root = tiny_project.path
    tiny_project.makeconftest((root / "conftest.py").read_text() + QUIET_LOAD)
    run = [*FAST, "--dnn-threads=1", "-p", "no:cacheprovider", "--dnn-models=tiny", "--dnn-batch-sizes=1"]
    runs = runs_on_commits(tiny_project, [*run, "--dnn-store"])
    commits = [commit for commit, _ in runs]
    for k, (_, result) in enumerate(runs):
        assert pg_server.password not in result.stdout.str()
        result.stdout.fnmatch_lines([f"results store: postgresql://postgres:***@*, run {k + 1}: 1 record(s), complete"])
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_dnnbench", "history", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert pg_server.password not in shown.stdout + shown.stderr
    [tiny] = json.loads(shown.stdout)["histories"]
    assert [p["git_commit"] for p in tiny["points"]] == commits
