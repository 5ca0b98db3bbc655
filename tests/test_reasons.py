"""Adverse-action reasons: every rejection has them, each raised the served risk, none protected.

Checked on all 1000 shipped applicants under both protected-attribute policies: the default
(``exclude``, the session's fixture model) and ``include`` (a small model trained here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.data import read_applicants
from credit_risk.fastpath import calibrate
from credit_risk.model import build_pipeline
from credit_risk.model_folder import ModelFolderError, load_reason_codes, read_metadata
from credit_risk.reasons.codes import (
    FALLBACK,
    FALLBACK_CODE,
    MAX_REASONS,
    NO_REASON,
    REASON_CODES_FILE,
    REASON_CODES_VERSION,
    ReasonCodes,
    ReasonCodesError,
    builtin_bytes,
    builtin_table,
    reason_codes_record,
    table_sha256,
)
from credit_risk.reasons.explainers import Explainer
from credit_risk.reasons.reference import ReasonReference, build_reference, logit
from credit_risk.schema import ATTRIBUTES, BY_NAME, FEATURE_NAMES, PROTECTED
from credit_risk.scoring import REASON_CODE_COLUMNS, REASON_TEXT_COLUMNS, Scorer
from tests.conftest import DATA, FAST_PARAMS
from tests.model_metadata import model_metadata

# The codes of version 1, pinned: a code, once published, keeps its meaning. Changing the
# table (codes, conditions or texts) needs a new REASON_CODES_VERSION and these pins updated.
PINNED_VERSION = "1"
PINNED_SHA256 = "336fc65650586017972a2a8a7f105654d42a4ee7f5bc3cd620ea9f492f2d686e"
PINNED_CODES = [
    *("R01-A11", "R01-A12", "R01-A13", "R01-A14"),
    *("R02-B1", "R02-B2", "R02-B3", "R02-B4", "R02-B5"),
    *("R03-A30", "R03-A31", "R03-A32", "R03-A33", "R03-A34"),
    *("R04-A40", "R04-A41", "R04-A42", "R04-A43", "R04-A44", "R04-A45"),
    *("R04-A46", "R04-A47", "R04-A48", "R04-A49", "R04-A410"),
    *("R05-B1", "R05-B2", "R05-B3", "R05-B4", "R05-B5"),
    *("R06-A61", "R06-A62", "R06-A63", "R06-A64", "R06-A65"),
    *("R07-A71", "R07-A72", "R07-A73", "R07-A74", "R07-A75"),
    *("R08-B1", "R08-B2", "R08-B3", "R08-B4"),
    *("R10-A101", "R10-A102", "R10-A103"),
    *("R11-B1", "R11-B2", "R11-B3", "R11-B4"),
    *("R12-A121", "R12-A122", "R12-A123", "R12-A124"),
    *("R14-A141", "R14-A142", "R14-A143"),
    *("R15-A151", "R15-A152", "R15-A153"),
    *("R16-B1", "R16-B2", "R16-B3"),
    *("R17-A171", "R17-A172", "R17-A173", "R17-A174"),
    *("R18-B1", "R18-B2"),
    *("R19-A191", "R19-A192"),
    "R00",
]
PROTECTED_INDEX = [k for k, a in enumerate(ATTRIBUTES) if a.protected]


# --- the table -------------------------------------------------------------------------------


def test_reason_codes_are_pinned() -> None:
    table = builtin_table()
    assert REASON_CODES_VERSION == PINNED_VERSION
    assert [row["code"] for row in table["codes"]] == PINNED_CODES
    # Any edit of a condition or a text changes this digest: bump the version with it.
    assert table_sha256(builtin_bytes()) == PINNED_SHA256
    assert reason_codes_record() == {
        "version": PINNED_VERSION,
        "file": REASON_CODES_FILE,
        "sha256": PINNED_SHA256,
    }


def test_every_citable_value_has_one_code_and_no_protected_attribute_has_any() -> None:
    codes = ReasonCodes.builtin()
    cited = {c.attribute for c in codes.codes if c.attribute is not None}
    assert cited == {a.name for a in ATTRIBUTES if not a.protected}
    assert cited.isdisjoint(PROTECTED)
    for k, attribute in enumerate(ATTRIBUTES):
        if attribute.protected:
            continue
        assert attribute.minimum is not None or attribute.codes
        values: list[Any] = (
            list(attribute.codes)
            if attribute.codes
            else list(range(attribute.minimum or 0, (attribute.maximum or 0) + 1))
        )
        rows = [codes.code_index(k, v) for v in values]
        assert all(codes.codes[r].attribute == attribute.name for r in rows)
        np.testing.assert_array_equal(codes.code_indices(k, np.array(values)), rows)
        for value, row in zip(values, rows, strict=True):
            condition = codes.codes[row].condition
            assert condition is not None
            if attribute.codes:
                assert condition["codes"] == [value]
            else:
                assert condition["min"] <= value <= condition["max"]
    for code in codes.codes:
        assert code.text["en"] and code.text["es"] and code.text["en"] != code.text["es"]


def _table_with(change: Any) -> dict[str, Any]:
    table = json.loads(builtin_bytes())
    change(table)
    return table


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            lambda t: t["codes"].insert(
                0,
                {
                    "code": "R13-B1",
                    "attribute": "age_years",
                    "condition": {"min": 18, "max": 100},
                    "text": {"en": "Age", "es": "Edad"},
                },
            ),
            "codes[0].attribute",
            "protected",
        ),
        (lambda t: t["codes"].pop(0), "codes (checking_account_status)", "A11"),
        (lambda t: t["codes"][5]["condition"].update(min=11), "codes (duration_months)", "gaps"),
        (lambda t: t["codes"][1].update(code="R01-A11"), "codes", "duplicated"),
        (lambda t: t["codes"][2]["text"].pop("es"), "codes[2].text", "non-empty text"),
        (lambda t: t["codes"].pop(), "codes", FALLBACK_CODE),
        (
            lambda t: t["codes"][0]["condition"].update(codes=["A9"]),
            "codes[0].condition.codes",
            "A11",
        ),
        (lambda t: t.update(reason_codes_version=""), "reason_codes_version", "non-empty"),
    ],
    ids=["protected", "uncovered", "gap", "duplicate", "no-spanish", "no-fallback", "code", "ver"],
)
def test_invalid_tables_are_refused_naming_the_field(change: Any, field: str, words: str) -> None:
    with pytest.raises(ReasonCodesError) as raised:
        ReasonCodes.from_json(_table_with(change))
    assert raised.value.field == field
    assert words in raised.value.problem


def test_model_folder_carries_its_codes_and_they_load_validated(
    model_dir: Path, tmp_path: Path
) -> None:
    metadata = read_metadata(model_dir)
    assert metadata["reason_codes"] == reason_codes_record()
    assert (model_dir / REASON_CODES_FILE).read_bytes() == builtin_bytes()
    assert load_reason_codes(model_dir, metadata) == ReasonCodes.builtin()

    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "metadata.json").write_text(json.dumps(metadata))
    table = _table_with(lambda t: t["codes"][0]["text"].update(en="Something else"))
    (edited / REASON_CODES_FILE).write_text(json.dumps(table))
    with pytest.raises(ModelFolderError) as raised:
        load_reason_codes(edited, metadata)
    assert (Path(raised.value.path).name, raised.value.field) == (
        REASON_CODES_FILE,
        "reason_codes.sha256",
    )
    # A table that matches the sha256 the metadata lists is still validated as a table.
    payload = json.dumps(_table_with(lambda t: t["codes"].pop(0))).encode()
    (edited / REASON_CODES_FILE).write_bytes(payload)
    record = {**metadata["reason_codes"], "sha256": table_sha256(payload)}
    with pytest.raises(ModelFolderError) as raised:
        load_reason_codes(edited, {**metadata, "reason_codes": record})
    assert raised.value.field == "codes (checking_account_status)"
    (edited / REASON_CODES_FILE).unlink()
    with pytest.raises(ModelFolderError, match="missing"):
        load_reason_codes(edited, metadata)


# --- every rejection on the shipped data --------------------------------------------------


@pytest.fixture(scope="module")
def include_scorer() -> Scorer:
    """The ``include`` opt-in: protected attributes are model inputs (trained on 800 rows)."""
    dataset = read_applicants(DATA)
    x, y = dataset.features.iloc[:800], dataset.target.iloc[:800].to_numpy()
    params = {**FAST_PARAMS, "calibration": "sigmoid", "calibration_folds": 3}
    pipeline = build_pipeline(params, seed=3, drop_protected=False, n_jobs=1).fit(x, y)
    threshold = 1 / 6
    metadata = model_metadata(
        "include-policy",
        threshold,
        protected_policy="include",
        reason_reference=build_reference(pipeline, x, threshold).to_json(),
    )
    return Scorer.from_pipeline(pipeline, metadata)


def _check_every_rejection(scorer: Scorer, applicants: pd.DataFrame) -> dict[str, int]:
    """Assert the reason guarantees on every row; return counts for the caller's checks."""
    fast = scorer.fast
    assert fast is not None and len(fast.calibrators) == 1
    probability, raw, contributions = fast.run_raw(fast.encoder.encode_frame(applicants))
    reference = scorer.explainer.reference
    shifted = contributions.astype(np.float64) - np.asarray(reference.contributions)
    records = applicants.to_dict("records")
    decisions = scorer.score_records(records)
    citable = np.array([not a.protected for a in ATTRIBUTES])
    counts = {"rejections": 0, "reasons": 0, "fallbacks": 0, "protected_raised": 0}
    for i, (record, decision) in enumerate(zip(records, decisions, strict=True)):
        if decision.decision == "approve":
            assert decision.reasons == [], i
            continue
        counts["rejections"] += 1
        assert 1 <= len(decision.reasons) <= MAX_REASONS, i
        # Against the reference: the raw score and the served log-odds are both above it.
        gap = raw[i] - reference.raw_probability
        assert abs(shifted[i].sum() - gap) <= 1e-5
        assert gap > 0
        served = logit(np.array([probability[i], reference.probability_bad]))
        distance = served[0] - served[1]
        assert distance > 0
        scale = distance / gap
        counts["protected_raised"] += bool((shifted[i, PROTECTED_INDEX] > 0).any())
        if decision.reasons[0].code == FALLBACK_CODE:
            # Only when no attribute that may be cited raised the risk.
            assert len(decision.reasons) == 1
            assert not (shifted[i, citable] > 0).any()
            counts["fallbacks"] += 1
            continue
        cited = []
        for reason in decision.reasons:
            assert reason.attribute is not None and reason.attribute not in PROTECTED
            k = FEATURE_NAMES.index(reason.attribute)
            cited.append(k)
            assert reason.value == record[reason.attribute]
            row = scorer.codes.code_index(k, reason.value)
            assert scorer.codes.codes[row].code == reason.code
            assert reason.texts == scorer.codes.codes[row].text
            # It raised this applicant's risk: above the reference on the raw scale ...
            assert shifted[i, k] > 0
            # ... its share of the served log-odds distance is positive ...
            assert reason.contribution == pytest.approx(shifted[i, k] * scale, rel=1e-4)
            assert reason.contribution > 0
            # ... and putting its contribution back to the reference lowers the served score.
            lowered = calibrate(np.array([raw[i] - shifted[i, k]]), fast.calibrators[0])[0]
            assert lowered < probability[i]
        served = [r.contribution for r in decision.reasons]
        assert served == sorted(served, reverse=True)
        # The principal ones: nothing left out raised the risk more than the last one cited.
        left_out = [k for k in np.flatnonzero(citable) if k not in cited]
        assert shifted[i, left_out].max(initial=-np.inf) <= shifted[i, cited[-1]] + 1e-12
        counts["reasons"] += len(decision.reasons)
    return counts


