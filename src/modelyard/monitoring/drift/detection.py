"""Data drift: does a live window look like the reference sample of the training data?

``detect_drift(reference, live, config, rng)`` is a pure function of numpy
arrays: no database, clock or environment; randomness (row subsampling for the
multivariate test) comes from the ``rng`` passed in.

Per feature, the test follows the type and the live-window size, like Evidently:

=============  ==================================  ==================================
feature        live window <= ``small_sample_max``  larger live window
=============  ==================================  ==================================
numeric        two-sample Kolmogorov-Smirnov        Wasserstein distance in reference
               (p-value)                            standard deviations (or PSI)
categorical    chi-square test of homogeneity       Jensen-Shannon distance (base 2)
               (p-value)
=============  ==================================  ==================================

Small windows get significance tests, corrected across features (Bonferroni or
Benjamini-Hochberg) so that the features of a window without drift raise an
alarm with probability at most ``alpha``. Large windows get effect-size distances with
fixed thresholds, because a significance test over a million rows flags
differences too small to matter. Unlike Evidently's default (drift when half of
the columns drift), the dataset verdict fires when ANY feature drifts or the
multivariate test fires: a single shifted feature is a drift. The multivariate
test (``multivariate``) catches what no per-feature test can: features whose
marginals stay put while their joint distribution changes (two features
becoming correlated, say).

Which library does what: scipy supplies the distributions (``kstwo``,
``chi2_contingency``, ``jensenshannon``, ``rankdata``); the KS statistic, the
Wasserstein distance and the PSI are hand-written over columns sorted once, so
that a 1,000,000-row x 33-column window takes about 2 s instead of Evidently's
64 s (see ``univariate``); scikit-learn is needed only for the optional
domain-classifier test. Input validation lives in ``samples``.
"""

from __future__ import annotations

import math
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
    small_sample_max: live windows up to this many rows get KS / chi-square;
        larger ones get the distances below.
    multivariate_alpha: level of the multivariate test. A window without
        drift raises a dataset alarm in at most alpha + multivariate_alpha of
        small windows: 0.7% with the defaults, under a 1% budget, because the
        correlation test uses its level in full (0.55% measured at 0.5%).
    multivariate_sample_size: the multivariate test uses at most this many
        rows from each side, drawn with ``rng``.
    correlation_change_threshold: smallest change in rank correlation that the
        ``correlation`` test reports as drift, however significant.
    categorical_features: names treated as categorical whatever their dtype
        (integer codes, say). Otherwise float/int arrays are numeric, and
        object/str/bool arrays categorical, following the reference.
    nan_policy: ``"raise"`` a ValidationError on missing values (NaN, None),
        or ``"omit"`` them per feature (rows with any missing numeric value
        are left out of the correlation test).
    """

    alpha: float = 0.005
    correction: Correction = "bonferroni"
    small_sample_max: int = 1000
    numeric_large_test: Literal["wasserstein", "psi"] = "wasserstein"
    wasserstein_threshold: float = 0.1
    psi_threshold: float = 0.1
    psi_bins: int = 10
    jensen_shannon_threshold: float = 0.1
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
        for name in (
            "wasserstein_threshold",
            "psi_threshold",
            "jensen_shannon_threshold",
            "correlation_change_threshold",
        ):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValidationError(f"DriftConfig.{name} must be >= 0, got {value!r}")
        for name, low in (
            ("small_sample_max", 0),
            ("psi_bins", 2),
            ("multivariate_sample_size", 8),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValidationError(
                    f"DriftConfig.{name} must be an integer >= {low}, got {value!r}"
                )
        choices: dict[str, tuple[str, ...]] = {
            "correction": ("bonferroni", "bh", "none"),
            "numeric_large_test": ("wasserstein", "psi"),
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
    """One feature's verdict.

    For significance tests (``ks``, ``chi2``) ``drifted`` is
    ``p_value <= threshold`` with the threshold already corrected for the
    number of features; for distances (``wasserstein``, ``psi``,
    ``jensen_shannon``) ``p_value`` is None and ``drifted`` is
    ``statistic >= threshold``.
    """

    name: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, for storage."""
        return {
            "name": self.name,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureDrift:
        """Inverse of ``to_dict``."""
        p_value = data.get("p_value")
        return cls(
            name=str(data["name"]),
            test=str(data["test"]),
            statistic=float(data["statistic"]),
            p_value=None if p_value is None else float(p_value),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
        )


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
    """A univariate statistic before correction; ``threshold`` only for distances."""

    name: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float = math.nan


def _univariate(column: Column, config: DriftConfig) -> _Result:
    small = column.live_size <= config.small_sample_max
    name = column.name
    if isinstance(column, CategoricalColumn):
        if small:
            chi2, p = univariate.chi2_test(column.reference_counts, column.live_counts)
            return _Result(name, "chi2", chi2, p)
        js = univariate.jensen_shannon(column.reference_counts, column.live_counts)
        return _Result(name, "jensen_shannon", js, None, config.jensen_shannon_threshold)
    ref, live = column.reference_sorted, column.live_sorted
    if small:
        d, p = univariate.ks_test(ref, live)
        return _Result(name, "ks", d, p)
    if config.numeric_large_test == "psi":
        value = univariate.psi(ref, live, config.psi_bins)
        return _Result(name, "psi", value, None, config.psi_threshold)
    value = univariate.normalised_wasserstein(ref, live)
    return _Result(name, "wasserstein", value, None, config.wasserstein_threshold)


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
    if result.p_value is not None:
        drifted = result.p_value <= p_threshold
        return FeatureDrift(
            result.name, result.test, result.statistic, result.p_value, p_threshold, drifted
        )
    drifted = result.statistic >= result.threshold
    return FeatureDrift(result.name, result.test, result.statistic, None, result.threshold, drifted)


def _severity(verdict: FeatureDrift) -> float:
    """Smaller is stronger evidence: p / threshold, or threshold / distance."""
    if verdict.p_value is not None:
        return verdict.p_value / verdict.threshold
    return verdict.threshold / verdict.statistic if verdict.statistic > 0 else math.inf


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
    p_values = [r.p_value for r in results if r.p_value is not None]
    threshold = _p_threshold(p_values, config.alpha, config.correction)
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
