"""The cost matrix and the metrics of accept/reject decisions.

Convention: ``y`` is 1 for a bad applicant (the positive class), ``probability`` is the
probability of bad, and an applicant is rejected when ``probability >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
)

from credit_risk.config import Settings


@dataclass(frozen=True)
class CostMatrix:
    """Costs of the two errors (german.doc: bad accepted 5, good rejected 1)."""

    bad_accepted: float = 5.0
    good_rejected: float = 1.0


def costs_of(settings: Settings) -> CostMatrix:
    """The cost matrix the settings declare."""
    return CostMatrix(settings.cost_bad_accepted, settings.cost_good_rejected)


def expected_cost(y: np.ndarray, rejected: np.ndarray, costs: CostMatrix) -> float:
    """Average cost per applicant of accept/reject decisions.

    Args:
        y: 1 for bad, 0 for good.
        rejected: 1 (or True) where the applicant is rejected.
        costs: the cost matrix.
    """
    y = np.asarray(y).astype(bool)
    rejected = np.asarray(rejected).astype(bool)
    bad_accepted = np.sum(y & ~rejected)
    good_rejected = np.sum(~y & rejected)
    return float((costs.bad_accepted * bad_accepted + costs.good_rejected * good_rejected) / len(y))


def classification_metrics(
    y: np.ndarray, probability: np.ndarray, threshold: float, costs: CostMatrix
) -> dict[str, float]:
    """All headline metrics at a threshold (bad is the positive class)."""
    y = np.asarray(y).astype(int)
    rejected = (np.asarray(probability) >= threshold).astype(int)
    return {
        "cost": expected_cost(y, rejected, costs),
        "recall_bad": float(recall_score(y, rejected, zero_division=0)),
        "precision_bad": float(precision_score(y, rejected, zero_division=0)),
        "accuracy": float(accuracy_score(y, rejected)),
        "roc_auc": float(roc_auc_score(y, probability)),
        "brier": float(brier_score_loss(y, probability)),
    }


def confusion(y: np.ndarray, probability: np.ndarray, threshold: float) -> dict[str, int]:
    """Confusion matrix as named counts (rows actual, columns decided)."""
    rejected = (np.asarray(probability) >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(np.asarray(y).astype(int), rejected, labels=[0, 1]).ravel()
    return {
        "good_accepted": int(tn),
        "good_rejected": int(fp),
        "bad_accepted": int(fn),
        "bad_rejected": int(tp),
    }


def summarise(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Mean and standard deviation of each metric over folds (``<name>_mean``, ``<name>_std``)."""
    out: dict[str, float] = {}
    for name in per_fold[0]:
        values = np.asarray([fold[name] for fold in per_fold])
        out[f"{name}_mean"] = float(values.mean())
        out[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out
