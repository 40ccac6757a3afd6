"""The demo in the terminal: a live panel (phase, traffic, latency, split, drift, latest
events) when the output is a terminal, one line per new phase or event otherwise (a CI
log, a pipe). ``panel`` is pure: a ``Progress`` in, a rich renderable out."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from modelyard.demos.fraud.demo import Progress

__all__ = ["DemoView", "panel"]

_EVENTS_SHOWN = 7


def _ms(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1f} ms"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%a %H:%M")


def panel(progress: Progress) -> RenderableType:
    """The live panel of one moment of the run."""
    stats, seen = progress.stats, progress.observation
    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="bold")
    figures.add_column()
    timeline = progress.timeline
    if stats is not None:
        span = timeline.live_end - timeline.live_start
        done = (stats.simulated_time - timeline.live_start) / span if span else 1.0
        drift = "before" if stats.simulated_time < timeline.drift_at else "after"
        figures.add_row(
            "simulated time",
            f"{_clock(stats.simulated_time)} ({done:.0%} of the window, {drift} the drift)",
        )
        figures.add_row(
            "requests",
            f"{stats.requests_sent:,} sent, {stats.failed:,} failed, "
            f"{stats.requests_per_s:.0f}/s; p50 {_ms(stats.latency_p50_ms)}, "
            f"p99 {_ms(stats.latency_p99_ms)}",
        )
        figures.add_row(
            "fraud",
            f"{stats.fraud_caught}/{stats.fraud_seen} caught, {stats.flagged:,} flagged; "
            f"{stats.labels_sent:,} labels in, {stats.labels_pending:,} to come",
        )
        split = ", ".join(f"v{v}: {n:,}" for v, n in sorted(stats.versions.items()))
        figures.add_row("answered by", split or "-")
    events = Text()
    if seen is not None:
        canary = (
            f", canary v{seen.canary} at {seen.canary_weight:g}%" if seen.canary is not None else ""
        )
        figures.add_row("serving", f"champion v{seen.champion}{canary}")
        if seen.drift_share is not None:
            drifted = ", ".join(seen.drifted) or "none"
            figures.add_row("drift", f"{seen.drift_share:.0%} of inputs drifted ({drifted})")
        for event in seen.story[-_EVENTS_SHOWN:]:
            events.append(f"{event.kind:<20}", style="cyan")
            events.append(f"{event.text[:110]}\n")
    body: list[RenderableType] = [figures]
    if events:
        events.rstrip()
        body.append(Panel(events, title="latest events", border_style="dim"))
    title = f"modelyard fraud demo · {progress.phase} · {progress.elapsed_s:.0f} s"
    return Panel(Group(*body), title=title, border_style="green")


class DemoView:
    """Shows ``Progress`` as it comes: ``with DemoView(console) as view: view.show(p)``."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live = Live(console=console, refresh_per_second=4, transient=False)
        self._phase = ""
        self._events_seen = 0

    def __enter__(self) -> DemoView:
        if self._console.is_terminal:
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._console.is_terminal:
            self._live.stop()

    def show(self, progress: Progress) -> None:
        if self._console.is_terminal:
            self._live.update(panel(progress))
            return
        # A log: only what changed.
        if progress.phase != self._phase:
            self._phase = progress.phase
            self._console.print(f"[{progress.elapsed_s:5.0f} s] {progress.phase}", highlight=False)
        story = progress.observation.story if progress.observation else ()
        for event in story[self._events_seen :]:
            self._console.print(
                f"[{progress.elapsed_s:5.0f} s]   {event.kind}: {event.text}", highlight=False
            )
        self._events_seen = max(self._events_seen, len(story))
