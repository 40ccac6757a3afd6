import numpy as np

from modelyard.registry.profile import build_profile, describe_column, load_sample


def test_numeric_column_summary_matches_numpy() -> None:
    values = np.random.default_rng(1).normal(10, 2, size=5000)
    stats = describe_column(values)
    assert stats["kind"] == "numeric"
    assert stats["mean"] == float(values.mean())
    assert stats["quantiles"][50] == float(np.quantile(values, 0.5))
    assert sum(stats["histogram"]["counts"]) == 5000


def test_categorical_frequencies_sum_to_one() -> None:
    values = np.array(["a", "b", "a", "c"], dtype=object)
    stats = describe_column(values)
    assert stats["frequencies"] == {"a": 0.5, "b": 0.25, "c": 0.25}


def test_nan_fraction_is_reported() -> None:
    stats = describe_column(np.array([1.0, np.nan, 3.0, np.nan]))
    assert stats["nan_fraction"] == 0.5


def test_profile_covers_features_and_model_scores_and_its_sample_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    features = {
        "x": rng.normal(size=8000),
        "country": rng.choice(["fr", "de"], 8000).astype(object),
    }
    outputs = {"label": rng.integers(0, 2, 8000), "probabilities": rng.random((8000, 2))}
    profile, sample = build_profile(features, outputs)
    assert set(profile["features"]) == {"x", "country"}
    assert set(profile["predictions"]) == {"label", "score"}
    again = build_profile(features, outputs)[1]
    assert sample == again, "equal data must give byte-identical samples"
    loaded = load_sample(sample)
    assert len(loaded["feature"]["x"]) == 5000
    assert set(loaded["prediction"]) == {"label", "score"}


def test_the_profile_says_how_many_rows_its_sample_holds() -> None:
    rng = np.random.default_rng(2)
    big, _ = build_profile({"x": rng.normal(size=8000)}, {})
    assert (big["rows"], big["sample_rows"]) == (8000, 5000)
    small, sample = build_profile({"x": rng.normal(size=120)}, {})
    assert (small["rows"], small["sample_rows"]) == (120, 120)
    assert len(load_sample(sample)["feature"]["x"]) == small["sample_rows"]
