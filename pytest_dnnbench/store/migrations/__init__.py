"""The store's Alembic migrations, shipped in the package and run by :func:`~pytest_dnnbench.store.db.open_store`
(no ``alembic.ini``: :func:`~pytest_dnnbench.store.db.alembic_config` points Alembic here).

A new migration: a file in ``versions/`` whose ``down_revision`` is the newest one, written by hand (the
tables of :mod:`..schema` change with it; docs/history.md says how).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SCRIPT_LOCATION"]

#: Alembic's ``script_location``: this folder.
SCRIPT_LOCATION = Path(__file__).resolve().parent
