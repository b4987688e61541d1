"""The registry's database: one engine per URL and process (`storage.engine_for`, shared with the sinks), and
the schema brought to the newest revision once per process and database.

The api-server answers every request of the models page with a fresh `ModelRegistry.from_config()` (so a
changed configuration is seen at once); the engine and the migration check are what make that cheap.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from airflow_amml.schema_history import SchemaHistory
from airflow_amml.storage import engine_for

from .errors import RegistryError

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0005"
URL_HINT = "use e.g. postgresql+psycopg://user:password@host/db or sqlite:////absolute/path/registry.db"


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


# The registry's own version table: it may share a database with Airflow's tables, or the runtime's
HISTORY = SchemaHistory(MIGRATIONS, "amml_alembic_version", HEAD_REVISION)


def migrate(engine: sa.Engine) -> None:
    """Bring the registry's schema to HEAD_REVISION (once per process and database; safe in parallel)."""
    HISTORY.migrate(engine)


def reason(exc: sa.exc.SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: never echo it, it may hold a password
        return f"{str(url).partition(':')[0][:20]}:…"
