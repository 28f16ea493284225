"""Opening a store and everything a run writes to it and the history reads from it (SQLAlchemy Core, no ORM).

:func:`open_store` gives a :class:`Store` or raises :class:`~.urls.StoreError`, whose message names the store
by its masked URL (``postgresql://user:***@host/db``) and says what to do, for every store that cannot be
used: a server that cannot be reached or refuses the password, a database missing, a read-only SQLite file or
folder, a corrupt file, a file that is not a store of this plugin, a store of a newer schema than this plugin
knows. Opening a store of an older schema upgrades it (the migrations of :mod:`.migrations`, under a lock:
PostgreSQL's advisory lock, SQLite's write lock), so that several processes may open one new store at once.

Writing never costs a measurement: each write is one short transaction (:meth:`Store.add_record`: a record
and its samples), committed before the method returns; a killed run keeps every record it finished and stays
``incomplete``. SQLite runs in WAL mode with a busy timeout of :data:`BUSY_TIMEOUT_S` (writers from several
processes wait for each other instead of failing), foreign keys on. Every database error of a method is a
:class:`~.urls.StoreError` too (the caller keeps its measurement and says the store failed).

No pytest, no torch here.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from .. import __version__
from ..jsonfile import finite_or_null
from ..jsontypes import JsonMapping, JsonObject
from . import schema
from .fingerprint import comparability, fingerprint
from .migrations import HEAD, REVISIONS, SCRIPT_LOCATION
from .runmeta import RunMeta
from .schema import ANNOTATION_KINDS, FIGURES, RUN_STATUSES, VERSION_TABLE
from .urls import StoreError, is_sqlite, mask_url, resolve_url

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "BUSY_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "SELECTION_KEYS",
    "Annotation",
    "FingerprintInfo",
    "Point",
    "Run",
    "SeriesPoint",
    "Store",
    "StoreError",
    "alembic_config",
    "head_revision",
    "mask_url",
    "open_store",
    "record_columns",
    "resolve_url",
]

#: Seconds an SQLite writer waits for another one before it gives up.
BUSY_TIMEOUT_S = 30.0
#: Seconds a connection to a server may take (an unreachable host fails after this, not after minutes).
CONNECT_TIMEOUT_S = 5
#: Any constant: the key of PostgreSQL's advisory lock that serializes the migrations of one database.
_MIGRATION_LOCK = 0x646E6E62  # "dnnb"
#: Record columns an annotation's selection may name (a string value may be a glob: ``resnet*``).
SELECTION_KEYS = ("model", "batch_size", "mode", "precision", "device", "platform_key", "source")

RUNS, RECORDS, SAMPLES, NOTES = schema.runs, schema.records, schema.samples, schema.annotations


# -- the rows handed out ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A row of ``runs``, with the number of its records."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    ci_provider: str | None
    ci_job: str | None
    ci_url: str | None
    ci_run_id: str | None
    host: str | None
    platform_key: str | None
    plugin_version: str | None
    torch_version: str | None
    shard_index: int | None
    shard_count: int | None
    run_group: str | None
    records: int


@dataclass(frozen=True)
class Point:
    """One record in a history: where and when it was measured, its trust flags and its figures."""

    record_id: int
    run_id: int
    fingerprint: str
    started_at: datetime
    created_at: datetime
    run_status: str
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    host: str | None
    test: str | None
    model: str
    batch_size: int
    mode: str
    precision: str
    device: str
    platform_key: str
    outcome: str | None
    busy: bool | None
    insufficient: bool | None
    capped: bool | None
    #: Every column of :data:`~.schema.FIGURES` (None where the record has no such figure).
    figures: Mapping[str, float | int | None]

    @property
    def latency_median_ms(self) -> float | None:
        value = self.figures.get("latency_median_ms")
        return float(value) if value is not None else None


@dataclass(frozen=True)
class Annotation:
    """A row of ``annotations``."""

    id: int
    created_at: datetime
    kind: str
    fingerprint: str | None
    selection: JsonMapping | None
    git_commit: str | None
    at: datetime | None
    reason: str
    author: str | None


@dataclass(frozen=True)
class FingerprintInfo:
    """One history: its fingerprint, what it measures, how many records it holds and when."""

    fingerprint: str
    model: str
    batch_size: int
    mode: str
    precision: str
    device: str
    platform_key: str
    records: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class SeriesPoint:
    """One point of a figure's history (:meth:`Store.series`): the last record a run kept of one fingerprint,
    with its run's time, status, commit, branch and host, its trust flags and the one figure asked for."""

    record_id: int
    run_id: int
    started_at: datetime
    run_status: str
    git_commit: str | None
    git_branch: str | None
    host: str | None
    busy: bool | None
    insufficient: bool | None
    value: float


