"""A real PostgreSQL server for the store's tests, started through pytest-postgresql's executor.

pytest-postgresql's ``postgresql_proc`` fixture keeps its data folder under pytest's base temporary folder,
which only its owner may enter; and ``initdb`` refuses to run as root. So this module drives the same
executor (:class:`pytest_postgresql.executors.PostgreSQLExecutor`: ``pg_ctl initdb``, ``pg_ctl start``, a
wait for the port, ``pg_ctl stop``) on a folder of its own, and, run as root, through a small wrapper that
runs ``pg_ctl`` as the ``postgres`` user (``runuser``), with that folder given to that user.

The server trusts its Unix socket (the tests' own administration) and asks a password over TCP
(``scram-sha-256``), the way a team's server does: the store's tests connect over TCP with :data:`PASSWORD`.

Where no PostgreSQL is installed the tests are skipped with the reason, except under CI (``CI`` set), where a
missing server fails them: CI is where the PostgreSQL path must be proved.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The password of the server's ``postgres`` user over TCP.
PASSWORD = "s3cret-pw!"
#: The user the server's processes run as when the tests run as root.
SYSTEM_USER = "postgres"


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip (outside CI) or fail (under CI) a test that needs PostgreSQL."""
    if under_ci():
        pytest.fail(f"PostgreSQL is needed under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def find_pg_ctl() -> str | None:
    """``pg_ctl``: on the PATH, else the newest of Debian's ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which("pg_ctl")
    if found:
        return found
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    socket_dir: str

    def url(self, dbname: str, *, password: str | None = None, port: int | None = None) -> str:
        """The store URL of database ``dbname`` (as a user writes it: ``postgresql://``)."""
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@{self.host}:{port or self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run ``sql`` as the server's superuser over the trusted Unix socket, outside a transaction."""
        import psycopg

        with psycopg.connect(
            host=self.socket_dir, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        """A new empty database; returns its store URL."""
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _give_to(path: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


def _wrapper(folder: Path, pg_ctl: str) -> str:
    """A ``pg_ctl`` that runs the real one as :data:`SYSTEM_USER` (initdb and the server refuse root)."""
    runuser = shutil.which("runuser")
    if runuser is None:
        unavailable("the tests run as root and runuser is missing: PostgreSQL cannot be started as another user")
    script = folder / "pg_ctl"
    script.write_text(f'#!/bin/sh\nexec {runuser} -u {SYSTEM_USER} -- {pg_ctl} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(script)


def _wait_until_ready(server: PostgresServer, timeout_s: float = 60.0) -> None:
    """Until the server takes connections: its port opens before it has finished starting up ("the database
    system is starting up"), which on a loaded machine lasts seconds."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            server.admin("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_for_passwords(server: PostgresServer, timeout_s: float = 10.0) -> None:
    """Until the server (reloading its configuration in the background) asks a password over TCP."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            psycopg.connect(host=server.host, port=server.port, user=server.user, dbname="postgres").close()
        except psycopg.OperationalError:
            return
        time.sleep(0.05)
    raise RuntimeError("PostgreSQL still lets a connection in without a password")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 and a free port, for as long as the ``with`` lasts."""
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        unavailable("PostgreSQL's server (pg_ctl) is not installed")
        raise AssertionError  # unreachable: unavailable() skips or fails
    try:
        import psycopg  # noqa: F401 - the store's PostgreSQL driver (the [postgres] extra)
        from pytest_postgresql.executors import PostgreSQLExecutor
    except ImportError as exc:
        unavailable(f"psycopg 3 and pytest-postgresql are needed ({exc})")
        raise AssertionError from exc
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="dnnbench-pg-"))
    try:
        executable = pg_ctl
        if as_root:
            import pwd

            try:
                pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                unavailable(f"the tests run as root and there is no {SYSTEM_USER!r} user to run PostgreSQL as")
            tools = folder / "bin"
            tools.mkdir()
            executable = _wrapper(tools, pg_ctl)
            (folder / "run").mkdir()
            _give_to(folder / "run", SYSTEM_USER)
            folder.chmod(0o755)
        run = folder / "run"
        run.mkdir(exist_ok=True)
        port = free_port()
        executor = PostgreSQLExecutor(
            executable=executable,
            host="127.0.0.1",
            port=port,
            datadir=str(run / "data"),
            unixsocketdir=str(run),
            logfile=str(run / "postgresql.log"),
            startparams="-w",
            dbname="postgres",
            user="postgres",
            postgres_options="-c listen_addresses=127.0.0.1",
        )
        try:
            executor.start()
        except Exception as exc:  # noqa: BLE001 - said in the skip/fail reason with the server's log
            log = run / "postgresql.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            unavailable(f"PostgreSQL did not start ({type(exc).__name__}: {exc}) {tail}")
        server = PostgresServer("127.0.0.1", port, "postgres", PASSWORD, str(run))
        try:
            _wait_until_ready(server)
            # A password over TCP, as on a team's server; the socket stays trusted for the tests' administration.
            server.admin(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
            hba = run / "data" / "pg_hba.conf"
            lines = [
                line.replace("trust", "scram-sha-256") if line.startswith("host") else line
                for line in hba.read_text().splitlines()
            ]
            hba.write_text("\n".join(lines) + "\n")
            server.admin("SELECT pg_reload_conf()")
            _wait_for_passwords(server)
            yield server
        finally:
            executor.stop()
            executor.clean_directory()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
