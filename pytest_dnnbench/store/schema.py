"""The store's tables, as SQLAlchemy Core (no ORM): one code for SQLite and PostgreSQL.

``runs``
    one row per pytest run (or shard): when, status, git, CI, host, platform, versions, shard, run group.
``records``
    one row per finished record, committed when its test ends: the comparability fields, the fingerprint, every
    figure in a column named with its unit, the trust flags, and the whole record (``record_json``, its
    latency samples left out: they are the rows of ``samples``).
``samples``
    every latency sample of a record, in order (``warmup`` apart), in milliseconds.
``annotations``
    what people said about a history: an accepted change, a commit to ignore, a note.

The migrations (:mod:`.migrations`) build exactly these tables; ``tests/unit/test_store.py`` holds the two
together. A change here is a new migration (docs/history.md).
"""

# No ``from __future__ import annotations`` here: it would be shadowed by the table ``annotations``.
from datetime import datetime
from typing import Any

import sqlalchemy as sa

__all__ = [
    "ANNOTATION_KINDS",
    "FIGURES",
    "RUN_STATUSES",
    "VERSION_TABLE",
    "annotations",
    "metadata",
    "records",
    "runs",
    "samples",
]

#: Alembic's version table: named for this plugin, so that a database shared with another application that
#: also uses Alembic keeps both.
VERSION_TABLE = "dnnbench_alembic_version"

#: A run is ``incomplete`` from its start until it ends (a killed run stays so), ``complete`` when pytest
#: finished it, ``interrupted`` when it was stopped (Ctrl-C, SIGTERM) and ended cleanly.
RUN_STATUSES = ("incomplete", "complete", "interrupted")
#: ``accept``: the level changed on purpose, the history before is no baseline; ``ignore``: the records of a
#: commit are no baseline (a bad runner, a broken build); ``note``: words only.
ANNOTATION_KINDS = ("accept", "ignore", "note")

#: Names of constraints and indexes, the same on every database (Alembic needs names to change them later).
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


def _when(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _when("started_at", nullable=False),
    _when("finished_at"),
    sa.Column("status", sa.String(16), nullable=False, server_default="incomplete"),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("git_branch", sa.String(255)),
    sa.Column("git_dirty", sa.Boolean),
    sa.Column("ci_provider", sa.String(32)),
    sa.Column("ci_job", sa.String(255)),
    sa.Column("ci_url", sa.Text),
    sa.Column("ci_run_id", sa.String(255)),
    sa.Column("host", sa.String(255)),
    sa.Column("platform_key", sa.String(255)),
    sa.Column("environment", sa.JSON),
    sa.Column("plugin_version", sa.String(64)),
    sa.Column("torch_version", sa.String(64)),
    sa.Column("shard_index", sa.Integer),
    sa.Column("shard_count", sa.Integer),
    sa.Column("run_group", sa.String(255)),
    sa.CheckConstraint("status IN ('incomplete', 'complete', 'interrupted')", name="status"),
    sa.Index(None, "git_branch", "status", "started_at"),
    sa.Index(None, "git_commit"),
    sa.Index(None, "run_group"),
)

#: The figures of a record, each in its own column (name -> SQL type); the unit is in the name.
FIGURES: dict[str, sa.types.TypeEngine[Any]] = {
    "latency_median_ms": sa.Double(),
    "latency_mean_ms": sa.Double(),
    "latency_stdev_ms": sa.Double(),
    "latency_min_ms": sa.Double(),
    "latency_max_ms": sa.Double(),
    "latency_p90_ms": sa.Double(),
    "latency_p99_ms": sa.Double(),
    "latency_ci_low_ms": sa.Double(),
    "latency_ci_high_ms": sa.Double(),
    "latency_samples": sa.Integer(),
    "per_image_ms": sa.Double(),
    "fps": sa.Double(),
    "memory_total_bytes": sa.BigInteger(),
    "memory_delta_bytes": sa.BigInteger(),
    "memory_process_total_bytes": sa.BigInteger(),
    "memory_allocator_peak_bytes": sa.BigInteger(),
    "memory_reserved_peak_bytes": sa.BigInteger(),
    "memory_context_bytes": sa.BigInteger(),
    "memory_runtime_floor_bytes": sa.BigInteger(),
    "memory_model_bytes": sa.BigInteger(),
    "macs_per_image": sa.BigInteger(),
    "flops_per_image": sa.BigInteger(),
    "params": sa.BigInteger(),
    "param_file_bytes": sa.BigInteger(),
    "top1_pct": sa.Double(),
    "top5_pct": sa.Double(),
    "energy_j_per_image": sa.Double(),
    "energy_watts": sa.Double(),
}

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    _when("created_at", nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("test", sa.Text),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("source", sa.String(64)),
    sa.Column("batch_size", sa.Integer, nullable=False),
    sa.Column("input_size", sa.String(64)),
    sa.Column("mode", sa.String(64), nullable=False),
    sa.Column("precision", sa.String(16), nullable=False),
    sa.Column("device", sa.String(64), nullable=False),
    sa.Column("device_name", sa.String(255)),
    sa.Column("threads", sa.Integer),
    sa.Column("channels_last", sa.Boolean),
    sa.Column("platform_key", sa.String(255), nullable=False),
    sa.Column("outcome", sa.String(16)),
    #: Measured on a busy machine (``load.busy``), fewer samples than the minimum, sampling cut by the budget.
    sa.Column("busy", sa.Boolean),
    sa.Column("insufficient", sa.Boolean),
    sa.Column("capped", sa.Boolean),
    #: ``measured``, ``reference`` or ``unavailable`` (``top1_pct``/``top5_pct`` hold measured figures only).
    sa.Column("accuracy_status", sa.String(16)),
    *(sa.Column(name, kind) for name, kind in FIGURES.items()),
    sa.Column("record_json", sa.JSON, nullable=False),
    sa.Index(None, "fingerprint", "run_id"),
    sa.Index(None, "run_id"),
    sa.Index(None, "model", "batch_size"),
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
    sa.Column("warmup", sa.Boolean, nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Double, nullable=False),
    sa.PrimaryKeyConstraint("record_id", "warmup", "idx"),
)

annotations = sa.Table(
    "annotations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _when("created_at", nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    #: What it is about: one fingerprint, or a selection (``{"model": "resnet*", "platform_key": ...}``).
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("selection", sa.JSON),
    #: Where it takes effect: a commit, or a time.
    sa.Column("git_commit", sa.String(64)),
    _when("at"),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("author", sa.String(255)),
    sa.CheckConstraint("kind IN ('accept', 'ignore', 'note')", name="kind"),
    sa.Index(None, "fingerprint"),
)
