"""``modelyard deploy``'s target flags: where a deployment runs, read into a ``routing.Target``.

``--target builtin|ray|kserve``, ``--min-replicas``/``--max-replicas`` (Ray Serve's
autoscaling, KServe's predictor), and for kserve the renderer's options: ``--image``,
``--namespace`` and ``--option KEY=VALUE`` for the rest (``cpu=2``, ``mode=knative``,
...). A kserve target is checked by rendering it once, so a deployment is never stored
with options its push would refuse.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from modelyard.errors import ValidationError
from modelyard.platforms import OPTION_KEYS, PUSHED_TARGETS, target_options
from modelyard.routing import TARGETS, Deployment, DeploymentStore, Target

__all__ = ["TargetFlags", "platform_status", "target_from_flags"]

TargetKind = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="Where it runs: builtin (modelyard's servers), ray (serve --backend ray) or "
        "kserve (the leader pushes its InferenceService after each step).",
    ),
]
MinReplicas = Annotated[
    int | None, typer.Option(min=1, help="ray/kserve: fewest replicas (autoscaling floor).")
]
MaxReplicas = Annotated[
    int | None, typer.Option(min=1, help="ray/kserve: most replicas (autoscaling ceiling).")
]
Image = Annotated[str | None, typer.Option(help="kserve: the modelyard image its pods run.")]
Namespace = Annotated[str | None, typer.Option(help="kserve: the namespace of its objects.")]
Options = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        metavar="KEY=VALUE",
        help=f"kserve: a rendering option, repeatable ({', '.join(OPTION_KEYS)}).",
    ),
]


class TargetFlags:
    """The target flags as given (None: not given)."""

    def __init__(
        self,
        kind: str | None,
        min_replicas: int | None,
        max_replicas: int | None,
        image: str | None,
        namespace: str | None,
        options: list[str] | None,
    ) -> None:
        self.kind = kind
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.options: dict[str, str] = _pairs(options or [])
        if image is not None:
            self.options["image"] = image
        if namespace is not None:
            self.options["namespace"] = namespace

    @property
    def given(self) -> bool:
        return bool(
            self.kind is not None
            or self.min_replicas is not None
            or self.max_replicas is not None
            or self.options
        )


def target_from_flags(flags: TargetFlags, current: Target | None = None) -> Target | None:
    """The target the flags describe: a new one with ``--target``, else ``current`` with the
    flags given changed; None when no flag was given."""
    if not flags.given:
        return None
    base = current or Target()
    if flags.kind is not None and flags.kind != base.kind:
        if flags.kind not in TARGETS:
            raise ValidationError(f"--target must be one of {list(TARGETS)}, got {flags.kind!r}")
        base = Target(flags.kind)
    target = Target(
        base.kind,
        flags.min_replicas if flags.min_replicas is not None else base.min_replicas,
        flags.max_replicas if flags.max_replicas is not None else base.max_replicas,
        {**base.options, **flags.options},
    )
    if target.kind == "kserve":
        target_options(target)  # refuses what the leader's render would
    return target


def _pairs(texts: list[str]) -> dict[str, str]:
    found = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--option must be KEY=VALUE, got {text!r}")
        found[key.strip()] = value.strip()
    return found


def platform_status(store: DeploymentStore, deployment: Deployment) -> dict[str, Any] | None:
    """Whether the platform has the deployment's current revision: the last push (or
    failed push) of a deployment whose target is pushed; None for the others."""
    if deployment.config.target.kind not in PUSHED_TARGETS:
        return None
    found = store.events(deployment.name, "platform.", limit=1)
    last = found[0] if found else None
    pushed = store.events(deployment.name, "platform.pushed", limit=1)
    return {
        "target": deployment.config.target.kind,
        "revision": deployment.revision,
        "pushed_revision": pushed[0].payload.get("revision") if pushed else None,
        "last": None
        if last is None
        else {"at": last.at, "event": last.kind, "reason": last.reason, **last.payload},
    }
