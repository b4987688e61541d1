"""Where AMML keeps its tables (alerts, snapshots, sink tables and, later, the model registry) and the files
that pipelines read and write.

The database is chosen by configuration only, first match wins:
  1. a `db=NAME` parameter on the component: a database the deployment declared by name, in the run's
     settings (`databases`) or in ``$AMML_DATABASES`` (a JSON object ``{"NAME": "SQLAlchemy URL"}``);
     a pipeline never gives a URL itself (a URL could open any file as SQLite, or any host),
  2. the run's settings (`db_url`, set by the Airflow operator from a connection),
  3. the environment variable ``AMML_DB_URL``,
  4. the embedded default: a SQLite file ``$AMML_HOME/amml.db`` (``AMML_HOME`` defaults to ``~/.local/share/amml``).

Files are confined to roots set by the deployment, because a path in a pipeline (or a trigger param) is
untrusted: sinks write under the output root (the run's `output_root` setting, else ``$AMML_OUTPUT_ROOT``,
else ``$AMML_HOME/output``), `logsource` reads under the input root (`input_root`, ``$AMML_INPUT_ROOT``,
``$AMML_HOME/input``). Relative paths are taken from the root; a path that leaves it (``..``, an absolute
path elsewhere, a symbolic link pointing out), that is not a regular file (a device, FIFO, socket or
folder), or that lies in the Airflow dags folder (files there are run by Airflow) is refused.
"""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from airflow_amml.runtime.errors import PipelineError
from compiler.value_checks import FileSuffix


def amml_home() -> Path:
    return Path(os.environ.get("AMML_HOME", Path.home() / ".local" / "share" / "amml"))


# ---- databases ------------------------------------------------------------------------------------------


def database_url(explicit: str | None = None, settings: Mapping[str, Any] | None = None) -> str:
    """The URL of the database: ``explicit`` is trusted (deployment configuration), never a pipeline's."""
    if explicit:
        return explicit
    if settings and settings.get("db_url"):
        return str(settings["db_url"])
    if os.environ.get("AMML_DB_URL"):
        return os.environ["AMML_DB_URL"]
    home = amml_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'amml.db'}"


def declared_databases(settings: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The databases a pipeline may name with `db=NAME`: the run's `databases`, else ``$AMML_DATABASES``."""
    if settings and settings.get("databases"):
        return {str(k): str(v) for k, v in dict(settings["databases"]).items()}
    raw = os.environ.get("AMML_DATABASES")
    if not raw:
        return {}
    try:
        declared = json.loads(raw)
    except ValueError as exc:
        raise PipelineError(
            f"AMML_DATABASES is not JSON: {exc}", hint='set it to an object such as {"warehouse": "postgresql://..."}'
        ) from exc
    if not isinstance(declared, dict):
        raise PipelineError("AMML_DATABASES must be a JSON object mapping names to SQLAlchemy URLs")
    return {str(k): str(v) for k, v in declared.items()}


def named_database_url(component: str, name: str | None, settings: Mapping[str, Any] | None = None) -> str:
    """The URL behind a component's `db=NAME` (None: the default database)."""
    if name is None:
        return database_url(None, settings)
    from compiler.errors import did_you_mean, one_of

    declared = declared_databases(settings)
    if name in declared:
        return declared[name]
    what = "a database URL" if "://" in str(name) or str(name).startswith("sqlite") else f"unknown database `{name}`"
    closest = did_you_mean(str(name), declared)
    raise PipelineError(
        f"`{component} db=...`: {what}; a pipeline names one of the databases the deployment declares "
        f"({one_of(declared)})" + (f"; {closest}" if closest else ""),
        hint="leave `db` out to write to the default database, or declare the database by name in "
        'AMML_DATABASES (e.g. {"warehouse": "postgresql://..."})',
    )


@functools.cache
def engine_for(url: str) -> sa.Engine:
    """One engine per URL and process, for the sinks and the model registry alike (a long-lived process, such
    as the api-server, connects and pools once instead of on every request)."""
    # hide_parameters: a failed statement's error (shown to users, logged) must not carry the records' values
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if url.startswith("sqlite"):
        # several component processes may write the same file: wait for the lock instead of failing
        kwargs["connect_args"] = {"timeout": 30}
    engine = sa.create_engine(url, **kwargs)
    _engines.append(engine)
    return engine


_engines: list[sa.Engine] = []


def _fresh_pools_after_fork() -> None:
    """A forked child keeps the cached engines but never its parent's pooled connections: using one from two
    processes mixes their conversations. `close=False` leaves them open, as the parent still uses them (this
    is SQLAlchemy's recipe for engines and os.fork)."""
    for engine in _engines:
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_fresh_pools_after_fork)


