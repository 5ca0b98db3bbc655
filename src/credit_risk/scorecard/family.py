"""The scorecard as a model family of the training run: its parameters and its estimator."""

from __future__ import annotations

from typing import Any

from credit_risk.config import ProtectedPolicy, Settings
from credit_risk.scorecard.lookup import FAMILY, TABLE_KEY
from credit_risk.scorecard.model import PointsScorecard

__all__ = ["FAMILY", "TABLE_KEY", "build_scorecard", "scorecard_params"]
# Pipeline-level keys, shared with the forest (see credit_risk.model): the threshold policy
# reads the calibration from them.
CALIBRATION_KEY = "calibration"


def scorecard_params(settings: Settings) -> dict[str, Any]:
    """The scorecard's parameters from the settings (logged with the run)."""
    return {
        "base_points": settings.scorecard_base_points,
        "base_odds": settings.scorecard_base_odds,
        "pdo": settings.scorecard_pdo,
        "min_iv": settings.scorecard_min_iv,
        "min_bin_size": settings.scorecard_min_bin_size,
        CALIBRATION_KEY: settings.calibration,
        "calibration_folds": settings.calibration_folds,
    }


def build_scorecard(settings: Settings, params: dict[str, Any] | None = None) -> PointsScorecard:
    """An unfitted scorecard: ``params`` (default: from the settings), the settings' policy.

    Raises:
        ValueError: a parameter the scorecard does not have, named.
    """
    params = scorecard_params(settings) if params is None else params
    unknown = set(params) - set(PointsScorecard().get_params())
    if unknown:
        raise ValueError(
            f"the scorecard has no parameter {', '.join(sorted(unknown))} "
            f"(it has {', '.join(sorted(scorecard_params(settings)))})"
        )
    return PointsScorecard(
        **params,
        drop_protected=settings.protected_policy is ProtectedPolicy.EXCLUDE,
        seed=settings.seed,
    )
