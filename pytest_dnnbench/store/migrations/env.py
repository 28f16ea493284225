"""Alembic's environment: run the migrations on the connection :func:`~pytest_dnnbench.store.db.open_store`
hands over (``config.attributes["connection"]``), inside the transaction it holds (and commits)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pytest_dnnbench.store.schema import VERSION_TABLE, metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("the store's migrations run through pytest_dnnbench.store.db.open_store only")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite changes a table by copying it
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("the store's migrations run on a connection, not as SQL scripts")
run_migrations_online()
