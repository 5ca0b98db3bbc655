"""The drift statistics: PSI effect sizes, Monte Carlo chi-square and KS tests, their draws."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.schema import BY_NAME, Kind

SCORE = "probability_bad"
MODEL_VERSION = "model_version"
PSI_WATCH, PSI_ACT = 0.1, 0.25
SCORE_BINS = 10
NUMERIC_BINS = 10
# Half an observation in every bin, so an empty bin gives a large but finite PSI term.
PSEUDO_COUNT = 0.5
CHI_SQUARE, KS = "chi-square", "ks"
# Integer attributes with at most this many allowed values (installment-rate and residence
# bands, numbers of credits and of people liable) are tested as categories.
MAX_DISCRETE_LEVELS = 10
# Null draws per test: enough that this many simulated statistics lie beyond the corrected
# level, so the Monte Carlo p-value loses little power against the exact one.
EXCEEDANCES = 10
MIN_DRAWS = 999
REFERENCE_FORMAT = 1
# Elements per block of simulated KS paths (memory of one block: 8 bytes each).
_KS_BLOCK = 2_000_000
_RELATIVE_TIE = 1e-9
# Tables simulated at a time (a test that may stop early checks after each block; most quiet
# tests stop after the first).
_BLOCK = 256


def psi_band(value: float) -> str:
    """The conventional reading of a PSI value."""
    return "stable" if value < PSI_WATCH else ("watch" if value < PSI_ACT else "act")


def _psi_from_counts(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = (expected + PSEUDO_COUNT) / (expected.sum() + PSEUDO_COUNT * len(expected))
    actual = (actual + PSEUDO_COUNT) / (actual.sum() + PSEUDO_COUNT * len(actual))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges: the reference's quantiles (distinct values only)."""
    quantiles = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = NUMERIC_BINS) -> float:
    """PSI over the reference's quantile bins (ties merged: banded attributes get fewer bins)."""
    edges = numeric_edges(np.asarray(reference, dtype="float64"), bins)
    expected = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi_from_counts(expected.astype(float), actual.astype(float))


def psi_categorical(reference: pd.Series, current: pd.Series, levels: list[str]) -> float:
    """PSI over the codebook's levels (a level never seen anywhere adds nothing)."""
    expected = reference.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy()
    actual = current.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy()
    seen = (expected + actual) > 0
    return _psi_from_counts(expected[seen].astype(float), actual[seen].astype(float))


def choose_test(name: str) -> str:
    """The test an attribute gets (the score: KS), from the codebook."""
    if name == SCORE:
        return KS
    attribute = BY_NAME[name]
    if attribute.kind is Kind.CATEGORICAL:
        return CHI_SQUARE
    assert attribute.minimum is not None and attribute.maximum is not None
    levels = attribute.maximum - attribute.minimum + 1
    return CHI_SQUARE if levels <= MAX_DISCRETE_LEVELS else KS


def value_key(value: Any) -> str:
    """Canonical text of a value: codes as they are, integral numbers without a decimal point."""
    if isinstance(value, str):
        return value
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


# --- the tests ------------------------------------------------------------------------------


def null_draws(level: float) -> int:
    """Simulated null statistics per test at per-test level ``level``."""
    return max(MIN_DRAWS, math.ceil(EXCEEDANCES / level) - 1)


def allowed_exceedances(level: float, draws: int) -> int:
    """Most null statistics at or above the observed one that still give p <= level."""
    return math.floor(level * (draws + 1) + 1e-9) - 1


def _exceedances(null: np.ndarray, observed: float) -> int:
    """Null statistics at or above the observed one (equal up to rounding counts as equal)."""
    tolerance = _RELATIVE_TIE * max(1.0, abs(observed))
    return int(np.count_nonzero(null >= observed - tolerance))


def monte_carlo_outcome(observed: float, null: np.ndarray, level: float) -> tuple[float, float]:
    """p-value and threshold of a statistic against its simulated null (sorted ascending).

    Returns:
        ``p = (1 + #null >= observed) / (draws + 1)``, and the threshold: the largest statistic
        that does not alarm at ``level`` (p <= level exactly when the statistic exceeds it).
    """
    draws = len(null)
    allowed = allowed_exceedances(level, draws)
    threshold = float(null[draws - 1 - allowed]) if allowed >= 0 else math.inf
    return (1 + _exceedances(null, observed)) / (draws + 1), threshold


