"""Reasons are the points lost against the best bin: for rejections only, never protected."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.schema import BY_NAME, FEATURE_NAMES, PROTECTED
from credit_risk.scorecard import PointsLookup
from credit_risk.scorecard.model import PointsScorecard
from credit_risk.scoring import REASON_COLUMNS, Scorer

THRESHOLD = 1 / 6


def _metadata(threshold: float = THRESHOLD) -> dict[str, Any]:
    return {
        "model_name": "scorecard-test",
        "model_version": "1",
        "run_id": None,
        "trained_at": None,
        "objective": "cost",
        "threshold": threshold,
        "test_metrics": {},
        "cv_metrics": {},
        "family": "scorecard",
    }


@pytest.mark.parametrize("fixture", ["scorecard", "scorecard_with_protected"])
def test_only_rejections_have_reasons_and_never_a_protected_attribute(
    fixture: str, request: pytest.FixtureRequest, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    model: PointsScorecard = request.getfixturevalue(fixture)
    applicants, _ = shipped
    scorer = Scorer.from_pipeline(model, _metadata())
    assert isinstance(scorer.fast, PointsLookup)
    records = applicants.to_dict(orient="records")
    decisions = scorer.score_records(records)
    table = model.points_table
    best = {row.attribute: row.best_points for row in table.selected}
    points = PointsLookup(table).points_frame(applicants)
    rejected = 0
    for row, decision in enumerate(decisions):
        if decision.decision == "approve":
            assert decision.reasons == []
            continue
        rejected += 1
        assert decision.reasons, "a rejection without reasons"
        lost = [reason.contribution for reason in decision.reasons]
        assert lost == sorted(lost, reverse=True) and min(lost) > 0
        for reason in decision.reasons:
            assert reason.attribute not in PROTECTED
            column = FEATURE_NAMES.index(reason.attribute)
            assert reason.contribution == best[reason.attribute] - points[row, column]
    assert 0 < rejected < len(decisions)
    # The file path gives the same decisions and reason texts.
    scored = scorer.score(applicants)
    assert (scored["decision"].to_numpy() == [d.decision for d in decisions]).all()
    first = scored[REASON_COLUMNS[0]].astype(str).to_numpy()
    assert ((first != "") == (scored["decision"] == "reject").to_numpy()).all()


def test_the_include_policy_scores_protected_attributes_it_never_cites(
    scorecard_with_protected: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    applicants, _ = shipped
    table = scorecard_with_protected.points_table
    scored = {row.attribute for row in table.selected} & set(PROTECTED)
    assert scored, "no protected attribute is an input: the test proves nothing"
    lookup = PointsLookup(table)  # no threshold: points lost of every applicant
    points = lookup.points_frame(applicants)
    _, lost = lookup.run_frame(applicants)
    for row in table.selected:
        column = FEATURE_NAMES.index(row.attribute)
        below_best = row.best_points - points[:, column]
        assert (below_best > 0).any()
        if row.attribute in scored:
            assert (lost[:, column] == 0).all()
        else:
            np.testing.assert_array_equal(lost[:, column], below_best)


def test_reasons_name_the_applicants_bin(
    scorecard: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    applicants, _ = shipped
    scorer = Scorer.from_pipeline(scorecard, _metadata())
    decision = next(
        d for d in scorer.score_records(applicants.head(50).to_dict("records")) if d.reasons
    )
    top = decision.reasons[0]
    assert top.text == f"{BY_NAME[top.attribute].description}: {top.value_label}"