# -- helpers ------------------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    """A time read back: SQLite keeps no zone (every time is written in UTC), PostgreSQL gives it."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _utc(value: datetime) -> datetime:
    """A time to write: in UTC (a naive one is taken as UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _new_id(result: sa.CursorResult[Any]) -> int:
    """The primary key of the row an INSERT made."""
    key = result.inserted_primary_key
    assert key is not None and key[0] is not None
    return int(key[0])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _integer(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and abs(number) < 2**63 else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object, limit: int = 255) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _samples(value: object) -> list[float] | None:
    """A list of finite numbers, or None (anything else stays in the record's JSON)."""
    if not isinstance(value, list) or not value:
        return None
    out = [_number(v) for v in value]
    return None if any(v is None for v in out) else [v for v in out if v is not None]


def record_columns(record: JsonMapping, environment: JsonMapping | None = None) -> JsonObject:
    """The columns of ``records`` (but ``run_id``, ``created_at`` and ``record_json``) read from a record's JSON:
    anything missing or of the wrong kind is None."""
    fields = comparability(record, environment)
    latency = _mapping(record.get("latency_ms"))
    memory = _mapping(record.get("memory_bytes"))
    accuracy = _mapping(record.get("accuracy"))
    measured = _mapping(accuracy.get("measured"))
    energy = _mapping(record.get("energy"))
    load = _mapping(record.get("load"))
    ci = latency.get("ci_median")
    ci_low, ci_high = (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    size = fields["input_size"]
    top1 = _number(measured.get("top1"))
    if top1 is not None:
        status = "measured"
    elif _number(_mapping(accuracy.get("reference")).get("top1")) is not None:
        status = "reference"
    else:
        status = "unavailable"
    figures: dict[str, object] = {
        "latency_median_ms": _number(latency.get("median")),
        "latency_mean_ms": _number(latency.get("mean")),
        "latency_stdev_ms": _number(latency.get("stdev")),
        "latency_min_ms": _number(latency.get("min")),
        "latency_max_ms": _number(latency.get("max")),
        "latency_p90_ms": _number(latency.get("p90")),
        "latency_p99_ms": _number(latency.get("p99")),
        "latency_ci_low_ms": _number(ci_low),
        "latency_ci_high_ms": _number(ci_high),
        "latency_samples": _integer(latency.get("n")),
        "per_image_ms": _number(record.get("per_image_ms")),
        "fps": _number(record.get("fps")),
        "memory_total_bytes": _integer(memory.get("total")),
        "memory_delta_bytes": _integer(memory.get("delta")),
        "memory_process_total_bytes": _integer(memory.get("process_total")),
        "memory_allocator_peak_bytes": _integer(memory.get("allocator_peak")),
        "memory_reserved_peak_bytes": _integer(memory.get("reserved_peak")),
        "memory_context_bytes": _integer(memory.get("context")),
        "memory_runtime_floor_bytes": _integer(memory.get("runtime_floor")),
        "memory_model_bytes": _integer(memory.get("model")),
        "macs_per_image": _integer(record.get("macs")),
        "flops_per_image": _integer(record.get("flops")),
        "params": _integer(record.get("params")),
        "param_file_bytes": _integer(record.get("param_file_bytes")),
        "top1_pct": top1,
        "top5_pct": _number(measured.get("top5")),
        "energy_j_per_image": _number(energy.get("joules_per_image")),
        "energy_watts": _number(energy.get("watts")),
    }
    return {
        "fingerprint": fingerprint(record, environment),
        "test": record.get("test") if isinstance(record.get("test"), str) else None,
        "model": fields["model"] or "?",
        "source": _text(fields["source"], 64),
        "batch_size": fields["batch_size"] if fields["batch_size"] is not None else 0,
        "input_size": "x".join(str(v) for v in size)[:64] if size else None,
        "mode": fields["mode"][:64],
        "precision": fields["precision"][:16],
        "device": (_text(record.get("device"), 64) or "cpu"),
        "device_name": _text(record.get("device_name")),
        "threads": fields["threads"],
        "channels_last": fields["channels_last"],
        "platform_key": str(fields["platform"])[:255],
        "outcome": _text(record.get("outcome"), 16),
        "busy": _flag(load.get("busy")),
        "insufficient": bool(_flag(latency.get("insufficient"))),
        "capped": _flag(latency.get("capped")),
        "accuracy_status": status,
        **figures,
    }


def _stored_json(record: JsonMapping) -> tuple[JsonObject, list[float], list[float]]:
    """The record as ``record_json`` keeps it (non-finite numbers as null; the latency samples emptied where
    they are rows of ``samples``), and those samples (timed, warm-up)."""
    clean, _ = finite_or_null(dict(record))
    data: JsonObject = clean if isinstance(clean, dict) else {}
    latency = data.get("latency_ms")
    timed: list[float] = []
    warmup: list[float] = []
    if isinstance(latency, dict):
        latency = dict(latency)
        for key, into in (("samples", timed), ("warmup_samples", warmup)):
            values = _samples(latency.get(key))
            if values is not None:
                into.extend(values)
                latency[key] = []
        data["latency_ms"] = latency
    return data, timed, warmup


# -- opening ------------------------------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the store's migrations (no ``alembic.ini``): the script location in the
    package, and the connection the migrations run on."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest schema revision this plugin knows (:data:`.migrations.HEAD`, without importing Alembic)."""
    return HEAD


def _known_revisions() -> set[str]:
    return set(REVISIONS)


def _sqlite_file(url: sa.engine.URL) -> Path | None:
    """The file of an SQLite URL (None in memory, or for an SQLite URI: ``file:...``)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _engine(url: str) -> Engine:
    """The engine: SQLite with a busy timeout, foreign keys and our own transactions; PostgreSQL with a
    connection timeout and a liveness check of pooled connections."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        memory = _sqlite_file(parsed) is None and not (parsed.database or "").startswith("file:")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
        if memory:
            kwargs.update(poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False})
        engine = sa.create_engine(parsed, **kwargs)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # transactions are ours (BEGIN below), not the driver's
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            # A writer takes the write lock first (waiting up to the busy timeout): a transaction that read first
            # could not wait for it in WAL mode and would fail at once.
            write = connection.get_execution_options().get("dnnbench_write", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "pytest-dnnbench"},
        )
    return sa.create_engine(parsed, pool_pre_ping=True)