def test_every_rejection_has_reasons_that_raised_its_served_risk_default_policy(
    scorer: Scorer, applicants: pd.DataFrame
) -> None:
    assert scorer.metadata["protected_policy"] == "exclude"
    counts = _check_every_rejection(scorer, applicants)
    assert counts["rejections"] > 0
    # Under exclude protected attributes are not inputs: nothing to fall back for.
    assert counts["fallbacks"] == 0
    assert counts["protected_raised"] == 0


def test_every_rejection_has_reasons_and_none_protected_include_policy(
    include_scorer: Scorer, applicants: pd.DataFrame
) -> None:
    counts = _check_every_rejection(include_scorer, applicants)
    assert counts["rejections"] > 0
    # Protected attributes raised the risk of many rejections and were never cited.
    assert counts["protected_raised"] > 0


def test_approvals_carry_no_reason_columns(scorer: Scorer, applicants: pd.DataFrame) -> None:
    scored = scorer.score(applicants)
    approved = scored["decision"] == "approve"
    for column in (*REASON_CODE_COLUMNS, *REASON_TEXT_COLUMNS):
        assert (scored.loc[approved, column] == "").all()
    assert (scored.loc[~approved, "reason_code_1"] != "").all()
    cited = pd.unique(scored[list(REASON_CODE_COLUMNS)].to_numpy().ravel())
    assert {str(c) for c in cited} <= {c.code for c in scorer.codes.codes} | {""}


