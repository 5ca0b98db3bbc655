"""Recourse: the fewest, smallest changes an applicant can make that turn a rejection into an
approval, each verified by re-scoring it with the served model.

**What may change** (:data:`ACTIONS`, one row per attribute; every other attribute is in
:data:`FIXED` with the reason it never changes). Protected attributes (attribute 9, age,
foreign worker) and immutable ones (credit history, the past) never change. An attribute that
may change moves only the way a person can move it: a balance or savings band only up, the
amount asked only down (to no less than half of it), the term either way (half to twice as
long), a guarantor or co-applicant only added, an installment plan elsewhere only paid off.
Each move has a normalised cost: a band moved counts ``bands / (bands on the ladder - 1)``, an
added guarantor or a paid-off plan 1, a number ``|change| / value`` (relative change).

**Consequence.** The installment rate is a band of the installment's share of disposable
income (Grömping 2019: 1 = 35 % or more ... 4 = under 20 %), so it is not an action of its
own: when the amount or the term changes, the share is rescaled by the new monthly installment
over the old one (income unchanged, the band's share taken at
:data:`credit_risk.derivations.INSTALLMENT_SHARE_BY_RATE`) and the band follows. A suggestion
lists that change, marked as a consequence.

**Search** (:class:`RecourseSearch`). For the forest, a numeric attribute's candidate values are
exact: moving one attribute (the others fixed) changes the model's output only where an encoded
column that depends on it (the raw value, or a derived one such as the monthly installment)
crosses a split threshold of the forest; the values between two such crossings all reach the
same leaves. Every integer in the allowed range is mapped to the side of each threshold it falls
on, and each run of values with the same sides (a *cell*) is one candidate, its cheapest value.
Categorical attributes take every allowed code. Then, fewest attributes first:

1. each attribute alone, all of them in one vectorised call per level: every code, and a
   numeric attribute's cells coarse to fine (:attr:`RecourseSearch.fanout` cells evenly spread
   over its range, then over the cells between the last that did not flip and the first that
   did, and so on until none is left between them). That finds the cheapest flipping cell
   whenever the probability falls with the cost along the attribute; where it does not, a
   cheaper flip between two sampled cells could be missed, so the cells cheaper than the flip
   found that were not scored are then swept (up to :attr:`RecourseSearch.sweep` of them);
2. when fewer than three single attributes flip the decision, pairs of the attributes that do
   not: each attribute's values that lowered the probability more than any cheaper value of
   it (its frontier, at most :attr:`RecourseSearch.frontier` values), all combinations;
3. when still fewer than three, triples: the pairs that came closest to the cut, each extended
   by a third attribute's frontier.

A flipping combination of several attributes is then refined: each numeric value is moved back
to the cheapest cell (computed with the other changes applied) that still flips, by the same
descent and sweep. A set of attributes is only searched when no subset of it was found to
flip, so no suggestion holds a smaller one; among the flips found, the suggestions are the
cheapest one per attribute set, fewest attributes then lowest total cost, up to three, each
with a different set (diverse). The candidates scored per applicant are capped
(:attr:`RecourseSearch.budget`). Steps 2-3 are greedy (the frontier of single changes, the
closest pairs): a cheaper combination outside them can be missed, and a rejection that only
four or more changes would reverse gets none. What is returned is always verified: every
suggestion is re-scored with :meth:`credit_risk.scoring.Scorer.score_records`, the path
``/predict`` uses, and kept only if that approves it.

Without a compiled forest (a points scorecard, or a model scored by scikit-learn) the cells are
unknown: a numeric attribute then takes :data:`GRID_POINTS` values evenly spread over its
allowed range, and the rest is the same.
"""

from __future__ import annotations

from credit_risk.recourse.actions import (
    ACTIONS,
    BY_ATTRIBUTE,
    FIXED,
    MAX_CHANGES,
    MAX_SUGGESTIONS,
    actionable_table,
    follow_installment_rate,
)
from credit_risk.recourse.search import RecourseSearch
from credit_risk.recourse.suggestions import Change, RecourseResult, Suggestion, violations

__all__ = [
    "ACTIONS",
    "BY_ATTRIBUTE",
    "FIXED",
    "MAX_CHANGES",
    "MAX_SUGGESTIONS",
    "Change",
    "RecourseResult",
    "RecourseSearch",
    "Suggestion",
    "actionable_table",
    "follow_installment_rate",
    "violations",
]
