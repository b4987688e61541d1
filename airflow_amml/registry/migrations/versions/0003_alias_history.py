"""Alias history: every move of an alias (who, when, why), so a promotion can be traced and undone.

The aliases that exist already get one row each, dated by their last move, with nobody and a reason saying
the history starts here (what came before was never recorded).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "amml_model_alias_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous_version", sa.Integer),
        sa.Column("set_by", sa.String(250)),
        sa.Column("reason", sa.Text),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_amml_alias_history_name_alias", "amml_model_alias_history", ["name", "alias"])
    op.execute(
        "insert into amml_model_alias_history (name, alias, version, previous_version, set_by, reason, set_at) "
        "select name, alias, version, null, null, 'set before alias history was kept', updated_at "
        "from amml_model_aliases"
    )


def downgrade() -> None:
    op.drop_index("ix_amml_alias_history_name_alias", "amml_model_alias_history")
    op.drop_table("amml_model_alias_history")
