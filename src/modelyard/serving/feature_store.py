"""Connecting a serving worker to the feature store: reads for the deployments that fetch
features, and ``POST /v1/features/push``.

``StoreFeatures`` is the ``FeatureSource`` a worker's deployments read through: for a
deployment's ``FeatureInputs`` it checks the views and features against the
definitions, plans one ``OnlineQuery`` (planned once, read per micro-batch) and hands
back a reader of the online store. ``FeaturePush`` applies pushed events with the
settings' limits; a blocking write, so the endpoint runs it off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelyard.errors import MalformedRequestError, ValidationError
from modelyard.features.definitions import parse_refs
from modelyard.features.feature_store import FeatureStore
from modelyard.features.online import OnlineQuery, OnlineStore
from modelyard.features.registry import FeatureRegistry
from modelyard.routing import FeatureInputs
from modelyard.serving.hosting.features import FeatureReader, Fetched


class StoreFeatures:
    """The ``FeatureSource`` over the feature definitions and the online store."""

    def __init__(self, registry: FeatureRegistry, online: OnlineStore) -> None:
        self._registry = registry
        self._online = online

    def reader(self, inputs: FeatureInputs) -> tuple[FeatureReader, str, str]:
        refs = parse_refs(inputs.refs)
        views = {ref.view: self._registry.view(ref.view) for ref in refs}
        entities = {view.entity for view in views.values()}
        if len(entities) != 1:
            names = sorted(entity.name for entity in entities)
            raise ValidationError(
                f"a deployment fetches the features of one entity; {list(inputs.refs)} "
                f"belong to {names}"
            )
        (entity,) = entities
        query = OnlineQuery(views, refs)
        online = self._online

        def read(keys: Sequence[str], at: float) -> Fetched:
            found = query.read(online, list(keys), at)
            columns = {
                name: np.array(values, dtype=object) for name, values in found.columns.items()
            }
            return Fetched(columns, np.array(found.all_found, dtype=bool))

        return read, entity.key, entity.dtype


class FeaturePush:
    """``POST /v1/features/push``: ``{"stream": name, "events": [{...}, ...]}``."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store

    def __call__(self, document: object) -> dict[str, Any]:
        if type(document) is not dict or type(document.get("stream")) is not str:
            raise MalformedRequestError(
                'the body must be a JSON object like {"stream": "name", "events": [{...}]}'
            )
        events = document.get("events")
        if type(events) is not list:
            raise MalformedRequestError("'events' must be a list of event objects")
        return self._store.push(document["stream"], events).to_dict()
