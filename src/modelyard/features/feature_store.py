"""``FeatureStore``: the feature store a Python user holds (``yard.features``).

One object over one home: the definitions (``registry``), the online store, the
offline data. It adds nothing of its own: each method is the context's function with
the home's settings and the current definitions filled in, so a user writes
``yard.features.get_online_features({"card_id": ["c1"]}, ["card_stats:count_1h"])``
instead of wiring the store, the views and the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from modelyard.config.settings import Settings
from modelyard.features.apply import ApplyPlan
from modelyard.features.definition_set import Definitions
from modelyard.features.definitions import FeatureRef, FeatureView, StreamSource
from modelyard.features.materialize import (
    Materialized,
    Progress,
    materialize,
    materialize_incremental,
)
from modelyard.features.offline.engine import OfflineOptions
from modelyard.features.offline.training import get_training_set
from modelyard.features.online import OnlineFeatures, OnlineStore, get_online_features
from modelyard.features.push import PushResult, push
from modelyard.features.registry import FeatureRegistry


class FeatureStore:
    """Definitions, training sets, materialization, online reads and pushes over one home
    (see the module docstring)."""

    def __init__(
        self,
        registry: FeatureRegistry,
        online: OnlineStore,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.online = online
        self._settings = settings
        self._clock = clock

    def apply(self, objects: Definitions | Iterable[object], *, dry_run: bool = False) -> ApplyPlan:
        """Make the stored definitions ``objects`` (entities, views, on-demand features):
        what is stored and not given is removed, as ``modelyard features apply`` does."""
        definitions = objects if isinstance(objects, Definitions) else Definitions.collect(objects)
        return self.registry.apply(definitions, actor=self._settings.user, dry_run=dry_run)

    def get_online_features(
        self,
        entity_keys: Any,
        refs: Sequence[str | FeatureRef],
        *,
        at: Any = None,
        full_names: bool = False,
    ) -> OnlineFeatures:
        """The features ``refs`` of ``entity_keys`` as of ``at`` (default: now)."""
        views = self.registry.definitions().views
        moment = self._clock() if at is None else at
        return get_online_features(
            self.online, views, entity_keys, refs, moment, full_names=full_names
        )

    def push(self, stream: StreamSource | str, events: Any) -> PushResult:
        """Apply ``events`` of ``stream`` offline and online (``features.push``), with the
        settings' lateness and batch limits."""
        features = self._settings.features
        return push(
            stream,
            self.registry.definitions().views,
            events,
            store=self.online,
            offline_dir=self._settings.resolved_offline_dir,
            now=self._clock(),
            allowed_lateness_s=features.allowed_lateness_s,
            max_events=features.push_max_events,
        )

    def get_training_set(
        self,
        entity_frame: Any,
        refs: Sequence[str | FeatureRef],
        *,
        timestamp: str = "event_timestamp",
        full_names: bool = False,
        leakage_guard: bool = True,
    ) -> Any:
        """``entity_frame`` (pandas, polars or Arrow) with the features ``refs`` as of each
        row's ``timestamp``, point-in-time correct (``offline.training``)."""
        options = OfflineOptions.from_settings(self._settings, leakage_guard=leakage_guard)
        return get_training_set(
            entity_frame,
            refs,
            self.registry.definitions().views,
            timestamp=timestamp,
            options=options,
            full_names=full_names,
        )

    def materialize(
        self,
        start: float | datetime | None,
        end: float | datetime,
        *,
        views: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> list[Materialized]:
        """Write the online views (all, or ``views``) from their rows with ``event_time`` in
        ``[start, end]``; the watermarks stay where they are."""
        return materialize(
            self._online_views(views), self.online, start, end,
            options=self._settings, progress=progress,
        )  # fmt: skip

    def materialize_incremental(
        self,
        end: float | datetime | None = None,
        *,
        views: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> list[Materialized]:
        """Write what arrived since each view's watermark, up to ``end`` (default now)."""
        moment = self._clock() if end is None else end
        return materialize_incremental(
            self._online_views(views), self.online, moment,
            options=self._settings, progress=progress,
        )  # fmt: skip

    def _online_views(self, names: Sequence[str] | None) -> list[FeatureView]:
        if names is None:
            return [view for view in self.registry.definitions().views if view.online]
        return [self.registry.view(name) for name in names]

    def close(self) -> None:
        self.online.close()
