"""Where AMML keeps its tables (alerts, snapshots, sink tables and, later, the model registry) and the files
that pipelines read and write, as the run's :class:`~airflow_amml.run_config.RunConfig` says.

The database is chosen by configuration only, first match wins:
  1. a `db=NAME` parameter on the component: a database the deployment declared by name
     (``config.databases``, from ``$AMML_DATABASES``, a JSON object ``{"NAME": "SQLAlchemy URL"}``);
     a pipeline never gives a URL itself (a URL could open any file as SQLite, or any host),
  2. ``config.db_url`` (``$AMML_DB_URL``, or the Airflow operator's ``db_conn_id``),
  3. the embedded default: a SQLite file ``amml.db`` in ``config.home`` (``$AMML_HOME``, default
     ``~/.local/share/amml``).

Files are confined to roots set by the deployment, because a path in a pipeline (or a trigger param) is
untrusted: sinks write under the output root (``config.output_root``: ``$AMML_OUTPUT_ROOT``, else
``$AMML_HOME/output``), `logsource` reads under the input root (``$AMML_INPUT_ROOT``, else
``$AMML_HOME/input``). Relative paths are taken from the root; a path that leaves it (``..``, an absolute
path elsewhere, a symbolic link pointing out), that is not a regular file (a device, FIFO, socket or
folder), or that lies in the Airflow dags folder (files there are run by Airflow) is refused.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from compiler.value_checks import FileSuffix

# ---- databases ------------------------------------------------------------------------------------------


def database_url(config: RunConfig) -> str:
    """The URL of AMML's own database (alerts, snapshots, sinks without `db=`)."""
    if config.db_url:
        return config.db_url
    config.home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{embedded_database(config)}"


def embedded_database(config: RunConfig) -> Path:
    """The embedded SQLite file used when no database is configured (it may not exist yet)."""
    return config.home / "amml.db"


def named_database_url(component: str, name: str | None, config: RunConfig) -> str:
    """The URL behind a component's `db=NAME` (None: the default database)."""
    if name is None:
        return database_url(config)
    from compiler.errors import did_you_mean, one_of

    declared = config.databases
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


def declared_webhooks(config: RunConfig) -> dict[str, str]:
    """The webhooks a pipeline may name with `alert webhook=NAME` (``config.webhooks``, from ``$AMML_WEBHOOKS``)."""
    return dict(config.webhooks)


def named_webhook_url(component: str, name: str, config: RunConfig) -> str:
    """The URL behind a component's `webhook=NAME`; a pipeline never gives a URL itself (SSRF)."""
    from compiler.errors import did_you_mean, one_of

    declared = declared_webhooks(config)
    if name in declared:
        return declared[name]
    what = "a URL" if "://" in str(name) else f"unknown webhook `{name}`"
    closest = did_you_mean(str(name), declared)
    raise PipelineError(
        f"`{component} webhook=...`: {what}; a pipeline names one of the webhooks the deployment declares "
        f"({one_of(declared)})" + (f"; {closest}" if closest else ""),
        hint='declare the webhook by name in AMML_WEBHOOKS (e.g. {"ops": "https://..."}), then webhook="ops"',
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


def engine(config: RunConfig) -> sa.Engine:
    """The engine of AMML's own database (:func:`database_url`)."""
    return engine_for(database_url(config))


# ---- files ----------------------------------------------------------------------------------------------


def output_root(config: RunConfig) -> Path:
    return config.output_root or config.home / "output"


def input_root(config: RunConfig) -> Path:
    return config.input_root or config.home / "input"


def output_file(component: str, raw: Any, suffix: str, config: RunConfig) -> Path:
    """Where a sink may write ``path=raw``: a new or regular ``suffix`` file under the output root, outside
    the dags folder. Symbolic links are resolved first, so the returned path is the file really written."""
    path = _inside(component, raw, output_root(config), "AMML_OUTPUT_ROOT", create_root=True)
    dags = _resolved(config.dags_folder)
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


def input_file(component: str, raw: Any, config: RunConfig) -> Path:
    """The regular file a source may read for ``path=raw``: under the input root, symbolic links resolved."""
    path = _inside(component, raw, input_root(config), "AMML_INPUT_ROOT", create_root=False)
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
