"""Two-sample statistics for one feature: reference sample against a live window.

Numeric statistics take *sorted* float arrays, so that the caller sorts each
column once and reuses it (a 1,000,000-row column sorts in ~20 ms; scipy's
functions re-sort, and ``wasserstein_distance`` argsorts the concatenation).
Categorical statistics take category -> count mappings, built once per column.

Each feature gets a significance test, whose null distribution depends on both
sample sizes, and an effect size, which does not grow with them:

=============  =======================================  ==============================
feature        test (p-value)                           effect size
=============  =======================================  ==============================
numeric        two-sample Kolmogorov-Smirnov            1-Wasserstein distance in
                                                        reference standard deviations
categorical    chi-square test of homogeneity           Jensen-Shannon distance
=============  =======================================  ==============================

Hand-written here, and checked against scipy in the tests:

- the KS statistic, evaluated on the distinct values of the smaller sample only
  (O(m log n) for m <= n, no merge of a million-row window with the reference;
  ``scipy.stats.ks_2samp`` would re-sort both and, with max(n, m) <= 10,000,
  switch to its slow exact p-value); the p-value is scipy's own asymptotic one
  (``scipy.stats.kstwo`` at n*m/(n+m)), as ``ks_2samp(method="asymp")``;
- the 1-Wasserstein distance, from prefix sums of the sorted live window.

The chi-square test of homogeneity and the Jensen-Shannon distance call scipy
directly (``chi2_contingency``, ``spatial.distance.jensenshannon``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

FloatArray = npt.NDArray[np.float64]

# Categories expected fewer times than this in the smaller of the two samples are
# pooled into one "other" cell before the chi-square test (Cochran's rule): the
# chi-square approximation is poor for sparse cells exactly where a
# Bonferroni-corrected threshold looks, in the far tail. With a 100-row reference
# and a 100,000-row window, the sparse cells are the reference's.
MIN_EXPECTED_COUNT = 5.0


def ks_test(reference_sorted: FloatArray, live_sorted: FloatArray) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov test: ``(D, p_value)``.

    Both inputs must be sorted. The p-value is Smirnov's asymptotic one at
    n*m/(n+m), the same as ``scipy.stats.ks_2samp(..., method="asymp")``: it
    depends on both sizes, so a small reference is not taken for the truth.
    With ties (discrete values) it is conservative.
    """
    m, n = reference_sorted.size, live_sorted.size
    d = ks_statistic(reference_sorted, live_sorted)
    en = max(round(m * n / (m + n)), 1)  # scipy's round(0.5) = 0 gives NaN for n = m = 1
    p = float(np.clip(stats.kstwo.sf(d, en), 0.0, 1.0))
    return d, p


def ks_statistic(a_sorted: FloatArray, b_sorted: FloatArray) -> float:
    """sup |F_a - F_b| over the line, read off at the distinct values of the smaller sample.

    Between two consecutive distinct values x_i < x_(i+1) of the smaller sample
    its CDF F is constant while the other's, G, only grows; so F - G peaks at
    x_i and G - F just before x_(i+1). Two searchsorted passes into the larger
    sample give both.
    """
    x, y = (a_sorted, b_sorted) if a_sorted.size <= b_sorted.size else (b_sorted, a_sorted)
    last = np.flatnonzero(np.append(x[1:] != x[:-1], True))  # last index of each value
    values = x[last]
    f = (last + 1) / x.size  # F at each distinct value
    f_before = np.concatenate([[0.0], f[:-1]])  # F just below it
    g = np.searchsorted(y, values, side="right") / y.size
    g_before = np.searchsorted(y, values, side="left") / y.size
    return float(max(np.max(f - g), np.max(g_before - f_before), 0.0))


