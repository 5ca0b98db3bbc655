"""Metrics, the cost-optimal threshold, and evaluation plots.

Convention: ``y`` is 1 for a bad applicant (the positive class), ``probability`` is the
probability of bad, and an applicant is rejected when ``probability >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
)


@dataclass(frozen=True)
class CostMatrix:
    """Costs of the two errors (german.doc: bad accepted 5, good rejected 1)."""

    bad_accepted: float = 5.0
    good_rejected: float = 1.0


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


def bayes_threshold(costs: CostMatrix) -> float:
    """Threshold that minimises the expected cost when probabilities are calibrated.

    Rejecting an applicant with probability of bad ``p`` costs ``(1 - p) * good_rejected`` on
    average, accepting costs ``p * bad_accepted``; rejecting is cheaper from
    ``p = good_rejected / (good_rejected + bad_accepted)`` on (1/6 for german.doc's 5:1).
    Unlike :func:`cost_optimal_threshold` it does not depend on the sample, so it does not
    chase the few applicants near the cut in 800 training rows.
    """
    total = costs.good_rejected + costs.bad_accepted
    if total <= 0:
        raise ValueError("at least one of the two costs must be positive")
    return float(costs.good_rejected / total)


def cost_optimal_threshold(
    y: np.ndarray, probability: np.ndarray, costs: CostMatrix
) -> tuple[float, float]:
    """Threshold that minimises the expected cost on these predictions.

    Candidates are the midpoints between consecutive distinct probabilities, plus "reject
    everyone" (0.0) and "accept everyone" (just above the largest probability, capped at 1).
    Ties go to the lowest threshold (the cautious choice).

    Returns:
        ``(threshold, cost at that threshold)``.
    """
    y = np.asarray(y).astype(bool)
    probability = np.asarray(probability, dtype="float64")
    order = np.argsort(probability, kind="stable")
    sorted_p = probability[order]
    sorted_y = y[order]
    distinct = np.unique(sorted_p)
    top = float(np.nextafter(distinct[-1], np.inf)) if distinct[-1] < 1.0 else 1.0 + 1e-12
    candidates = np.concatenate([[0.0], (distinct[:-1] + distinct[1:]) / 2.0, [top]])
    # Vectorised: number rejected at candidate t = count of p >= t.
    first_rejected = np.searchsorted(sorted_p, candidates, side="left")
    bad_cum = np.concatenate([[0], np.cumsum(sorted_y)])  # bads among the lowest k
    good_cum = np.concatenate([[0], np.cumsum(~sorted_y)])
    bad_accepted = bad_cum[first_rejected]
    good_rejected = good_cum[-1] - good_cum[first_rejected]
    cost = (costs.bad_accepted * bad_accepted + costs.good_rejected * good_rejected) / len(y)
    best = int(np.argmin(cost))
    return float(min(candidates[best], 1.0)), float(cost[best])


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


def save_plots(
    y: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    importances: dict[str, float],
    folder: Path,
) -> list[Path]:
    """Write ROC, precision-recall, confusion-matrix, calibration and importance PNGs.

    Returns:
        The written files.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def _save(fig: Any, name: str) -> None:
        path = folder / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    RocCurveDisplay.from_predictions(y, probability, ax=ax, name="test")
    ax.set_title("ROC curve (bad = positive)")
    _save(fig, "roc_curve.png")

    fig, ax = plt.subplots(figsize=(5, 4.5))
    PrecisionRecallDisplay.from_predictions(y, probability, ax=ax, name="test")
    ax.set_title("Precision-recall (bad = positive)")
    _save(fig, "precision_recall.png")

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    rejected = (np.asarray(probability) >= threshold).astype(int)
    ConfusionMatrixDisplay.from_predictions(
        y, rejected, display_labels=["good", "bad"], ax=ax, colorbar=False
    )
    ax.set_xlabel("decided (bad = rejected)")
    ax.set_ylabel("actual")
    ax.set_title(f"Confusion matrix at threshold {threshold:.3f}")
    _save(fig, "confusion_matrix.png")

    fig, ax = plt.subplots(figsize=(5, 4.5))
    CalibrationDisplay.from_predictions(y, probability, n_bins=8, ax=ax, name="test")
    ax.set_title("Calibration (reliability)")
    _save(fig, "calibration.png")

    top = sorted(importances.items(), key=lambda item: item[1], reverse=True)[:20]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([name for name, _ in reversed(top)], [value for _, value in reversed(top)])
    ax.set_title("Feature importance (mean decrease in impurity)")
    _save(fig, "feature_importance.png")
    return written
