"""The registry's database: one engine per URL and process (`storage.engine_for`, shared with the sinks), and
the schema brought to the newest revision once per process and database.

The api-server answers every request of the models page with a fresh `ModelRegistry.from_settings()` (so a
changed configuration is seen at once); the engine and the migration check are what make that cheap.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from airflow_amml.storage import engine_for

from .errors import RegistryError

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0002"
URL_HINT = "use e.g. postgresql+psycopg://user:password@host/db or sqlite:////absolute/path/registry.db"

_migrated: set[str] = set()  # URLs whose schema this process has seen at HEAD_REVISION
_migrated_lock = threading.Lock()


def registry_engine(db_url: str) -> sa.Engine:
    """The engine for the registry database, or a RegistryError that says how to write the URL."""
    try:
        url = sa.engine.make_url(db_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            if not url.database.startswith(("/", "file:")):
                raise RegistryError(
                    f"registry database {safe_url(db_url)} is a relative path: it would depend on the folder "
                    "each process happens to start in",
                    hint=f"use an absolute path, e.g. sqlite:///{Path(url.database).absolute()}",
                )
        return engine_for(db_url)
    except (sa.exc.ArgumentError, ImportError, ValueError, TypeError) as exc:  # bad URL, missing driver
        raise RegistryError(f"cannot use the registry database URL {safe_url(db_url)}: {exc}", hint=URL_HINT) from exc


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to HEAD_REVISION: checked once per process and database, upgraded under a lock that
    serialises processes (safe in parallel). Raises SQLAlchemyError or OSError (the SQLite lock file)."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _migrated:
        return
    with _migrated_lock:
        if key in _migrated:
            return
        with engine.connect() as conn:
            current = current_revision(conn)
        if current != HEAD_REVISION:
            with _migration_lock(engine), engine.begin() as conn:
                if current_revision(conn) != HEAD_REVISION:
                    _upgrade(conn)
        _migrated.add(key)


def _upgrade(conn: sa.Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    with _quiet_alembic():
        command.upgrade(config, "head")


def current_revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("amml_alembic_version"):
        return None
    return conn.execute(sa.text("select version_num from amml_alembic_version")).scalar()


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[None]:
    """Serialise schema upgrades between processes: an advisory lock on PostgreSQL, a file lock on SQLite."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("select pg_advisory_lock(727274)"))
            try:
                yield
            finally:
                conn.execute(sa.text("select pg_advisory_unlock(727274)"))
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
def _quiet_alembic() -> Iterator[None]:
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


def reason(exc: sa.exc.SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: never echo it, it may hold a password
        return f"{str(url).partition(':')[0][:20]}:…"
