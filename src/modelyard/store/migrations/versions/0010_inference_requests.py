"""Monitoring: an index of the logged request ids, so a feedback label's request id is
checked with one index lookup (``inference_requests``), not by reading payloads.

Existing batches are indexed from their payloads, page by page. Self-contained on
purpose: it reads the two payload layouts (``monitoring.inference_log.record``) itself,
so later changes to those modules cannot change this migration. A payload that cannot
be read is left unindexed (its requests still read as before; labels for them are
reported pending).

Revision ID: 0010
Revises: 0009
"""

import json
import struct
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_LENGTH = struct.Struct("<I")
_PAGE = 500


def upgrade() -> None:
    index = op.create_table(
        "inference_requests",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("batch_id", sa.String(32), primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_inference_requests_batch", "inference_requests", ["batch_id"])
    conn = op.get_bind()
    after = ""
    while True:
        page = conn.execute(
            sa.text(
                "SELECT id, payload FROM inference_batches WHERE id > :after ORDER BY id LIMIT :n"
            ),
            {"after": after, "n": _PAGE},
        ).all()
        if not page:
            return
        after = page[-1].id
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for batch_id, payload in page:
            for request_id, count, status in _requests(bytes(payload)):
                key = (request_id[:128], batch_id)
                rows.setdefault(
                    key,
                    {"request_id": key[0], "batch_id": batch_id, "rows": count, "status": status},
                )
        if rows:
            conn.execute(sa.insert(index), list(rows.values()))


def _requests(data: bytes) -> Iterator[tuple[str, int, int]]:
    """``(request id, rows, status)`` of each record of a payload; none if unreadable."""
    try:
        at = 0
        if data[:1] == b"\x02":  # a summary ahead of the payload
            at = 1 + _LENGTH.size + _LENGTH.unpack_from(data, 1)[0]
        kind = data[at : at + 1]
        (length,) = _LENGTH.unpack_from(data, at + 1)
        header = json.loads(data[at + 1 + _LENGTH.size : at + 1 + _LENGTH.size + length])
        if kind == b"\x03":
            ids = header["request_id"]
            rows, status = header["rows"], header["status"]
            rows = rows if isinstance(rows, list) else [rows] * len(ids)
            status = status if isinstance(status, list) else [status] * len(ids)
            found = [
                (str(i), int(r or 0), int(s)) for i, r, s in zip(ids, rows, status, strict=True)
            ]
        elif kind == b"\x01":
            found = [(str(r[1]), int(r[9] or 0), int(r[7])) for r in header["records"]]
        else:
            return
    except (ValueError, TypeError, KeyError, IndexError, struct.error):
        return
    yield from found


def downgrade() -> None:
    raise NotImplementedError("modelyard migrations never drop data; restore a backup instead")