def test_slow_path_gives_the_fast_paths_reasons(
    model_dir: Path, scorer: Scorer, applicants: pd.DataFrame
) -> None:
    slow = Scorer.from_folder(model_dir, compile_fast=False)
    assert slow.fast is None
    ranked = []
    for engine in (scorer, slow):
        probability, contributions = engine.explain_frame(applicants)
        assert contributions is not None
        ranked.append(engine.explainer.rank(probability, contributions))
    (fast_top, fast_served), (slow_top, slow_served) = ranked
    # Same amounts slot by slot; the same codes except where two amounts tie within rounding.
    np.testing.assert_allclose(fast_served, slow_served, atol=1e-4)
    assert np.mean((fast_top == slow_top).all(axis=1)) >= 0.99


@pytest.mark.parametrize("policy", ["exclude", "include"])
def test_requests_and_batches_rank_alike(
    policy: str, scorer: Scorer, include_scorer: Scorer, applicants: pd.DataFrame
) -> None:
    chosen = scorer if policy == "exclude" else include_scorer
    explainer = chosen.explainer
    probability, contributions = chosen.explain_frame(applicants)
    assert contributions is not None
    top, served = explainer.rank(probability, contributions)
    in_numpy = explainer.rank_records(probability.tolist(), contributions)
    row_by_row = [
        explainer.rank_records(probability[i : i + 1].tolist(), contributions[i : i + 1])[0]
        for i in range(len(applicants))
    ]
    assert len(applicants) > explainer.PYTHON_ROWS
    for i, (batch, single) in enumerate(zip(in_numpy, row_by_row, strict=True)):
        assert [k for k, _ in single] == [k for k, _ in batch], i
        assert [a for _, a in single] == pytest.approx([a for _, a in batch], rel=1e-9)
        assert [k for k, _ in batch] == [k for k in top[i].tolist() if k != NO_REASON]
        assert len(batch) == 0 or served[i, 0] == batch[0][1]


