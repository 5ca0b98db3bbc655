"""How well ``probability_bad`` is calibrated, before and after the pipeline's calibrator.

The calibrator is part of the fitted pipeline (see :func:`credit_risk.model.build_pipeline`).
With ``ensemble=False`` it wraps one forest refitted on all training rows; that forest's own
scores are the "before" of the same model, so no extra fit is needed to compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import brier_score_loss

from credit_risk.model import forests_of
from credit_risk.scorecard.model import PointsScorecard


def raw_probability(pipeline: Any, applicants: pd.DataFrame) -> np.ndarray:
    """Probability of bad from the pipeline's forest(s) before calibration (averaged).

    A points scorecard's "before" is the probability its scaling says the points stand for.
    """
    if isinstance(pipeline, PointsScorecard):
        return pipeline.scaling_probability(applicants)
    encoded = pipeline[:-1].transform(applicants)
    forests = forests_of(pipeline.named_steps["classifier"])
    return np.mean([forest.predict_proba(encoded)[:, 1] for forest in forests], axis=0)


def is_calibrated(pipeline: Any) -> bool:
    if isinstance(pipeline, PointsScorecard):
        return pipeline.calibration != "none"
    return isinstance(pipeline.named_steps["classifier"], CalibratedClassifierCV)


def calibration_method(pipeline: Any) -> str:
    """The calibrator's method (sigmoid, isotonic), or "none"."""
    if not is_calibrated(pipeline):
        return "none"
    if isinstance(pipeline, PointsScorecard):
        return str(pipeline.calibration)
    return str(pipeline.named_steps["classifier"].method)


def brier_before_after(pipeline: Any, applicants: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """Brier score of the raw forest and of the calibrated pipeline on the same rows.

    Returns:
        ``brier_uncalibrated`` and ``brier_calibrated`` (equal when there is no calibrator).
    """
    return {
        "brier_uncalibrated": float(brier_score_loss(y, raw_probability(pipeline, applicants))),
        "brier_calibrated": float(brier_score_loss(y, pipeline.predict_proba(applicants)[:, 1])),
    }


def _raw_name(pipeline: Any) -> str:
    return "points by their scaling" if isinstance(pipeline, PointsScorecard) else "forest"


def save_reliability_plot(
    pipeline: Any, applicants: pd.DataFrame, y: np.ndarray, path: Path, n_bins: int = 8
) -> Path:
    """Reliability diagram of the raw and calibrated probabilities, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay

    fig, ax = plt.subplots(figsize=(5.5, 5))
    scores = brier_before_after(pipeline, applicants, y)
    CalibrationDisplay.from_predictions(
        y,
        raw_probability(pipeline, applicants),
        n_bins=n_bins,
        strategy="quantile",
        ax=ax,
        name=f"{_raw_name(pipeline)}, uncalibrated (Brier {scores['brier_uncalibrated']:.3f})",
    )
    if is_calibrated(pipeline):
        CalibrationDisplay.from_predictions(
            y,
            pipeline.predict_proba(applicants)[:, 1],
            n_bins=n_bins,
            strategy="quantile",
            ax=ax,
            name=f"calibrated (Brier {scores['brier_calibrated']:.3f})",
        )
    ax.set_title("Reliability on the test split (bad = positive)")
    ax.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