def _explain(error: BaseException, url: str) -> tuple[str, str]:
    """(why, fix) for a database error met while opening or using the store at ``url``."""
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split()) or type(original).__name__
    low = text.lower()
    sqlite = is_sqlite(url)
    if sqlite:
        if "readonly" in low or "read-only" in low or "read only" in low:
            return (
                f"the SQLite file cannot be written ({text})",
                "Make the file and its folder writable (SQLite writes its journal next to the file), "
                "or name another store",
            )
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return (
                f"the file is not an SQLite database, or it is corrupt ({text})",
                "Move the file away (a new store is made in its place), or name another store",
            )
        if "unable to open" in low:
            return (
                f"the SQLite file cannot be opened ({text})",
                "Check that its folder exists and can be written, or name another store",
            )
        if "locked" in low or "busy" in low:
            return (
                f"the SQLite file stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s ({text})",
                "Wait for the other run to finish, or name another store",
            )
        return f"SQLite failed: {text}", "Check the file, or name another store"
    if "password authentication failed" in low or "authentication failed" in low or "no password" in low:
        return (
            f"the server refused the user name or password ({text})",
            "Check the user and password (give the URL in DNNBENCH_STORE to keep a password off the command line)",
        )
    if "does not exist" in low and "database" in low:
        return f"the database does not exist ({text})", "Create it (createdb NAME), or name an existing one"
    if "permission denied" in low or "read-only transaction" in low or "insufficientprivilege" in low:
        return (
            f"the server refuses this user's writes ({text})",
            "Grant the user CREATE and INSERT/UPDATE on the store's database, or name another store",
        )
    if (
        "connection refused" in low
        or "timeout" in low
        or "timed out" in low
        or "could not translate host" in low
        or "connection failed" in low
        or "name or service not known" in low
        or "no route" in low
    ):
        return (
            f"cannot connect to the server ({text})",
            "Check the host and port, and that the server is running and reachable from here",
        )
    return f"the database failed: {text}", "Check the store's URL and server"


def _store_error(error: BaseException, url: str) -> StoreError:
    why, fix = _explain(error, url)
    return StoreError(url, why, fix)


def open_store(url: str, *, write: bool = True) -> Store:
    """The store at ``url`` (an SQLAlchemy URL: :func:`~.urls.resolve_url` makes one from an option's value),
    ready: its schema at this plugin's newest revision.

    ``write``: the store will be written (a run); then a new store is made (an SQLite file's folder too), an
    older schema is upgraded, and a store that cannot be written is refused now. ``write=False`` (reading the
    history) changes nothing and refuses a store that is not at the newest revision.

    Raises :class:`~.urls.StoreError` (naming the store by its masked URL) for every store that cannot be used.
    """
    try:
        parsed = sa.engine.make_url(url)
    except (exc.ArgumentError, ValueError) as error:
        raise StoreError(
            url,
            f"not a database URL ({' '.join(str(error).split())})",
            "Give sqlite:///PATH, a path, or postgresql://USER@HOST/DATABASE",
        ) from None
    backend = parsed.get_backend_name()
    path = _sqlite_file(parsed) if backend == "sqlite" else None
    if path is not None:
        if path.exists() and not path.is_file():
            raise StoreError(url, f"{path} is not a file", "Name an SQLite file, or a path where one can be made")
        if write:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    url, f"its folder {path.parent} cannot be made ({error.strerror})", "Name a writable path"
                ) from None
        elif not path.exists():
            raise StoreError(url, f"there is no store at {path}", "Run pytest with --dnn-store first")
    try:
        engine = _engine(url)
    except exc.NoSuchModuleError as error:
        why = f"SQLAlchemy knows no such database ({error})"
        raise StoreError(url, why, "Use sqlite:// or postgresql://") from None
    except ImportError as error:
        fix = (
            "Install psycopg 3: pip install 'pytest-dnnbench[postgres]'"
            if backend == "postgresql"
            else "Install the database's driver"
        )
        raise StoreError(url, f"its driver is not installed ({error})", fix) from None
    store = Store(engine, url)
    try:
        store._prepare(write)
    except StoreError:
        engine.dispose()
        raise
    except (exc.SQLAlchemyError, OSError, sqlite3.Error) as error:
        engine.dispose()
        raise _store_error(error, url) from None
    except Exception as error:  # noqa: BLE001 - a migration's own failure (Alembic): still named and masked
        engine.dispose()
        raise StoreError(url, f"could not be prepared ({type(error).__name__}: {error})", "Check the store") from None
    return store


# -- the store ----------------------------------------------------------------------------------------------------


