"""Tables the runtime writes: alerts and snapshots (Fig. 7). Created on first use.

Table names given in a pipeline (`snapshot table=`, `sql_sink table=`) are untrusted: they must be plain
identifiers, and never one of AMML's own tables (alerts, snapshots of another shape, the model registry,
Alembic's version table), which a pipeline could otherwise overwrite. Every statement is built with
SQLAlchemy Core on :class:`sqlalchemy.Table` objects, so names are quoted by the dialect, never spliced.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

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
)

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
    )


def ensure_snapshot_table(component: str, engine: sa.Engine, name: object) -> sa.Table:
    """The snapshot table ``name``, created if missing; an existing table of another shape is refused (a
    pipeline must not append snapshot rows to, say, another pipeline's sink table)."""
    table = snapshot_table(check_table_name(component, name, allowed=(SNAPSHOT_DEFAULT,)))
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if inspector.has_table(table.name):
            found = {c["name"] for c in inspector.get_columns(table.name)}
            if found != set(table.c.keys()):
                raise PipelineError(
                    f"`{component} table={table.name!r}`: the table exists and is not a snapshot table "
                    f"(its columns: {sorted(found)})",
                    hint=f"name a new table, or leave `table` out for `{SNAPSHOT_DEFAULT}`",
                )
    ensure(engine, table)
    return table


def ensure(engine: sa.Engine, table: sa.Table) -> None:
    table.create(engine, checkfirst=True)
