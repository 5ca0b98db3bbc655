"""Recourse on the shipped applicants: every suggestion flips the decision when applied,
changes only what the applicant can act on, the way they can act on it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.recourse import (
    ACTIONS,
    BY_ATTRIBUTE,
    FIXED,
    MAX_CHANGES,
    MAX_SUGGESTIONS,
    RecourseResult,
    RecourseSearch,
    Suggestion,
    actionable_table,
    follow_installment_rate,
    violations,
)
from credit_risk.recourse.candidates import _CandidateEncoder
from credit_risk.schema import ATTRIBUTES, BY_NAME, FEATURE_NAMES, PROTECTED
from credit_risk.scoring import APPROVE, REJECT, Scorer

# The allowed moves, written out again here (not read from the module's table): code -> the
# codes it may become, and the numeric rules.
LADDER_MOVES: dict[str, dict[str, set[str]]] = {
    "checking_account_status": {"A11": {"A12", "A13"}, "A12": {"A13"}, "A13": set(), "A14": set()},
    "savings_account": {
        "A65": {"A61", "A62", "A63", "A64"},
        "A61": {"A62", "A63", "A64"},
        "A62": {"A63", "A64"},
        "A63": {"A64"},
        "A64": set(),
    },
    "employment_since": {
        "A71": {"A72", "A73", "A74", "A75"},
        "A72": {"A73", "A74", "A75"},
        "A73": {"A74", "A75"},
        "A74": {"A75"},
        "A75": set(),
    },
    "other_debtors": {"A101": {"A102", "A103"}, "A102": set(), "A103": set()},
    "property": {"A124": {"A123", "A122"}, "A123": {"A122"}, "A122": set(), "A121": set()},
    "other_installment_plans": {"A141": {"A143"}, "A142": {"A143"}, "A143": set()},
}
NEVER = {*PROTECTED, "credit_history", "purpose", "housing", "job", "telephone"}


def _numeric_allowed(attribute: str, before: int, after: int) -> bool:
    if attribute == "credit_amount":
        return math.ceil(before / 2) <= after < before
    if attribute == "duration_months":
        return after != before and max(1, math.ceil(before / 2)) <= after <= min(120, 2 * before)
    if attribute == "existing_credits":
        return 1 <= after < before
    return False


def _check(scorer: Scorer, record: Mapping[str, Any], result: RecourseResult) -> None:
    """Every suggestion, checked without the module: re-scored, allowed, minimal, diverse."""
    assert result.decision.decision == REJECT
    suggestions = result.suggestions
    assert len(suggestions) <= MAX_SUGGESTIONS
    keys = [(len(s.attributes), s.cost) for s in suggestions]
    assert keys == sorted(keys)
    sets = [frozenset(s.attributes) for s in suggestions]
    for i, first in enumerate(sets):
        for j, second in enumerate(sets):
            assert i == j or not first <= second, "a suggestion contains another's changes"
    applied = [s.applied(record) for s in suggestions]
    decisions = scorer.score_records(applied) if applied else []
    for suggestion, changed, decision in zip(suggestions, applied, decisions, strict=True):
        # Re-scored with the served model: it approves, at the stated probability.
        assert decision.decision == APPROVE
        assert decision.probability_bad < scorer.threshold
        assert decision.probability_bad == pytest.approx(suggestion.probability_bad, abs=1e-12)
        assert suggestion.verified and suggestion.decision == APPROVE
        assert 1 <= len(suggestion.attributes) <= MAX_CHANGES
        moved = {name for name in FEATURE_NAMES if changed[name] != record[name]}
        assert moved == {c.attribute for c in suggestion.changes}
        assert not moved & NEVER
        cost = 0.0
        for change in suggestion.changes:
            assert change.before == record[change.attribute]
            attribute = BY_NAME[change.attribute]
            if attribute.codes:
                assert change.after in attribute.codes
            else:
                assert attribute.minimum <= change.after <= attribute.maximum  # type: ignore[operator]
            if change.consequence:
                assert change.attribute == "installment_rate"
                assert moved & {"credit_amount", "duration_months"}
                continue
            if change.attribute in LADDER_MOVES:
                assert change.after in LADDER_MOVES[change.attribute][str(change.before)]
            else:
                before, after = int(change.before), int(change.after)
                assert _numeric_allowed(change.attribute, before, after), change
                cost += abs(after - before) / before
        assert suggestion.cost >= cost - 1e-12


@pytest.fixture(scope="module")
def search(scorer: Scorer) -> RecourseSearch:
    return RecourseSearch(scorer)


@pytest.fixture(scope="module")
def records(applicants: pd.DataFrame) -> list[dict[str, Any]]:
    return applicants.to_dict("records")


@pytest.fixture(scope="module")
def searched(
    search: RecourseSearch, scorer: Scorer, records: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], RecourseResult]]:
    """Every shipped rejection of the fixture model with its recourse."""
    decisions = scorer.score_records(records)
    rejected = [r for r, d in zip(records, decisions, strict=True) if d.decision == REJECT]
    return [(record, search.suggest(record)) for record in rejected]


def test_every_attribute_is_actionable_or_fixed_with_a_reason() -> None:
    actionable = {action.attribute for action in ACTIONS}
    assert actionable.isdisjoint(FIXED)
    assert actionable | set(FIXED) == set(FEATURE_NAMES)
    assert set(PROTECTED) | {"credit_history", "age_years"} <= set(FIXED)
    assert [row[0] for row in actionable_table()] == list(FEATURE_NAMES)
    assert all(row[2] for row in actionable_table())


def test_every_suggestion_flips_the_decision_on_the_shipped_rejections(
    scorer: Scorer, searched: list[tuple[dict[str, Any], RecourseResult]]
) -> None:
    assert len(searched) > 100
    for record, result in searched:
        _check(scorer, record, result)
    helped = sum(bool(result.suggestions) for _, result in searched)
    # Most rejections of the fixture model can be reversed within the rules.
    assert helped >= len(searched) // 2, f"{helped} of {len(searched)}"
    counts = {len(s.attributes) for _, r in searched for s in r.suggestions}
    assert 1 in counts and 2 in counts


def test_no_suggestion_explains_why(
    searched: list[tuple[dict[str, Any], RecourseResult]],
) -> None:
    for _, result in searched:
        if not result.suggestions:
            assert "within the search" in result.explanation or "may change" in result.explanation
        else:
            assert "re-scored" in result.explanation


def test_module_check_agrees(
    scorer: Scorer, searched: list[tuple[dict[str, Any], RecourseResult]]
) -> None:
    for record, result in searched[:60]:
        for suggestion in result.suggestions:
            assert violations(scorer, record, suggestion) == []


def test_module_check_catches_a_forbidden_change(
    scorer: Scorer, searched: list[tuple[dict[str, Any], RecourseResult]]
) -> None:
    record, result = next((r, s) for r, s in searched if s.suggestions)
    suggestion = result.suggestions[0]
    from credit_risk.recourse import Change

    age = Change("age_years", record["age_years"], record["age_years"] + 10)
    forged = Suggestion((*suggestion.changes, age), 0.0, APPROVE, 0.0, True)
    found = violations(scorer, record, forged)
    assert any("age_years may not change" in problem for problem in found)


def test_approved_applicants_get_no_suggestions(
    search: RecourseSearch, scorer: Scorer, records: list[dict[str, Any]]
) -> None:
    decisions = scorer.score_records(records)
    approved = [r for r, d in zip(records, decisions, strict=True) if d.decision == APPROVE]
    assert approved
    for record in approved[:50]:
        result = search.suggest(record)
        assert result.decision.decision == APPROVE
        assert result.suggestions == [] and result.scored == 0
        assert result.explanation.startswith("Approved")


@pytest.mark.parametrize("attribute", ["duration_months", "credit_amount", "existing_credits"])
def test_numeric_candidates_cover_every_allowed_value(
    search: RecourseSearch,
    scorer: Scorer,
    searched: list[tuple[dict[str, Any], RecourseResult]],
    attribute: str,
) -> None:
    """Every value in the allowed range scores as the applicant, or as one of the candidate
    values (the cells are exact): re-scored independently, value by value."""
    action = BY_ATTRIBUTE[attribute]
    rng = np.random.default_rng(7)
    checked = 0
    for record, _ in searched[::25]:
        options = search.options(record, attribute)
        low, high = action.bounds(record[attribute])  # type: ignore[union-attr]
        values = [v for v in range(low, high + 1) if v != record[attribute]]
        if not values:
            continue
        if len(values) > 150:
            values = sorted(rng.choice(values, 150, replace=False).tolist())
        every = scorer.score_records(
            [_with(record, attribute, v) for v in values]
            + [_with(record, attribute, v) for v, _ in options]
        )
        probability = [d.probability_bad for d in every]
        candidates = {round(p, 12) for p in probability[len(values) :]}
        candidates.add(round(scorer.score_records([record])[0].probability_bad, 12))
        assert {round(p, 12) for p in probability[: len(values)]} <= candidates
        checked += 1
    assert checked >= 3


def _with(record: Mapping[str, Any], attribute: str, value: int) -> dict[str, Any]:
    changed = {**record, attribute: value}
    changed["installment_rate"] = follow_installment_rate(
        record["installment_rate"],
        record["credit_amount"],
        record["duration_months"],
        changed["credit_amount"],
        changed["duration_months"],
    )
    return changed


def test_single_changes_are_the_cheapest_that_flip(
    search: RecourseSearch, searched: list[tuple[dict[str, Any], RecourseResult]]
) -> None:
    """A suggestion that changes one number: every cheaper cell of it, scored, stays rejected
    (all but a few: the sweep after the descent covers at most ``sweep`` cells)."""
    singles = missed = 0
    for record, result in searched:
        for suggestion in result.suggestions:
            (attribute, *more) = suggestion.attributes
            if more or not isinstance(record[attribute], int):
                continue
            singles += 1
            cheaper = [v for v, c in search.options(record, attribute) if c < suggestion.cost]
            probability = search.probabilities(record, [{attribute: v} for v in cheaper])
            missed += bool((probability < search.scorer.threshold).any())
    assert singles >= 20
    assert missed <= singles // 20, f"{missed} of {singles}"


def test_candidate_encoder_matches_the_fast_path(
    scorer: Scorer, search: RecourseSearch, records: list[dict[str, Any]]
) -> None:
    assert scorer.fast is not None
    encoder = _CandidateEncoder(scorer.fast)
    rng = np.random.default_rng(3)
    for record in records[:20]:
        rows = []
        for _ in range(8):
            changes: dict[str, Any] = {}
            for attribute in rng.choice(ATTRIBUTES, 3, replace=False):
                if attribute.codes:
                    changes[attribute.name] = str(rng.choice(list(attribute.codes)))
                else:
                    high = min(attribute.maximum or 0, 20_000)
                    changes[attribute.name] = int(rng.integers(attribute.minimum, high + 1))
            rows.append(changes)
        columns = search.columns(record, rows)
        expected = scorer.fast.encoder.encode_columns(columns)
        assert np.array_equal(encoder.encode(record, columns, set(FEATURE_NAMES)), expected)
        changed = {name for row in rows for name in row} | {"installment_rate"}
        assert np.array_equal(encoder.encode(record, columns, changed), expected)
        frame = pd.DataFrame({name: columns[name] for name in FEATURE_NAMES})
        assert np.allclose(
            search.probabilities(record, rows), scorer.explain_frame(frame)[0], atol=1e-12
        )


@pytest.mark.parametrize(
    ("rate", "factor", "expected"),
    [
        (1, 1.0, 1),
        (2, 1.0, 2),
        (3, 1.0, 3),
        (4, 1.0, 4),
        (1, 0.5, 3),  # 40 % of income halved: 20 %, band 3
        (1, 0.85, 2),  # 34 %
        (4, 0.5, 4),
        (4, 1.2, 3),  # 17.5 % up a fifth: 21 %
        (2, 1.2, 1),  # 36 %
        (3, 0.8, 4),  # 18 %
    ],
)
def test_installment_rate_follows_the_monthly_installment(
    rate: int, factor: float, expected: int
) -> None:
    # The monthly installment scaled by ``factor`` through the amount, and through the term.
    assert follow_installment_rate(rate, 2400, 24, round(2400 * factor), 24) == expected
    assert follow_installment_rate(rate, 2400, 24, 2400, 24 / factor) == expected


def test_search_stays_within_its_budget(
    scorer: Scorer, searched: list[tuple[dict[str, Any], RecourseResult]]
) -> None:
    small = RecourseSearch(scorer, budget=20)
    for record, _ in searched[:30]:
        result = small.suggest(record)
        assert result.scored <= 20
        _check(scorer, record, result)


def test_scorer_without_the_fast_path_gets_verified_suggestions(
    model_dir: Any, searched: list[tuple[dict[str, Any], RecourseResult]]
) -> None:
    """A model without compiled forest (e.g. a points scorecard): an even grid, same rules."""
    plain = Scorer.from_folder(model_dir, compile_fast=False)
    search = RecourseSearch(plain)
    found = 0
    for record, _ in searched[:5]:
        result = search.suggest(record)
        _check(plain, record, result)
        found += bool(result.suggestions)
    assert found
