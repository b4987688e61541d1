"""Folders being written: what garbage collection may remove (only what this registry wrote itself).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "amml_artifact_writes",
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("folder_uri", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("amml_artifact_writes")
