"""The feature store's periodic work as runner jobs: materializing the views, forgetting
events no read needs any more, and consuming Redis streams.

``MaterializeJob`` brings the online store up to date with the file and SQL sources of
the online views, incrementally from each view's watermark (``materialize``); views
fed by a stream are left out, as pushes write them online as they arrive.

``TrimEventsJob`` keeps the online store's events bounded: per stream, what neither a
read as of now (the views' largest windows) nor the recognition of a replay (the
allowed lateness) still needs (``push.trim_stream_events``). ``StreamJob`` runs one
``StreamConsumer`` (a Redis stream feeding a ``StreamSource``), polling again as soon
as a poll ends; a poll waits up to a second for messages, so a stop is prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from modelyard.features.definitions import StreamSource
from modelyard.features.feature_store import FeatureStore
from modelyard.features.online import OnlineStore
from modelyard.features.push import trim_stream_events
from modelyard.features.registry import FeatureRegistry
from modelyard.features.streams import StreamConsumer
from modelyard.runner.periodic import EventLog

TRIM_INTERVAL_S = 60.0


class MaterializeJob:
    """``materialize_incremental`` up to now for the online views not fed by a stream,
    every ``interval_s``."""

    name = "feature-materialize"
    failure_event = "feature_materialize_failed"
    wait_first = False

    def __init__(self, store: FeatureStore, *, interval_s: float) -> None:
        self._store = store
        self.interval_s = interval_s

    def tick(self, log: EventLog) -> None:
        views = [
            view.name
            for view in self._store.registry.definitions().views
            if view.online and not isinstance(view.source, StreamSource)
        ]
        if not views:
            return
        for done in self._store.materialize_incremental(views=views):
            if done.latest_written or done.events_added:
                log.emit(
                    "info",
                    "features_materialized",
                    {
                        "view": done.view,
                        "latest_written": done.latest_written,
                        "events_added": done.events_added,
                        "watermark": done.watermark,
                    },
                )


class TrimEventsJob:
    """``trim_stream_events`` for every stream some view reads, every ``interval_s``."""

    name = "feature-events-trim"
    failure_event = "feature_trim_failed"
    wait_first = True

    def __init__(
        self,
        registry: FeatureRegistry,
        online: OnlineStore,
        *,
        allowed_lateness_s: float,
        interval_s: float = TRIM_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._online = online
        self._lateness_s = allowed_lateness_s
        self.interval_s = interval_s
        self._clock = clock

    def tick(self, log: EventLog) -> None:
        views = self._registry.definitions().views
        streams = sorted({v.source.name for v in views if isinstance(v.source, StreamSource)})
        now = self._clock()
        removed = {
            stream: trim_stream_events(
                self._online, stream, views, now=now, allowed_lateness_s=self._lateness_s
            )
            for stream in streams
        }
        if any(removed.values()):
            log.emit("info", "feature_events_trimmed", {"removed": removed})


class StreamJob:
    """One Redis stream consumer, polled back to back."""

    failure_event = "feature_stream_failed"
    wait_first = False
    interval_s = 0.0

    def __init__(self, consumer: StreamConsumer) -> None:
        self._consumer = consumer
        self.name = f"feature-stream-{consumer.key}"

    def tick(self, log: EventLog) -> None:
        done = self._consumer.poll_once(block_ms=1000)
        if done.too_late or done.dead:
            log.emit(
                "warning",
                "feature_stream_events_refused",
                {"stream": self._consumer.key, "too_late": done.too_late, "dead": done.dead},
            )
