"""Evaluation plots of a model's test-split predictions (PNG files, logged with the run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def save_plots(
    y: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    importances: dict[str, float],
    folder: Path,
) -> list[Path]:
    """Write ROC, precision-recall, confusion-matrix, calibration and importance PNGs (no
    importance plot when ``importances`` is empty).

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

    if not importances:  # gradient boosting keeps no impurity importances: no empty plot
        return written
    top = sorted(importances.items(), key=lambda item: item[1], reverse=True)[:20]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([name for name, _ in reversed(top)], [value for _, value in reversed(top)])
    ax.set_title("Feature importance (mean decrease in impurity)")
    _save(fig, "feature_importance.png")
    return written
