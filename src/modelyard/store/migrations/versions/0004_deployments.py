"""Deployments: traffic configuration with its full history.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("rollout", sa.Text),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "deployment_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(255), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("config", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_deployment_history_deployment_revision",
        "deployment_history",
        ["deployment", "revision"],
    )


def downgrade() -> None:
    raise NotImplementedError("modelyard migrations never drop data; restore a backup instead")
