"""The alerts and snapshot tables as versions before migrations made them (SQLAlchemy `create_all`).

A database those versions used already has them, with rows worth keeping: they are left as they are, and a
new database gets the same shape, so every database is alike at this revision.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "amml_alerts" not in existing:
        op.create_table(
            "amml_alerts",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("component", sa.String(200), nullable=False),
            sa.Column("event", sa.String(200), nullable=False),
            sa.Column("level", sa.String(20), nullable=False),
            sa.Column("message", sa.Text, nullable=False),
            sa.Column("position", sa.BigInteger, nullable=False),
            sa.Column("record", sa.Text, nullable=False),
        )
    if "amml_snapshots" not in existing:
        op.create_table(
            "amml_snapshots",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("snapshot_id", sa.String(36), nullable=False, index=True),
            sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("event", sa.String(200), nullable=False),
            sa.Column("alert_position", sa.BigInteger, nullable=False),
            sa.Column("row_position", sa.BigInteger, nullable=False),
            sa.Column("record", sa.Text, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("amml_snapshots")
    op.drop_table("amml_alerts")
