"""A scorecard's reasons: points lost against the best bin, as codes of the reason-code table.

Rejections only, never a protected attribute, each one raised the applicant's served risk, and
the same codes and texts (English and Spanish) as the forest's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.model_folder import ModelFolderError, validate_metadata
from credit_risk.reasons import (
    FALLBACK,
    FALLBACK_CODE,
    MAX_REASONS,
    NO_REASON,
    UNIT_POINTS,
    PointsExplainer,
    ReasonCodes,
)
from credit_risk.schema import ATTRIBUTES, BY_NAME, FEATURE_NAMES, PROTECTED
from credit_risk.scorecard import PointsLookup, bin_indices
from credit_risk.scorecard.model import PointsScorecard
from credit_risk.scoring import REASON_CODE_COLUMNS, REASON_TEXT_COLUMNS, Scorer
from tests.scorecard.conftest import THRESHOLD, scorecard_metadata


def _best_value(model: PointsScorecard, attribute: str, applicants: pd.DataFrame) -> Any:
    """A value of ``attribute`` (seen in the data) that falls in its best bin."""
    row = next(r for r in model.points_table.selected if r.attribute == attribute)
    values = applicants[attribute].drop_duplicates()
    points = np.asarray([b.points for b in row.bins])[bin_indices(row, values.to_numpy())]
    return values.to_numpy()[int(np.argmax(points))]


@pytest.mark.parametrize("fixture", ["scorecard", "scorecard_with_protected"])
def test_every_rejection_has_coded_reasons_that_raised_its_risk_and_none_protected(
    fixture: str, request: pytest.FixtureRequest, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    model: PointsScorecard = request.getfixturevalue(fixture)
    applicants, _ = shipped
    scorer = Scorer.from_pipeline(model, scorecard_metadata(model))
    assert isinstance(scorer.fast, PointsLookup)
    codes = ReasonCodes.builtin()
    records = applicants.to_dict(orient="records")
    decisions = scorer.score_records(records)
    table = model.points_table
    best = {row.attribute: row.best_points for row in table.selected}
    points = PointsLookup(table).points_frame(applicants)
    rejected = fallbacks = 0
    for i, (record, decision) in enumerate(zip(records, decisions, strict=True)):
        if decision.decision == "approve":
            assert decision.reasons == [], i
            continue
        rejected += 1
        assert 1 <= len(decision.reasons) <= MAX_REASONS, i
        if decision.reasons[0].code == FALLBACK_CODE:
            fallbacks += 1
            lost = {a: best[a] - points[i, FEATURE_NAMES.index(a)] for a in best}
            assert not any(v > 0 for a, v in lost.items() if a not in PROTECTED), i
            continue
        lost_points = [reason.contribution for reason in decision.reasons]
        assert lost_points == sorted(lost_points, reverse=True) and min(lost_points) > 0
        for reason in decision.reasons:
            assert reason.unit == UNIT_POINTS
            assert reason.attribute is not None and reason.attribute not in PROTECTED
            k = FEATURE_NAMES.index(reason.attribute)
            assert reason.contribution == best[reason.attribute] - points[i, k]
            # The code of the applicant's value (or band), with its English and Spanish texts.
            assert reason.value == record[reason.attribute]
            code = codes.codes[codes.code_index(k, reason.value)]
            assert (reason.code, reason.texts) == (code.code, code.text)
            # It raised the risk: in its best bin, the applicant would score a lower probability.
            better = {**record, reason.attribute: _best_value(model, reason.attribute, applicants)}
            (moved,) = scorer.score_records([better])
            assert moved.probability_bad < decision.probability_bad
    assert 0 < rejected < len(decisions)
    if fixture == "scorecard":  # protected attributes are not inputs: nothing to fall back for
        assert fallbacks == 0
    # The file path gives the same decisions, codes and texts.
    scored = scorer.score(applicants)
    assert (scored["decision"].to_numpy() == [d.decision for d in decisions]).all()
    for slot, (code_column, text_column) in enumerate(
        zip(REASON_CODE_COLUMNS, REASON_TEXT_COLUMNS, strict=True)
    ):
        expected = [d.reasons[slot] if len(d.reasons) > slot else None for d in decisions]
        assert scored[code_column].astype(str).tolist() == [r.code if r else "" for r in expected]
        assert scored[text_column].astype(str).tolist() == [r.text if r else "" for r in expected]
    spanish = scorer.score(applicants, language="es")
    first = next(d.reasons[0] for d in decisions if d.reasons)
    assert first.texts["es"] in set(spanish[REASON_TEXT_COLUMNS[0]].astype(str))


def test_the_include_policy_scores_protected_attributes_it_never_cites(
    scorecard_with_protected: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    applicants, _ = shipped
    table = scorecard_with_protected.points_table
    scored = {row.attribute for row in table.selected} & set(PROTECTED)
    assert scored, "no protected attribute is an input: the test proves nothing"
    lookup = PointsLookup(table)
    points = lookup.points_frame(applicants)
    probability, lost = lookup.run_frame(applicants)
    # The lookup reports the points lost on every scored attribute, protected ones too ...
    for row in table.selected:
        column = FEATURE_NAMES.index(row.attribute)
        np.testing.assert_array_equal(lost[:, column], row.best_points - points[:, column])
    protected_lost = lost[:, [FEATURE_NAMES.index(a) for a in scored]].sum(axis=1)
    assert ((probability >= THRESHOLD) & (protected_lost > 0)).any()
    # ... and the explainer never cites one, whatever it lost.
    top, _ = PointsExplainer(ReasonCodes.builtin(), THRESHOLD).rank(probability, lost)
    cited = {ATTRIBUTES[k].name for k in np.unique(top) if k >= 0}
    assert cited and not cited & set(PROTECTED)


def test_the_ranking_skips_protected_attributes_and_falls_back_explicitly() -> None:
    explainer = PointsExplainer(ReasonCodes.builtin(), THRESHOLD)
    k_age = FEATURE_NAMES.index("age_years")
    k_status = FEATURE_NAMES.index("checking_account_status")
    k_duration = FEATURE_NAMES.index("duration_months")
    lost = np.zeros((4, len(FEATURE_NAMES)))
    lost[0, [k_age, k_status, k_duration]] = [30, 12, 12]  # a tie: codebook order
    lost[1, k_age] = 25  # only a protected attribute lost points
    lost[2, k_status] = 40  # approved
    probability = np.array([0.5, 0.3, 0.1, 0.2])  # the last lost nothing and is rejected
    top, served = explainer.rank(probability, lost)
    assert top[0].tolist() == [k_status, k_duration, NO_REASON, NO_REASON]
    assert served[0].tolist() == [12, 12, 0, 0]
    assert top[1].tolist() == [FALLBACK, NO_REASON, NO_REASON, NO_REASON]
    assert served[1, 0] == 25  # all the points it lost
    assert top[2].tolist() == [NO_REASON] * MAX_REASONS
    assert top[3, 0] == FALLBACK
    # Row by row (a request) gives what the batch gives.
    assert explainer.rank_records(probability.tolist(), lost) == [
        [(k_status, 12.0), (k_duration, 12.0)],
        [(FALLBACK, 25.0)],
        [],
        [(FALLBACK, 0.0)],
    ]


def test_a_scorecard_that_rejects_its_best_score_is_not_served(
    scorecard: PointsScorecard,
) -> None:
    table = scorecard.points_table
    best = table.calibration.probability(table.max_points)
    assert table.reasons_unavailable(THRESHOLD) is None
    metadata = scorecard_metadata(scorecard, threshold=best / 2)
    with pytest.raises(ModelFolderError) as raised:
        Scorer.from_pipeline(scorecard, metadata)
    assert raised.value.field == "scorecard" and "rejects everyone" in str(raised.value)


def _changed(metadata: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = {**metadata, **changes}
    return {k: v for k, v in changed.items() if v is not ...}


def test_metadata_validation_is_family_aware(scorecard: PointsScorecard) -> None:
    metadata = scorecard_metadata(scorecard)
    assert validate_metadata(metadata, "m").scorecard is not None
    reference = {
        "basis": "training rows the model approves",
        "rows": 10,
        "raw_probability": 0.2,
        "probability_bad": 0.1,
        "contributions": dict.fromkeys(FEATURE_NAMES, 0.0),
    }
    refused = [
        # A scorecard's reasons need its table, and no forest's reference.
        ("scorecard", _changed(metadata, scorecard=...)),
        ("reason_reference", _changed(metadata, reason_reference=reference)),
        # Only a scorecard has a table (a folder without family is a forest).
        ("scorecard", _changed(metadata, family="forest")),
        ("scorecard", _changed(metadata, family=...)),
    ]
    for field, bad in refused:
        with pytest.raises(ModelFolderError) as raised:
            validate_metadata(bad, "m")
        assert raised.value.field == field, bad
    # A forest without its approved reference is still refused, with or without its family.
    for family in ("forest", ...):
        forest = _changed(metadata, family=family, scorecard=...)
        assert validate_metadata(forest, "m").family == "forest"
        with pytest.raises(ModelFolderError) as raised:
            Scorer(None, forest)
        assert raised.value.field == "reason_reference" and "null" in str(raised.value)


def test_reason_texts_name_the_applicants_value(
    scorecard: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    applicants, _ = shipped
    scorer = Scorer.from_pipeline(scorecard, scorecard_metadata(scorecard))
    decision = next(
        d for d in scorer.score_records(applicants.head(50).to_dict("records")) if d.reasons
    )
    top = decision.reasons[0]
    assert top.attribute is not None
    attribute = BY_NAME[top.attribute]
    assert top.text.startswith(attribute.description.split(" (")[0] + ": ")
    if attribute.codes:
        assert top.code == f"R{attribute.uci_number:02d}-{top.value}"
