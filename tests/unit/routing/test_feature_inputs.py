"""A deployment's feature inputs: checked when configured, kept through storage, and
refused when a feature fills no input of the champion."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelyard.errors import ValidationError
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.routing import DeploymentConfig, DeploymentStore, FeatureInputs, InMemoryCatalog


def test_feature_inputs_round_trip_through_the_config() -> None:
    inputs = FeatureInputs(("card_stats:f1", "card_stats:f2"), "defaults", {"f1": 0.0})
    config = DeploymentConfig("m", 1, features=inputs)
    assert DeploymentConfig.from_dict(config.to_dict()) == config
    assert inputs.inputs == ["f1", "f2"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"refs": ()}, "at least one"),
        ({"refs": ("f1",)}, "not a 'view:feature'"),
        ({"refs": ("a:f1", "b:f1")}, r"two references fill the input\(s\) \['f1'\]"),
        ({"refs": ("a:f1",), "on_missing": "skip"}, "must be 'reject' or 'defaults'"),
        ({"refs": ("a:f1",), "defaults": {"f9": 1}}, r"names no feature.*\['f9'\]"),
        ({"refs": ("a:f1",), "defaults": {"f1": [1]}}, "must be a number"),
    ],
)
def test_bad_feature_inputs_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FeatureInputs(**kwargs)  # type: ignore[arg-type]


def test_a_feature_must_fill_an_input_of_the_champion(store: DeploymentStore) -> None:
    made = store.create("api", "m", 1, features=FeatureInputs(("stats:f1", "stats:f3")))
    assert made.config.features is not None
    with pytest.raises(ValidationError, match=r"features \['amount'\] fill no input of m/1"):
        store.create("other", "m", 1, features=FeatureInputs(("stats:amount",)))
    with pytest.raises(ValidationError, match=r"features \['f5'\] fill no input of m/1"):
        store.update("api", lambda c: replace(c, features=FeatureInputs(("stats:f5",))))


def test_the_event_time_field_round_trips_and_older_configs_load_without_it() -> None:
    inputs = FeatureInputs(("card_stats:f1",), event_time="event_ts")
    assert inputs.to_dict()["event_time"] == "event_ts"
    assert FeatureInputs.from_dict(inputs.to_dict()) == inputs
    config = DeploymentConfig("m", 1, features=inputs)
    assert DeploymentConfig.from_dict(config.to_dict()) == config
    stored_before = {"refs": ["card_stats:f1"], "on_missing": "reject", "defaults": {}}
    assert FeatureInputs.from_dict(stored_before).event_time is None
    assert FeatureInputs.from_dict(stored_before).to_dict() == stored_before


@pytest.mark.parametrize(
    ("event_time", "message"),
    [
        ("", "event_time must name a request field, got ''"),
        (3, "event_time must name a request field, got 3"),
        ("f1", "event_time 'f1' is a fetched feature"),
    ],
)
def test_a_bad_event_time_field_is_named(event_time: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FeatureInputs(("a:f1",), event_time=event_time)  # type: ignore[arg-type]


def test_an_event_time_input_of_the_champion_must_hold_numbers(
    store: DeploymentStore, catalog: InMemoryCatalog
) -> None:
    catalog.add(
        "text",
        Signature((FieldSpec("f1", "float32"), FieldSpec("when", "object")), layout="columns"),
    )
    timed = FeatureInputs(("stats:f1",), event_time="f0")
    assert store.create("api", "m", 1, features=timed).config.features == timed
    with pytest.raises(ValidationError, match="event_time 'when' is a string input of text/1"):
        store.create("other", "text", 1, features=FeatureInputs(("stats:f1",), event_time="when"))
