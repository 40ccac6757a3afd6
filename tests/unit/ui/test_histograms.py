"""Reference vs live histograms on shared bins (``ui.data.histograms``): the reference's
shares come from its profile's quantiles and agree with the data they summarise."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.registry.profile import describe_column
from modelyard.ui.data.histograms import BINS, OTHER, histogram


def test_numeric_shares_from_the_quantiles_match_the_data_they_summarise() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5000)
    found = histogram("amount", describe_column(reference), rng.normal(size=800) + 1.0)
    assert found.kind == "numeric"
    assert len(found.edges) == BINS + 1
    assert found.reference is not None
    assert sum(found.reference) == pytest.approx(1.0)
    assert sum(found.live) == pytest.approx(1.0)
    edges = np.array(found.edges)
    truth = np.histogram(np.clip(reference, edges[0], edges[-1]), bins=edges)[0] / reference.size
    assert np.abs(np.array(found.reference) - truth).max() < 0.01
    centres = (edges[:-1] + edges[1:]) / 2
    shift = centres @ np.array(found.live) - centres @ np.array(found.reference)
    assert shift == pytest.approx(1.0, abs=0.15)
    assert found.live_rows == 800


def test_whole_numbers_get_a_bin_each_and_the_reference_its_steps() -> None:
    rng = np.random.default_rng(1)
    reference = rng.choice(3, size=5000, p=[0.5, 0.3, 0.2])
    found = histogram("children", describe_column(reference), np.array([0.0, 1.0, 3.0, np.nan]))
    assert found.edges == [-0.5, 0.5, 1.5, 2.5, 3.5]
    assert found.reference == pytest.approx([0.5, 0.3, 0.2, 0.0], abs=0.02)
    assert found.live == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3])
    assert found.live_rows == 3  # the missing value is left out


def test_categories_are_ranked_by_share_and_the_rest_is_other() -> None:
    reference = np.array(list("aaaabbbc") + [f"rare{i}" for i in range(20)], dtype=object)
    live = np.array(list("bbbbbbad") + [None], dtype=object)
    found = histogram("city", describe_column(reference), live)
    assert found.kind == "categorical"
    assert found.categories[:2] == ["b", "a"]
    assert found.categories[-1] == OTHER
    assert len(found.categories) == 13  # the top 12, then the rest
    assert sum(found.live) == pytest.approx(1.0)
    assert found.reference is not None
    assert sum(found.reference) == pytest.approx(1.0)
    assert found.live[found.categories.index("d")] == pytest.approx(1 / 8)


def test_without_a_profile_the_live_side_still_shows() -> None:
    found = histogram("new_input", None, np.array([1.0, 2.0, 2.5]))
    assert found.reference is None
    assert sum(found.live) == pytest.approx(1.0)
    empty = histogram("empty", None, np.array([], dtype=np.float64))
    assert (empty.live, empty.live_rows) == ([], 0)
