"""Flag-rate intervals against statsmodels' reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from audits.themes.intervals import newcombe_difference, wilson_interval

CASES = [(0, 10), (1, 10), (5, 10), (10, 10), (3, 7), (17, 250), (1, 1)]


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(confidence: float) -> None:
    k = np.array([c[0] for c in CASES])
    n = np.array([c[1] for c in CASES])
    low, high = wilson_interval(k, n, confidence)
    ref_low, ref_high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    np.testing.assert_allclose(low, ref_low, atol=1e-12)
    np.testing.assert_allclose(high, ref_high, atol=1e-12)


@pytest.mark.parametrize(("a", "b"), [(CASES[i], CASES[j]) for i in range(len(CASES)) for j in (1, 3, 5)])
def test_newcombe_matches_statsmodels(a: tuple[int, int], b: tuple[int, int]) -> None:
    diff, low, high = newcombe_difference(a[0], a[1], b[0], b[1])
    ref_low, ref_high = confint_proportions_2indep(a[0], a[1], b[0], b[1], method="newcomb", compare="diff")
    assert diff == pytest.approx(a[0] / a[1] - b[0] / b[1])
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


def test_empty_cells_are_nan_and_bad_counts_refused() -> None:
    low, high = wilson_interval(0, 0)
    assert np.isnan(low) and np.isnan(high)
    assert np.isnan(newcombe_difference(1, 4, 0, 0)[1])
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 3)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 3, confidence=1.5)


def test_bounds_never_leave_zero_to_one() -> None:
    """At k = 0 and k = n the bounds fall on 0 and 1 up to rounding error, which may not cross them."""
    n = np.arange(1, 500)
    low, _ = wilson_interval(np.zeros_like(n), n)
    _, high = wilson_interval(n, n)
    assert low.min() == 0.0 and high.max() == 1.0
    assert (low >= 0).all() and (high <= 1).all()
