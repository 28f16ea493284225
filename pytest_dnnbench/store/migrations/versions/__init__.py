"""The migrations, one file each, oldest first (Alembic reads their ``revision`` and ``down_revision``)."""
