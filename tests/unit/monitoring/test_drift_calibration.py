"""Drift verdicts calibrated for both sample sizes: the scenarios of the calibration issue.

Pure decisions on recorded windows (rows of scikit-learn's bundled data sets,
drawn with a seed) and simulated ones; benchmarks/drift/bench_calibration.py
measures the rates these scenarios stand for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from modelyard.monitoring import DriftConfig, DriftReport, detect_drift
from modelyard.monitoring.drift import FeatureDrift
from modelyard.monitoring.drift import multivariate as mv

Window = dict[str, np.ndarray]


def rows_of(data: Any) -> tuple[np.ndarray, list[str]]:
    return np.asarray(data.data, dtype=np.float64), [str(c) for c in data.feature_names]


def draw(rows: np.ndarray, names: list[str], rng: np.random.Generator, size: int) -> Window:
    """``size`` rows drawn with replacement: every draw comes from the same distribution."""
    picked = rows[rng.integers(0, rows.shape[0], size)]
    return {name: np.ascontiguousarray(picked[:, i]) for i, name in enumerate(names)}


def test_a_small_reference_and_a_big_window_of_the_same_rows_raise_no_alarm() -> None:
    # The case: a model trained on half of the wine data (89 rows); windows of
    # 2,000 rows from the same rows alarmed in every window under the old fixed-distance rule.
    rows, names = rows_of(load_wine())
    old_rule_alarms = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        reference, live = draw(rows, names, rng, 89), draw(rows, names, rng, 2000)
        report = detect_drift(reference, live, DriftConfig(), rng)
        assert not report.dataset_drift, report.to_dict()
        # the Wasserstein distances are as large as before: only the test keeps them quiet
        old_rule_alarms += any((f.effect_size or 0.0) >= 0.1 for f in report.features)
        assert all(f.p_value is not None and f.p_value > f.threshold for f in report.features)
    assert old_rule_alarms >= 9


def test_the_correlation_test_allows_for_a_small_reference() -> None:
    # 100 rows of breast-cancer data, whose radius, perimeter and area correlate 0.99:
    # comparing r itself flagged these seeds (14 of the first 60) even without the change
    # floor; on Fisher's scale with the reference's size in the variance, none of them.
    rows, names = rows_of(load_breast_cancer())
    for seed in (0, 2, 9, 15, 16, 17):
        rng = np.random.default_rng(seed)
        reference, live = (
            rows[rng.integers(0, len(rows), 100)],
            rows[rng.integers(0, len(rows), 2000)],
        )
        result = mv.correlation_test(reference, live, names, alpha=0.002, min_change=0.0)
        assert result is not None
        assert not result.drifted, (seed, result)


def test_nearly_constant_columns_stay_out_of_the_correlation_test() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(100, 3))
    reference[:, 2] = 0.0
    reference[:2, 2] = 1.0  # two rows of a hundred decide its correlations
    live = rng.normal(size=(5000, 3))
    result = mv.correlation_test(reference, live, ["a", "b", "pixel"], 0.002, 0.1)
    assert result is not None
    assert result.features == ("a", "b")


def test_a_negligible_shift_in_a_huge_window_is_significant_but_under_the_floor() -> None:
    rng = np.random.default_rng(4)
    reference = {"x": rng.normal(size=20_000)}
    live = {"x": rng.normal(0.05, 1.0, size=100_000)}  # 0.05 sd
    report = detect_drift(reference, live)
    (x,) = report.features
    assert x.p_value is not None
    assert x.p_value <= x.threshold / 10  # the test alone would call it drift
    assert x.effect == "wasserstein"
    assert x.effect_size == pytest.approx(0.05, abs=0.015)
    assert x.effect_floor is not None
    assert x.effect_size < x.effect_floor
    assert not x.drifted
    assert not report.dataset_drift
    assert detect_drift(reference, live, DriftConfig(wasserstein_floor=0.0)).dataset_drift


def test_a_negligible_change_of_category_shares_in_a_huge_window_is_under_the_floor() -> None:
    rng = np.random.default_rng(5)
    labels = np.array(["a", "b", "c"], dtype=object)
    reference = {"c": labels[rng.choice(3, size=50_000, p=[0.5, 0.3, 0.2])]}
    live = {"c": labels[rng.choice(3, size=200_000, p=[0.48, 0.31, 0.21])]}
    (c,) = detect_drift(reference, live).features
    assert (c.test, c.effect) == ("chi2", "jensen_shannon")
    assert c.p_value is not None
    assert c.p_value <= c.threshold
    assert c.effect_size is not None
    assert c.effect_size < 0.05 == c.effect_floor
    assert not c.drifted


def gaussian_window(rng: np.random.Generator, rows: int, columns: int = 20) -> Window:
    return {f"g{i:02d}": rng.normal(size=rows) for i in range(columns)}


@pytest.mark.parametrize("reference_rows", [300, 5000])
def test_half_a_standard_deviation_at_1000_rows_is_found_and_named_first(
    reference_rows: int,
) -> None:
    rng = np.random.default_rng(6)
    reference, live = gaussian_window(rng, reference_rows), gaussian_window(rng, 1000)
    live["g07"] = live["g07"] + 0.5
    report = detect_drift(reference, live, DriftConfig(), rng)
    assert report.dataset_drift
    assert report.drifted_features[:1] == ("g07",)
    g07 = next(f for f in report.features if f.name == "g07")
    assert g07.effect_size == pytest.approx(0.5, abs=0.15)


def test_a_column_constant_in_the_reference_that_moves_is_found() -> None:
    # digits' corner pixels: 0 in every reference row; +0.5 of their (tiny) standard
    # deviation moves every live value. Measured in the column's own units (0.012) the
    # effect was under the floor; in the spread of both samples together it is not.
    rng = np.random.default_rng(9)
    reference = gaussian_window(rng, 1000, 3) | {"pixel": np.zeros(1000)}
    live = gaussian_window(rng, 1000, 3) | {"pixel": np.full(1000, 0.012)}
    report = detect_drift(reference, live)
    assert report.drifted_features == ("pixel",)
    quiet = gaussian_window(rng, 1000, 3) | {"pixel": np.zeros(1000)}
    quiet["pixel"][:2] = 16.0  # a rare value the reference did not happen to hold
    assert not detect_drift(reference, quiet).dataset_drift


def test_in_a_huge_window_the_larger_effect_is_named_first() -> None:
    # Both p-values underflow to 0; the effect over its floor decides the order.
    rng = np.random.default_rng(7)
    reference, live = gaussian_window(rng, 5000, 4), gaussian_window(rng, 200_000, 4)
    live["g01"] = live["g01"] + 0.8
    live["g03"] = live["g03"] + 1.2
    report = detect_drift(reference, live, DriftConfig(multivariate="none"))
    assert report.drifted_features == ("g03", "g01")
    assert [f.p_value for f in report.features if f.drifted] == [0.0, 0.0]


def test_reports_stored_before_the_effect_floor_still_load() -> None:
    # as the drift job stored them: KS up to 1,000 live rows, distances alone above
    stored: dict[str, Any] = {
        "dataset_drift": True,
        "share_drifted": 0.5,
        "drifted_features": ["amount", "country"],
        "n_reference": 5000,
        "n_live": 20_000,
        "features": [
            {"name": "amount", "test": "wasserstein", "statistic": 0.31, "p_value": None,
             "threshold": 0.1, "drifted": True},
            {"name": "country", "test": "jensen_shannon", "statistic": 0.12, "p_value": None,
             "threshold": 0.1, "drifted": True},
            {"name": "age", "test": "psi", "statistic": 0.02, "p_value": None,
             "threshold": 0.1, "drifted": False},
            {"name": "score", "test": "ks", "statistic": 0.03, "p_value": 0.4,
             "threshold": 0.00125, "drifted": False},
        ],
        "prediction_drift": {"name": "prediction", "test": "ks", "statistic": 0.02,
                             "p_value": 0.9, "threshold": 0.005, "drifted": False},
        "multivariate": None,
    }  # fmt: skip
    report = DriftReport.from_dict(stored)
    assert report.drifted_features == ("amount", "country")
    amount, country, age, score = report.features
    assert (amount.test, amount.p_value, amount.drifted) == ("wasserstein", None, True)
    assert (country.test, age.test, score.test) == ("jensen_shannon", "psi", "ks")
    assert score.p_value == 0.4
    assert all(f.effect is None and f.effect_size is None for f in report.features)
    assert report.prediction_drift == FeatureDrift("prediction", "ks", 0.02, 0.9, 0.005, False)
    assert DriftReport.from_dict(report.to_dict()) == report


def test_the_stored_form_of_a_new_verdict_names_its_effect_and_floor() -> None:
    rng = np.random.default_rng(8)
    reference, live = gaussian_window(rng, 500, 2), gaussian_window(rng, 1000, 2)
    live["g00"] = live["g00"] + 0.5
    stored = detect_drift(reference, live).to_dict()["features"][0]
    assert stored["effect"] == "wasserstein"
    assert stored["effect_floor"] == 0.1
    assert stored["effect_size"] == pytest.approx(0.5, abs=0.15)
    assert stored["drifted"] is True


def synthetic(rng: np.random.Generator, size: int, shift: float = 0.0) -> Window:
    """8 gaussian columns (the first moved by ``shift`` standard deviations), a lognormal
    one and a categorical one: the mix of a tabular model's inputs."""
    window: Window = {f"g{i}": rng.normal(size=size) for i in range(8)}
    window["g0"] = window["g0"] + shift
    window["amount"] = rng.lognormal(3.0, 1.0, size)
    window["channel"] = rng.choice(np.array(["web", "app", "shop"]), size, p=[0.5, 0.3, 0.2])
    return window


def test_500_windows_without_shift_raise_at_most_1_percent_false_alarms() -> None:
    # The README's promise: at most 1% of windows without any shift alarm. Each window is
    # an independent seeded draw of 500 rows from the reference's own distribution.
    config = DriftConfig(categorical_features=("channel",))
    reference = synthetic(np.random.default_rng(10_000), 2000)
    alarms = sum(
        detect_drift(
            reference, synthetic(np.random.default_rng(seed), 500), config, seed
        ).dataset_drift
        for seed in range(500)
    )
    assert alarms <= 5, f"{alarms} false alarms in 500 windows"
    # ...and it is not quiet because it is deaf: half a standard deviation is found.
    found = sum(
        detect_drift(
            reference, synthetic(np.random.default_rng(seed), 500, 0.5), config, seed
        ).dataset_drift
        for seed in range(1000, 1020)
    )
    assert found == 20
