"""What a search returns (changes, suggestions, the result) and the check of a suggestion
from scratch (:func:`violations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from credit_risk.recourse.actions import (
    AMOUNT,
    BY_ATTRIBUTE,
    DURATION,
    INSTALLMENT_RATE,
    MAX_CHANGES,
    Action,
    Ladder,
    follow_installment_rate,
)
from credit_risk.schema import BY_NAME, FEATURE_NAMES
from credit_risk.scoring import APPROVE, Decision, Scorer


@dataclass(frozen=True)
class Change:
    """One attribute's change in a suggestion.

    Attributes:
        attribute: the schema name.
        before, after: the applicant's value and the suggested one (codes or integers).
        consequence: the change follows from another one (the installment rate).
    """

    attribute: str
    before: str | int
    after: str | int
    consequence: bool = False

    @property
    def before_text(self) -> str:
        return BY_NAME[self.attribute].label(self.before)

    @property
    def after_text(self) -> str:
        return BY_NAME[self.attribute].label(self.after)


@dataclass(frozen=True)
class Suggestion:
    """A change that turns the rejection into an approval, re-scored with the served model.

    Attributes:
        changes: the attributes acted on, then any consequence.
        probability_bad: the served probability of bad with the changes applied.
        decision: the served decision with them (``approve``: kept only if so).
        cost: the sum of the changes' normalised costs.
        verified: re-scored with :meth:`Scorer.score_records` and approved.
    """

    changes: tuple[Change, ...]
    probability_bad: float
    decision: str
    cost: float
    verified: bool

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attributes acted on (consequences left out)."""
        return tuple(c.attribute for c in self.changes if not c.consequence)

    def applied(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The applicant with every change applied."""
        return {**record, **{c.attribute: c.after for c in self.changes}}


@dataclass(frozen=True)
class RecourseResult:
    """The decision, with a rejection's reasons, and the suggestions that would approve it.

    Attributes:
        decision: the served decision for the applicant as given.
        suggestions: up to three, fewest attributes then lowest cost; empty for an approval
            or when none was found.
        explanation: a sentence saying what the suggestions are, or why there are none.
        scored: candidates scored by the search.
    """

    decision: Decision
    suggestions: list[Suggestion]
    explanation: str
    scored: int


def violations(
    scorer: Scorer,
    record: Mapping[str, Any],
    suggestion: Suggestion,
    actions: Mapping[str, Action] = BY_ATTRIBUTE,
) -> list[str]:
    """What is wrong with a suggestion, checked from scratch (empty when nothing is).

    It must change only attributes of ``actions`` (the installment rate only as the
    consequence of the amount or the term, to the band :func:`follow_installment_rate`
    gives), each to a value its row allows, at most :data:`MAX_CHANGES` of them, and the
    served model, re-scored with :meth:`Scorer.score_records`, must approve the applicant with
    the changes applied, at the probability the suggestion states.
    """
    found = []
    changed = suggestion.applied(record)
    acted = [c for c in suggestion.changes if not c.consequence]
    if not 1 <= len(acted) <= MAX_CHANGES:
        found.append(f"{len(acted)} attributes changed")
    for change in suggestion.changes:
        if record[change.attribute] != change.before:
            found.append(f"{change.attribute}: 'before' is not the applicant's value")
        if change.consequence:
            expected = follow_installment_rate(
                record[INSTALLMENT_RATE],
                record[AMOUNT],
                record[DURATION],
                changed[AMOUNT],
                changed[DURATION],
            )
            if change.attribute != INSTALLMENT_RATE or change.after != expected:
                found.append(f"{change.attribute}: not the consequence of the amount or term")
            continue
        action = actions.get(change.attribute)
        if action is None:
            found.append(f"{change.attribute} may not change")
        elif isinstance(action, Ladder):
            if change.after not in dict(action.moves(str(change.before))):
                found.append(f"{change.attribute}: {change.before} -> {change.after} not allowed")
        else:
            low, high = action.bounds(int(change.before))
            if change.after == change.before or not low <= int(change.after) <= high:
                found.append(f"{change.attribute}: {change.after} outside {low}..{high}")
    for attribute in FEATURE_NAMES:
        listed = any(c.attribute == attribute for c in suggestion.changes)
        if changed[attribute] != record[attribute] and not listed:
            found.append(f"{attribute} changed without being listed")
    rate = follow_installment_rate(
        record[INSTALLMENT_RATE],
        record[AMOUNT],
        record[DURATION],
        changed[AMOUNT],
        changed[DURATION],
    )
    if changed[INSTALLMENT_RATE] != rate:
        found.append("installment_rate does not follow the amount and the term")
    (decision,) = scorer.score_records([changed])
    if decision.decision != APPROVE:
        found.append(f"re-scored: {decision.decision} at {decision.probability_bad:.4f}")
    if abs(decision.probability_bad - suggestion.probability_bad) > 1e-9:
        found.append("re-scored probability differs from the one stated")
    return found
