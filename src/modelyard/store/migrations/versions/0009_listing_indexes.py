"""Listings paged on indexes: runs by start time then id, newest first.

``runs list`` orders every run by ``(start_time, id)`` and pages by a range of it;
without this index SQLite sorted every run to show twenty. Only adds an index.
(Versions page on the ``(model_id, version)`` unique index they already have.)

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_start_id", "runs", ["start_time", "id"])


def downgrade() -> None:
    raise NotImplementedError("modelyard migrations never drop data; restore a backup instead")
