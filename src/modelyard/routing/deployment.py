"""What a deployment serves, as plain data, and the routing decision for one request.

A deployment is an endpoint name mapped to a champion version plus, optionally,
a canary with a traffic weight, shadow versions, or an A/B experiment.
``DeploymentConfig`` validates itself (the message names the field);
``Deployment`` adds the stored rollout and revision, and ``route`` picks the arm
that answers a request (sticky by routing key) and the shadows that see it.
Nothing here touches the database: ``deployment_store.DeploymentStore`` and its repository do.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from modelyard.errors import ConflictError, ValidationError
from modelyard.registry.refs import check_alias, check_model_name
from modelyard.registry.signature import Signature
from modelyard.routing.assignment import TrafficSplit
from modelyard.routing.canary import RolloutPolicy, RolloutState
from modelyard.routing.experiments import Experiment
from modelyard.routing.targets import Target

__all__ = [
    "Change",
    "Deployment",
    "DeploymentConfig",
    "Event",
    "FeatureInputs",
    "HistoryEntry",
    "Rollout",
    "Destination",
    "RoutingKey",
    "Shadow",
    "describe_input_difference",
    "dumps",
]


@dataclass(frozen=True)
class RoutingKey:
    """Where a request's sticky key comes from: a header (``header:x-user-id``) or a field."""

    source: Literal["header", "field"]
    name: str

    def __post_init__(self) -> None:
        if self.source not in ("header", "field") or not self.name:
            raise ValidationError(
                f"routing_key must be 'header:<name>' or 'field:<name>', got {str(self)!r}"
            )

    @classmethod
    def parse(cls, text: str) -> RoutingKey:
        source, _, name = text.partition(":")
        if source not in ("header", "field"):
            raise ValidationError(
                f"routing_key must be 'header:<name>' or 'field:<name>', got {text!r}"
            )
        return cls("header" if source == "header" else "field", name)

    def extract(self, headers: Mapping[str, str], fields: Mapping[str, Any]) -> str | None:
        """The key of one request (headers case-insensitively), or None if it has none."""
        if self.source == "header":
            wanted = self.name.lower()
            return next((v for k, v in headers.items() if k.lower() == wanted), None)
        value = fields.get(self.name)
        return None if value is None else str(value)

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


@dataclass(frozen=True)
class Shadow:
    """A version that sees a ``share`` (0-1] of requests; its answers are never returned."""

    version: int
    share: float


