"""Points are integers scaled as set: base points at the base odds, pdo points double the odds."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from credit_risk.model_folder import ModelFolderError
from credit_risk.scorecard import Calibration, PointsTable, Scaling, bin_indices
from credit_risk.scorecard.lookup import points_lookup
from credit_risk.scorecard.model import PointsScorecard, woe_matrix
from tests.scorecard.conftest import scorecard_metadata


def _exact_totals(model: PointsScorecard, x: pd.DataFrame) -> np.ndarray:
    """Each applicant's unrounded score."""
    table = model.points_table
    total = np.zeros(len(x))
    for row in table.selected:
        exact = np.asarray(table.exact_points(row))
        total += exact[bin_indices(row, x[row.attribute].to_numpy())]
    return total


def test_scaling_gives_base_points_at_base_odds_and_pdo_per_doubling() -> None:
    scaling = Scaling(base_points=600, base_odds=50, pdo=20)
    assert scaling.points_at_odds(50) == pytest.approx(600)
    assert scaling.points_at_odds(100) - scaling.points_at_odds(50) == pytest.approx(20)
    assert scaling.points_at_odds(12.5) == pytest.approx(560)
    assert scaling.odds_at_points(620) == pytest.approx(100)


def test_points_are_integers_within_half_a_point_of_the_regression(
    scorecard: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    table = scorecard.points_table
    stored = json.loads(json.dumps(scorecard.table_))
    for row, raw in zip(
        table.selected, [r for r in stored["attributes"] if r["selected"]], strict=True
    ):
        assert all(isinstance(b["points"], int) for b in raw["bins"])
        exact = table.exact_points(row)
        assert max(abs(b.points - e) for b, e in zip(row.bins, exact, strict=True)) <= 0.5
    # The unrounded score is the scaling applied to the regression's odds of good.
    x, _ = shipped
    woe = woe_matrix(table.selected, x)
    coefficients = np.array([row.coefficient for row in table.selected])
    log_odds_good = -(table.intercept + woe @ coefficients)
    expected = table.scaling.offset + table.scaling.factor * log_odds_good
    np.testing.assert_allclose(_exact_totals(scorecard, x), expected, rtol=0, atol=1e-9)
    totals = scorecard.points(x)
    assert np.abs(totals - expected).max() <= 0.5 * len(table.selected)


def test_doubling_pdo_doubles_every_distance_from_the_base(
    scorecard: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = shipped
    wider = PointsScorecard(base_points=500, pdo=40).fit(x, y)
    np.testing.assert_allclose(
        _exact_totals(wider, x) - 500, 2 * (_exact_totals(scorecard, x) - 600), atol=1e-9
    )
    # Odds of 50:1 sit at base_points either way: the same applicant is 2x further from it.
    assert wider.points_table.scaling.points_at_odds(50) == pytest.approx(500)


def test_uncalibrated_probability_is_the_odds_the_points_stand_for(
    scorecard_with_protected: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, _ = shipped
    table = scorecard_with_protected.points_table
    assert table.calibration.method == "scaling"
    totals = scorecard_with_protected.points(x)
    odds_good = np.array([table.scaling.odds_at_points(float(t)) for t in totals])
    np.testing.assert_allclose(
        scorecard_with_protected.predict_proba(x)[:, 1], 1 / (1 + odds_good), rtol=1e-12
    )


def test_calibrated_probability_falls_as_points_rise(
    scorecard: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = shipped
    calibration = scorecard.points_table.calibration
    assert calibration.method == "sigmoid" and calibration.slope < 0
    probability = scorecard.predict_proba(x)[:, 1]
    order = np.argsort(scorecard.points(x), kind="stable")
    assert (np.diff(probability[order]) <= 0).all()
    # Fitted on out-of-fold points, it is calibrated in the large on the sample.
    assert probability.mean() == pytest.approx(y.mean(), abs=0.02)


@pytest.mark.parametrize("threshold", [1 / 6, 0.3, 0.5])
def test_points_cutoff_rejects_exactly_where_the_probability_reaches_the_threshold(
    scorecard: PointsScorecard, threshold: float
) -> None:
    calibration = scorecard.points_table.calibration
    cutoff = calibration.reject_at_most(threshold)
    assert calibration.probability(cutoff) >= threshold > calibration.probability(cutoff + 1)


def test_isotonic_calibration_is_refused_by_name(shipped: tuple[pd.DataFrame, np.ndarray]) -> None:
    x, y = shipped
    with pytest.raises(ValueError, match=r"calibration.*'isotonic'"):
        PointsScorecard(calibration="isotonic").fit(x, y)


def test_a_table_missing_a_code_is_refused(scorecard: PointsScorecard) -> None:
    data = json.loads(json.dumps(scorecard.table_))
    checking = next(r for r in data["attributes"] if r["attribute"] == "checking_account_status")
    checking["bins"][0]["codes"] = []
    with pytest.raises(ValidationError, match="each of its codes once"):
        PointsTable.model_validate(data)
    metadata = {**scorecard_metadata(scorecard), "scorecard": data}
    with pytest.raises(ModelFolderError) as caught:
        points_lookup(metadata, "m/metadata.json")
    assert caught.value.field is not None and caught.value.field.startswith("scorecard.attributes")
    assert "each of its codes once" in str(caught.value)
    without = {k: v for k, v in metadata.items() if k != "scorecard"}
    with pytest.raises(ModelFolderError, match="scorecard: required"):
        points_lookup(without, "m/metadata.json")
    assert points_lookup({**without, "family": "forest"}, "m/metadata.json") is None


def test_calibration_slope_must_be_negative() -> None:
    with pytest.raises(ValidationError):
        Calibration(method="sigmoid", intercept=0.0, slope=0.01)
    assert Calibration.from_scaling(Scaling(base_points=600, base_odds=50, pdo=20)).slope == (
        pytest.approx(-math.log(2) / 20)
    )


def test_the_fitted_scorecard_is_plain_data_for_skops(scorecard: PointsScorecard) -> None:
    from skops.io import dumps, get_untrusted_types, loads

    from credit_risk.model import SKOPS_TRUSTED_TYPES

    blob = dumps(scorecard)
    assert set(get_untrusted_types(data=blob)) <= set(SKOPS_TRUSTED_TYPES)
    loaded = loads(blob, trusted=SKOPS_TRUSTED_TYPES)
    assert loaded.table_ == scorecard.table_
