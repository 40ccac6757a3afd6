"""The recommender demo's report: Markdown and a self-contained HTML page with SVG plots
(``monitoring.charts``). Pure: it renders a ``RecommenderDemo``."""

from __future__ import annotations

import html
from pathlib import Path

from modelyard.demos.recommender.demo import Phase, RecommenderDemo
from modelyard.monitoring.charts import CSS, PALETTE, Series, card, line_chart

__all__ = ["render_html", "render_markdown", "write_report"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.2f} pts"


def _phase_lines(phase: Phase, catalogue: int) -> list[str]:
    lines = [f"## A/B test: {phase.title}", ""]
    lines += ["| arm | version | lists | CTR | clicks/list | coverage | p50 ms | p99 ms |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for f in phase.figures(catalogue):
        lines.append(
            f"| {f.arm} | {f.version} | {f.lists} | {_pct(f.ctr)} | {f.clicks / f.lists:.3f} | "
            f"{_pct(f.coverage)} | {f.latency_p50_ms:.1f} | {f.latency_p99_ms:.1f} |"
        )
    header = f"| look (day) | lift of {phase.treatment} | CI | always-valid p | verdict |"
    lines += ["", header, "|---|---|---|---|---|"]
    for day, look in enumerate(phase.looks, 1):
        ci = "-" if look.ci_low is None else f"{_signed(look.ci_low)} to {_signed(look.ci_high)}"
        p = "-" if look.p_value is None else f"{look.p_value:.3g}"
        lines.append(f"| {day} | {_signed(look.effect)} | {ci} | {p} | {look.verdict.value} |")
    last = phase.looks[-1]
    lines += [
        "",
        f"* verdict: **{last.verdict.value}**, may stop: **{last.may_stop}** ({last.reason})",
        f"* sample ratio (users per arm): p = {last.srm.p_value:.3g} "
        f"({'MISMATCH' if last.srm.mismatch else 'fine'})",
        f"* promoted: {phase.promoted or 'nothing'}",
        f"* `modelyard ab report` (the inference log joined to feedback, "
        f"{phase.logged.get('logged_lists', 0)} lists): {phase.logged.get('verdict', '-')}; "
        f"{phase.logged.get('reason', '')}",
        "",
    ]
    return lines


def render_markdown(demo: RecommenderDemo) -> str:
    s = demo.scenario
    lines = [
        "# modelyard recommender demo",
        "",
        f"{s.users} simulated users, {s.items} items, {s.visitors_per_day} visits a day, "
        f"lists of {s.k}, exploration epsilon {s.epsilon}; ran in {demo.seconds:.0f} s.",
        "",
        "## Offline quality (held-out: each user's latest two interactions)",
        "",
        "| model | NDCG@10 | recall@10 | coverage |",
        "|---|---|---|---|",
    ]
    for name, q in demo.offline.items():
        lines.append(f"| {name} | {q.ndcg:.4f} | {q.recall:.4f} | {_pct(q.coverage)} |")
    lines.append("")
    catalogue = demo.scenario.items
    for phase in demo.phases:
        lines += _phase_lines(phase, catalogue)
    lines += [
        "## Off-policy: a candidate judged on another arm's logged lists",
        "",
        "| candidate | logs of | IPS | SNIPS | truth | matched | effective sample | live |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for check in demo.off_policy:
        o = check.estimate
        lines.append(
            f"| {check.candidate} | {check.logs} | {o.ips:.3f} | {o.snips:.3f} | "
            f"{check.truth:.3f} | {o.matched_slots} | {o.effective_sample_size:.0f} | "
            f"{check.live:.3f} |"
        )
    lines += [
        "",
        "Click-through at the top slot. truth: the simulator's expected value of the",
        "candidate's greedy top item on the logged lists; live: its own arm later, exploring",
        "with epsilon. Far from the logging policy (few matches, a small effective sample)",
        "the estimate says little; near it, it is close to the truth.",
        "",
    ]
    lines += [f"The loop added {demo.retrained_rows} served clicks to the training log.", ""]
    return "\n".join(lines)


def _charts(demo: RecommenderDemo) -> str:
    parts = []
    for phase in demo.phases:
        series = []
        for number, arm in enumerate(phase.weights):
            ctr = []
            for day in phase.days:
                served = [s for s in day.served if s.arm == arm]
                ids = {c.request_id for c in day.clicks}
                ctr.append(sum(s.request_id in ids for s in served) / max(len(served), 1))
            days = [float(d) for d in range(1, len(phase.days) + 1)]
            series.append(Series(arm, days, ctr, PALETTE[number % len(PALETTE)]))
        parts.append(
            card(
                f"{phase.title}: CTR per day",
                line_chart(series, "{:.3f}", lambda d: f"day {d:.0f}"),
            )
        )
        by_position = [
            Series(
                f.arm,
                [float(p) for p in range(1, len(f.ctr_at_position) + 1)],
                list(f.ctr_at_position),
                PALETTE[n % len(PALETTE)],
            )  # fmt: skip
            for n, f in enumerate(phase.figures(demo.scenario.items))
        ]
        parts.append(
            card(
                f"{phase.title}: click-through by position",
                line_chart(by_position, "{:.3f}", lambda p: f"#{p:.0f}"),
                "position bias: lower slots are seen less",
            )  # fmt: skip
        )
    return "".join(parts)


def render_html(demo: RecommenderDemo) -> str:
    body = []
    for line in render_markdown(demo).splitlines():
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = "".join(
                f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|")
            )
            body.append(f"<table><tr>{cells}</tr></table>")
        elif line:
            body.append(f"<p>{html.escape(line.lstrip('* '))}</p>")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>recommender demo</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}<div class='cards'>{_charts(demo)}</div>"
        "</body></html>"
    )


def write_report(demo: RecommenderDemo, out: Path) -> tuple[Path, Path]:
    markdown, page = out / "report.md", out / "report.html"
    markdown.write_text(render_markdown(demo))
    page.write_text(render_html(demo))
    return markdown, page
