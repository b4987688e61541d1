"""Tables the runtime writes: alerts and snapshots (Fig. 7). Created on first use."""

from __future__ import annotations

import functools

import sqlalchemy as sa

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


def ensure(engine: sa.Engine, table: sa.Table) -> None:
    table.create(engine, checkfirst=True)
