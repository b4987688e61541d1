"""Where AMML keeps its tables (alerts, snapshots, sink tables and, later, the model registry).

The database is chosen by configuration only, first match wins:
  1. a `db=...` parameter on the component (a SQLAlchemy URL),
  2. the run's settings (`db_url`, set by the Airflow operator from a connection),
  3. the environment variable ``AMML_DB_URL``,
  4. the embedded default: a SQLite file ``$AMML_HOME/amml.db`` (``AMML_HOME`` defaults to ``~/.local/share/amml``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def amml_home() -> Path:
    return Path(os.environ.get("AMML_HOME", Path.home() / ".local" / "share" / "amml"))


def database_url(explicit: str | None = None, settings: Mapping[str, Any] | None = None) -> str:
    if explicit:
        return explicit
    if settings and settings.get("db_url"):
        return str(settings["db_url"])
    if os.environ.get("AMML_DB_URL"):
        return os.environ["AMML_DB_URL"]
    home = amml_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'amml.db'}"


@functools.cache
def engine_for(url: str) -> sa.Engine:
    """One engine per URL and process (engines are not shared across forked processes)."""
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        # several component processes may write the same file: wait for the lock instead of failing
        kwargs["connect_args"] = {"timeout": 30}
    return sa.create_engine(url, **kwargs)


def engine(explicit: str | None = None, settings: Mapping[str, Any] | None = None) -> sa.Engine:
    return engine_for(database_url(explicit, settings))
