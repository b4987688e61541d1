"""What an alert says about itself: the record's time, its score and triggering values, the Airflow run that
raised it, how its notification and snapshot went; and snapshot rows that name their alert.

Every new column may be null, so the rows of older versions stay as they were (they knew none of this).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def alert_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("record_time", sa.DateTime(timezone=True)),
        sa.Column("score", sa.Float),
        sa.Column("trigger_values", sa.Text),
        sa.Column("dag_id", sa.String(250)),
        sa.Column("run_id", sa.String(250)),
        sa.Column("task_id", sa.String(250)),
        sa.Column("notify_status", sa.String(20)),
        sa.Column("notify_attempts", sa.Integer),
        sa.Column("notify_error", sa.Text),
        sa.Column("snapshot_status", sa.String(20)),
    )


def upgrade() -> None:
    for column in alert_columns():
        op.add_column("amml_alerts", column)
    op.create_index("ix_amml_alerts_run", "amml_alerts", ["dag_id", "run_id", "task_id"])
    op.add_column("amml_snapshots", sa.Column("alert_id", sa.BigInteger))
    op.create_index("ix_amml_snapshots_alert_id", "amml_snapshots", ["alert_id"])


def downgrade() -> None:
    op.drop_index("ix_amml_snapshots_alert_id", "amml_snapshots")
    with op.batch_alter_table("amml_snapshots") as batch:
        batch.drop_column("alert_id")
    op.drop_index("ix_amml_alerts_run", "amml_alerts")
    with op.batch_alter_table("amml_alerts") as batch:
        for column in alert_columns():
            batch.drop_column(column.name)
