"""The results history (``--dnn-store``): every run and every record kept in a database, SQLite or PostgreSQL.

Imported only when a store is used: importing the plugin imports none of this package, and only the modules
that touch the database (:mod:`.schema`, :mod:`.db`, :mod:`.migrations`) import SQLAlchemy and Alembic.

- :mod:`.urls`: which store an option's value names (:func:`~.urls.resolve_url`) and how it is shown
  (:func:`~.urls.mask_url`: never with its password); no SQLAlchemy.
- :mod:`.fingerprint`: what must match for two figures to be comparable, as one hash; pure.
- :mod:`.runmeta`: a run's metadata (git, CI, host, shard, run group) from the environment.
- :mod:`.schema`: the tables (SQLAlchemy Core); :mod:`.migrations`: their Alembic migrations.
- :mod:`.db`: :func:`~.db.open_store` and the :class:`~.db.Store` a run writes to and the history reads from.
- :mod:`.changes`: the change points of a history (ruptures' PELT, Mann–Whitney U); pure, numbers in.
- :mod:`.history`: what ``python -m pytest_dnnbench history`` shows, as data; :mod:`.cli`: its command line
  (``history``, ``history accept``, ``history ignore``; the parser imports neither SQLAlchemy nor ruptures).

No pytest, no torch here (docs/history.md).
"""
