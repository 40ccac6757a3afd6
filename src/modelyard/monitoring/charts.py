"""Charts for self-contained HTML reports: inline SVG and CSS, no scripts, no network.

Hand-written because a report must open anywhere, offline, and be mailed as one file;
a plotting library (matplotlib, plotly: tens of megabytes, and plotly would need its
JavaScript inlined or fetched) is not needed for a few dozen rectangles and lines. The
monitoring report and the fraud demo's report draw with these.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

__all__ = [
    "BAD",
    "CSS",
    "LIVE",
    "PALETTE",
    "REF",
    "Series",
    "card",
    "category_bars",
    "histogram",
    "label",
    "line_chart",
    "number",
    "percent",
    "svg",
    "when",
]

REF, LIVE, BAD = "#4e79a7", "#f28e2b", "#d62728"
PALETTE = (REF, LIVE, "#59a14f", "#b07aa1", "#9c755f", "#76b7b2")

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;padding:0 16px;max-width:1140px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#666}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6}.n{text-align:right;white-space:nowrap}.bad{color:#d62728;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px}
.card h3{font-size:14px;margin:0 0 4px}.card.drifted{border-color:#d62728}
.key{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
svg text{font:10px system-ui,sans-serif;fill:#555}
"""


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


# -- SVG ---------------------------------------------------------------------------------

W, H, PAD = 360, 150, 28


def svg(body: str, height: int = H) -> str:
    return f'<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img">{body}</svg>'


def label(x: float, y: float, content: str, anchor: str = "start") -> str:
    """SVG text at (x, y), escaped."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{html.escape(content)}</text>'


def histogram(reference: np.ndarray, live: np.ndarray, bins: int = 30) -> str:
    ref = reference[np.isfinite(reference)].astype(np.float64)
    now = live[np.isfinite(live)].astype(np.float64)
    both = [a for a in (ref, now) if a.size]
    if not both:
        return svg(label(W / 2, H / 2, "no numeric values", "middle"))
    lo = min(float(np.quantile(a, 0.005)) for a in both)
    hi = max(float(np.quantile(a, 0.995)) for a in both)
    middle = float(np.median(np.concatenate(both)))
    # Long right tails (amounts, counts) squash everything into one bar: use log bins.
    log = lo > 0 and middle > 0 and hi / middle > 10
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)
    shares = [np.histogram(np.clip(a, lo, hi), edges)[0] / max(a.size, 1) for a in (ref, now)]
    top = max(float(max(s.max() for s in shares)), 1e-12)
    plot_w, plot_h = W - 2 * PAD, H - 2 * PAD
    bar = plot_w / bins
    parts = []
    for colour, share in zip((REF, LIVE), shares, strict=True):
        for i, value in enumerate(share):
            h = plot_h * value / top
            x, y = PAD + i * bar, H - PAD - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}" fill-opacity="0.5"/>'
            )
    parts.append(f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>')
    parts += [label(PAD, H - PAD + 12, number(lo)), label(W - PAD, H - PAD + 12, number(hi), "end")]
    centre = math.sqrt(lo * hi) if log else (lo + hi) / 2
    parts.append(
        label(W / 2, H - PAD + 12, number(centre) + (" (log scale)" if log else ""), "middle")
    )
    parts.append(label(PAD, PAD - 6, f"max {100 * top:.1f}% of rows per bin"))
    return svg("".join(parts))


def category_bars(reference: np.ndarray, live: np.ndarray, top: int = 10) -> str:
    ref, now = reference.astype(str), live.astype(str)
    names = sorted(set(ref.tolist()) | set(now.tolist()))
    share = {n: (float(np.mean(ref == n)) if ref.size else 0.0) for n in names}
    live_share = {n: (float(np.mean(now == n)) if now.size else 0.0) for n in names}
    names = sorted(names, key=lambda n: -(share[n] + live_share[n]))[:top]
    row, label_w = 22, 110
    height = PAD + row * len(names) + 8
    scale = (W - label_w - 50) / max(max(share.values()), max(live_share.values()), 1e-12)
    parts = []
    for i, name in enumerate(names):
        y = PAD / 2 + i * row
        parts.append(label(label_w - 6, y + 13, name[:18], "end"))
        for j, (colour, value) in enumerate(((REF, share[name]), (LIVE, live_share[name]))):
            w = value * scale
            parts.append(
                f'<rect x="{label_w}" y="{y + 2 + 9 * j:.1f}" width="{w:.1f}" height="8" '
                f'fill="{colour}"/>'
            )
            parts.append(label(label_w + w + 4, y + 10 + 9 * j, f"{100 * value:.1f}%"))
    return svg("".join(parts), int(height))


@dataclass(frozen=True)
class Series:
    """One line of a chart; ``marks`` flags points drawn big and red (a dataset drift)."""

    label: str
    times: Sequence[float]
    values: Sequence[float | None]
    colour: str
    marks: Sequence[bool] = ()


def line_chart(
    series: Sequence[Series], fmt: str = "{:.3g}", time_label: Callable[[float], str] = when
) -> str:
    """Lines over a shared time axis from 0 to the largest value; gaps where a value is None.

    ``time_label`` writes the axis's two ends (a date by default; a benchmark passes
    elapsed minutes)."""
    known = [
        (t, v)
        for one in series
        for t, v in zip(one.times, one.values, strict=True)
        if v is not None and math.isfinite(v)
    ]
    if not known:
        return svg(label(W / 2, H / 2, "no data in this period", "middle"))
    t0 = min(t for one in series for t in one.times)
    t1 = max(t for one in series for t in one.times)
    top = max(v for _, v in known) or 1.0
    span = t1 - t0
    parts = []
    for number, one in enumerate(series):
        segments: list[list[str]] = [[]]
        for i, (t, v) in enumerate(zip(one.times, one.values, strict=True)):
            if v is None or not math.isfinite(v):
                segments.append([])
                continue
            x = PAD + (W - 2 * PAD) * (t - t0) / span if t1 > t0 else W / 2
            y = H - PAD - (H - 2 * PAD) * v / top
            segments[-1].append(f"{x:.1f},{y:.1f}")
            red = i < len(one.marks) and one.marks[i]
            colour, radius = (BAD, 3.5) if red else (one.colour, 2.0)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}"/>')
        parts += [
            f'<polyline points="{" ".join(s)}" fill="none" stroke="{one.colour}" '
            f'stroke-width="1.5"/>'
            for s in segments
            if len(s) > 1
        ]
        if len(series) > 1:
            parts.append(f'<text x="{W - PAD}" y="{PAD - 6 + 11 * number}" text-anchor="end" '
                         f'style="fill:{one.colour}">{html.escape(one.label)}</text>')  # fmt: skip
    parts.append(f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>')
    parts += [
        label(PAD, H - PAD + 12, time_label(t0)),
        label(W - PAD, H - PAD + 12, time_label(t1), "end"),
    ]
    parts += [label(PAD, PAD - 6, "max " + fmt.format(top)), label(PAD - 4, H - PAD, "0", "end")]
    return svg("".join(parts))


def card(title: str, chart: str, note: str = "", drifted: bool = False) -> str:
    extra = f'<div class="muted">{html.escape(note)}</div>' if note else ""
    css = "card drifted" if drifted else "card"
    return f'<div class="{css}"><h3>{html.escape(title)}</h3>{chart}{extra}</div>'
