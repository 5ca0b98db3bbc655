"""The Nadeau-Bengio corrected interval for repeated k-fold CV scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from credit_risk.evaluate.intervals import corrected_interval, naive_std_error


def test_corrected_standard_error_follows_the_formula() -> None:
    scores = np.array([0.50, 0.55, 0.48, 0.60, 0.52, 0.57, 0.49, 0.51, 0.58, 0.53])
    interval = corrected_interval(scores, folds=5)
    expected = math.sqrt((1 / 10 + 1 / 4) * scores.var(ddof=1))
    assert interval.std_error == pytest.approx(expected)
    half = stats.t.ppf(0.975, 9) * expected
    assert interval.low == pytest.approx(scores.mean() - half)
    assert interval.high == pytest.approx(scores.mean() + half)
    assert interval.folds == 10


def test_correction_widens_the_naive_interval_and_does_not_vanish_with_repeats() -> None:
    rng = np.random.default_rng(0)
    few = rng.normal(0.5, 0.07, 25)
    many = rng.normal(0.5, 0.07, 2500)
    assert corrected_interval(few, 5).std_error > 2.5 * naive_std_error(few)
    # More repeats do not shrink the corrected error below sqrt(1/(k-1)) * s.
    assert corrected_interval(many, 5).std_error >= 0.5 * many.std(ddof=1)


def test_too_few_scores_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        corrected_interval([0.5], 5)
    with pytest.raises(ValueError, match="folds"):
        corrected_interval([0.5, 0.6], 1)