class Store:
    """An open store: what a run writes (:meth:`begin_run`, :meth:`add_record`, :meth:`finish_run`) and what the
    history reads (:meth:`runs`, :meth:`history`, :meth:`last_complete`, :meth:`fingerprints`,
    :meth:`annotations`). Made by :func:`open_store`; :meth:`close` (or ``with``) ends it.

    Every method raises :class:`~.urls.StoreError` where the database fails (masked URL, what to do)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        #: The store's URL as it may be shown (password masked).
        self.url = mask_url(url)
        self._raw_url = url
        self._environments: dict[int, JsonMapping | None] = {}

    # -- plumbing ---------------------------------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self.engine.dialect.name)

    def close(self) -> None:
        """Close every connection of the store."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction, committed on leaving (SQLite: the write lock taken first)."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(dnnbench_write=True)
                with conn.begin():
                    yield conn
        except StoreError:
            raise
        except exc.SQLAlchemyError as error:
            raise _store_error(error, self._raw_url) from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except StoreError:
            raise
        except exc.SQLAlchemyError as error:
            raise _store_error(error, self._raw_url) from None

    # -- opening: schema check, migrations, write probe ----------------------------------------------------------
    def _revision(self, conn: Connection) -> tuple[str | None, list[str]]:
        """(the store's revision or None for a store without one, the tables of another application)."""
        names = set(sa.inspect(conn).get_table_names())
        if VERSION_TABLE not in names:
            return None, sorted(names)
        rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if len(rows) > 1:
            raise StoreError(
                self._raw_url,
                f"the store has {len(rows)} schema revisions ({', '.join(map(str, rows))}): it was changed by hand",
                "Repair its table " + VERSION_TABLE,
            )
        return (str(rows[0]) if rows else None), []

    def _check_known(self, revision: str | None) -> None:
        if revision is not None and revision not in _known_revisions():
            raise StoreError(
                self._raw_url,
                f"its schema is revision {revision}, which pytest-dnnbench {__version__} does not know (its newest "
                f"is {head_revision()}): a newer pytest-dnnbench wrote it",
                "Upgrade pytest-dnnbench (pip install -U pytest-dnnbench), or name another store",
            )

    def _prepare(self, write: bool) -> None:
        """Check the store's schema (nothing is changed before it is known to be ours), then, for writing: WAL
        mode on SQLite, and the schema made or upgraded, or a write tried (and rolled back)."""
        head = head_revision()
        with self.engine.connect() as conn:
            revision, foreign = self._revision(conn)
            conn.rollback()
        if foreign:
            raise StoreError(
                self._raw_url,
                f"the database holds tables of another application ({', '.join(foreign[:5])}"
                f"{'...' if len(foreign) > 5 else ''}) and no {VERSION_TABLE}: it is not a pytest-dnnbench store",
                "Give the store a database (or SQLite file) of its own",
            )
        self._check_known(revision)
        if not write:
            if revision != head:
                older = f"its schema is revision {revision}, older than {head}"
                raise StoreError(
                    self._raw_url,
                    "the store is empty" if revision is None else older,
                    "Open it for writing once (a pytest run with --dnn-store) to make or upgrade it",
                )
            return
        self._wal()
        if revision == head:
            self._probe_write()
        else:
            self._migrate()

    def _wal(self) -> None:
        """An SQLite file in WAL mode (kept by the file): readers and a writer side by side, a commit that
        survives a killed process."""
        if self.dialect != "sqlite" or _sqlite_file(self.engine.url) is None:
            return
        with self.engine.connect() as conn:  # outside a transaction: the driver's own connection
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            finally:
                cursor.close()
        if str(mode).lower() != "wal":
            raise StoreError(
                self._raw_url,
                f"SQLite would not switch the file to WAL mode (it stays in {mode} mode)",
                "Put the store on a local file system",
            )

    def _probe_write(self) -> None:
        """Refuse now a store that could not be written later (a read-only file, a user without rights)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(dnnbench_write=True)
            with conn.begin() as transaction:
                conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = version_num"))
                transaction.rollback()

    def _migrate(self) -> None:
        """Make or upgrade the schema to the newest revision, one process at a time."""
        from alembic import command

        with self.engine.connect() as conn:
            conn = conn.execution_options(dnnbench_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                revision, foreign = self._revision(conn)  # again, under the lock: another process may have done it
                if foreign:
                    raise StoreError(self._raw_url, "another application made tables meanwhile", "Try again")
                self._check_known(revision)
                command.upgrade(alembic_config(conn), "head")

    # -- a run ----------------------------------------------------------------------------------------------------
    def begin_run(self, meta: RunMeta) -> int:
        """A new run (``incomplete`` until :meth:`finish_run`), committed now; returns its id."""
        environment = None
        if meta.environment is not None:
            clean, _ = finite_or_null(dict(meta.environment))
            environment = clean if isinstance(clean, dict) else None
        values = {
            "started_at": _utc(meta.started_at),
            "status": "incomplete",
            "git_commit": _text(meta.git_commit, 64),
            "git_branch": _text(meta.git_branch),
            "git_dirty": meta.git_dirty,
            "ci_provider": _text(meta.ci_provider, 32),
            "ci_job": _text(meta.ci_job),
            "ci_url": meta.ci_url,
            "ci_run_id": _text(meta.ci_run_id),
            "host": _text(meta.host),
            "platform_key": _text(meta.platform_key),
            "environment": environment,
            "plugin_version": _text(meta.plugin_version or __version__, 64),
            "torch_version": _text(meta.torch_version, 64),
            "shard_index": meta.shard_index,
            "shard_count": meta.shard_count,
            "run_group": _text(meta.run_group),
        }
        with self._write() as conn:
            run_id = _new_id(conn.execute(sa.insert(RUNS).values(**values)))
        self._environments[run_id] = environment
        return run_id

    def set_environment(self, run_id: int, environment: JsonMapping, platform_key: str | None = None) -> None:
        """Give run ``run_id`` its environment once it is known (the first test collects it), with the torch and
        plugin versions it names and the run's platform key; the records added later read the device name and
        threads they lack from it (their fingerprints, as the baseline files do)."""
        clean, _ = finite_or_null(dict(environment))
        env: JsonObject = clean if isinstance(clean, dict) else {}
        values: JsonObject = {"environment": env}
        if env.get("torch"):
            values["torch_version"] = _text(str(env["torch"]), 64)
        if env.get("plugin_version"):
            values["plugin_version"] = _text(str(env["plugin_version"]), 64)
        if platform_key:
            values["platform_key"] = _text(platform_key)
        with self._write() as conn:
            done = conn.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(**values))
            if done.rowcount != 1:
                raise StoreError(self._raw_url, f"there is no run {run_id}", "Begin a run first")
        self._environments[run_id] = env

    def _environment(self, conn: Connection, run_id: int) -> JsonMapping | None:
        if run_id not in self._environments:
            row = conn.execute(sa.select(RUNS.c.environment).where(RUNS.c.id == run_id)).first()
            if row is None:
                raise StoreError(self._raw_url, f"there is no run {run_id}", "Begin a run first")
            self._environments[run_id] = row[0] if isinstance(row[0], Mapping) else None
        return self._environments[run_id]

    def add_record(self, run_id: int, record_json: JsonMapping) -> int:
        """Keep one finished record of run ``run_id`` (and its latency samples) in one transaction, committed
        before this returns; returns the record's id. The record is the results file's JSON object."""
        stored, timed, warmup = _stored_json(record_json)
        with self._write() as conn:
            columns = record_columns(record_json, self._environment(conn, run_id))
            inserted = conn.execute(
                sa.insert(RECORDS).values(run_id=run_id, created_at=_now(), record_json=stored, **columns)
            )
            record_id = _new_id(inserted)
            rows = [{"record_id": record_id, "warmup": False, "idx": i, "latency_ms": v} for i, v in enumerate(timed)]
            rows += [{"record_id": record_id, "warmup": True, "idx": i, "latency_ms": v} for i, v in enumerate(warmup)]
            if rows:
                conn.execute(sa.insert(SAMPLES), rows)
        return record_id

    def finish_run(self, run_id: int, status: str = "complete") -> None:
        """End run ``run_id``: ``complete`` (pytest finished it) or ``interrupted`` (stopped, ended cleanly)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"a run's status is one of {', '.join(RUN_STATUSES)}, not {status!r}")
        with self._write() as conn:
            done = conn.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(status=status, finished_at=_now()))
            if done.rowcount != 1:
                raise StoreError(self._raw_url, f"there is no run {run_id}", "Begin a run first")

    # -- reading --------------------------------------------------------------------------------------------------
    def runs(
        self,
        *,
        branch: str | None = None,
        status: str | None = None,
        run_group: str | None = None,
        limit: int | None = 100,
    ) -> list[Run]:
        """Runs, newest first (``limit`` of them; None: all), with the number of records each holds."""
        count = _record_count()
        query = sa.select(RUNS, count).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc())
        if branch is not None:
            query = query.where(RUNS.c.git_branch == branch)
        if status is not None:
            query = query.where(RUNS.c.status == status)
        if run_group is not None:
            query = query.where(RUNS.c.run_group == run_group)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_run(r) for r in rows]

    def run_environment(self, run_id: int) -> JsonMapping | None:
        """The environment run ``run_id`` was begun with."""
        with self._read() as conn:
            return self._environment(conn, run_id)

    def _points(self, query: sa.Select[Any]) -> list[Point]:
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Point(
                record_id=r["id"],
                run_id=r["run_id"],
                fingerprint=r["fingerprint"],
                started_at=_aware(r["started_at"]),
                created_at=_aware(r["created_at"]),
                run_status=r["status"],
                git_commit=r["git_commit"],
                git_branch=r["git_branch"],
                git_dirty=r["git_dirty"],
                host=r["host"],
                test=r["test"],
                model=r["model"],
                batch_size=r["batch_size"],
                mode=r["mode"],
                precision=r["precision"],
                device=r["device"],
                platform_key=r["platform_key"],
                outcome=r["outcome"],
                busy=r["busy"],
                insufficient=r["insufficient"],
                capped=r["capped"],
                figures={name: r[name] for name in FIGURES},
            )
            for r in rows
        ]

    def _point_query(self) -> sa.Select[Any]:
        columns = [c for c in RECORDS.c if c.name != "record_json"]
        run_columns = [RUNS.c.started_at, RUNS.c.status, RUNS.c.git_commit, RUNS.c.git_branch, RUNS.c.git_dirty]
        return sa.select(*columns, *run_columns, RUNS.c.host).join_from(RECORDS, RUNS, RECORDS.c.run_id == RUNS.c.id)

    def history(self, fingerprint: str) -> list[Point]:
        """Every record of one fingerprint, in time order (the run's start, then the order they were kept), each
        with its commit, branch, host and run status (incomplete and busy ones too: the caller chooses)."""
        query = (
            self._point_query()
            .where(RECORDS.c.fingerprint == fingerprint)
            .order_by(RUNS.c.started_at, RECORDS.c.created_at, RECORDS.c.id)
        )
        return self._points(query)

    def record_json(self, record_id: int) -> JsonObject:
        """Record ``record_id`` as it was added: its JSON with its latency samples back in place."""
        with self._read() as conn:
            row = conn.execute(sa.select(RECORDS.c.record_json).where(RECORDS.c.id == record_id)).first()
            if row is None:
                raise StoreError(self._raw_url, f"there is no record {record_id}", "Name a record of the store")
            rows = conn.execute(
                sa.select(SAMPLES.c.warmup, SAMPLES.c.latency_ms)
                .where(SAMPLES.c.record_id == record_id)
                .order_by(SAMPLES.c.idx)
            ).all()
        data: JsonObject = dict(row[0])
        latency = data.get("latency_ms")
        if isinstance(latency, dict):
            latency = dict(latency)
            for key, warm in (("samples", False), ("warmup_samples", True)):
                if latency.get(key) == []:
                    latency[key] = [float(v) for w, v in rows if bool(w) == warm]
            data["latency_ms"] = latency
        return data

    def fingerprints(self) -> list[FingerprintInfo]:
        """Every history in the store: what it measures, its number of records, its first and last time."""
        query = (
            sa.select(
                RECORDS.c.fingerprint,
                sa.func.min(RECORDS.c.model),
                sa.func.min(RECORDS.c.batch_size),
                sa.func.min(RECORDS.c.mode),
                sa.func.min(RECORDS.c.precision),
                sa.func.min(RECORDS.c.device),
                sa.func.min(RECORDS.c.platform_key),
                sa.func.count(RECORDS.c.id),
                sa.func.min(RECORDS.c.created_at),
                sa.func.max(RECORDS.c.created_at),
            )
            .group_by(RECORDS.c.fingerprint)
            .order_by(sa.func.min(RECORDS.c.model), sa.func.min(RECORDS.c.batch_size), RECORDS.c.fingerprint)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            FingerprintInfo(
                fingerprint=r[0],
                model=r[1],
                batch_size=r[2],
                mode=r[3],
                precision=r[4],
                device=r[5],
                platform_key=r[6],
                records=int(r[7]),
                first_at=_aware(r[8]),
                last_at=_aware(r[9]),
            )
            for r in rows
        ]

    def series(
        self,
        figure: str,
        *,
        fingerprints: Sequence[str] | None = None,
        branch: str | None = None,
        last: int | None = None,
        usable: bool = True,
    ) -> dict[str, list[SeriesPoint]]:
        """The history of one figure (a column of :data:`~.schema.FIGURES`) for each fingerprint (those given;
        None: all), in time order (the run's start): one point per run, the run's last record that has the
        figure; of these the ``last`` runs (None: all), the last in the order the runs were begun in the store
        (their ids), so that each history is read from the end of its index and no further.

        ``usable``: only the points a baseline may use (as :meth:`last_complete`): complete runs, records
        neither busy nor insufficient; False: every run's record, incomplete runs too. ``branch``: runs of that
        branch only. The history command reads every fingerprint with this (one short query each)."""
        if figure not in FIGURES:
            raise ValueError(f"a figure is one of {', '.join(FIGURES)}, not {figure!r}")
        if last is not None and last < 1:
            return {}
        value = RECORDS.c[figure]
        query = (
            sa.select(
                RECORDS.c.id,
                RECORDS.c.run_id,
                RUNS.c.started_at,
                RUNS.c.status,
                RUNS.c.git_commit,
                RUNS.c.git_branch,
                RUNS.c.host,
                RECORDS.c.busy,
                RECORDS.c.insufficient,
                value,
            )
            .join_from(RECORDS, RUNS, RECORDS.c.run_id == RUNS.c.id)
            .where(RECORDS.c.fingerprint == sa.bindparam("fingerprint"), value.is_not(None))
            .order_by(RECORDS.c.run_id.desc(), RECORDS.c.id.desc())
        )
        if usable:
            query = query.where(
                RUNS.c.status == "complete", RECORDS.c.busy.is_not(True), RECORDS.c.insufficient.is_not(True)
            )
        if branch is not None:
            query = query.where(RUNS.c.git_branch == branch)
        out: dict[str, list[SeriesPoint]] = {}
        with self._read() as conn:
            if fingerprints is None:
                fingerprints = list(conn.execute(sa.select(RECORDS.c.fingerprint).distinct()).scalars())
            for fp in fingerprints:
                points: dict[int, SeriesPoint] = {}  # by run: its last record (the first met, newest first)
                limit = last
                while True:
                    paged = query.limit(limit) if limit is not None else query
                    rows = conn.execute(paged, {"fingerprint": fp}).all()
                    for record_id, run_id, started, status, commit, on, host, busy, insufficient, number in rows:
                        if run_id not in points and (last is None or len(points) < last):
                            points[run_id] = SeriesPoint(
                                record_id, run_id, _aware(started), status, commit, on, host, busy, insufficient,
                                float(number),
                            )  # fmt: skip
                    # Several records of one run (rare): read further back until ``last`` runs are found.
                    if limit is None or last is None or len(points) >= last or len(rows) < limit:
                        break
                    limit *= 2
                    points.clear()
                if points:
                    out[fp] = sorted(points.values(), key=lambda p: (p.started_at, p.record_id))
        return out

    def record_figures(self, record_ids: Sequence[int], names: Sequence[str]) -> dict[int, dict[str, object]]:
        """The columns ``names`` (figures of :data:`~.schema.FIGURES`, or ``outcome``, ``capped``) of each record
        in ``record_ids``, by record id (read in chunks of :data:`_CHUNK` ids: one short query each)."""
        allowed = {*FIGURES, "outcome", "capped", "busy", "insufficient"}
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ValueError(f"not a column of a record's figures: {', '.join(unknown)}")
        columns = [RECORDS.c[n] for n in names]
        out: dict[int, dict[str, object]] = {}
        with self._read() as conn:
            for chunk in _chunks(record_ids):
                for row in conn.execute(sa.select(RECORDS.c.id, *columns).where(RECORDS.c.id.in_(chunk))).all():
                    out[int(row[0])] = dict(zip(names, row[1:], strict=True))
        return out

    def records_json(self, record_ids: Sequence[int]) -> dict[int, JsonObject]:
        """The JSON of each record in ``record_ids`` as kept (its latency samples left out: :meth:`record_json`
        puts them back), by record id."""
        out: dict[int, JsonObject] = {}
        with self._read() as conn:
            for chunk in _chunks(record_ids):
                query = sa.select(RECORDS.c.id, RECORDS.c.record_json).where(RECORDS.c.id.in_(chunk))
                for record_id, data in conn.execute(query).all():
                    out[int(record_id)] = dict(data) if isinstance(data, Mapping) else {}
        return out

    def runs_by_id(self, run_ids: Sequence[int]) -> dict[int, tuple[Run, JsonMapping | None]]:
        """Each run of ``run_ids`` with its environment, by id (ids the store has not are left out)."""
        count = _record_count()
        out: dict[int, tuple[Run, JsonMapping | None]] = {}
        with self._read() as conn:
            for chunk in _chunks(run_ids):
                for r in conn.execute(sa.select(RUNS, count).where(RUNS.c.id.in_(chunk))).mappings().all():
                    env = r["environment"]
                    out[int(r["id"])] = (_run(r), dict(env) if isinstance(env, Mapping) else None)
        return out

    def selection_facts(self) -> dict[str, dict[str, object]]:
        """What each fingerprint's records are, as an annotation's selection names them (the keys of
        :data:`SELECTION_KEYS`, from its latest record): to tell which histories a selection matches."""
        newest = sa.select(sa.func.max(RECORDS.c.id)).group_by(RECORDS.c.fingerprint)
        query = sa.select(RECORDS.c.fingerprint, *(RECORDS.c[k] for k in SELECTION_KEYS)).where(
            RECORDS.c.id.in_(newest)
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return {r["fingerprint"]: {k: r[k] for k in SELECTION_KEYS} for r in rows}

    def has_commit(self, commit: str) -> bool:
        """Whether the store has a run of ``commit`` (the whole hash, or a prefix of 7 or more characters)."""
        with self._read() as conn:
            return conn.execute(sa.select(RUNS.c.id).where(_commit_is(commit)).limit(1)).first() is not None

    def record_counts(self) -> dict[str, int]:
        """The number of records of each fingerprint (read from the index alone)."""
        query = sa.select(RECORDS.c.fingerprint, sa.func.count()).group_by(RECORDS.c.fingerprint)
        with self._read() as conn:
            return {fp: int(n) for fp, n in conn.execute(query).all()}

    def takes_effect(self, notes: Sequence[Annotation]) -> dict[int, datetime]:
        """When each annotation takes effect, by its id, as :meth:`last_complete` reads it: its time ``at``; for
        a commit, the start of that commit's first run in the store (while there is none: when it was made)."""
        out: dict[int, datetime] = {}
        with self._read() as conn:
            for note in notes:
                when = self._accepted_since(conn, [note])
                out[note.id] = when if when is not None else note.created_at
        return out

    # -- annotations ------------------------------------------------------------------------------------------
    def annotate(
        self,
        reason: str,
        *,
        kind: str = "accept",
        fingerprint: str | None = None,
        selection: Mapping[str, object] | None = None,
        commit: str | None = None,
        at: datetime | None = None,
        author: str | None = None,
    ) -> int:
        """Say something about a history, from a commit or a time on; returns the annotation's id.

        - what: one ``fingerprint``, or a ``selection`` of records (keys of :data:`SELECTION_KEYS`; a value is
          one value, a list of values, or for text a glob: ``{"model": "resnet*", "batch_size": [1, 8]}``);
        - ``kind``: ``accept`` (the level changed on purpose: :meth:`last_complete` starts after it), ``ignore``
          (the records of ``commit`` are no baseline), ``note``;
        - where: a ``commit`` (an accepted change starts at the first run of that commit; a prefix of 7 or more
          characters will do), or a time ``at``; neither: now;
        - ``author``: who (:func:`~.runmeta.author` reads it from the environment).
        """
        if kind not in ANNOTATION_KINDS:
            raise ValueError(f"an annotation's kind is one of {', '.join(ANNOTATION_KINDS)}, not {kind!r}")
        if (fingerprint is None) == (selection is None):
            raise ValueError("an annotation is about one fingerprint or one selection: give one of them")
        if selection is not None:
            unknown = sorted(set(selection) - set(SELECTION_KEYS))
            if unknown or not selection:
                raise ValueError(f"a selection's keys are among {', '.join(SELECTION_KEYS)}, not {unknown}")
        if commit is not None and at is not None:
            raise ValueError("an annotation takes effect at a commit or at a time, not both")
        if kind == "ignore" and commit is None:
            raise ValueError("an 'ignore' annotation names the commit whose records are ignored")
        if not reason or not reason.strip():
            raise ValueError("an annotation needs a reason")
        now = _now()
        values = {
            "created_at": now,
            "kind": kind,
            "fingerprint": fingerprint,
            "selection": dict(selection) if selection is not None else None,
            "git_commit": commit,
            "at": _utc(at) if at is not None else (None if commit is not None else now),
            "reason": reason.strip(),
            "author": _text(author),
        }
        with self._write() as conn:
            return _new_id(conn.execute(sa.insert(NOTES).values(**values)))

    def annotations(self, fingerprint: str | None = None) -> list[Annotation]:
        """The annotations (of one fingerprint: those naming it and those whose selection matches it), oldest
        first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(NOTES).order_by(NOTES.c.created_at, NOTES.c.id)).mappings().all()
            facts = self._facts(conn, fingerprint) if fingerprint is not None else None
        out = [
            Annotation(
                id=r["id"],
                created_at=_aware(r["created_at"]),
                kind=r["kind"],
                fingerprint=r["fingerprint"],
                selection=r["selection"],
                git_commit=r["git_commit"],
                at=_aware(r["at"]) if r["at"] is not None else None,
                reason=r["reason"],
                author=r["author"],
            )
            for r in rows
        ]
        if fingerprint is None:
            return out
        return [a for a in out if a.fingerprint == fingerprint or _matches(a.selection, facts)]

    def _facts(self, conn: Connection, fingerprint: str) -> Mapping[str, object] | None:
        """What the records of ``fingerprint`` are (the selection keys), from its latest record."""
        keys = [RECORDS.c[k] for k in SELECTION_KEYS]
        query = sa.select(*keys).where(RECORDS.c.fingerprint == fingerprint).order_by(RECORDS.c.id.desc()).limit(1)
        row = conn.execute(query).mappings().first()
        return dict(row) if row is not None else None

    def _accepted_since(self, conn: Connection, accepted: Sequence[Annotation]) -> datetime | None:
        """The time the newest accepted change takes effect (None: none)."""
        cut: datetime | None = None
        for note in accepted:
            when = note.at
            if note.git_commit is not None:
                first = conn.execute(
                    sa.select(sa.func.min(RUNS.c.started_at)).where(_commit_is(note.git_commit))
                ).scalar()
                when = _aware(first) if first is not None else note.created_at
            if when is not None and (cut is None or when > cut):
                cut = when
        return cut

    def last_complete(self, fingerprint: str, branch: str | None, k: int) -> list[Point]:
        """The baseline a history gives: one record (the last kept) from each of the last ``k`` complete runs on
        ``branch`` (None: any branch) that have a usable one, oldest first.

        Left out: incomplete and interrupted runs, records measured on a busy machine or with fewer samples
        than the minimum (``insufficient``), records without a latency, the commits an ``ignore`` annotation
        names, and everything before the newest accepted change (``accept``) of this fingerprint."""
        if k < 1:
            return []
        notes = self.annotations(fingerprint)
        with self._read() as conn:
            cut = self._accepted_since(conn, [a for a in notes if a.kind == "accept"])
        ignored = [a.git_commit for a in notes if a.kind == "ignore" and a.git_commit]
        usable = (
            sa.select(sa.func.max(RECORDS.c.id).label("id"))
            .join_from(RECORDS, RUNS, RECORDS.c.run_id == RUNS.c.id)
            .where(
                RECORDS.c.fingerprint == fingerprint,
                RUNS.c.status == "complete",
                RECORDS.c.busy.is_not(True),
                RECORDS.c.insufficient.is_not(True),
                RECORDS.c.latency_median_ms.is_not(None),
            )
            .group_by(RECORDS.c.run_id)
        )
        if branch is not None:
            usable = usable.where(RUNS.c.git_branch == branch)
        if cut is not None:
            usable = usable.where(RUNS.c.started_at >= cut)
        for commit in ignored:
            usable = usable.where(sa.or_(RUNS.c.git_commit.is_(None), sa.not_(_commit_is(commit))))
        ids = usable.subquery()
        query = (
            self._point_query()
            .where(RECORDS.c.id.in_(sa.select(ids.c.id)))
            .order_by(RUNS.c.started_at.desc(), RECORDS.c.id.desc())
            .limit(k)
        )
        return list(reversed(self._points(query)))


#: Ids per ``IN (...)`` query (below SQLite's smallest limit on bound parameters, 999).
_CHUNK = 900


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    items = sorted(set(ids))
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _record_count() -> sa.Label[int]:
    """A run's number of records, as a column ``n`` of a query of ``runs``."""
    return (
        sa.select(sa.func.count(RECORDS.c.id)).where(RECORDS.c.run_id == RUNS.c.id).correlate(RUNS).scalar_subquery()
    ).label("n")


def _run(r: sa.RowMapping) -> Run:
    return Run(
        id=r["id"],
        started_at=_aware(r["started_at"]),
        finished_at=_aware(r["finished_at"]) if r["finished_at"] is not None else None,
        status=r["status"],
        git_commit=r["git_commit"],
        git_branch=r["git_branch"],
        git_dirty=r["git_dirty"],
        ci_provider=r["ci_provider"],
        ci_job=r["ci_job"],
        ci_url=r["ci_url"],
        ci_run_id=r["ci_run_id"],
        host=r["host"],
        platform_key=r["platform_key"],
        plugin_version=r["plugin_version"],
        torch_version=r["torch_version"],
        shard_index=r["shard_index"],
        shard_count=r["shard_count"],
        run_group=r["run_group"],
        records=int(r["n"]),
    )


def _commit_is(commit: str) -> sa.ColumnElement[bool]:
    """Runs of ``commit``: the whole hash, or a prefix of at least 7 characters."""
    commit = commit.strip().lower()
    if len(commit) >= 40 or len(commit) < 7:
        return RUNS.c.git_commit == commit
    escaped = commit.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return RUNS.c.git_commit.like(escaped + "%", escape="\\")


def _matches(selection: Mapping[str, object] | None, facts: Mapping[str, object] | None) -> bool:
    """Whether a record with ``facts`` is in ``selection`` (every key matches: one value, a list, a glob)."""
    if not selection or facts is None:
        return False
    for key, wanted in selection.items():
        have = facts.get(key)
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(
            (isinstance(o, str) and isinstance(have, str) and fnmatch.fnmatchcase(have, o)) or o == have
            for o in options
        ):
            return False
    return True