def pearson_statistic(
    window_counts: np.ndarray, totals: np.ndarray, reference_rows: int, window_rows: int
) -> np.ndarray:
    """Pearson's chi-square of 2 x k tables, from the window's counts and the pooled ones.

    The reference's deviation from its expected count is minus the window's, so both rows of
    the table reduce to one sum. Works on one table (k,) or a stack of them (draws, k).
    """
    rows = reference_rows + window_rows
    expected = window_rows * totals / rows
    weight = rows * rows / (totals * reference_rows * window_rows)
    return np.asarray(((window_counts - expected) ** 2 * weight).sum(axis=-1), dtype="float64")


def chi_square_test(
    reference: Mapping[str, int],
    window: Mapping[str, int],
    draws: int,
    level: float,
    rng: np.random.Generator,
    stop_early: bool = False,
) -> tuple[float, float, float]:
    """Pearson's statistic against its permutation null given the pooled counts.

    Args:
        reference, window: counts per value (values seen in neither are left out).
        draws: simulated tables.
        level: the per-test level the threshold is for.
        rng: the simulation's generator.
        stop_early: stop simulating once more null statistics than
            :func:`allowed_exceedances` reach the observed one. The alarm decision is then
            known, and is the one the full simulation gives (Besag and Clifford 1991); the
            p-value is the sequential estimate (exceedances / draws made) and the threshold
            is not computed (nan). For simulation studies of many windows.

    Returns:
        The statistic, its p-value and its threshold at this window's size.
    """
    levels = sorted(set(reference) | set(window))
    ref = np.array([reference.get(level, 0) for level in levels], dtype="int64")
    win = np.array([window.get(level, 0) for level in levels], dtype="int64")
    totals = ref + win
    reference_rows, window_rows = int(ref.sum()), int(win.sum())
    if len(levels) < 2:  # one value in reference and window alike: nothing can differ
        return 0.0, 1.0, 0.0

    def simulate(size: int) -> np.ndarray:
        # "marginals": a few hypergeometric draws per table, whatever the window's size.
        tables = rng.multivariate_hypergeometric(totals, window_rows, size=size, method="marginals")
        return pearson_statistic(tables, totals, reference_rows, window_rows)

    observed = float(pearson_statistic(win, totals, reference_rows, window_rows))
    # Simulated in blocks either way, so that both ways see the same null statistics.
    allowed, exceed, blocks = allowed_exceedances(level, draws), 0, []
    for start in range(0, draws, _BLOCK):
        blocks.append(simulate(min(_BLOCK, draws - start)))
        exceed += _exceedances(blocks[-1], observed)
        if stop_early and exceed > allowed:
            return observed, exceed / (start + len(blocks[-1])), math.nan
    if stop_early:
        return observed, (1 + exceed) / (draws + 1), math.nan
    p_value, threshold = monte_carlo_outcome(observed, np.sort(np.concatenate(blocks)), level)
    return observed, p_value, threshold


def ks_distance(reference: np.ndarray, window: np.ndarray) -> int:
    """The two-sample KS distance times N x n (an integer), of sorted samples."""
    grid = np.union1d(reference, window)
    in_reference = np.searchsorted(reference, grid, side="right")
    in_window = np.searchsorted(window, grid, side="right")
    return int(np.max(np.abs(in_window * len(reference) - in_reference * len(window))))


@functools.lru_cache(maxsize=64)
def ks_null(reference_rows: int, window_rows: int, draws: int) -> np.ndarray:
    """Distribution-free null of :func:`ks_distance` for samples of these sizes (sorted).

    Under no drift and without ties, the pooled sample's order is a uniformly random
    arrangement of the two samples: each draw walks one, stepping +N for a window value and
    -n for a reference value, and keeps its largest excursion. It depends on the sizes only,
    so it is simulated once per (N, n, draws), from a seed they fix, and cached.
    """
    rng = np.random.default_rng([reference_rows, window_rows, draws])
    steps = np.concatenate(
        [np.full(window_rows, reference_rows), np.full(reference_rows, -window_rows)]
    ).astype("int64")
    block = max(1, _KS_BLOCK // len(steps))
    null = np.empty(draws, dtype="int64")
    for start in range(0, draws, block):
        size = min(block, draws - start)
        paths = np.cumsum(rng.permuted(np.tile(steps, (size, 1)), axis=1), axis=1)
        null[start : start + size] = np.abs(paths).max(axis=1)
    null.sort()
    return null
