"""Data drift: does a live window look like the reference sample of the training data?

``detect_drift(reference, live, config, rng)`` is a pure function of numpy
arrays: no database, clock or environment; randomness (row subsampling for the
multivariate test) comes from the ``rng`` passed in.

Every feature, at every window size, must pass two bars to count as drifted:

=============  ======================================  ===================================
feature        significant (p-value <= threshold)      and big enough (effect >= floor)
=============  ======================================  ===================================
numeric        two-sample Kolmogorov-Smirnov           1-Wasserstein distance >= 0.1
                                                       reference standard deviations
categorical    chi-square test of homogeneity          Jensen-Shannon distance >= 0.05
=============  ======================================  ===================================

The tests' null distributions depend on both sample sizes (KS at n*m/(n+m), a
chi-square on the 2 x k table of counts), and their p-values are corrected
across features (Bonferroni or Benjamini-Hochberg), so that a window without
drift raises an alarm with probability at most ``alpha`` whatever the sizes.
The floors keep a huge window from turning a negligible difference into an
alarm: a significance test over a million rows finds differences too small to
matter, an effect size alone does not.

Why not as before (tests up to 1,000 live rows, then the distances alone with
fixed thresholds): a distance between two samples is noisy when either is
small, and the fixed threshold ignored the reference's size. With a reference
of 89-284 rows (a model trained on a small real data set), windows of 2,000
rows drawn from the very same rows alarmed in 90-100% of windows. The rule
above keeps false alarms at or under 1% per window from 200 to 100,000 live
rows and 100 to 5,000 reference rows, on scikit-learn's bundled data sets and
on generated data (``benchmarks/drift/bench_calibration.py``, RESULTS.md).

Unlike Evidently's default (drift when half of the columns drift), the dataset
verdict fires when ANY feature drifts or the multivariate test fires: a single
shifted feature is a drift. ``drifted_features`` lists them strongest evidence
first (smallest p-value over its threshold; among p-values that underflow to 0,
the larger effect over its floor). The multivariate test (``multivariate``)
catches what no per-feature test can: features whose marginals stay put while
their joint distribution changes (two features becoming correlated, say).

Which library does what: scipy supplies the distributions (``kstwo``,
``chi2_contingency``, ``jensenshannon``, ``t``); the KS statistic and the
Wasserstein distance are hand-written over columns sorted once, so that a
1,000,000-row x 33-column window takes about 1-2 s instead of Evidently's 64 s
(see ``univariate``); scikit-learn is needed only for the optional
domain-classifier test. Input validation lives in ``samples``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from modelyard.errors import ValidationError
from modelyard.monitoring.drift import multivariate, samples, univariate
from modelyard.monitoring.drift.multivariate import MultivariateDrift
from modelyard.monitoring.drift.samples import CategoricalColumn, Column, NumericColumn

FloatArray = npt.NDArray[np.float64]
Correction = Literal["bonferroni", "bh", "none"]


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds and choices of ``detect_drift``; every field can be changed.

    alpha: the false-alarm budget of the per-feature significance tests
        together, after ``correction`` (Bonferroni: per feature alpha / k;
        ``"bh"``: Benjamini-Hochberg at level alpha; ``"none"``: alpha each).
        Also the level of the prediction-drift test.
    wasserstein_floor: a numeric feature drifts only if, besides its KS test,
        the 1-Wasserstein distance between the two samples is at least this
        many reference standard deviations (0.1: a shift of a tenth of a
        standard deviation, half of what Cohen calls a small effect).
    jensen_shannon_floor: the same floor for a categorical feature, on the
        Jensen-Shannon distance (base 2) between the category shares. 0.05 is
        about what a 0.1 sd shift of a normal does to its binned shares.
    multivariate_alpha: level of the multivariate test. A window without
        drift raises a dataset alarm in at most alpha + multivariate_alpha of
        windows: 0.7% with the defaults, under a 1% budget.
    multivariate_sample_size: the multivariate test uses at most this many
        rows from each side, drawn with ``rng``.
    correlation_change_threshold: smallest change in rank correlation that the
        ``correlation`` test reports as drift, however significant (its floor).
    categorical_features: names treated as categorical whatever their dtype
        (integer codes, say). Otherwise float/int arrays are numeric, and
        object/str/bool arrays categorical, following the reference.
    nan_policy: ``"raise"`` a ValidationError on missing values (NaN, None),
        or ``"omit"`` them per feature (rows with any missing numeric value
        are left out of the correlation test).
    """

    alpha: float = 0.005
    correction: Correction = "bonferroni"
    wasserstein_floor: float = 0.1
    jensen_shannon_floor: float = 0.05
    multivariate: Literal["correlation", "domain_classifier", "none"] = "correlation"
    multivariate_alpha: float = 0.002
    multivariate_sample_size: int = 5000
    correlation_change_threshold: float = 0.1
    categorical_features: frozenset[str] = field(default_factory=frozenset)
    nan_policy: Literal["raise", "omit"] = "raise"

    def __post_init__(self) -> None:
        object.__setattr__(self, "categorical_features", frozenset(self.categorical_features))
        for name in ("alpha", "multivariate_alpha"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValidationError(f"DriftConfig.{name} must be in (0, 1), got {value!r}")
        for name in ("wasserstein_floor", "jensen_shannon_floor", "correlation_change_threshold"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValidationError(f"DriftConfig.{name} must be >= 0, got {value!r}")
        value = self.multivariate_sample_size
        if not isinstance(value, int) or value < 8:
            raise ValidationError(
                f"DriftConfig.multivariate_sample_size must be an integer >= 8, got {value!r}"
            )
        choices: dict[str, tuple[str, ...]] = {
            "correction": ("bonferroni", "bh", "none"),
            "multivariate": ("correlation", "domain_classifier", "none"),
            "nan_policy": ("raise", "omit"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValidationError(
                    f"DriftConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's verdict, with the figures behind it.

    ``test`` is ``ks`` or ``chi2``; ``statistic`` its statistic (KS D, or
    chi-square), ``p_value`` its p-value and ``threshold`` the p-value at or
    below which it counts, already corrected for the number of features.
    ``effect`` names the effect size (``wasserstein``: in reference standard
    deviations; ``jensen_shannon``), ``effect_size`` is its value and
    ``effect_floor`` the least that counts. ``drifted`` is
    ``p_value <= threshold and effect_size >= effect_floor``: significant, and
    big enough to matter.

    Verdicts stored before the effect floor existed load too: those of windows
    up to 1,000 rows (``ks``, ``chi2``) have no effect fields; those of larger
    windows were distances alone (``wasserstein``, ``psi``, ``jensen_shannon``,
    with ``p_value`` None and ``drifted`` meaning ``statistic >= threshold``).
    """

    name: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    effect: str | None = None
    effect_size: float | None = None
    effect_floor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, for storage."""
        return {
            "name": self.name,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "effect": self.effect,
            "effect_size": self.effect_size,
            "effect_floor": self.effect_floor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureDrift:
        """Inverse of ``to_dict``; also reads the rows stored before the effect fields."""
        effect = data.get("effect")
        return cls(
            name=str(data["name"]),
            test=str(data["test"]),
            statistic=float(data["statistic"]),
            p_value=_optional_float(data.get("p_value")),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
            effect=None if effect is None else str(effect),
            effect_size=_optional_float(data.get("effect_size")),
            effect_floor=_optional_float(data.get("effect_floor")),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class DriftReport:
    """The verdict on one live window.

    ``drifted_features`` lists the drifted features, strongest evidence first.
    ``dataset_drift`` is true when any feature drifted or the multivariate test
    fired; prediction drift is reported but does not enter it.
    """

    features: tuple[FeatureDrift, ...]
    drifted_features: tuple[str, ...]
    share_drifted: float
    dataset_drift: bool
    prediction_drift: FeatureDrift | None
    multivariate: MultivariateDrift | None
    n_reference: int
    n_live: int

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (JSON-ready), for storage as a time series."""
        return {
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "drifted_features": list(self.drifted_features),
            "n_reference": self.n_reference,
            "n_live": self.n_live,
            "features": [f.to_dict() for f in self.features],
            "prediction_drift": (
                None if self.prediction_drift is None else self.prediction_drift.to_dict()
            ),
            "multivariate": None if self.multivariate is None else self.multivariate.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """Inverse of ``to_dict``."""
        prediction = data.get("prediction_drift")
        mv = data.get("multivariate")
        return cls(
            features=tuple(FeatureDrift.from_dict(f) for f in data["features"]),
            drifted_features=tuple(data["drifted_features"]),
            share_drifted=float(data["share_drifted"]),
            dataset_drift=bool(data["dataset_drift"]),
            prediction_drift=None if prediction is None else FeatureDrift.from_dict(prediction),
            multivariate=None if mv is None else MultivariateDrift.from_dict(dict(mv)),
            n_reference=int(data["n_reference"]),
            n_live=int(data["n_live"]),
        )


@dataclass(frozen=True)
class _Result:
    """A univariate test and effect size, before the correction across features."""

    name: str
    test: str
    statistic: float
    p_value: float
    effect: str
    effect_size: float
    effect_floor: float


def _univariate(column: Column, config: DriftConfig) -> _Result:
    if isinstance(column, CategoricalColumn):
        chi2, p = univariate.chi2_test(column.reference_counts, column.live_counts)
        js = univariate.jensen_shannon(column.reference_counts, column.live_counts)
        return _Result(
            column.name, "chi2", chi2, p, "jensen_shannon", js, config.jensen_shannon_floor
        )
    ref, live = column.reference_sorted, column.live_sorted
    d, p = univariate.ks_test(ref, live)
    w = univariate.normalised_wasserstein(ref, live)
    return _Result(column.name, "ks", d, p, "wasserstein", w, config.wasserstein_floor)


def _p_threshold(p_values: list[float], alpha: float, correction: Correction) -> float:
    """The p-value at or below which a feature counts as drifted, after correction."""
    k = len(p_values)
    if correction == "none" or k == 0:
        return alpha
    if correction == "bonferroni":
        return alpha / k
    ranked = np.sort(np.asarray(p_values))
    passing = np.flatnonzero(ranked <= alpha * np.arange(1, k + 1) / k)
    return alpha * (int(passing[-1]) + 1) / k if passing.size else alpha / k


def _verdict(result: _Result, p_threshold: float) -> FeatureDrift:
    drifted = result.p_value <= p_threshold and result.effect_size >= result.effect_floor
    return FeatureDrift(
        result.name,
        result.test,
        result.statistic,
        result.p_value,
        p_threshold,
        drifted,
        result.effect,
        result.effect_size,
        result.effect_floor,
    )


def _severity(verdict: FeatureDrift) -> tuple[float, float]:
    """Smaller is stronger evidence: p / threshold, then the effect over its floor
    (p-values of huge windows underflow to 0, and then the larger effect leads)."""
    p = 1.0 if verdict.p_value is None else verdict.p_value
    effect = verdict.effect_size or 0.0
    floor = verdict.effect_floor or 0.0
    return p / verdict.threshold, -(effect / floor if floor > 0.0 else effect)


def _rows(total: int, size: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    if total <= size:
        return np.arange(total)
    return np.sort(rng.choice(total, size=size, replace=False))


def _multivariate(
    columns: list[Column], config: DriftConfig, rng: np.random.Generator
) -> MultivariateDrift | None:
    ref_rows = _rows(columns[0].reference.size, config.multivariate_sample_size, rng)
    live_rows = _rows(columns[0].live.size, config.multivariate_sample_size, rng)
    if config.multivariate == "correlation":
        numeric = [c for c in columns if isinstance(c, NumericColumn)]
        if len(numeric) < 2:
            return None
        ref = np.column_stack([c.reference[ref_rows] for c in numeric])
        live = np.column_stack([c.live[live_rows] for c in numeric])
        return multivariate.correlation_test(
            ref[np.isfinite(ref).all(axis=1)],
            live[np.isfinite(live).all(axis=1)],
            [c.name for c in numeric],
            config.multivariate_alpha,
            config.correlation_change_threshold,
        )

    def matrix(rows: npt.NDArray[np.intp], live_side: bool) -> FloatArray:
        parts = []
        for c in columns:
            values = c.live[rows] if live_side else c.reference[rows]
            parts.append(c.codes(values) if isinstance(c, CategoricalColumn) else values)
        return np.column_stack(parts)

    return multivariate.domain_classifier_test(
        matrix(ref_rows, live_side=False),
        matrix(live_rows, live_side=True),
        [isinstance(c, CategoricalColumn) for c in columns],
        config.multivariate_alpha,
        rng,
    )


def detect_drift(
    reference: Mapping[str, Any],
    live: Mapping[str, Any],
    config: DriftConfig | None = None,
    rng: np.random.Generator | int = 0,
    *,
    reference_predictions: Any = None,
    live_predictions: Any = None,
) -> DriftReport:
    """Compare a live window with the reference sample, feature by feature and jointly.

    ``reference`` and ``live`` map feature names to 1-D arrays (numeric, or
    object/str/bool for categorical), with the same names. Predictions, when
    given for both sides, are tested like one more feature at level
    ``config.alpha``, outside the dataset verdict. ``rng`` (a Generator or a
    seed) draws the rows of the multivariate test when a side has more than
    ``config.multivariate_sample_size`` rows. Raises ValidationError, naming the
    feature, on mismatched names, ragged or empty columns, wrong types, infinite
    values, or missing values under ``nan_policy="raise"``.
    """
    config = DriftConfig() if config is None else config
    generator = np.random.default_rng(rng)
    columns, n_reference, n_live = samples.prepare(
        reference, live, config.categorical_features, config.nan_policy
    )

    results = [_univariate(c, config) for c in columns]
    threshold = _p_threshold([r.p_value for r in results], config.alpha, config.correction)
    features = [_verdict(r, threshold) for r in results]
    drifted = sorted((f for f in features if f.drifted), key=_severity)

    prediction: FeatureDrift | None = None
    if (reference_predictions is None) != (live_predictions is None):
        raise ValidationError(
            "predictions must be given for both the reference and the live window, or for neither"
        )
    if reference_predictions is not None:
        ref_pred = samples.as_1d("prediction", reference_predictions, "reference predictions")
        live_pred = samples.as_1d("prediction", live_predictions, "live predictions")
        samples.check_rows({"prediction": ref_pred}, "reference predictions")
        samples.check_rows({"prediction": live_pred}, "live predictions")
        column = samples.column(
            "prediction", ref_pred, live_pred, (), config.nan_policy, "live predictions"
        )
        prediction = _verdict(_univariate(column, config), config.alpha)

    mv = None if config.multivariate == "none" else _multivariate(columns, config, generator)
    return DriftReport(
        features=tuple(features),
        drifted_features=tuple(f.name for f in drifted),
        share_drifted=len(drifted) / len(features),
        dataset_drift=bool(drifted) or (mv is not None and mv.drifted),
        prediction_drift=prediction,
        multivariate=mv,
        n_reference=n_reference,
        n_live=n_live,
    )
