"""Judging an A/B test of two recommenders with routing's statistics.

The decision is ``routing.abtest.analyze`` (the always-valid mSPRT of the deployment
experiments), fed CTR per arm as ``Conversions`` (a list with a click is a success),
or, with a pre-period, per-user clicks adjusted by CUPED (Deng et al., WSDM 2013) as
``MeanSummary``. Before either, a sample-ratio-mismatch check: if the arms' list counts
are unlikely under the configured weights (chi-square p below 0.001, the usual
threshold), the assignment is broken and no verdict is trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from modelyard.errors import ValidationError
from modelyard.recommend.feedback import Click, Served, join_clicks
from modelyard.routing.abtest import (
    ArmReport,
    Conversions,
    ExperimentReport,
    ExperimentVerdict,
    MeanSummary,
    Sequential,
    analyze,
)

__all__ = [
    "AbReport",
    "Srm",
    "cuped",
    "judge_ctr",
    "judge_lists",
    "judge_per_user",
    "sample_ratio",
]

SRM_P = 0.001


@dataclass(frozen=True)
class Srm:
    p_value: float
    mismatch: bool
    counts: dict[str, int]
    expected_share: dict[str, float]


def sample_ratio(counts: Mapping[str, int], weights: Mapping[str, float]) -> Srm:
    """Chi-square goodness of fit of the arms' counts to their weights."""
    names = list(weights)
    if set(counts) - set(names):
        raise ValidationError(
            f"counts name arms without a weight: {sorted(set(counts) - set(names))}"
        )
    observed = np.asarray([counts.get(n, 0) for n in names], dtype=float)
    share = np.asarray([weights[n] for n in names], dtype=float)
    share = share / share.sum()
    total = observed.sum()
    p = 1.0 if total == 0 else float(stats.chisquare(observed, share * total).pvalue)
    return Srm(p, p < SRM_P, {n: int(c) for n, c in zip(names, observed, strict=True)},
               dict(zip(names, share.tolist(), strict=True)))  # fmt: skip


def cuped(outcome: np.ndarray, pre: np.ndarray) -> np.ndarray:
    """``outcome - theta * (pre - mean(pre))`` with ``theta = cov(pre, outcome) / var(pre)``,
    over all users of all arms (so the adjustment cannot favour one arm)."""
    y, x = np.asarray(outcome, dtype=float), np.asarray(pre, dtype=float)
    if y.shape != x.shape:
        raise ValidationError("cuped needs one pre-period value per user")
    variance = float(x.var())
    theta = float(np.cov(x, y, bias=True)[0, 1] / variance) if variance > 0 else 0.0
    return np.asarray(y - theta * (x - x.mean()))


@dataclass(frozen=True)
class AbReport:
    """What an A/B look says: the verdict, the effect and its interval, whether it may stop."""

    verdict: ExperimentVerdict
    winner: str | None
    reason: str
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    may_stop: bool
    srm: Srm
    report: ExperimentReport


def _wrap(report: ExperimentReport, treatment: str, srm: Srm) -> AbReport:
    arm: ArmReport = report.arm(treatment)
    stop = report.verdict is not ExperimentVerdict.CONTINUE and not srm.mismatch
    reason = (
        report.reason
        if not srm.mismatch
        else f"sample ratio mismatch (p={srm.p_value:.2g}): {report.reason}"
    )
    return AbReport(report.verdict, report.winner, reason, arm.lift, arm.ci_low, arm.ci_high,
                    arm.p_value, stop, srm, report)  # fmt: skip


def judge_ctr(
    lists: Mapping[str, int],
    clicked: Mapping[str, int],
    control: str,
    weights: Mapping[str, float],
    design: Sequential,
    previous: ExperimentReport | None = None,
    units: Mapping[str, int] | None = None,
) -> AbReport:
    """CTR per arm (lists with a click / lists) under the sequential design.

    ``units``: how many of what was randomised (distinct users, when assignment is
    sticky per user) each arm got, for the sample-ratio check; lists otherwise. Lists
    of one user are not independent draws of the split, so counting them would flag
    a mismatch whenever a few heavy users land in one arm."""
    arms = {name: Conversions(int(clicked.get(name, 0)), int(n)) for name, n in lists.items()}
    (treatment,) = [n for n in arms if n != control]
    report = analyze(arms, control, design, previous=previous)
    return _wrap(report, treatment, sample_ratio(units or lists, weights))


def judge_lists(
    served: Sequence[Served],
    clicks: Iterable[Click],
    control: str,
    weights: Mapping[str, float],
    design: Sequential,
    previous: ExperimentReport | None = None,
) -> AbReport:
    """``judge_ctr`` of served lists and the clicks on them: per arm, the lists, those with
    a click and the distinct users (the sample-ratio check's units). Lists of arms not
    in ``weights`` are left out."""
    lists = dict.fromkeys(weights, 0)
    clicked = dict.fromkeys(weights, 0)
    users: dict[str, set[str]] = {name: set() for name in weights}
    found = join_clicks(served, clicks).clicks
    for s in served:
        if s.arm in lists:
            lists[s.arm] += 1
            clicked[s.arm] += s.request_id in found
            users[s.arm].add(s.user)
    units = {name: len(seen) for name, seen in users.items()}
    return judge_ctr(lists, clicked, control, weights, design, previous, units)


def judge_per_user(
    values: Mapping[str, np.ndarray],
    control: str,
    weights: Mapping[str, float],
    design: Sequential,
    pre: Mapping[str, np.ndarray] | None = None,
    previous: ExperimentReport | None = None,
) -> AbReport:
    """A per-user metric (clicks per user), CUPED-adjusted when ``pre`` gives each user's
    pre-period value, compared as means."""
    names = list(values)
    if pre is not None:
        sizes = np.cumsum([len(values[n]) for n in names])[:-1]
        adjusted = cuped(np.concatenate([values[n] for n in names]),
                         np.concatenate([pre[n] for n in names]))  # fmt: skip
        values = dict(zip(names, np.split(adjusted, sizes), strict=True))
    arms = {n: _summary(values[n]) for n in names}
    (treatment,) = [n for n in arms if n != control]
    report = analyze(arms, control, design, previous=previous)
    return _wrap(report, treatment, sample_ratio({n: len(values[n]) for n in names}, weights))


def _summary(values: np.ndarray) -> MeanSummary:
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return MeanSummary()
    return MeanSummary(len(v), float(v.mean()), float(((v - v.mean()) ** 2).sum()))
