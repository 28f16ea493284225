"""The first schema: runs, records, samples, annotations.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, autoincrement=True),
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
        sa.CheckConstraint("status IN ('incomplete', 'complete', 'interrupted')", name=op.f("ck_runs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_git_branch_status_started_at", "runs", ["git_branch", "status", "started_at"])
    op.create_index("ix_runs_git_commit", "runs", ["git_commit"])
    op.create_index("ix_runs_run_group", "runs", ["run_group"])

    double: sa.types.TypeEngine[Any] = sa.Double()
    big: sa.types.TypeEngine[Any] = sa.BigInteger()
    figures: list[tuple[str, sa.types.TypeEngine[Any]]] = [
        ("latency_median_ms", double),
        ("latency_mean_ms", double),
        ("latency_stdev_ms", double),
        ("latency_min_ms", double),
        ("latency_max_ms", double),
        ("latency_p90_ms", double),
        ("latency_p99_ms", double),
        ("latency_ci_low_ms", double),
        ("latency_ci_high_ms", double),
        ("latency_samples", sa.Integer()),
        ("per_image_ms", double),
        ("fps", double),
        ("memory_total_bytes", big),
        ("memory_delta_bytes", big),
        ("memory_process_total_bytes", big),
        ("memory_allocator_peak_bytes", big),
        ("memory_reserved_peak_bytes", big),
        ("memory_context_bytes", big),
        ("memory_runtime_floor_bytes", big),
        ("memory_model_bytes", big),
        ("macs_per_image", big),
        ("flops_per_image", big),
        ("params", big),
        ("param_file_bytes", big),
        ("top1_pct", double),
        ("top5_pct", double),
        ("energy_j_per_image", double),
        ("energy_watts", double),
    ]
    op.create_table(
        "records",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
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
        sa.Column("busy", sa.Boolean),
        sa.Column("insufficient", sa.Boolean),
        sa.Column("capped", sa.Boolean),
        sa.Column("accuracy_status", sa.String(16)),
        *(sa.Column(name, kind) for name, kind in figures),
        sa.Column("record_json", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE", name=op.f("fk_records_run_id_runs")),
    )
    op.create_index("ix_records_fingerprint_run_id", "records", ["fingerprint", "run_id"])
    op.create_index("ix_records_run_id", "records", ["run_id"])
    op.create_index("ix_records_model_batch_size", "records", ["model", "batch_size"])

    op.create_table(
        "samples",
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("warmup", sa.Boolean, nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("record_id", "warmup", "idx", name=op.f("pk_samples")),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], ondelete="CASCADE", name=op.f("fk_samples_record_id_records")
        ),
    )

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer, autoincrement=True),
        _when("created_at", nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("selection", sa.JSON),
        sa.Column("git_commit", sa.String(64)),
        _when("at"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("author", sa.String(255)),
        sa.CheckConstraint("kind IN ('accept', 'ignore', 'note')", name=op.f("ck_annotations_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index("ix_annotations_fingerprint", "annotations", ["fingerprint"])


def downgrade() -> None:
    op.drop_table("annotations")
    op.drop_table("samples")
    op.drop_index("ix_records_model_batch_size", "records")
    op.drop_index("ix_records_run_id", "records")
    op.drop_index("ix_records_fingerprint_run_id", "records")
    op.drop_table("records")
    op.drop_index("ix_runs_run_group", "runs")
    op.drop_index("ix_runs_git_commit", "runs")
    op.drop_index("ix_runs_git_branch_status_started_at", "runs")
    op.drop_table("runs")
