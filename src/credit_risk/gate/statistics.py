"""The paired comparison of two models on the same rows: the metric and its paired bootstrap
interval over applicants."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from credit_risk.config import Settings
from credit_risk.evaluate import CostMatrix, expected_cost

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# Bootstrap draws held in memory at once: resamples x rows.
_DRAW_BLOCK = 2_000_000


@dataclass(frozen=True)
class Comparison:
    """Both models scored on the same rows: the metric and the paired bootstrap interval.

    ``improvement`` is how much better the challenger is in the objective's metric (lower cost,
    higher recall or ROC AUC), positive when it is better; ``low``/``high`` bound it.
    """

    protocol: str
    metric: str
    rows: int
    champion: float
    challenger: float
    improvement: float
    low: float
    high: float
    # Evaluation rows found among each model's (or fold refit's) training rows.
    overlap: dict[str, int]
    design: str


# --- paired bootstrap ---------------------------------------------------------------------


def _draw_blocks(rows: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap row draws (resamples x rows), in blocks that bound the memory used."""
    rng = np.random.default_rng(seed)
    block = max(1, _DRAW_BLOCK // max(rows, 1))
    done = 0
    while done < resamples:
        size = min(block, resamples - done)
        yield rng.integers(0, rows, size=(size, rows))
        done += size


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def paired_ratio_bootstrap(
    numerator: np.ndarray, denominator: np.ndarray, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of ``sum(numerator) / sum(denominator)`` over resampled applicants.

    The paired differences of a mean (cost: numerator the per-applicant difference,
    denominator 1) or of a rate over a subgroup (recall: the difference among bad applicants).
    """
    values = []
    for draws in _draw_blocks(len(numerator), resamples, seed):
        denominators = denominator[draws].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values.append(numerator[draws].sum(axis=1) / denominators)
    stacked = np.concatenate(values)
    return _interval(stacked[np.isfinite(stacked)], confidence)


def paired_statistic_bootstrap(
    statistic: Callable[[np.ndarray], float],
    rows: int,
    resamples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """Percentile interval of any paired statistic of resampled applicants (e.g. ROC AUC)."""
    values = []
    for draws in _draw_blocks(rows, resamples, seed):
        for draw in draws:
            value = statistic(draw)
            if np.isfinite(value):
                values.append(value)
    return _interval(np.asarray(values), confidence)


def metric_value(
    metric: str, y: np.ndarray, probability: np.ndarray, threshold: float, costs: CostMatrix
) -> float:
    """The gate's metric of one set of predictions (NaN when it is undefined on these rows:
    recall without a bad applicant, ROC AUC with one class)."""
    rejected = probability >= threshold
    if metric == "cost":
        return expected_cost(y, rejected, costs)
    if metric == "recall_bad":
        return float(rejected[y == 1].mean()) if (y == 1).any() else float("nan")
    if y.min() == y.max():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, probability))


def compare_predictions(
    protocol: str,
    metric: str,
    y: np.ndarray,
    champion_probability: np.ndarray,
    challenger_probability: np.ndarray,
    thresholds: tuple[float, float],
    costs: CostMatrix,
    settings: Settings,
    overlaps: dict[str, int],
    design: str,
) -> Comparison:
    """Compare two models' predictions of the same applicants, paired.

    Args:
        y: 1 bad, 0 good, per applicant.
        champion_probability, challenger_probability: probabilities of bad, shape
            ``(repeats, applicants)`` (one row per cross-validation repeat; one row out of time).
        thresholds: the champion's and the challenger's.
    """
    y = np.asarray(y).astype(int)
    champ = np.atleast_2d(champion_probability)
    chall = np.atleast_2d(challenger_probability)
    champ_rejected = (champ >= thresholds[0]).mean(axis=0)
    chall_rejected = (chall >= thresholds[1]).mean(axis=0)
    resamples, confidence, seed = settings.gate_resamples, settings.gate_confidence, settings.seed

    def pooled(probability: np.ndarray, threshold: float) -> float:
        values = [metric_value(metric, y, p, threshold, costs) for p in probability]
        return float(np.mean(values))

    champion_value, challenger_value = pooled(champ, thresholds[0]), pooled(chall, thresholds[1])
    if metric == "cost":
        # Expected cost per applicant over the repeats: 5 for a bad one accepted, 1 for a good
        # one rejected (german.doc), so the improvement is the champion's minus the challenger's.
        def cost(rejected: np.ndarray) -> np.ndarray:
            return np.where(
                y == 1, costs.bad_accepted * (1 - rejected), costs.good_rejected * rejected
            )

        difference = cost(champ_rejected) - cost(chall_rejected)
        interval = paired_ratio_bootstrap(
            difference, np.ones_like(difference), resamples, confidence, seed
        )
    elif metric == "recall_bad":
        difference = (chall_rejected - champ_rejected) * y
        interval = paired_ratio_bootstrap(difference, y.astype(float), resamples, confidence, seed)
    else:
        from sklearn.metrics import roc_auc_score

        def auc_gain(draw: np.ndarray) -> float:
            if y[draw].min() == y[draw].max():
                return float("nan")
            gains = [
                roc_auc_score(y[draw], b[draw]) - roc_auc_score(y[draw], a[draw])
                for a, b in zip(champ, chall, strict=True)
            ]
            return float(np.mean(gains))

        interval = paired_statistic_bootstrap(auc_gain, len(y), resamples, confidence, seed)
    higher_is_better = metric != "cost"
    improvement = (
        challenger_value - champion_value if higher_is_better else champion_value - challenger_value
    )
    return Comparison(
        protocol=protocol,
        metric=metric,
        rows=len(y),
        champion=champion_value,
        challenger=challenger_value,
        improvement=float(improvement),
        low=interval[0],
        high=interval[1],
        overlap=overlaps,
        design=design,
    )
