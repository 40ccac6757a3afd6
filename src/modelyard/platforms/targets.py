"""A deployment's target as the renderer's options, and the manifests a target is pushed.

``modelyard deploy --target kserve --image ... --option cpu=2`` stores the renderer's
options with the deployment (``routing.Target.options``), so the leader re-renders the
same objects after every rollout step without a command line: ``target_options`` turns
them back into ``ClusterOptions`` and a KServe mode, checking each (an unknown option or
a bad value is a ``ValidationError`` naming it), and ``render_target`` renders them.
Pure: a deployment in, documents out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from modelyard.errors import ValidationError
from modelyard.platforms.kserve import MODES, KServeMode, render_kserve
from modelyard.platforms.pod import ClusterOptions
from modelyard.routing import Deployment, Target

__all__ = ["OPTION_KEYS", "PUSHED_TARGETS", "render_target", "target_options"]

# What each option of a kserve target is, as ``k8s render`` names its flags.
_STRINGS = ("image", "namespace", "name", "secret", "artifacts_url", "cpu", "memory", "mode")
_INTEGERS = ("workers", "target_cpu_percent")
OPTION_KEYS = (*_STRINGS, *_INTEGERS)
# Targets whose platform splits the traffic, so each change is pushed to it.
PUSHED_TARGETS = ("kserve",)


def target_options(target: Target) -> tuple[ClusterOptions, KServeMode]:
    """The ``ClusterOptions`` and KServe mode of a kserve ``target``."""
    options: Mapping[str, Any] = target.options
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ValidationError(
            f"target option(s) {unknown} unknown; a kserve target takes {list(OPTION_KEYS)}"
        )
    if "image" not in options:
        raise ValidationError("a kserve target needs an image: --image (the modelyard image)")
    for key in _INTEGERS:
        if key in options:
            options = {**options, key: _integer(key, options[key])}
    for key in _STRINGS:
        if key in options and not isinstance(options[key], str):
            raise ValidationError(f"target option {key} must be text, got {options[key]!r}")
    mode = str(options.get("mode", "standard"))
    if mode not in MODES:
        raise ValidationError(f"target option mode must be one of {list(MODES)}, got {mode!r}")
    fields: dict[str, Any] = {k: v for k, v in options.items() if k != "mode"}
    if target.min_replicas is not None:
        fields["min_replicas"] = target.min_replicas
    if target.max_replicas is not None:
        fields["max_replicas"] = target.max_replicas
    return ClusterOptions(**fields), mode  # type: ignore[return-value]


def render_target(
    deployment: Deployment, *, artifacts_url: str | None = None
) -> list[dict[str, Any]]:
    """The manifests that serve ``deployment`` on its target (a kserve one);
    ``artifacts_url``: the store the pods read when the target names none (the server's
    own, when the pods can reach it: an object store)."""
    target = deployment.config.target
    if target.kind not in PUSHED_TARGETS:
        raise ValidationError(
            f"deployment {deployment.name!r} targets {target.kind!r}: nothing to push "
            f"(pushed targets: {list(PUSHED_TARGETS)})"
        )
    options, mode = target_options(target)
    if options.artifacts_url is None and artifacts_url is not None:
        options = replace(options, artifacts_url=artifacts_url)
    return render_kserve(deployment, options, mode)


def _integer(key: str, value: object) -> int:
    if isinstance(value, bool):
        raise ValidationError(f"target option {key} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValidationError(f"target option {key} must be an integer, got {value!r}")
