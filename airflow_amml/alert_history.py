"""Reading back what the pipelines recorded: the alerts, and the records saved around each (its snapshot).

The paper saves the data around an anomaly "for later analysis or retraining" (Fig. 7); this is how it is
read: `amml alerts list` (newest first, by DAG or item), `amml alerts show ID` (the alert and its snapshot's
records as a table, `--csv FILE` to keep them, e.g. as a catalog source to train on). It reads the run's
database (`$AMML_DB_URL`, else the embedded SQLite in `$AMML_HOME`) with SQLAlchemy Core and writes nothing:
no table (or no embedded database file) is no alert, and a table of an older revision, which the runtime
upgrades only when it next records an alert, is read as it is (its missing columns are empty).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator
from typing import Any

import sqlalchemy as sa

from airflow_amml import storage, tables
from airflow_amml.run_config import RunConfig
from compiler.errors import AmmlError
from compiler.value_checks import table_name_problem


class AlertHistoryError(AmmlError):
    """An alert asked for that is not there, a table that is not a snapshot table, a database not readable."""

    label = "alerts"


class AlertNotFoundError(AlertHistoryError):
    """No alert with that id (or none the reader may see)."""


class SnapshotTableError(AlertHistoryError):
    """A snapshot table named that is not a table name, or not a snapshot table."""


# what `amml alerts list` shows of each alert (the record itself only in `show`)
LISTED = (
    "id", "created_at", "record_time", "level", "message", "score", "dag_id", "run_id", "task_id", "item",
    "notify_status", "snapshot_status",
)  # fmt: skip
# what a snapshot table must have for its rows to be read back as an alert's records
SNAPSHOT_NEEDS = {"id", "alert_id", "row_position", "record"}
READ_CHUNK = 1000  # snapshot records fetched from the database at a time
MAX_ID = 2**63 - 1  # the largest alert id a database integer holds (what `amml alerts` and the pages accept)


def list_alerts(
    config: RunConfig,
    dag_id: str | None = None,
    item: str | None = None,
    limit: int = 50,
    dag_ids: Collection[str] | None = None,
) -> list[dict]:
    """The newest ``limit`` alerts (of one DAG, one fanned-out item), newest first, each with the number of
    records its snapshot saved in the default snapshot table (``snapshot_rows``). ``dag_ids``: only the
    alerts of these DAGs (what a reader may see; not those raised outside Airflow); None: every alert."""
    engine = _engine(config)
    with _reading(config):
        found = _columns(engine, tables.alerts.name) if engine is not None else None
    if not found:
        return []
    a = tables.alerts
    query = sa.select(*_present(a, LISTED, found)).order_by(a.c.id.desc()).limit(limit)
    if dag_id is not None:
        query = query.where(a.c.dag_id == dag_id if "dag_id" in found else sa.false())
    if item is not None:
        query = query.where(a.c.item == item if "item" in found else sa.false())
    if dag_ids is not None:
        query = query.where(a.c.dag_id.in_(sorted(dag_ids)) if "dag_id" in found and dag_ids else sa.false())
    with _reading(config), engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        counts = _snapshot_counts(conn, [row["id"] for row in rows], tables.SNAPSHOT_DEFAULT)
    for row in rows:
        row["snapshot_rows"] = counts.get(row["id"], 0)
    return rows


def get_alert(
    config: RunConfig, alert_id: int, snapshot_table: str = tables.SNAPSHOT_DEFAULT
) -> tuple[dict, list[dict]]:
    """One alert (every column; its record and trigger values decoded) and its snapshot's records in stream
    order, from ``snapshot_table`` (the alert's `snapshot_table=`; default ``amml_snapshots``)."""
    alert = alert_row(config, alert_id)
    return alert, [record for _, record in snapshot_rows(config, alert_id, snapshot_table)]


def alert_row(config: RunConfig, alert_id: int) -> dict:
    """One alert, every column (an older revision's missing ones empty), its record and trigger values
    decoded; :class:`AlertNotFoundError` if there is none."""
    engine = _engine(config)
    with _reading(config):
        found = _columns(engine, tables.alerts.name) if engine is not None else None
    row = None
    if found:
        a = tables.alerts
        with _reading(config), engine.connect() as conn:
            row = conn.execute(sa.select(*_present(a, a.c.keys(), found)).where(a.c.id == alert_id)).first()
    if row is None:
        newest = list_alerts(config, limit=1)
        raise AlertNotFoundError(
            f"no alert {alert_id} in {_where(config)}",
            hint=f"the newest is {newest[0]['id']}: `amml alerts list` shows them"
            if newest
            else "no alert is recorded there yet (AMML_DB_URL names the pipelines' database, if they use one)",
        )
    alert = dict(row._mapping)
    for key in ("record", "trigger_values"):
        alert[key] = json.loads(alert[key]) if alert[key] else None
    return alert


def snapshot_rows(
    config: RunConfig,
    alert_id: int,
    snapshot_table: str = tables.SNAPSHOT_DEFAULT,
    max_records: int | None = None,
    max_bytes: int | None = None,
) -> Iterator[tuple[int, dict]]:
    """An alert's snapshot records in stream order as ``(stream position, record)``, read a chunk at a time:
    all of them (a download of any size), or the first ``max_records`` of them that fit ``max_bytes`` of
    stored JSON together (what a page shows of a snapshot that may hold a million)."""
    _check_snapshot_name(snapshot_table)
    engine = _engine(config)
    if engine is None:
        return
    with _reading(config):
        found = _columns(engine, snapshot_table)
        if found is None:
            return
        if not SNAPSHOT_NEEDS <= found:
            raise SnapshotTableError(
                f"table {snapshot_table!r} is not a snapshot table (its columns: {sorted(found)})",
                hint=f"name the table the alert's `snapshot_table=` wrote to (default {tables.SNAPSHOT_DEFAULT})",
            )
        table = tables.snapshot_table(snapshot_table)
        query = (
            sa.select(table.c.row_position, table.c.record)
            .where(table.c.alert_id == alert_id)
            .order_by(table.c.row_position, table.c.id)
        )
        if max_records is not None:
            query = query.limit(max_records)
        read = 0
        with engine.connect() as conn:
            for position, record in conn.execution_options(yield_per=READ_CHUNK).execute(query):
                read += len(record)
                if max_bytes is not None and read > max_bytes:
                    return
                yield position, json.loads(record)


def snapshot_size(config: RunConfig, alert_id: int, snapshot_table: str = tables.SNAPSHOT_DEFAULT) -> int:
    """How many records an alert's snapshot holds in ``snapshot_table``."""
    _check_snapshot_name(snapshot_table)
    engine = _engine(config)
    if engine is None:
        return 0
    with _reading(config), engine.connect() as conn:
        return _snapshot_counts(conn, [alert_id], snapshot_table).get(alert_id, 0)


def _check_snapshot_name(name: str) -> None:
    """A snapshot table named by a reader passes the check a pipeline's `snapshot_table=` passes."""
    problem = table_name_problem(name, (tables.SNAPSHOT_DEFAULT,))
    if problem is not None:
        raise SnapshotTableError(
            f"snapshot table {name!r}: {problem[0]}",
            hint=f"the table an alert's `snapshot_table=` names (default {tables.SNAPSHOT_DEFAULT})",
        )


def _snapshot_counts(conn: sa.Connection, alert_ids: list[int], name: str) -> dict[int, int]:
    found = _columns(conn, name)
    if not alert_ids or found is None or not SNAPSHOT_NEEDS <= found:
        return {}
    table = tables.snapshot_table(name)
    query = (
        sa.select(table.c.alert_id, sa.func.count())
        .where(table.c.alert_id.in_(alert_ids))
        .group_by(table.c.alert_id)
    )
    return {alert_id: count for alert_id, count in conn.execute(query)}


def _present(table: sa.Table, names: Any, found: set[str]) -> list[Any]:
    """The columns ``names`` of ``table``, an empty value for each that an older revision's table lacks."""
    return [table.c[name] if name in found else sa.null().label(name) for name in names]


def _columns(bind: sa.Engine | sa.Connection, name: str) -> set[str] | None:
    inspector = sa.inspect(bind)
    return {c["name"] for c in inspector.get_columns(name)} if inspector.has_table(name) else None


def _engine(config: RunConfig) -> sa.Engine | None:
    """The run's database; None for an embedded one that was never made (nothing recorded, nothing to make)."""
    if not config.db_url and not storage.embedded_database(config).is_file():
        return None
    with _reading(config):
        return storage.engine(config)


@contextlib.contextmanager
def _reading(config: RunConfig) -> Iterator[None]:
    """Errors of a database that cannot be read (a bad URL, a missing driver, a server down) as one that says
    which database and why, never a traceback."""
    try:
        yield
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        from airflow_amml.registry.database import reason

        why = reason(exc) if isinstance(exc, sa.exc.SQLAlchemyError) else f"{type(exc).__name__}: {exc}"
        raise AlertHistoryError(
            f"cannot read the alerts in {_where(config)}: {why}",
            hint="check that the database is up and AMML_DB_URL is a SQLAlchemy URL, e.g. "
            "postgresql+psycopg://user:password@host/db (unset: the embedded SQLite in AMML_HOME)",
        ) from None


def _where(config: RunConfig) -> str:
    from airflow_amml.registry.database import safe_url  # the URL without its password

    return safe_url(config.db_url) if config.db_url else f"sqlite:///{storage.embedded_database(config)}"
