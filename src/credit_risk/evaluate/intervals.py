"""Confidence intervals for metrics estimated by (repeated) k-fold cross-validation.

The folds of a cross-validation share training rows, so their scores are correlated and the
naive standard error ``std / sqrt(J)`` over ``J`` test folds is too small. Nadeau and Bengio
(2003, "Inference for the Generalization Error", Machine Learning 52) correct the variance of
the mean of ``J`` resampled estimates by the ratio of test to training size:

    var(mean) ~= (1 / J + n_test / n_train) * s^2

with ``s^2`` the sample variance of the ``J`` fold scores, and use Student's t with ``J - 1``
degrees of freedom. For r repeats of k-fold CV, ``J = r * k`` and ``n_test / n_train =
1 / (k - 1)``. The same correction applies to paired differences between two recipes scored
on the same folds (Bouckaert and Frank 2004 call it the corrected repeated k-fold t-test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A mean with its corrected standard error and two-sided confidence interval."""

    mean: float
    std_error: float
    low: float
    high: float
    confidence: float
    folds: int

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def corrected_interval(
    scores: Sequence[float] | np.ndarray, folds: int, confidence: float = 0.95
) -> Interval:
    """Nadeau-Bengio corrected t interval for the mean of repeated ``folds``-fold CV scores.

    Args:
        scores: one score (or one paired difference) per test fold, over all repeats.
        folds: k, the number of folds of each repeat (test/train size ratio 1/(k-1)).
        confidence: two-sided confidence level.

    Raises:
        ValueError: fewer than two scores, or fewer than two folds.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    return resampled_interval(scores, 1.0 / (folds - 1), confidence)


def resampled_interval(
    scores: Sequence[float] | np.ndarray, test_train_ratio: float, confidence: float = 0.95
) -> Interval:
    """Nadeau-Bengio corrected resampled t interval, for any ratio of test to training rows.

    For ``J`` random train/test splits (repeated hold-out) with ``n_test / n_train`` equal to
    ``test_train_ratio``; :func:`corrected_interval` is the k-fold case, ratio ``1/(k-1)``.

    Raises:
        ValueError: fewer than two scores, or a ratio that is not positive.
    """
    values = np.asarray(scores, dtype=float)
    if values.size < 2:
        raise ValueError(f"an interval needs at least 2 fold scores, got {values.size}")
    if test_train_ratio <= 0:
        raise ValueError(f"test_train_ratio must be positive, got {test_train_ratio}")
    count = values.size
    mean = float(values.mean())
    variance = float(values.var(ddof=1))
    std_error = math.sqrt((1.0 / count + test_train_ratio) * variance)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, count - 1)) * std_error
    return Interval(mean, std_error, mean - half, mean + half, confidence, count)


def naive_std_error(scores: Sequence[float] | np.ndarray) -> float:
    """``std / sqrt(J)``: the uncorrected standard error (shown only to compare)."""
    values = np.asarray(scores, dtype=float)
    return float(values.std(ddof=1) / math.sqrt(values.size))
