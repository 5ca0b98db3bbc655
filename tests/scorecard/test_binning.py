"""Binning follows each attribute's declaration: monotone where declared, codes kept in order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit_risk.schema import BY_NAME, FEATURE_NAMES, PROTECTED
from credit_risk.scorecard import DECLARATIONS, AttributeRow, Treatment, Trend
from credit_risk.scorecard.binning import fit_binning, weights_of_evidence
from credit_risk.scorecard.declarations import BY_ATTRIBUTE
from credit_risk.scorecard.model import PointsScorecard


def _bad_rates_along_scale(row: AttributeRow) -> list[float]:
    """Bad rates of the bins in scale order (an ordinal's off-scale bin left out)."""
    declaration = BY_ATTRIBUTE[row.attribute]
    bins = [b for b in row.bins if not set(b.codes) & set(declaration.off_scale)]
    return [b.bad / (b.good + b.bad) for b in bins if b.good + b.bad]


def _monotone(values: list[float], trend: Trend) -> bool:
    steps = np.diff(values)
    if trend is Trend.ASCENDING:
        return bool((steps >= 0).all())
    if trend is Trend.DESCENDING:
        return bool((steps <= 0).all())
    return bool((steps >= 0).all() or (steps <= 0).all())


def test_every_codebook_attribute_is_declared_once_in_order() -> None:
    assert tuple(d.attribute for d in DECLARATIONS) == FEATURE_NAMES
    for declaration in DECLARATIONS:
        if declaration.treatment is Treatment.ORDINAL:
            codes = (*declaration.scale, *declaration.off_scale)
            assert sorted(codes) == sorted(BY_NAME[declaration.attribute].codes)


@pytest.mark.parametrize("fixture", ["scorecard", "scorecard_with_protected"])
def test_bins_are_monotone_where_declared(fixture: str, request: pytest.FixtureRequest) -> None:
    model: PointsScorecard = request.getfixturevalue(fixture)
    checked = 0
    for row in model.points_table.attributes:
        if row.trend is Trend.NONE or not row.bins:
            continue
        rates = _bad_rates_along_scale(row)
        assert _monotone(rates, row.trend), (row.attribute, row.trend, rates)
        if row.selected:
            # More risk, fewer points: points run against the bad rate along the scale.
            declaration = BY_ATTRIBUTE[row.attribute]
            points = [b.points for b in row.bins if not set(b.codes) & set(declaration.off_scale)]
            flipped = {
                Trend.ASCENDING: Trend.DESCENDING,
                Trend.DESCENDING: Trend.ASCENDING,
            }.get(row.trend, Trend.MONOTONE)
            assert _monotone([float(p) for p in points], flipped), (row.attribute, points)
        checked += 1
    assert checked >= 10


def test_ordinal_bins_join_only_neighbours_and_keep_off_scale_codes_apart(
    scorecard: PointsScorecard,
) -> None:
    for row in scorecard.points_table.attributes:
        declaration = BY_ATTRIBUTE[row.attribute]
        if declaration.treatment is not Treatment.ORDINAL:
            continue
        ranks = [
            [declaration.scale.index(c) for c in b.codes if c in declaration.scale]
            for b in row.bins
        ]
        for group in ranks:
            assert group == list(range(group[0], group[0] + len(group))) if group else True
        for code in declaration.off_scale:
            (holder,) = [b for b in row.bins if code in b.codes]
            assert holder.codes == (code,)


def test_age_never_lowers_the_points_of_older_applicants(
    scorecard_with_protected: PointsScorecard,
) -> None:
    row = next(
        r for r in scorecard_with_protected.points_table.attributes if r.attribute == "age_years"
    )
    assert row.trend is Trend.DESCENDING
    if row.selected:
        points = [b.points for b in row.bins]
        assert points == sorted(points)


def test_protected_attributes_are_not_binned_under_the_default_policy(
    scorecard: PointsScorecard,
) -> None:
    for row in scorecard.points_table.attributes:
        if row.attribute in PROTECTED:
            assert not row.selected and not row.bins and row.iv is None
            assert "protected" in row.note


def test_a_code_absent_from_training_gets_a_neutral_bin(
    shipped: tuple[pd.DataFrame, np.ndarray],
) -> None:
    x, y = shipped
    # Purpose A47 (vacation) has no row in the shipped data; drop A48 (retraining) as well.
    keep = (x["purpose"] != "A48").to_numpy()
    fitted, _ = fit_binning(x[keep], y[keep], ["purpose"], 0.05, 0.02)
    (purpose,) = fitted
    unseen = [b for b in purpose.bins if b.good + b.bad == 0]
    assert len(unseen) == 1
    assert set(unseen[0].codes) == {"A47", "A48"} and unseen[0].woe == 0.0
    assert sorted(c for b in purpose.bins for c in b.codes) == sorted(BY_NAME["purpose"].codes)


def test_weight_of_evidence_and_information_value_by_hand() -> None:
    good, bad = np.array([60, 30, 10]), np.array([10, 10, 20])
    woe, iv = weights_of_evidence(good, bad)
    share_good, share_bad = good / 100, bad / 40
    np.testing.assert_allclose(woe, np.log(share_good / share_bad))
    assert iv == pytest.approx(
        float(np.sum((share_good - share_bad) * np.log(share_good / share_bad)))
    )
    # A bin with no bads gets 0 and adds nothing (optbinning's convention).
    woe, iv = weights_of_evidence(np.array([50, 50]), np.array([0, 40]))
    assert woe[0] == 0.0 and woe[1] == pytest.approx(np.log(0.5 / 1.0))
    assert iv == pytest.approx((0.5 - 1.0) * np.log(0.5))


def test_information_values_of_the_table_add_up_from_its_counts(
    scorecard: PointsScorecard,
) -> None:
    for row in scorecard.points_table.attributes:
        if row.bins and row.iv is not None:
            good = np.array([b.good for b in row.bins])
            bad = np.array([b.bad for b in row.bins])
            _, iv = weights_of_evidence(good, bad)
            assert row.iv == pytest.approx(iv)
            assert row.selected == (row.iv >= 0.02) or "wrong sign" in row.note
