"""Scorecards fitted once per session on the 1000 shipped rows (about a second each)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.scorecard.model import PointsScorecard
from tests.model_metadata import model_metadata

THRESHOLD = 1 / 6


def scorecard_metadata(model: PointsScorecard, threshold: float = THRESHOLD) -> dict[str, Any]:
    """Metadata of a scorecard as ``credit-risk train`` writes it (the parts serving reads)."""
    return model_metadata(
        "scorecard-test",
        threshold,
        family="scorecard",
        scorecard=model.table_,
        reason_reference=None,
    )


@pytest.fixture(scope="session")
def scorecard(shipped: tuple[pd.DataFrame, np.ndarray]) -> PointsScorecard:
    """The default scorecard (600 at 50:1, 20 to double, sigmoid calibration, protected out)."""
    x, y = shipped
    return PointsScorecard().fit(x, y)


@pytest.fixture(scope="session")
def scorecard_with_protected(shipped: tuple[pd.DataFrame, np.ndarray]) -> PointsScorecard:
    """The scorecard under the ``include`` policy: protected attributes are inputs."""
    x, y = shipped
    return PointsScorecard(drop_protected=False, calibration="none").fit(x, y)
