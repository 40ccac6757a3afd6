"""Tracking: the latest value of each run's metrics, kept on write so searches stay fast.

Backfilled from ``run_metrics`` (highest step, then last written), so runs
logged before this migration search the same as new ones.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_latest_metrics",
        sa.Column(
            "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index("ix_run_latest_metrics_key_value", "run_latest_metrics", ["key", "value"])
    op.execute(
        """
        INSERT INTO run_latest_metrics (run_id, key, value, step, timestamp)
        SELECT m.run_id, m.key, m.value, m.step, m.timestamp FROM run_metrics m
        WHERE m.id = (
            SELECT l.id FROM run_metrics l WHERE l.run_id = m.run_id AND l.key = m.key
            ORDER BY l.step DESC, l.id DESC LIMIT 1
        )
        """
    )


def downgrade() -> None:
    raise NotImplementedError("modelyard migrations never drop data; restore a backup instead")
