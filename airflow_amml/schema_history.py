"""AMML's Alembic histories — the model registry's and the runtime tables' — run the same safe way.

Each history lives in its own folder with its own version table, so two histories can share one database
without mixing. :meth:`SchemaHistory.migrate` checks a database once per process (the api-server and every
component process would otherwise ask on each use), and upgrades under :func:`schema_lock`, which serialises
processes: two workers that start at once upgrade a database once. No alembic.ini: the migrations run on the
connection handed over here, and alembic's INFO lines stay out of task logs (:func:`quiet_alembic`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

# one key for every AMML schema change on PostgreSQL (pg_advisory_lock takes a bigint)
ADVISORY_LOCK_KEY = 727274


@dataclass
class SchemaHistory:
    """One Alembic history: its script folder, its version table and the revision this code expects."""

    script_location: Path
    version_table: str
    head: str
    _migrated: set[str] = field(default_factory=set, repr=False)  # URLs seen at `head` in this process
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def migrate(self, engine: sa.Engine) -> None:
        """Bring the schema to ``head`` (checked once per process and database; safe in parallel). Raises
        SQLAlchemyError, or OSError for the SQLite lock file."""
        key = engine.url.render_as_string(hide_password=False)
        if key in self._migrated:
            return
        with self._lock:
            if key in self._migrated:
                return
            with engine.connect() as conn:
                current = self.current_revision(conn)
            if current != self.head:
                with schema_lock(engine), engine.begin() as conn:
                    if self.current_revision(conn) != self.head:  # another process may have done it meanwhile
                        self._upgrade(conn)
            self._migrated.add(key)

    def current_revision(self, conn: sa.Connection) -> str | None:
        if not sa.inspect(conn).has_table(self.version_table):
            return None
        return conn.execute(sa.select(sa.column("version_num")).select_from(sa.table(self.version_table))).scalar()

    def _upgrade(self, conn: sa.Connection) -> None:
        with quiet_alembic():  # importing alembic.command logs "setup plugin ..." at INFO (alembic ≥ 1.18)
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(self.script_location))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


@contextlib.contextmanager
def schema_lock(engine: sa.Engine) -> Iterator[None]:
    """Serialise schema changes between processes: an advisory lock on PostgreSQL, a file lock on SQLite."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("select pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(sa.text("select pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        with open(f"{database}.migrate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    yield


@contextlib.contextmanager
def quiet_alembic() -> Iterator[None]:
    """Migrations are routine: keep alembic's INFO lines out of task logs and CLI output, unless the user
    set a level for the `alembic` logger themselves (that choice is kept)."""
    logger = logging.getLogger("alembic")
    if logger.level != logging.NOTSET:
        yield
        return
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(logging.NOTSET)