_FEATURE_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}:[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DEFAULT_TYPES = (int, float, str, bool, type(None))


@dataclass(frozen=True)
class FeatureInputs:
    """Model inputs a deployment fetches from the feature store instead of the request.

    Each ``view:feature`` of ``refs`` fills the model input named after the feature; a
    request then carries its entity's key (the views' entity key field) and the other
    inputs. An entity the online store does not know is answered as ``on_missing``
    says: ``"reject"`` (422 naming the entity) or ``"defaults"`` (each feature's value
    in ``defaults``, else null).

    Features are read as of the server's clock unless ``event_time`` names a request
    field holding each row's event time (epoch seconds, a number): each row's features
    are then read as of ``min(event time, server clock)``, so a stream consumer minutes
    behind, or a replay of past transactions, gets the features as they were at the
    event rather than at its arrival; a request can never read the future. The field is
    required in every request, and is passed on to the model only if it is one of the
    model's inputs. It must not be the entity key nor a fetched feature.
    """

    refs: tuple[str, ...]
    on_missing: Literal["reject", "defaults"] = "reject"
    defaults: Mapping[str, int | float | str | bool | None] = field(default_factory=dict)
    event_time: str | None = None

    def __post_init__(self) -> None:
        refs = tuple(self.refs)
        object.__setattr__(self, "refs", refs)
        object.__setattr__(self, "defaults", dict(self.defaults))
        if not refs:
            raise ValidationError("features must name at least one 'view:feature'")
        for ref in refs:
            if not isinstance(ref, str) or not _FEATURE_REF.match(ref):
                raise ValidationError(f"features: {ref!r} is not a 'view:feature' reference")
        names = [ref.split(":")[1] for ref in refs]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValidationError(f"features: two references fill the input(s) {doubled}")
        if self.on_missing not in ("reject", "defaults"):
            raise ValidationError(
                f"features.on_missing must be 'reject' or 'defaults', got {self.on_missing!r}"
            )
        unknown = sorted(set(self.defaults) - set(names))
        if unknown:
            raise ValidationError(
                f"features.defaults names no feature of the deployment: {unknown}"
            )
        for name, value in self.defaults.items():
            if not isinstance(value, _DEFAULT_TYPES):
                raise ValidationError(
                    f"features.defaults[{name!r}] must be a number, string, boolean or null"
                )
        if self.event_time is not None:
            if not isinstance(self.event_time, str) or not self.event_time:
                raise ValidationError(
                    f"features.event_time must name a request field, got {self.event_time!r}"
                )
            if self.event_time in names:
                raise ValidationError(
                    f"features.event_time {self.event_time!r} is a fetched feature; it must "
                    "name a field the request carries"
                )

    @property
    def inputs(self) -> list[str]:
        """The model inputs the features fill, in the order of ``refs``."""
        return [ref.split(":")[1] for ref in self.refs]

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "refs": list(self.refs),
            "on_missing": self.on_missing,
            "defaults": self.defaults,
        }
        if self.event_time is not None:  # absent otherwise: the form stored before it existed
            found["event_time"] = self.event_time
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureInputs:
        return cls(
            tuple(data["refs"]),
            data.get("on_missing", "reject"),
            data.get("defaults", {}),
            data.get("event_time"),
        )


