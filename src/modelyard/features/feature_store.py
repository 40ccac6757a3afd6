"""``FeatureStore``: the feature store a Python user holds (``yard.features``).

One object over one home: the definitions (``registry``), the online store, the
offline data. It adds nothing of its own: each method is the context's function with
the home's settings filled in, so a user writes
``yard.features.get_online_features({"card_id": ["c1"]}, ["card_stats:count_1h"])``
instead of wiring the store, the views and the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from modelyard.config.settings import Settings
from modelyard.features.apply import ApplyPlan
from modelyard.features.definition_set import Definitions
from modelyard.features.definitions import FeatureRef, StreamSource
from modelyard.features.online import OnlineFeatures, OnlineStore, get_online_features
from modelyard.features.push import PushResult, push
from modelyard.features.registry import FeatureRegistry


class FeatureStore:
    """Definitions, online reads and pushes over one home (see the module docstring)."""

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

    def close(self) -> None:
        self.online.close()
