"""Where a deployment runs: its target, kept with its configuration.

The same deployment (one registry entry, one canary policy, one rollback rule) runs on
any target; the target says who runs the pods and who splits a canary's traffic:

* ``builtin``: modelyard's own servers (one machine, several nodes, or the pods of
  ``modelyard k8s render``); they split the traffic themselves.
* ``ray``: ``modelyard serve`` on Ray Serve; the replicas split it as a server does,
  scaled between ``min_replicas`` and ``max_replicas``.
* ``kserve``: a KServe InferenceService; KServe splits a canary's traffic, and the
  leader's runner pushes the manifest again after each step, promotion and rollback
  (``runner.platform_sync``). ``options`` are the renderer's (image, namespace, ...;
  ``platforms.target_options`` checks them): routing keeps them and never reads them.

The rollout controller decides the same way whatever the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import ValidationError

__all__ = ["TARGETS", "Target"]

TARGETS = ("builtin", "ray", "kserve")
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class Target:
    """Where a deployment runs (``kind``), its replicas, and the platform's own options."""

    kind: str = "builtin"
    min_replicas: int | None = None
    max_replicas: int | None = None
    options: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", dict(self.options))
        if self.kind not in TARGETS:
            raise ValidationError(f"target must be one of {list(TARGETS)}, got {self.kind!r}")
        for name in ("min_replicas", "max_replicas"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValidationError(f"target.{name} must be an integer >= 1, got {value!r}")
        low, high = self.min_replicas, self.max_replicas
        if low is not None and high is not None and high < low:
            raise ValidationError(
                f"target.max_replicas ({high}) must be at least target.min_replicas ({low})"
            )
        if self.kind == "builtin" and (low is not None or high is not None or self.options):
            raise ValidationError(
                "target 'builtin' takes no replicas nor options: the servers you start are "
                "the replicas"
            )
        if self.kind == "ray" and self.options:
            raise ValidationError(
                f"target 'ray' takes replicas only, not options {sorted(self.options)}"
            )
        for key, value in self.options.items():
            if not isinstance(key, str) or not isinstance(value, _SCALARS):
                raise ValidationError(
                    f"target.options[{key!r}] must be a string, number or boolean, got {value!r}"
                )

    @property
    def is_default(self) -> bool:
        return self == Target()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        return cls(
            data.get("kind", "builtin"),
            data.get("min_replicas"),
            data.get("max_replicas"),
            data.get("options") or {},
        )