@dataclass(frozen=True)
class DeploymentConfig:
    """What a deployment serves. ``canary_weight`` is a percentage (0-100) of traffic.

    ``log_sample_rate`` (share of requests kept in the inference log) and
    ``log_ttl_days`` (how long they are kept) override the server's monitoring
    settings for this deployment; None keeps those. ``target`` says where it runs
    (``routing.targets``).
    """

    model: str
    champion: int
    canary: int | None = None
    canary_weight: float = 0.0
    shadows: tuple[Shadow, ...] = ()
    experiment: Experiment | None = None
    routing_key: RoutingKey | None = None
    follow_alias: str | None = None
    log_sample_rate: float | None = None
    log_ttl_days: float | None = None
    features: FeatureInputs | None = None
    target: Target = field(default_factory=Target)

    def __post_init__(self) -> None:
        check_model_name(self.model)
        _optional_number("log_sample_rate", self.log_sample_rate, 0.0, 1.0)
        _optional_number("log_ttl_days", self.log_ttl_days, 0.0, math.inf)
        _version("champion", self.champion)
        weight = self.canary_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValidationError(f"canary_weight must be a number, got {weight!r}")
        if not 0 <= weight <= 100:
            raise ValidationError(f"canary_weight must be between 0 and 100, got {weight!r}")
        object.__setattr__(self, "canary_weight", float(weight))
        if self.canary is None:
            if weight:
                raise ValidationError(f"canary_weight is {weight:g} but no canary version is set")
        else:
            _version("canary", self.canary)
            if self.canary == self.champion:
                raise ValidationError(
                    f"canary must differ from the champion, both are version {self.champion}"
                )
        shadows = tuple(self.shadows)
        object.__setattr__(self, "shadows", shadows)
        for i, shadow in enumerate(shadows):
            _version(f"shadows[{i}].version", shadow.version)
            if not (isinstance(shadow.share, int | float) and 0 < shadow.share <= 1):
                raise ValidationError(f"shadows[{i}].share must be in (0, 1], got {shadow.share!r}")
        listed = [s.version for s in shadows]
        if len(set(listed)) != len(listed) or self.champion in listed:
            raise ValidationError(
                f"shadows must be distinct versions other than the champion "
                f"({self.champion}), got {listed}"
            )
        if self.experiment is not None and self.canary is not None:
            raise ValidationError("a deployment runs a canary or an experiment, not both")
        if self.follow_alias is not None:
            check_alias(self.follow_alias)

    @property
    def versions(self) -> frozenset[int]:
        """Every version this configuration sends traffic to (primary or shadow)."""
        found = {self.champion, *(s.version for s in self.shadows)}
        if self.canary is not None:
            found.add(self.canary)
        if self.experiment is not None:
            found.update(a.version for a in self.experiment.arms)
        return frozenset(found)

    def role_of(self, version: int) -> str:
        """What ``version`` does here: champion, canary, experiment arm or shadow."""
        if version == self.champion:
            return "champion"
        if version == self.canary:
            return "canary"
        if self.experiment is not None:
            arms = [a.name for a in self.experiment.arms if a.version == version]
            if arms:
                return f"experiment arm {arms[0]}"
        return "shadow"

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "model": self.model,
            "champion": self.champion,
            "canary": self.canary,
            "canary_weight": self.canary_weight,
            "shadows": [{"version": s.version, "share": s.share} for s in self.shadows],
            "experiment": None if self.experiment is None else self.experiment.to_dict(),
            "routing_key": None if self.routing_key is None else str(self.routing_key),
            "follow_alias": self.follow_alias,
            "log_sample_rate": self.log_sample_rate,
            "log_ttl_days": self.log_ttl_days,
            "features": None if self.features is None else self.features.to_dict(),
        }
        if not self.target.is_default:  # absent otherwise: the form stored before it existed
            found["target"] = self.target.to_dict()
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentConfig:
        experiment, key = data.get("experiment"), data.get("routing_key")
        features = data.get("features")
        return cls(
            model=data["model"],
            champion=data["champion"],
            canary=data.get("canary"),
            canary_weight=data.get("canary_weight", 0.0),
            shadows=tuple(Shadow(s["version"], s["share"]) for s in data.get("shadows", ())),
            experiment=None if experiment is None else Experiment.from_dict(experiment),
            routing_key=None if key is None else RoutingKey.parse(key),
            follow_alias=data.get("follow_alias"),
            log_sample_rate=data.get("log_sample_rate"),
            log_ttl_days=data.get("log_ttl_days"),
            features=None if features is None else FeatureInputs.from_dict(features),
            target=Target.from_dict(data.get("target") or {}),
        )


