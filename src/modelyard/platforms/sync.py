"""When to push a deployment's manifests to its platform: a pure decision.

The leader's ``runner.platform_sync`` reconciles rather than reacting to events: on
each tick it compares a deployment's revision with the last one it pushed, so every
change (a rollout step, a promotion, a rollback, an operator's edit from any process)
is pushed once, and a node that takes the lead over pushes what its predecessor had
not. A failed push is tried again after a delay that doubles up to ``cap_s``, so a
platform that is down is not hammered, and its failures stay visible as events.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PushState", "after_failure", "after_push", "push_due"]


@dataclass(frozen=True)
class PushState:
    """What was pushed for one deployment: its revision, the failures since, when to retry."""

    pushed_revision: int | None = None
    failures: int = 0
    retry_at: float = 0.0


def push_due(state: PushState, revision: int, now: float) -> bool:
    """Whether ``revision`` must be pushed now."""
    return state.pushed_revision != revision and now >= state.retry_at


def after_push(revision: int) -> PushState:
    return PushState(revision)


def after_failure(
    state: PushState, now: float, *, base_s: float = 1.0, cap_s: float = 60.0
) -> PushState:
    """One more failure: the next try after ``base_s`` doubled per failure, at most ``cap_s``."""
    failures = state.failures + 1
    delay = min(cap_s, base_s * 2 ** (failures - 1))
    return PushState(state.pushed_revision, failures, now + delay)
