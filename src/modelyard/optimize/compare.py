"""The comparison table of measured models: one row of plain values per model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelyard.optimize.gate import Figures

__all__ = ["comparison_rows"]


def comparison_rows(entries: Sequence[tuple[str, str, Figures]]) -> list[dict[str, Any]]:
    """``(what, method, figures)`` -> rows: size, parameters, sparsity, latency at batch 1
    and 32 (p50/p99 ms), throughput, accuracy overall and of the worst class; sizes and
    speeds also relative to the first entry (the parent or baseline)."""
    rows = []
    base = entries[0][2] if entries else None
    for what, method, figures in entries:
        worst_label, worst = figures.worst_class
        row: dict[str, Any] = {
            "model": what,
            "method": method,
            "size_kb": round(figures.size_bytes / 1024, 1),
            "params": figures.parameters,
            "sparsity": round(figures.sparsity, 3),
            "p50_ms_b1": round(figures.p50_ms_1, 4),
            "p99_ms_b1": round(figures.p99_ms_1, 4),
            "p50_ms_b32": round(figures.p50_ms_32, 3),
            "p99_ms_b32": round(figures.p99_ms_32, 3),
            "rows_per_s": round(figures.rows_per_s),
            "accuracy": round(figures.accuracy, 4),
            "worst_class": f"{worst_label}: {worst:.3f}",
        }
        if base is not None:
            row["smaller_x"] = round(base.size_bytes / max(figures.size_bytes, 1), 2)
            row["faster_x_b1"] = round(base.p50_ms_1 / max(figures.p50_ms_1, 1e-9), 2)
        rows.append(row)
    return rows
