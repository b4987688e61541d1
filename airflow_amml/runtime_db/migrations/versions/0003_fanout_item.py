"""The item of a fanned-out run (`pipeline p for series in ...`) with each alert and snapshot row, so that the
alerts of one series can be told from another's (and a retried mapped task finds only its own).

The new columns may be null: rows of older versions, and of pipelines that are not fanned out, have no item.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("amml_alerts", sa.Column("item", sa.Text))
    op.add_column("amml_snapshots", sa.Column("item", sa.Text))


def downgrade() -> None:
    for table in ("amml_snapshots", "amml_alerts"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("item")
