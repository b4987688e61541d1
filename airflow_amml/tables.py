"""Tables the runtime writes: alerts and snapshots (Fig. 7).

The alerts table and the default snapshot table belong to the runtime database's migration history
(:mod:`airflow_amml.runtime_db`): :func:`ensure_alert_tables` brings them to the current shape, keeping the
rows of older versions. A snapshot table a pipeline names itself (`snapshot table=...`) is created on first
use, under the same lock, and one of an older shape gains the later columns in place (``alert_id``, then
``item``: the fanned-out run's item, recorded with each alert and snapshot row).

Table names given in a pipeline (`snapshot table=`, `sql_sink table=`) are untrusted: they must be plain
identifiers, and never one of AMML's own tables (alerts, snapshots of another shape, the model registry,
Alembic's version table), which a pipeline could otherwise overwrite. Every statement is built with
SQLAlchemy Core on :class:`sqlalchemy.Table` objects, so names are quoted by the dialect, never spliced.
"""

from __future__ import annotations

import contextlib
import functools

import sqlalchemy as sa

from airflow_amml import runtime_db
from airflow_amml.runtime.errors import PipelineError
from compiler.value_checks import table_name_problem

metadata = sa.MetaData()

alerts = sa.Table(
    "amml_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("component", sa.String(200), nullable=False),
    sa.Column("event", sa.String(200), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("record", sa.Text, nullable=False),  # the triggering record, as JSON
    # since revision 0002 (null in the rows of older versions)
    sa.Column("record_time", sa.DateTime(timezone=True)),  # the record's own time, when it has one
    sa.Column("score", sa.Float),  # the record's anomaly score, when it has one
    sa.Column("trigger_values", sa.Text),  # the values the condition read (or `values=`), as JSON
    sa.Column("dag_id", sa.String(250)),  # the Airflow run that raised it (null outside Airflow)
    sa.Column("run_id", sa.String(250)),
    sa.Column("task_id", sa.String(250)),
    sa.Column("notify_status", sa.String(20)),  # NOTIFY_* below; null: nobody to notify
    sa.Column("notify_attempts", sa.Integer),
    sa.Column("notify_error", sa.Text),
    sa.Column("snapshot_status", sa.String(20)),  # SNAPSHOT_* below; null: no snapshot asked with the alert
    # since revision 0003: the item of a fanned-out run (`for series in ...`) that raised it, as text (null: a
    # pipeline that is not fanned out). One fixed name, whatever the loop variable: every DAG shares the table.
    sa.Column("item", sa.Text),
    sa.Index("ix_amml_alerts_run", "dag_id", "run_id", "task_id"),
)

NOTIFY_PENDING, NOTIFY_SENT, NOTIFY_FAILED = "pending", "sent", "failed"
# the records before the alert are saved with it; the records after it are still to come
SNAPSHOT_AFTER_PENDING, SNAPSHOT_COMPLETE = "after_pending", "complete"

SNAPSHOT_DEFAULT = "amml_snapshots"


def check_table_name(component: str, name: object, *, allowed: tuple[str, ...] = ()) -> str:
    """``name`` if a pipeline may write to a table of that name; else an error naming the component (the rule
    `amml lint` applies to constant names, see compiler/value_checks.py)."""
    problem = table_name_problem(name, allowed)
    if problem is not None:
        raise PipelineError(f"`{component} table={name!r}`: {problem[0]}", hint=problem[1])
    return name


@functools.cache
def snapshot_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("snapshot_id", sa.String(36), nullable=False, index=True),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(200), nullable=False),
        sa.Column("alert_position", sa.BigInteger, nullable=False),
        sa.Column("row_position", sa.BigInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("alert_id", sa.BigInteger, index=True),  # the alert row it belongs to (null: older rows)
        sa.Column("item", sa.Text),  # the fanned-out run's item, as in the alerts table (null: none, older rows)
    )


# a snapshot table as versions before alert ids made it, and the columns added since, in order: a table of
# an older shape (the first columns and a prefix of the later ones) is upgraded in place
_SNAPSHOT_COLUMNS_BEFORE_ALERT_IDS = {
    "id", "snapshot_id", "saved_at", "event", "alert_position", "row_position", "record"
}  # fmt: skip
_SNAPSHOT_COLUMNS_ADDED = ("alert_id", "item")


def item_text(item: tuple[str, object] | None) -> str | None:
    """What the alerts and snapshot tables record of a fanned-out run's item: its value as text."""
    return None if item is None else str(item[1])


def ensure_alert_tables(engine: sa.Engine) -> None:
    """The alerts table and the default snapshot table at the current revision (once per process)."""
    runtime_db.migrate(engine)


def ensure_snapshot_table(component: str, engine: sa.Engine, name: object) -> sa.Table:
    """The snapshot table ``name``, created if missing; an existing table of another shape is refused (a
    pipeline must not append snapshot rows to, say, another pipeline's sink table)."""
    table = snapshot_table(check_table_name(component, name, allowed=(SNAPSHOT_DEFAULT,)))
    ensure_alert_tables(engine)
    if _snapshot_columns(engine, table.name) == set(table.c.keys()):
        return table
    with runtime_db.schema_lock(engine), engine.begin() as conn:  # one process creates or upgrades it
        found = _snapshot_columns(conn, table.name)
        missing = _columns_to_add(found)
        if found is None:
            table.create(conn)
        elif missing is not None:
            _add_columns(conn, table, missing)
        elif found != set(table.c.keys()):
            raise PipelineError(
                f"`{component} table={table.name!r}`: the table exists and is not a snapshot table "
                f"(its columns: {sorted(found)})",
                hint=f"name a new table, or leave `table` out for `{SNAPSHOT_DEFAULT}`",
            )
    return table


def _snapshot_columns(bind: sa.Engine | sa.Connection, name: str) -> set[str] | None:
    with bind.connect() if isinstance(bind, sa.Engine) else contextlib.nullcontext(bind) as conn:
        inspector = sa.inspect(conn)
        if not inspector.has_table(name):
            return None
        return {c["name"] for c in inspector.get_columns(name)}


def _columns_to_add(found: set[str] | None) -> tuple[str, ...] | None:
    """The later columns a snapshot table of an older shape lacks (None: it is of no older shape)."""
    if found is None:
        return None
    for done in range(len(_SNAPSHOT_COLUMNS_ADDED)):
        if found == _SNAPSHOT_COLUMNS_BEFORE_ALERT_IDS | set(_SNAPSHOT_COLUMNS_ADDED[:done]):
            return _SNAPSHOT_COLUMNS_ADDED[done:]
    return None


def _add_columns(conn: sa.Connection, table: sa.Table, names: tuple[str, ...]) -> None:
    """ALTER TABLE ... ADD COLUMN for each of ``names`` (and alert_id's index), through Alembic's operations
    (names quoted by the dialect, never spliced)."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    operations = Operations(MigrationContext.configure(conn))
    for name in names:
        operations.add_column(table.name, sa.Column(name, table.c[name].type))
        index = next((i for i in table.indexes if list(i.columns.keys()) == [name]), None)
        if index is not None:
            operations.create_index(index.name, table.name, [name])
