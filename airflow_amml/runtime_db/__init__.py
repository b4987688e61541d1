"""The runtime database's schema (alerts and the default snapshot table): an Alembic history of its own.

The runtime's database (``RunConfig.db_url``, embedded SQLite by default) and the model registry's
(``RunConfig.registry_url``) are configured apart and are often different databases, so each has its own
history, in its own version table: ``amml_runtime_alembic_version`` here, ``amml_alembic_version`` for the
registry. When both live in one database, the two tables keep the histories apart, and neither puts its
tables into the other's databases.

:func:`migrate` brings a database to :data:`HEAD_REVISION` once per process and database, the way the
registry's migrations run (`airflow_amml/schema_history.py`: an advisory lock on PostgreSQL, a file lock
beside a SQLite file), so two processes that start at once upgrade it once. A database that versions
before migrations created with `create_all` is adopted in place: revision 0001 leaves its tables (and rows)
as they are.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from airflow_amml.schema_history import SchemaHistory, schema_lock

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "amml_runtime_alembic_version"
HEAD_REVISION = "0003"
HISTORY = SchemaHistory(MIGRATIONS, VERSION_TABLE, HEAD_REVISION)

__all__ = ["HEAD_REVISION", "HISTORY", "VERSION_TABLE", "current_revision", "migrate", "schema_lock"]


def migrate(engine: sa.Engine) -> None:
    """Bring the runtime tables to HEAD_REVISION (checked once per process and database; safe in parallel).
    Raises SQLAlchemyError, or OSError for the SQLite lock file."""
    HISTORY.migrate(engine)


def current_revision(conn: sa.Connection) -> str | None:
    return HISTORY.current_revision(conn)