def wasserstein(reference_sorted: FloatArray, live_sorted: FloatArray) -> float:
    """Exact 1-Wasserstein distance between two sorted samples.

    W1 is the integral of |Q_x(u) - Q_y(u)| over u in [0, 1], Q the quantile
    functions. On a grid of p * q steps (p <= q the sample sizes), element i of
    the shorter sample x spans [i*q, (i+1)*q) and element j of y spans
    [j*p, (j+1)*p). The y elements wholly inside x's span i contribute
    sum |x_i - y_j|, which prefix sums of y give in O(1) once the split point
    (searchsorted) is known; the at most p - 1 y elements that straddle a
    boundary are added piece by piece. O(q) for one cumulative sum plus
    O(p log q), with no merge sort of the two samples.
    """
    x, y = reference_sorted, live_sorted
    if x.size > y.size:
        x, y = y, x
    p, q = x.size, y.size
    prefix = np.empty(q + 1)
    prefix[0] = 0.0
    np.cumsum(y, out=prefix[1:])
    i = np.arange(p, dtype=np.int64)
    lo = (i * q + p - 1) // p  # first y element wholly inside x's span i
    hi = ((i + 1) * q) // p  # one past the last
    hi = np.maximum(hi, lo)
    k = np.clip(np.searchsorted(y, x), lo, hi)  # y[lo:k] < x_i <= y[k:hi]
    inside = (prefix[hi] - prefix[k]) - x * (hi - k) + x * (k - lo) - (prefix[k] - prefix[lo])
    total = float(inside.sum()) * p

    b = i[1:] * q  # inner boundaries of x's spans on the grid
    straddles = b % p != 0
    b, left = b[straddles], i[1:][straddles] - 1
    j = b // p
    total += float(
        np.sum(
            np.abs(x[left] - y[j]) * (b - j * p) + np.abs(x[left + 1] - y[j]) * ((j + 1) * p - b)
        )
    )
    return max(total / (float(p) * float(q)), 0.0)  # rounding can dip below 0


def normalised_wasserstein(reference_sorted: FloatArray, live_sorted: FloatArray) -> float:
    """W1 in units of the reference standard deviation.

    A constant reference has none (a pixel that was always 0 in 100 rows): then
    the standard deviation of both samples together, so that a constant that
    moves, or a window that spreads out, counts as large; 1.0 (the column's
    own units) only when both samples hold one and the same value.
    """
    w = wasserstein(reference_sorted, live_sorted)
    if reference_sorted[0] != reference_sorted[-1]:
        scale = float(np.std(reference_sorted))  # 0 when tiny values underflow
        if scale > 0.0:
            return w / scale
    scale = float(np.std(np.concatenate([reference_sorted, live_sorted])))
    return w / scale if scale > 0.0 else w


def count_table(
    reference_counts: Mapping[Hashable, int], live_counts: Mapping[Hashable, int]
) -> npt.NDArray[np.int64]:
    """A 2 x k table of counts (row 0 reference, row 1 live) over the union of categories."""
    categories = list(reference_counts)
    categories += [c for c in live_counts if c not in reference_counts]
    table = np.zeros((2, len(categories)), dtype=np.int64)
    for j, c in enumerate(categories):
        table[0, j] = reference_counts.get(c, 0)
        table[1, j] = live_counts.get(c, 0)
    return table


def pool_sparse_categories(table: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Merge the categories expected fewer than 5 times in the smaller row into one cell."""
    totals = table.sum(axis=0)
    expected_smaller = totals * (table.sum(axis=1).min() / totals.sum())
    sparse = expected_smaller < MIN_EXPECTED_COUNT
    if sparse.sum() < 2:
        return table
    pooled = table[:, sparse].sum(axis=1, keepdims=True)
    return np.concatenate([table[:, ~sparse], pooled], axis=1)


def chi2_test(
    reference_counts: Mapping[Hashable, int], live_counts: Mapping[Hashable, int]
) -> tuple[float, float]:
    """Chi-square test of homogeneity (reference vs live shares): ``(chi2, p_value)``.

    A two-sample test: unlike a goodness-of-fit test against the reference
    shares, it accounts for the reference being a sample too. Sparse
    categories are pooled first (see ``pool_sparse_categories``).
    """
    table = pool_sparse_categories(count_table(reference_counts, live_counts))
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def jensen_shannon(
    reference_counts: Mapping[Hashable, int], live_counts: Mapping[Hashable, int]
) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between the category shares."""
    table = count_table(reference_counts, live_counts).astype(np.float64)
    ref_share = table[0] / table[0].sum()
    live_share = table[1] / table[1].sum()
    js = float(distance.jensenshannon(ref_share, live_share, base=2.0))
    # rounding can make the divergence a hair below zero for near-equal shares
    return js if js == js else 0.0
