"""The store's Alembic migrations, shipped in the package and run by :func:`~pytest_dnnbench.store.db.open_store`
(no ``alembic.ini``: :func:`~pytest_dnnbench.store.db.alembic_config` points Alembic here).

A new migration: a file in ``versions/`` whose ``down_revision`` is the newest one, written by hand (the
tables of :mod:`..schema` change with it; docs/history.md says how).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["HEAD", "REVISIONS", "SCRIPT_LOCATION"]

#: Alembic's ``script_location``: this folder.
SCRIPT_LOCATION = Path(__file__).resolve().parent
#: Every revision of ``versions/``, oldest first: what a store's schema is checked against without importing
#: Alembic (0.2 s of a ``history`` command's start). A new migration adds its revision here;
#: tests/unit/test_store.py holds the list equal to Alembic's own.
REVISIONS: tuple[str, ...] = ("0001",)
#: The newest revision: the schema this plugin writes.
HEAD = REVISIONS[-1]
