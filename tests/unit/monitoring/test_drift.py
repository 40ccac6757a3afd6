"""Drift detection: statistics against scipy, verdicts on simulated windows, bad input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial import distance

from modelyard.errors import ValidationError
from modelyard.monitoring import DriftConfig, DriftReport, detect_drift
from modelyard.monitoring.drift import univariate as uv

Window = dict[str, Any]
CATEGORIES = np.array(["red", "green", "blue", "grey"], dtype=object)
SHARES = np.array([0.4, 0.3, 0.2, 0.1])


def window(rng: np.random.Generator, rows: int) -> Window:
    """Four independent gaussians, one lognormal and one categorical feature."""
    data: Window = {f"x{i}": rng.normal(size=rows) for i in range(4)}
    data["amount"] = rng.lognormal(size=rows)
    data["colour"] = CATEGORIES[rng.choice(4, size=rows, p=SHARES)]
    return data


@pytest.fixture
def reference() -> Window:
    return window(np.random.default_rng(1), 5000)


@pytest.fixture
def live() -> Window:
    return window(np.random.default_rng(2), 1000)


# --- statistics against scipy ---------------------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
samples = hnp.arrays(np.float64, st.integers(1, 60), elements=finite)
# few distinct values, so that ties are common
tied = hnp.arrays(np.float64, st.integers(1, 60), elements=st.integers(-3, 3).map(float))


@settings(deadline=None)
@given(a=st.one_of(samples, tied), b=st.one_of(samples, tied))
def test_ks_matches_scipy_and_is_symmetric(a: np.ndarray, b: np.ndarray) -> None:
    d, p = uv.ks_test(np.sort(a), np.sort(b))
    with np.errstate(divide="ignore"):  # scipy divides by zero for two single values
        expected = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    if np.isfinite(expected.pvalue):  # scipy gives NaN for two single values
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    assert 0.0 <= p <= 1.0
    assert 0.0 <= d <= 1.0
    assert uv.ks_test(np.sort(b), np.sort(a))[0] == pytest.approx(d, abs=1e-12)


@settings(deadline=None)
@given(a=st.one_of(samples, tied), b=st.one_of(samples, tied))
def test_wasserstein_matches_scipy_and_is_symmetric(a: np.ndarray, b: np.ndarray) -> None:
    w = uv.wasserstein(np.sort(a), np.sort(b))
    assert w == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-9)
    assert w == pytest.approx(uv.wasserstein(np.sort(b), np.sort(a)), rel=1e-12, abs=1e-12)
    assert w >= 0.0


def test_ks_matches_scipy_on_a_large_uneven_pair_with_ties() -> None:
    rng = np.random.default_rng(12)
    small = np.round(rng.normal(size=37), 1)  # the statistic is read at its distinct values
    large = np.round(rng.normal(0.2, 1.0, size=100_003), 1)
    expected = stats.ks_2samp(small, large, method="asymp")
    d, p = uv.ks_test(np.sort(small), np.sort(large))
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)
    assert uv.ks_test(np.sort(large), np.sort(small))[0] == pytest.approx(d, abs=1e-12)


def test_wasserstein_matches_scipy_on_a_large_uneven_pair() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=997), rng.lognormal(size=100_003)
    assert uv.wasserstein(np.sort(a), np.sort(b)) == pytest.approx(
        stats.wasserstein_distance(a, b), rel=1e-9
    )


def test_normalised_wasserstein_is_in_reference_standard_deviations() -> None:
    ref = np.sort(np.random.default_rng(4).normal(0.0, 3.0, size=2000))
    assert uv.normalised_wasserstein(ref, ref + 1.5) == pytest.approx(1.5 / ref.std())
    # a constant reference: in the standard deviation of both samples together (0.5 here)
    assert uv.normalised_wasserstein(np.zeros(5), np.ones(5)) == pytest.approx(2.0)
    assert uv.normalised_wasserstein(np.zeros(5), np.zeros(7)) == 0.0


def test_chi2_matches_scipy() -> None:
    ref = {"a": 400, "b": 300, "c": 200, "d": 100}
    live = {"a": 30, "b": 40, "c": 20, "d": 10, "e": 12}  # "e" is new
    chi2, p = uv.chi2_test(ref, live)
    table = np.array([[400, 300, 200, 100, 0], [30, 40, 20, 10, 12]])
    expected = stats.chi2_contingency(table, correction=False)
    assert chi2 == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    # the same statistic as a goodness-of-fit test against the homogeneity expectation
    gof = stats.chisquare(table.ravel(), expected.expected_freq.ravel(), ddof=table.size - 1 - 4)
    assert chi2 == pytest.approx(gof.statistic)
    assert p == pytest.approx(gof.pvalue)


def test_chi2_pools_categories_too_rare_for_the_approximation() -> None:
    table = uv.count_table({"a": 500, "b": 480, "r1": 10, "r2": 10}, {"a": 50, "b": 48, "r1": 2})
    pooled = uv.pool_sparse_categories(table)
    np.testing.assert_array_equal(pooled, [[500, 480, 20], [50, 48, 2]])
    chi2, p = uv.chi2_test({"a": 500, "b": 480, "r1": 10, "r2": 10}, {"a": 50, "b": 48, "r1": 2})
    assert chi2 == pytest.approx(stats.chi2_contingency(pooled, correction=False).statistic)
    assert uv.chi2_test({"a": 5}, {"a": 7}) == (0.0, 1.0)


def test_chi2_pools_the_categories_sparse_in_the_smaller_sample() -> None:
    # a 100-row reference against a 100,000-row window: the reference's cells are the sparse ones
    ref = {"a": 60, "b": 36, "r1": 2, "r2": 2}
    live = {"a": 60_000, "b": 36_000, "r1": 2_000, "r2": 2_000}
    pooled = uv.pool_sparse_categories(uv.count_table(ref, live))
    np.testing.assert_array_equal(pooled, [[60, 36, 4], [60_000, 36_000, 4_000]])


def test_jensen_shannon_matches_scipy() -> None:
    ref, live = {"a": 5, "b": 3, "c": 2}, {"b": 6, "c": 2, "z": 2}
    expected = distance.jensenshannon([0.5, 0.3, 0.2, 0.0], [0.0, 0.6, 0.2, 0.2], base=2)
    assert uv.jensen_shannon(ref, live) == pytest.approx(expected)
    assert uv.jensen_shannon({"a": 1}, {"b": 1}) == pytest.approx(1.0)


counts = st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 50), min_size=1)


@given(a=counts, b=counts)
def test_jensen_shannon_is_bounded_and_symmetric(a: dict[str, int], b: dict[str, int]) -> None:
    js = uv.jensen_shannon(a, b)
    assert 0.0 <= js <= 1.0
    assert uv.jensen_shannon(b, a) == pytest.approx(js, abs=1e-12)
    assert uv.jensen_shannon(a, dict(a)) == pytest.approx(0.0, abs=1e-7)


# --- verdicts ---------------------------------------------------------------------------


@settings(deadline=None, max_examples=50)
@given(
    values=hnp.arrays(np.float64, st.integers(2, 40), elements=finite),
    labels=st.lists(st.sampled_from(["a", "b", "c"]), min_size=40, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_identical_samples_never_drift(values: np.ndarray, labels: list[str], seed: int) -> None:
    n = values.size
    data = {
        "x": values,
        "y": values[::-1].copy(),
        "z": np.random.default_rng(seed).normal(size=n),
        "c": np.array(labels[:n], dtype=object),
    }
    for config in (DriftConfig(), DriftConfig(wasserstein_floor=0.0, jensen_shannon_floor=0.0)):
        report = detect_drift(data, {k: v.copy() for k, v in data.items()}, config, seed)
        assert not report.dataset_drift
        assert report.drifted_features == ()
        assert all(f.statistic == pytest.approx(0.0, abs=1e-7) for f in report.features)


def test_no_drift_between_samples_of_the_same_distribution(reference: Window, live: Window) -> None:
    report = detect_drift(reference, live)
    assert not report.dataset_drift
    assert [f.test for f in report.features] == ["ks"] * 5 + ["chi2"]
    assert report.multivariate is not None
    assert report.multivariate.test == "correlation"
    assert (report.n_reference, report.n_live) == (5000, 1000)


def test_a_single_shifted_feature_is_named(reference: Window, live: Window) -> None:
    live["x2"] = live["x2"] + 0.5
    report = detect_drift(reference, live)
    assert report.dataset_drift
    assert report.drifted_features == ("x2",)
    assert report.share_drifted == pytest.approx(1 / 6)
    x2 = report.features[2]
    assert x2.test == "ks"
    assert x2.p_value is not None
    assert x2.p_value <= x2.threshold == pytest.approx(0.005 / 6)
    assert (x2.effect, x2.effect_floor) == ("wasserstein", 0.1)
    assert x2.effect_size == pytest.approx(0.5, abs=0.1)  # in reference standard deviations


def test_large_windows_use_the_same_tests_with_their_effect_sizes(reference: Window) -> None:
    live = window(np.random.default_rng(11), 20_000)
    live["x1"] = live["x1"] + 0.5
    live["colour"] = CATEGORIES[np.random.default_rng(5).choice(4, size=20_000, p=SHARES[::-1])]
    report = detect_drift(reference, live)
    assert [f.test for f in report.features] == ["ks"] * 5 + ["chi2"]
    assert [f.effect for f in report.features] == ["wasserstein"] * 5 + ["jensen_shannon"]
    assert set(report.drifted_features) == {"x1", "colour"}
    for f in report.features:
        assert f.p_value is not None
        assert f.effect_size is not None
        assert f.effect_floor is not None
        assert f.drifted == (f.p_value <= f.threshold and f.effect_size >= f.effect_floor)


def test_a_new_category_drifts(reference: Window, live: Window) -> None:
    live["colour"][:60] = "purple"
    report = detect_drift(reference, live)
    assert report.drifted_features == ("colour",)


def test_a_correlation_change_with_unchanged_marginals_is_detected(
    reference: Window, live: Window
) -> None:
    live["x1"] = 0.8 * live["x0"] + 0.6 * live["x1"]
    report = detect_drift(reference, live)
    assert report.drifted_features == ()
    assert report.dataset_drift
    mv = report.multivariate
    assert mv is not None
    assert mv.drifted
    assert mv.features == ("x0", "x1")
    assert mv.reference_value == pytest.approx(0.0, abs=0.05)
    assert mv.live_value == pytest.approx(0.8, abs=0.05)


def test_the_domain_classifier_detects_a_correlation_change(
    reference: Window, live: Window
) -> None:
    config = DriftConfig(multivariate="domain_classifier", multivariate_sample_size=1000)
    live["x1"] = 0.8 * live["x0"] + 0.6 * live["x1"]
    mv = detect_drift(reference, live, config, 0).multivariate
    assert mv is not None
    assert mv.test == "domain_classifier"
    assert mv.drifted
    assert mv.statistic > 0.55  # held-out ROC AUC


def test_multiple_testing_corrections(reference: Window, live: Window) -> None:
    live["x0"] = live["x0"] + 0.5
    live["x3"] = live["x3"] + 0.5
    bonferroni = detect_drift(reference, live, DriftConfig(alpha=0.01))
    assert [f.threshold for f in bonferroni.features] == pytest.approx([0.01 / 6] * 6)
    bh = detect_drift(reference, live, DriftConfig(alpha=0.01, correction="bh"))
    assert bh.features[0].threshold == pytest.approx(0.01 * 2 / 6)  # two rejections
    none = detect_drift(reference, live, DriftConfig(alpha=0.01, correction="none"))
    assert none.features[0].threshold == 0.01
    assert set(bonferroni.drifted_features) == set(bh.drifted_features) == {"x0", "x3"}


def test_prediction_drift_is_reported_outside_the_dataset_verdict(
    reference: Window, live: Window
) -> None:
    rng = np.random.default_rng(6)
    report = detect_drift(
        reference,
        live,
        reference_predictions=rng.uniform(size=5000),
        live_predictions=rng.uniform(size=1000) ** 2,
    )
    assert report.prediction_drift is not None
    assert report.prediction_drift.name == "prediction"
    assert report.prediction_drift.drifted
    assert not report.dataset_drift


def test_the_rng_makes_subsampling_reproducible(reference: Window, live: Window) -> None:
    config = DriftConfig(multivariate_sample_size=300)
    first = detect_drift(reference, live, config, np.random.default_rng(7))
    assert detect_drift(reference, live, config, np.random.default_rng(7)) == first
    assert detect_drift(reference, live, config, 8).multivariate != first.multivariate


def test_report_round_trips_through_a_plain_dict(reference: Window, live: Window) -> None:
    live["x1"] = 0.8 * live["x0"] + 0.6 * live["x1"]
    report = detect_drift(
        reference, live, reference_predictions=live["x2"], live_predictions=live["x3"]
    )
    plain = json.loads(json.dumps(report.to_dict()))
    assert DriftReport.from_dict(plain) == report


def test_missing_values_can_be_omitted(reference: Window, live: Window) -> None:
    live["x0"][:10] = np.nan
    live["colour"][:10] = None
    report = detect_drift(reference, live, DriftConfig(nan_policy="omit"))
    assert not report.dataset_drift
    assert report.multivariate is not None


# --- bad input --------------------------------------------------------------------------


def test_mismatched_feature_names_are_named(reference: Window, live: Window) -> None:
    live["extra"] = live.pop("x3")
    with pytest.raises(ValidationError, match=r"missing from the live window: 'x3'.*'extra'"):
        detect_drift(reference, live)


def test_an_empty_window_is_refused(reference: Window) -> None:
    empty = {name: values[:0] for name, values in reference.items()}
    with pytest.raises(ValidationError, match="the live window is empty: feature 'x0'"):
        detect_drift(reference, empty)
    with pytest.raises(ValidationError, match="the reference has no features"):
        detect_drift({}, {})


def test_missing_values_raise_by_default(reference: Window, live: Window) -> None:
    live["x2"][7] = np.nan
    with pytest.raises(ValidationError, match=r"feature 'x2' has 1 missing .*row 7"):
        detect_drift(reference, live)


def test_missing_categories_raise_by_default(reference: Window, live: Window) -> None:
    reference["colour"][3] = None
    with pytest.raises(
        ValidationError, match=r"feature 'colour' has 1 missing .*reference \(first at row 3\)"
    ):
        detect_drift(reference, live)


def test_a_feature_with_only_missing_values_is_refused(reference: Window, live: Window) -> None:
    live["amount"] = np.full(1000, np.nan)
    with pytest.raises(ValidationError, match="feature 'amount' has only missing values"):
        detect_drift(reference, live, DriftConfig(nan_policy="omit"))


def test_infinite_values_are_refused(reference: Window, live: Window) -> None:
    live["x1"][4] = np.inf
    with pytest.raises(ValidationError, match=r"feature 'x1' must be finite, got inf \(row 4"):
        detect_drift(reference, live, DriftConfig(nan_policy="omit"))


def test_ragged_and_multidimensional_columns_are_refused(reference: Window, live: Window) -> None:
    live["x1"] = live["x1"][:-1]
    with pytest.raises(ValidationError, match="feature 'x1' has 999 rows"):
        detect_drift(reference, live)
    live["x1"] = np.zeros((1000, 2))
    with pytest.raises(ValidationError, match=r"feature 'x1' must be a 1-D array.*\(1000, 2\)"):
        detect_drift(reference, live)


def test_wrong_types_are_refused(reference: Window, live: Window) -> None:
    live["x0"] = live["x0"].astype(object)
    live["x0"][2] = "abc"
    with pytest.raises(ValidationError, match=r"feature 'x0' must be a number, got 'abc' \(row 2"):
        detect_drift(reference, live)
    live["x0"] = live["x0"].astype(str)
    with pytest.raises(ValidationError, match="feature 'x0' is numeric in the reference"):
        detect_drift(reference, live)
    live["x0"] = reference["x0"][:1000]
    live["colour"] = np.zeros(1000)
    with pytest.raises(ValidationError, match="feature 'colour' is categorical in the reference"):
        detect_drift(reference, live)


def test_integer_codes_can_be_declared_categorical(reference: Window, live: Window) -> None:
    reference["code"] = np.random.default_rng(9).integers(0, 3, size=5000)
    live["code"] = np.random.default_rng(10).integers(0, 3, size=1000)
    report = detect_drift(reference, live, DriftConfig(categorical_features=frozenset({"code"})))
    assert report.features[-1].test == "chi2"


def test_predictions_must_come_in_pairs(reference: Window, live: Window) -> None:
    with pytest.raises(ValidationError, match="predictions must be given for both"):
        detect_drift(reference, live, live_predictions=np.zeros(1000))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("alpha", 0.0, r"DriftConfig.alpha must be in \(0, 1\), got 0.0"),
        ("wasserstein_floor", -1.0, "DriftConfig.wasserstein_floor must be >= 0"),
        ("jensen_shannon_floor", float("nan"), "DriftConfig.jensen_shannon_floor must be >= 0"),
        ("multivariate_sample_size", 4, "DriftConfig.multivariate_sample_size must be an integer"),
        ("correction", "holm", "DriftConfig.correction must be one of"),
    ],
)
def test_config_is_validated(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DriftConfig(**{field: value})  # type: ignore[arg-type]
