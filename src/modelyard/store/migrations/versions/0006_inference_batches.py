"""Monitoring: the inference log stores one row per micro-batch instead of one per request.

The per-request table cost ~20 us of CPU per request to fill (three B-tree
inserts and a JSON text of the inputs), a third of a serving worker's budget; a
row per write-ahead log payload costs one insert per micro-batch. Existing
records are copied into the new table (as payloads whose columns are the JSON
values they held), then the old table is dropped: no record is lost.

Self-contained on purpose: it writes format 1 of ``monitoring.log_record`` with
JSON columns only, so later changes to that module cannot change this migration.

Revision ID: 0006
Revises: 0005
"""

import json
import struct
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FORMAT = b"\x01"
_SPAN_S = 60.0  # inference_log.storage.BATCH_SPAN_S: a batch's records lie within this of its first
_CHUNK = 500
_OLD = (
    "id, request_id, ts, deployment, model, version, arm, status, latency_ms, rows, error, "
    "inputs, outputs"
)


def upgrade() -> None:
    batches = op.create_table(
        "inference_batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("deployment", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("ts_first", sa.Float, nullable=False),
        sa.Column("ts_last", sa.Float, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index(
        "ix_inference_batches_deployment_ts", "inference_batches", ["deployment", "ts_first"]
    )
    conn = op.get_bind()
    groups = conn.execute(
        sa.text("SELECT DISTINCT deployment, model, version FROM inference_log")
    ).all()
    for deployment, model, version in groups:
        after: tuple[float, str] | None = None
        while True:
            query = (
                f"SELECT {_OLD} FROM inference_log WHERE deployment = :d AND model = :m "
                "AND version = :v"
            )
            params = {"d": deployment, "m": model, "v": version}
            if after is not None:
                query += " AND (ts > :ts OR (ts = :ts AND id > :id))"
                params.update(ts=after[0], id=after[1])
            rows = conn.execute(sa.text(query + " ORDER BY ts, id LIMIT 5000"), params).all()
            if not rows:
                break
            after = (rows[-1].ts, rows[-1].id)
            for chunk in _chunks(rows):
                conn.execute(sa.insert(batches), [_batch(chunk)])
    op.drop_index("ix_inference_log_request_id", "inference_log")
    op.drop_index("ix_inference_log_deployment_ts", "inference_log")
    op.drop_table("inference_log")


def _chunks(rows: Sequence[Any]) -> list[list[Any]]:
    chunks: list[list[Any]] = []
    for row in rows:
        last = chunks[-1] if chunks else None
        if last is None or len(last) >= _CHUNK or row.ts - last[0].ts > _SPAN_S:
            chunks.append([row])
        else:
            last.append(row)
    return chunks


def _batch(rows: list[Any]) -> dict[str, object]:
    blocks: list[dict[str, object]] = []
    records = []
    for row in rows:
        refs: list[list[int] | None] = []
        for text in (row.inputs, row.outputs):
            if text is None:
                refs.append(None)
                continue
            document = json.loads(text)
            length = len(next(iter(document.values()))) if document else 0
            blocks.append(
                {"names": list(document), "columns": [["j", v] for v in document.values()]}
            )
            refs.append([len(blocks) - 1, 0, length])
        records.append(
            [
                row.id,
                row.request_id,
                row.ts,
                row.deployment,
                row.model,
                row.version,
                row.arm,
                row.status,
                row.latency_ms,
                row.rows,
                row.error,
                *refs,
            ]
        )
    header = json.dumps({"records": records, "blocks": blocks}).encode()
    first = rows[0]
    return {
        "id": first.id,
        "deployment": first.deployment,
        "model": first.model,
        "version": first.version,
        "ts_first": first.ts,
        "ts_last": rows[-1].ts,
        "requests": len(rows),
        "errors": sum(1 for row in rows if row.status >= 400),
        "payload": _FORMAT + struct.pack("<I", len(header)) + header,
    }


def downgrade() -> None:
    raise NotImplementedError("modelyard migrations never drop data; restore a backup instead")
