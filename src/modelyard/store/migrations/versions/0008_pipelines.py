"""Pipelines: retraining plans, retraining attempts, their leases, the step cache.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retrain_plans",
        sa.Column("deployment", sa.String(255), primary_key=True),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("checked_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "retrains",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(255), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("champion", sa.Integer),
        sa.Column("run_id", sa.String(32)),
        sa.Column("version", sa.Integer),
        sa.Column("gate", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_retrains_deployment_started", "retrains", ["deployment", "started_at"])
    op.create_table(
        "retrain_leases",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "pipeline_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(255), nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("output_digest", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("modelyard migrations never drop data; restore a backup instead")
