"""Prediction intervals on a version: the split-conformal half-widths per coverage and step that `lstm level=`
serves (``{"method": …, "forecasts": n, "levels": {"80": [q_1, …, q_H], …}}``).

A nullable JSON column: versions registered before it have none (the registry reads them as `{}`).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("amml_model_versions", sa.Column("intervals", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("amml_model_versions") as batch:  # SQLite: drop a column by copying the table
        batch.drop_column("intervals")