# --- the ranking itself -------------------------------------------------------------------


def _explainer(reference_probability: float = 0.1) -> Explainer:
    reference = ReasonReference(
        contributions=tuple(0.0 for _ in ATTRIBUTES),
        raw_probability=0.3,
        probability_bad=reference_probability,
        rows=10,
    )
    return Explainer(reference, ReasonCodes.builtin(), threshold=1 / 6)


def test_protected_attributes_are_skipped_and_the_fallback_is_explicit() -> None:
    explainer = _explainer()
    age, status = BY_NAME["age_years"], BY_NAME["checking_account_status"]
    k_age, k_status = ATTRIBUTES.index(age), ATTRIBUTES.index(status)
    contributions = np.zeros((3, len(ATTRIBUTES)))
    contributions[0, k_age] = 0.3  # the largest, but protected
    contributions[0, k_status] = 0.05
    contributions[1, k_age] = 0.3  # only a protected attribute raised the risk
    contributions[1, k_status] = -0.05
    contributions[2, k_status] = 0.3  # approved
    probability = np.array([0.4, 0.3, 0.1])
    top, served = explainer.rank(probability, contributions)
    assert top[0].tolist() == [k_status, NO_REASON, NO_REASON, NO_REASON]
    assert top[1].tolist() == [FALLBACK, NO_REASON, NO_REASON, NO_REASON]
    assert top[2].tolist() == [NO_REASON] * MAX_REASONS
    distance = logit(np.array([0.3]))[0] - logit(np.array([0.1]))[0]
    assert served[1, 0] == pytest.approx(distance)
    assert explainer.code_row(FALLBACK, {}) == explainer.codes.fallback
    # Row by row in Python (a request) gives the same as in numpy (a batch).
    by_row = explainer.rank_records(probability.tolist(), contributions)
    assert by_row == [
        [(k_status, pytest.approx(served[0, 0]))],
        [(FALLBACK, pytest.approx(distance))],
        [],
    ]
    assert explainer.codes.codes[explainer.codes.fallback].code == FALLBACK_CODE


def test_reference_is_below_the_threshold_or_the_model_is_refused(model_dir: Path) -> None:
    metadata = read_metadata(model_dir)
    above = {
        **metadata,
        "reason_reference": {
            **metadata["reason_reference"],
            "probability_bad": metadata["threshold"],
        },
    }
    with pytest.raises(ModelFolderError) as raised:
        Scorer(None, above)
    assert raised.value.field == "reason_reference.probability_bad"
