"""Training parameters on a version (MLflow's params: epochs, batch size, window, learning rate, ...).

A nullable JSON column: versions registered before it have none (the registry reads them as `{}`).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("amml_model_versions", sa.Column("params", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("amml_model_versions") as batch:  # SQLite: drop a column by copying the table
        batch.drop_column("params")
