"""Reading back what the pipelines recorded: the alerts, and the records saved around each (its snapshot).

The paper saves the data around an anomaly "for later analysis or retraining" (Fig. 7); this is how it is
read: `amml alerts list` (newest first, by DAG or item), `amml alerts show ID` (the alert and its snapshot's
records as a table, `--csv FILE` to keep them, e.g. as a catalog source to train on). It reads the run's
database (``storage.database_url``: `$AMML_DB_URL`, else the embedded SQLite) with SQLAlchemy Core and never
writes to it: an empty or missing table is no alert.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from airflow_amml import storage, tables
from airflow_amml.run_config import RunConfig
from compiler.errors import AmmlError
from compiler.value_checks import table_name_problem


class AlertHistoryError(AmmlError):
    """An alert asked for that is not there, or a table that is not a snapshot table."""

    label = "alerts"


# what `amml alerts list` shows of each alert, and `show` of one (the record itself only in `show`)
LISTED = (
    "id", "created_at", "record_time", "level", "message", "score", "dag_id", "run_id", "task_id", "item",
    "notify_status", "snapshot_status",
)  # fmt: skip


def list_alerts(config: RunConfig, dag_id: str | None = None, item: str | None = None, limit: int = 50) -> list[dict]:
    """The newest ``limit`` alerts (of one DAG, one fanned-out item), newest first, each with the number of
    records its snapshot saved in the default snapshot table (``snapshot_rows``)."""
    engine = storage.engine(config)
    if not _has_table(engine, tables.alerts.name):
        return []
    a = tables.alerts
    query = sa.select(*(a.c[name] for name in LISTED)).order_by(a.c.id.desc()).limit(limit)
    if dag_id is not None:
        query = query.where(a.c.dag_id == dag_id)
    if item is not None:
        query = query.where(a.c.item == item)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        counts = _snapshot_counts(conn, [row["id"] for row in rows], tables.SNAPSHOT_DEFAULT)
    for row in rows:
        row["snapshot_rows"] = counts.get(row["id"], 0)
    return rows


def get_alert(config: RunConfig, alert_id: int, snapshot_table: str = tables.SNAPSHOT_DEFAULT) -> tuple[dict, list]:
    """One alert (every column; its record and trigger values decoded) and its snapshot's records in stream
    order, from ``snapshot_table`` (the alert's `snapshot_table=`; default ``amml_snapshots``)."""
    problem = table_name_problem(snapshot_table, (tables.SNAPSHOT_DEFAULT,))
    if problem is not None:
        raise AlertHistoryError(
            f"--table {snapshot_table!r}: {problem[0]}",
            hint=f"the table an alert's `snapshot_table=` names (default {tables.SNAPSHOT_DEFAULT})",
        )
    name = snapshot_table
    engine = storage.engine(config)
    a = tables.alerts
    row = None
    if _has_table(engine, a.name):
        with engine.connect() as conn:
            row = conn.execute(sa.select(a).where(a.c.id == alert_id)).first()
    if row is None:
        newest = list_alerts(config, limit=1)
        raise AlertHistoryError(
            f"no alert {alert_id} in {_where(config)}",
            hint=f"the newest is {newest[0]['id']}: `amml alerts list` shows them"
            if newest
            else "no alert is recorded there yet (AMML_DB_URL names the pipelines' database, if they use one)",
        )
    alert = dict(row._mapping)
    for key in ("record", "trigger_values"):
        alert[key] = json.loads(alert[key]) if alert[key] else None
    return alert, _snapshot_records(engine, alert_id, name)


def _snapshot_records(engine: sa.Engine, alert_id: int, name: str) -> list[dict[str, Any]]:
    if not _has_table(engine, name):
        return []
    table = tables.snapshot_table(name)
    found = {c["name"] for c in sa.inspect(engine).get_columns(name)}
    if not set(table.c.keys()) <= found:
        raise AlertHistoryError(
            f"table {name!r} is not a snapshot table (its columns: {sorted(found)})",
            hint=f"name the table the alert's `snapshot_table=` wrote to (default {tables.SNAPSHOT_DEFAULT})",
        )
    query = sa.select(table.c.record).where(table.c.alert_id == alert_id).order_by(table.c.row_position, table.c.id)
    with engine.connect() as conn:
        return [json.loads(record) for (record,) in conn.execute(query)]


def _snapshot_counts(conn: sa.Connection, alert_ids: list[int], name: str) -> dict[int, int]:
    if not alert_ids or not _has_table(conn, name):
        return {}
    table = tables.snapshot_table(name)
    query = (
        sa.select(table.c.alert_id, sa.func.count())
        .where(table.c.alert_id.in_(alert_ids))
        .group_by(table.c.alert_id)
    )
    return {alert_id: count for alert_id, count in conn.execute(query)}


def _has_table(bind: sa.Engine | sa.Connection, name: str) -> bool:
    return sa.inspect(bind).has_table(name)


def _where(config: RunConfig) -> str:
    from airflow_amml.registry.database import safe_url  # the URL without its password

    return safe_url(storage.database_url(config))


def unreachable(config: RunConfig, exc: sa.exc.SQLAlchemyError) -> AlertHistoryError:
    """The error for a database that cannot be read (down, wrong URL, no permission)."""
    return AlertHistoryError(
        f"cannot read the alerts in {_where(config)}: {type(exc).__name__}",
        hint="check that the database is up and AMML_DB_URL is right (unset: the embedded SQLite in AMML_HOME)",
    )