def engine(explicit: str | None = None, settings: Mapping[str, Any] | None = None) -> sa.Engine:
    return engine_for(database_url(explicit, settings))


# ---- files ----------------------------------------------------------------------------------------------


def output_root(settings: Mapping[str, Any] | None = None) -> Path:
    configured = (settings or {}).get("output_root") or os.environ.get("AMML_OUTPUT_ROOT")
    return Path(configured) if configured else amml_home() / "output"


def input_root(settings: Mapping[str, Any] | None = None) -> Path:
    configured = (settings or {}).get("input_root") or os.environ.get("AMML_INPUT_ROOT")
    return Path(configured) if configured else amml_home() / "input"


def dags_folder(settings: Mapping[str, Any] | None = None) -> Path:
    """Airflow's dags folder (its default when nothing says otherwise): every file there may be run."""
    configured = (settings or {}).get("dags_folder") or os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if configured:
        return Path(configured)
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "dags"


def output_file(component: str, raw: Any, suffix: str, settings: Mapping[str, Any] | None = None) -> Path:
    """Where a sink may write ``path=raw``: a new or regular ``suffix`` file under the output root, outside
    the dags folder. Symbolic links are resolved first, so the returned path is the file really written."""
    root = output_root(settings)
    env = "output_root setting" if (settings or {}).get("output_root") else "AMML_OUTPUT_ROOT"
    path = _inside(component, raw, root, env, create_root=True)
    dags = _resolved(dags_folder(settings))
    if dags is not None and path.is_relative_to(dags):
        raise PipelineError(
            f"`{component} path={raw!r}`: {path} is in the Airflow dags folder {dags}, whose files Airflow runs",
            hint="write somewhere else: set AMML_OUTPUT_ROOT to a folder outside the dags folder",
        )
    problem = FileSuffix(suffix)(str(path))  # of the file really written: a link may name another
    if problem is not None:
        raise PipelineError(f"`{component} path={raw!r}`: {problem[0]}", hint=problem[1])
    _regular_or_new(component, raw, path, must_exist=False, example=f"out{suffix}")
    return path


def input_file(component: str, raw: Any, settings: Mapping[str, Any] | None = None) -> Path:
    """The regular file a source may read for ``path=raw``: under the input root, symbolic links resolved."""
    root = input_root(settings)
    env = "input_root setting" if (settings or {}).get("input_root") else "AMML_INPUT_ROOT"
    path = _inside(component, raw, root, env, create_root=False)
    _regular_or_new(component, raw, path, must_exist=True, example="app.log")
    return path


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of links: nothing can be inside it
        return None


def _inside(component: str, raw: Any, root: Path, env: str, *, create_root: bool) -> Path:
    """``raw`` (relative to ``root``) with links resolved, or an error if it is not a path inside ``root``."""
    if not isinstance(raw, str) or not raw.strip() or "\0" in raw:
        raise PipelineError(f"`{component} path={raw!r}`: expected the name of a file", hint="e.g. path='out.csv'")
    if create_root:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PipelineError(
                f"`{component}`: cannot create the folder {root} ({env}): {exc.strerror or exc}",
                hint=f"set {env} to a folder this process may write",
            ) from exc
    real_root = _resolved(root)
    path = _resolved(root / raw)  # an absolute raw replaces the root: then it must still be inside it
    if real_root is None or path is None or not path.is_relative_to(real_root) or path == real_root:
        raise PipelineError(
            f"`{component} path={raw!r}`: the path leaves the folder {root} ({env}) that this component may use",
            hint=f"give a path inside it, relative to it, e.g. path='{Path(raw).name or 'out'}'",
        )
    return path


def _regular_or_new(component: str, raw: str, path: Path, *, must_exist: bool, example: str) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if must_exist:
            raise PipelineError(f"`{component} path={raw!r}`: {path} does not exist", hint="check the path") from None
        return
    except OSError as exc:
        raise PipelineError(f"`{component} path={raw!r}`: cannot use {path}: {exc.strerror or exc}") from exc
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise PipelineError(
            f"`{component} path={raw!r}`: {path} is a folder, not a file",
            hint=f"name a file in it, e.g. path='{raw.rstrip('/')}/{example}'",
        )
    raise PipelineError(
        f"`{component} path={raw!r}`: {path} is a device, FIFO or socket, not a regular file",
        hint="name a regular file",
    )
