"""Leases: a generation per lease, so a decision written under a lease can be fenced.

``retrain_leases`` now also holds the runner's leadership (``runner:serve``,
``runner:retrain-check``) beside one lease per retrained deployment. Each takeover of a
name bumps its ``generation``; a holder's writes check in the same transaction that
the row still names it at its generation (``pipelines.sql.lease_fence``), so a holder
that lost its lease (paused, cut off) cannot write a decision after another took over.
Existing rows start at generation 1. Only adds a column.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retrain_leases") as batch:
        batch.add_column(
            sa.Column("generation", sa.Integer, nullable=False, server_default=sa.text("1"))
        )


def downgrade() -> None:
    raise NotImplementedError("modelyard migrations never drop data; restore a backup instead")