def _optional_number(name: str, value: object, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        allowed = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
        raise ValidationError(f"{name} must be a number {allowed}, got {value!r}")


def _version(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a version number (an integer >= 1), got {value!r}")


@dataclass(frozen=True)
class Rollout:
    """A canary rollout as stored: the version, its policy, where it stands, the last analysis."""

    canary: int
    policy: RolloutPolicy
    state: RolloutState
    checked_at: float
    started_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "canary": self.canary,
            "policy": self.policy.to_dict(),
            "state": self.state.to_dict(),
            "checked_at": self.checked_at,
            "started_by": self.started_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        return cls(
            int(data["canary"]),
            RolloutPolicy.from_dict(data["policy"]),
            RolloutState.from_dict(data["state"]),
            float(data["checked_at"]),
            data.get("started_by"),
        )


@dataclass(frozen=True)
class Destination:
    """Where one request goes: the arm and version that answer, and the shadows to mirror."""

    arm: str
    version: int
    shadows: tuple[int, ...] = ()


@dataclass(frozen=True)
class Deployment:
    """A stored deployment. ``route`` is the per-request decision serving makes."""

    name: str
    config: DeploymentConfig
    rollout: Rollout | None
    revision: int
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """The deployment as stored, as JSON-ready data (``--json``, the dashboard)."""
        return {
            "name": self.name,
            "config": self.config.to_dict(),
            "rollout": None if self.rollout is None else self.rollout.to_dict(),
            "revision": self.revision,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @property
    def rollout_active(self) -> bool:
        return self.rollout is not None and self.rollout.state.active

    def require_idle(self, action: str) -> None:
        """Refuse ``action`` while a rollout or an experiment runs (ConflictError)."""
        if self.rollout is not None and self.rollout.state.active:
            state = self.rollout.state
            raise ConflictError(
                f"cannot {action} on {self.name!r}: a rollout of version "
                f"{self.rollout.canary} is {state.phase} at {state.weight:g}%; "
                "promote or abort it first"
            )
        if self.config.experiment is not None:
            raise ConflictError(
                f"cannot {action} on {self.name!r}: an experiment is running; stop it first"
            )

    @cached_property
    def arms(self) -> dict[str, int]:
        """Arm name -> version: ``champion``/``canary``, or the experiment's arms."""
        config = self.config
        if config.experiment is not None:
            return {a.name: a.version for a in config.experiment.arms}
        found = {"champion": config.champion}
        if config.canary is not None:
            found["canary"] = config.canary
        return found

    @cached_property
    def traffic(self) -> TrafficSplit:
        """The weighted split; experiments get their own salt so users are reshuffled."""
        config = self.config
        if config.experiment is not None:
            weights = {a.name: a.weight for a in config.experiment.arms}
            salt = f"{self.name}/experiment/{config.experiment.started_at!r}"
            return TrafficSplit(weights, salt)
        weights = {"champion": 100.0 - config.canary_weight}
        if config.canary is not None:
            weights["canary"] = config.canary_weight
        return TrafficSplit(weights, self.name)

    def route(self, key: str | bytes | None, draw: float, shadow_draw: float = 1.0) -> Destination:
        """Pick the arm (sticky by ``key`` when given, else by ``draw`` in [0, 1)) and shadows.

        A shadow gets the request when ``shadow_draw`` (uniform in [0, 1)) is below its share.
        """
        arm = self.traffic.assign(key, draw=draw)
        mirrored = tuple(s.version for s in self.config.shadows if shadow_draw < s.share)
        return Destination(arm, self.arms[arm], mirrored)


@dataclass(frozen=True)
class HistoryEntry:
    revision: int
    at: float
    actor: str | None
    reason: str
    config: DeploymentConfig


@dataclass(frozen=True)
class Event:
    at: float
    kind: str
    subject: str
    reason: str
    payload: dict[str, Any]
    actor: str | None


@dataclass(frozen=True)
class Change:
    """What a mutation writes: the new config and rollout, the history reason, the events."""

    config: DeploymentConfig
    rollout: Rollout | None
    reason: str
    events: tuple[tuple[str, str, Mapping[str, Any]], ...] = field(default=())


def describe_input_difference(champion: Signature, other: Signature) -> str:
    """How two ``Signature``s' inputs differ, e.g. ``missing inputs f6, f7``."""
    parts = []
    if champion.layout != other.layout:
        parts.append(f"layout {other.layout} instead of {champion.layout}")
    mine = {s.name: s for s in champion.inputs}
    theirs = {s.name: s for s in other.inputs}
    missing = [n for n in mine if n not in theirs]
    extra = [n for n in theirs if n not in mine]
    if missing:
        parts.append("missing inputs " + ", ".join(missing))
    if extra:
        parts.append("extra inputs " + ", ".join(extra))
    for name in (n for n in mine if n in theirs):
        a, b = mine[name], theirs[name]
        if (a.dtype, tuple(a.shape)) != (b.dtype, tuple(b.shape)):
            parts.append(f"{name} is {b.dtype}{list(b.shape)} instead of {a.dtype}{list(a.shape)}")
    return "; ".join(parts) or "the inputs are in a different order"


def dumps(value: Any) -> str:
    """JSON with non-finite floats as strings ("inf"), so any JSON reader can parse it."""

    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return str(item)
        if isinstance(item, Mapping):
            return {str(k): clean(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [clean(v) for v in item]
        return item

    return json.dumps(clean(value))
