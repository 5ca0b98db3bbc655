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

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.derivations import INSTALLMENT_SHARE_BY_RATE, Derivation
from credit_risk.fastpath import FastPath
from credit_risk.schema import ATTRIBUTES, BY_NAME, FEATURE_NAMES, Kind
from credit_risk.scoring import APPROVE, Decision, Scorer

MAX_SUGGESTIONS = 3
MAX_CHANGES = 3
# Values a numeric attribute takes when the model exposes no split thresholds.
GRID_POINTS = 16
# Integers of a numeric range mapped to cells; a wider range is sampled evenly at this many.
MAX_CELL_GRID = 20_000
INSTALLMENT_RATE = "installment_rate"
AMOUNT, DURATION = "credit_amount", "duration_months"
# Lowest share of disposable income of each installment-rate band (Grömping 2019): the band of
# a share is the first whose floor it reaches.
INSTALLMENT_RATE_FLOORS: tuple[tuple[int, float], ...] = ((1, 0.35), (2, 0.25), (3, 0.20), (4, 0.0))


class Direction(StrEnum):
    DOWN = "down"
    UP = "up"
    EITHER = "either"


@dataclass(frozen=True)
class Ladder:
    """A categorical attribute that moves up a ladder of codes only.

    Attributes:
        attribute: the schema name.
        rungs: groups of codes from the lowest rung up; a code moves to any code of a higher
            rung. Codes on no rung never move and are never a target.
        why: the reason for these moves (documentation, and the README's table).
    """

    attribute: str
    rungs: tuple[tuple[str, ...], ...]
    why: str

    def moves(self, code: str) -> list[tuple[str, float]]:
        """Allowed targets from ``code`` with their costs (rungs climbed / rungs above the
        first)."""
        rank = next((i for i, rung in enumerate(self.rungs) if code in rung), None)
        if rank is None:
            return []
        span = len(self.rungs) - 1
        return [
            (target, (higher - rank) / span)
            for higher in range(rank + 1, len(self.rungs))
            for target in self.rungs[higher]
        ]

    def allowed_text(self) -> str:
        return " < ".join("/".join(rung) for rung in self.rungs) + ", up only"


@dataclass(frozen=True)
class Range:
    """A numeric attribute that moves within a range relative to the applicant's value.

    Attributes:
        attribute: the schema name.
        direction: down, up or either way.
        low_fraction: the lowest value as a fraction of the applicant's (None: the codebook's
            minimum).
        high_fraction: the highest value as a multiple of the applicant's (None: the
            codebook's maximum).
        why: the reason for these moves.
    """

    attribute: str
    direction: Direction
    low_fraction: float | None
    high_fraction: float | None
    why: str

    def bounds(self, value: int) -> tuple[int, int]:
        """The lowest and highest value allowed from ``value`` (within the codebook's bounds)."""
        attribute = BY_NAME[self.attribute]
        low, high = int(attribute.minimum or 0), int(attribute.maximum or 0)
        if self.direction is Direction.UP:
            low = value
        elif self.low_fraction is not None:
            low = max(low, math.ceil(value * self.low_fraction))
        if self.direction is Direction.DOWN:
            high = value
        elif self.high_fraction is not None:
            high = min(high, math.floor(value * self.high_fraction))
        return min(low, value), max(high, value)

    @staticmethod
    def cost(value: int, new: int) -> float:
        return abs(new - value) / value

    def allowed_text(self) -> str:
        attribute = BY_NAME[self.attribute]
        low = (
            f"the codebook's minimum ({attribute.minimum})"
            if self.low_fraction is None
            else f"{self.low_fraction:g} x the value asked"
        )
        high = (
            f"the codebook's maximum ({attribute.maximum})"
            if self.high_fraction is None
            else f"{self.high_fraction:g} x the value asked"
        )
        if self.direction is Direction.DOWN:
            return f"down only, to {low}"
        if self.direction is Direction.UP:
            return f"up only, to {high}"
        return f"either way, from {low} to {high}"


Action = Ladder | Range

ACTIONS: tuple[Action, ...] = (
    Ladder(
        "checking_account_status",
        (("A11",), ("A12",), ("A13",)),
        "a balance can be paid in; 'no checking account' (A14) is neither a step nor a target: "
        "closing an account to be approved would game the score",
    ),
    Range(
        DURATION,
        Direction.EITHER,
        0.5,
        2.0,
        "the term is the applicant's choice of loan; from half to twice the term asked",
    ),
    Range(
        AMOUNT,
        Direction.DOWN,
        0.5,
        None,
        "borrowing less is a choice; down to half the amount asked (a smaller loan, not "
        "another one)",
    ),
    Ladder(
        "savings_account",
        (("A65",), ("A61",), ("A62",), ("A63",), ("A64",)),
        "savings can be built up or declared; never down, and never to 'unknown / none' (A65)",
    ),
    Ladder(
        "employment_since",
        (("A71",), ("A72",), ("A73",), ("A74",), ("A75",)),
        "finding work or staying in a job: the band only grows, and takes the time it names",
    ),
    Ladder(
        "other_debtors",
        (("A101",), ("A102", "A103")),
        "a co-applicant or guarantor can be added (cost 1); never removed",
    ),
    Ladder(
        "property",
        (("A124",), ("A123",), ("A122",)),
        "a car or a building-society savings / life-insurance contract can be acquired; real "
        "estate (A121) is not a realistic step for a loan, so neither a step nor a target",
    ),
    Ladder(
        "other_installment_plans",
        (("A141", "A142"), ("A143",)),
        "an installment plan at a bank or store can be paid off (cost 1); never added",
    ),
    Range(
        "existing_credits",
        Direction.DOWN,
        None,
        None,
        "a credit at this bank can be paid off; down only, to the codebook's minimum",
    ),
)
BY_ATTRIBUTE: dict[str, Action] = {action.attribute: action for action in ACTIONS}

# Every attribute that never changes, with the reason.
FIXED: dict[str, str] = {
    "credit_history": "immutable: the past repayment record",
    "purpose": "what the credit is for is the applicant's need, not a lever",
    INSTALLMENT_RATE: "a consequence, not an action: follows the amount and the term (above)",
    "personal_status_sex": "protected (attribute 9)",
    "residence_since": "time only: moving resets it, waiting is not an action",
    "age_years": "protected and immutable",
    "housing": "not changed to obtain a credit",
    "job": "not changed to obtain a credit",
    "people_liable": "dependants are not a lever",
    "telephone": "no causal link to repaying: suggesting it would teach gaming the score",
    "foreign_worker": "protected (a proxy for national origin)",
}


def actionable_table() -> list[tuple[str, str, str]]:
    """``(attribute, allowed moves, why)`` for every attribute, in codebook order."""
    rows = []
    for attribute in ATTRIBUTES:
        action = BY_ATTRIBUTE.get(attribute.name)
        if action is not None:
            rows.append((attribute.name, action.allowed_text(), action.why))
        else:
            rows.append((attribute.name, "fixed", FIXED[attribute.name]))
    return rows


def follow_installment_rate(
    rate: int, amount: int, duration: int, new_amount: Any, new_duration: Any
) -> Any:
    """The installment-rate band after the amount or the term changes, income unchanged.

    The share of disposable income is the band's representative share scaled by the new
    monthly installment over the old one; the band is the first whose floor it reaches.

    Args:
        rate: the applicant's band (1-4).
        amount, duration: the applicant's amount and term.
        new_amount, new_duration: the changed ones (numbers or arrays).

    Returns:
        The new band(s), int or an int64 array.
    """
    share = INSTALLMENT_SHARE_BY_RATE[int(rate)] * (
        (np.asarray(new_amount, dtype=np.float64) / np.asarray(new_duration, dtype=np.float64))
        / (amount / duration)
    )
    band = np.full(share.shape, INSTALLMENT_RATE_FLOORS[-1][0], dtype=np.int64)
    for value, floor in reversed(INSTALLMENT_RATE_FLOORS[:-1]):
        band[share >= floor] = value
    return int(band) if band.ndim == 0 else band


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


@dataclass
class _Flip:
    """A scored combination: its changes (acted on only), total cost and probability."""

    changes: dict[str, Any]
    cost: float
    probability: float


@dataclass
class _Line:
    """One attribute searched along its options, other changes held (see :meth:`_descend`).

    Attributes:
        others: the changes held fixed.
        others_cost: their cost.
        attribute: the attribute searched.
        options: its values and costs, cheapest first.
        low, high: the window of options still searched.
        found: the cheapest flip found so far.
        seen: every option scored, with its probability.
    """

    others: dict[str, Any]
    others_cost: float
    attribute: str
    options: list[tuple[Any, float]]
    low: int = 0
    high: int = -1
    found: _Flip | None = None
    seen: list[tuple[Any, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.high < 0:
            self.high = len(self.options)


def _sources(derivation: Derivation) -> frozenset[str]:
    """The codebook attributes a derived variable reads (its fields that name one)."""
    found: set[str] = set()
    for spec in fields(derivation):
        value = getattr(derivation, spec.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str) and item in FEATURE_NAMES:
                found.add(item)
    return frozenset(found)


def _evenly(count: int, low: int, high: int) -> list[int]:
    """At most ``count`` indices of ``range(low, high)``, evenly spaced, first and last kept."""
    if high - low <= count:
        return list(range(low, high))
    return np.unique(np.round(np.linspace(low, high - 1, count)).astype(int)).tolist()


class _CandidateEncoder:
    """Encodes candidates that differ from one applicant in a few attributes.

    The applicant is encoded once by the fast path's own encoder; a candidate's row is a copy
    of it in which only the encoded columns that read a changed attribute are recomputed (with
    the derivations' own :meth:`~credit_risk.derivations.Derivation.column`). Checked against
    the fast path's encoder by ``tests/test_recourse.py``; suggestions are re-scored by it
    anyway.
    """

    def __init__(self, fast: FastPath) -> None:
        self.encoder = fast.encoder
        layout = fast.encoder.layout
        derivations = {d.name: d for d in layout.derivations}
        self.numeric: list[tuple[int, str, Derivation | None, frozenset[str]]] = []
        for index, column in enumerate(layout.numeric):
            derivation = derivations.get(column)
            reads = _sources(derivation) if derivation else frozenset({column})
            self.numeric.append((index, column, derivation, reads))
        self.blocks: list[tuple[int, int, str, dict[str, int], Derivation | None, frozenset[str]]]
        self.blocks = []
        offset = len(layout.numeric)
        for column, levels in layout.categorical:
            derivation = derivations.get(column)
            reads = _sources(derivation) if derivation else frozenset({column})
            positions = {level: i for i, level in enumerate(levels)}
            self.blocks.append((offset, len(levels), column, positions, derivation, reads))
            offset += len(levels)

    def encode(
        self, record: Mapping[str, Any], columns: Mapping[str, Any], changed: set[str]
    ) -> np.ndarray:
        """The encoded candidates: ``columns`` holds every attribute, one value per candidate;
        only attributes in ``changed`` differ from ``record``."""
        n = len(columns[FEATURE_NAMES[0]])
        base = self.encoder.encode_records([record])
        out = np.repeat(base, n, axis=0)
        for index, column, derivation, reads in self.numeric:
            if reads & changed:
                values = columns[column] if derivation is None else derivation.column(columns)
                out[:, index] = np.asarray(values, dtype=np.float64)
        for offset, width, column, positions, derivation, reads in self.blocks:
            if reads & changed:
                values = columns[column] if derivation is None else derivation.column(columns)
                level = np.fromiter((positions.get(v, -1) for v in values), dtype=np.int64, count=n)
                out[:, offset : offset + width] = 0.0
                known = np.flatnonzero(level >= 0)
                out[known, offset + level[known]] = 1.0
        return out


class RecourseSearch:
    """Finds recourse for rejected applicants of one loaded model (see the module).

    Args:
        scorer: the served model.
        budget: the most candidates scored for one applicant.
        fanout: options scored per attribute and level of the coarse-to-fine descent.
        frontier: values of each attribute combined in pairs and triples.
        beam: pairs extended to triples.
        sweep: cheaper options scored after the descent, per attribute that flips alone.
        actions: what may change and how (default :data:`ACTIONS`).
    """

    # Rows per scoring call: the batch engine starts threads from 2048 rows, which costs more
    # than it saves at these sizes.
    CHUNK = 2000

    def __init__(
        self,
        scorer: Scorer,
        budget: int = 2000,
        fanout: int = 12,
        frontier: int = 6,
        beam: int = 12,
        sweep: int = 256,
        actions: Sequence[Action] = ACTIONS,
    ) -> None:
        self.scorer = scorer
        self.budget = budget
        self.fanout = fanout
        self.frontier = frontier
        self.beam = beam
        self.sweep = sweep
        self.actions = {action.attribute: action for action in actions}
        fast = scorer.fast
        self._fast = fast if isinstance(fast, FastPath) else None
        self._encoder = _CandidateEncoder(self._fast) if self._fast is not None else None
        # Sorted float32 split thresholds of each numeric encoded column, and what it reads.
        self._thresholds: dict[str, np.ndarray] = {}
        self._derived: dict[str, Derivation] = {}
        self._reads: dict[str, frozenset[str]] = {}
        if self._fast is not None:
            self._read_splits(self._fast)

    def _read_splits(self, fast: FastPath) -> None:
        layout = fast.encoder.layout
        derivations = {d.name: d for d in layout.derivations}
        forest = fast.forest
        split = np.isfinite(forest.threshold)
        for index, column in enumerate(layout.numeric):
            found = forest.threshold[split & (forest.feature == index)]
            if not len(found):
                continue
            self._thresholds[column] = np.unique(found).astype(np.float32)
            if column in derivations:
                self._derived[column] = derivations[column]
                self._reads[column] = _sources(derivations[column])
            else:
                self._reads[column] = frozenset({column})

    # -- scoring ------------------------------------------------------------------------------

    def columns(
        self, record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, np.ndarray]:
        """One array per attribute: ``record`` with each row's changes, and their consequence."""
        n = len(rows)
        columns: dict[str, np.ndarray] = {}
        for attribute in ATTRIBUTES:
            dtype = object if attribute.kind is Kind.CATEGORICAL else np.int64
            columns[attribute.name] = np.full(n, record[attribute.name], dtype=dtype)
        for i, changes in enumerate(rows):
            for name, value in changes.items():
                columns[name][i] = value
        self._follow(record, columns)
        return columns

    @staticmethod
    def _follow(record: Mapping[str, Any], columns: dict[str, Any]) -> None:
        """Apply the consequence: the installment-rate band follows the amount and the term."""
        columns[INSTALLMENT_RATE] = follow_installment_rate(
            record[INSTALLMENT_RATE],
            record[AMOUNT],
            record[DURATION],
            columns[AMOUNT],
            columns[DURATION],
        )

    def probabilities(
        self, record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
    ) -> np.ndarray:
        """The served probability of bad of ``record`` with each row's changes applied."""
        if not rows:
            return np.empty(0)
        if len(rows) > self.CHUNK:
            return np.concatenate(
                [
                    self.probabilities(record, rows[low : low + self.CHUNK])
                    for low in range(0, len(rows), self.CHUNK)
                ]
            )
        columns = self.columns(record, rows)
        if self._fast is None or self._encoder is None:
            frame = pd.DataFrame({name: columns[name] for name in FEATURE_NAMES})
            return np.asarray(self.scorer.explain_frame(frame)[0])
        changed = {name for row in rows for name in row}
        if changed & {AMOUNT, DURATION}:
            changed.add(INSTALLMENT_RATE)
        encoded = self._encoder.encode(record, columns, changed)
        return self._fast.run_encoded(encoded)[0]

    # -- candidates ---------------------------------------------------------------------------

    def options(
        self,
        record: Mapping[str, Any],
        attribute: str,
        changed: Mapping[str, Any] | None = None,
    ) -> list[tuple[Any, float]]:
        """The values ``attribute`` may take from ``record`` with their costs, cheapest first.

        A numeric attribute of a forest gives one value per cell (see the module): the cheapest
        value past each change of side of a split threshold of a column that reads it.

        Args:
            record: the applicant (bounds and costs are relative to its values).
            attribute: an attribute of :data:`ACTIONS`.
            changed: the applicant with other changes applied, around which the cells are
                found (default: ``record``).
        """
        action = self.actions[attribute]
        value = record[attribute]
        if isinstance(action, Ladder):
            return action.moves(value)
        low, high = action.bounds(value)
        found: list[tuple[Any, float]] = []
        for run in (np.arange(value - 1, low - 1, -1), np.arange(value + 1, high + 1)):
            if not len(run):
                continue
            if len(run) > MAX_CELL_GRID:  # sampled evenly, still moving away from the value
                run = run[_evenly(MAX_CELL_GRID, 0, len(run))]
            if self._fast is None:
                picked = [int(v) for v in run[_evenly(GRID_POINTS, 0, len(run))]]
            else:
                picked = self._cells(record, changed or record, attribute, run)
            costs = np.abs(np.asarray(picked, dtype=np.float64) - value) / value  # Range.cost
            found.extend(zip(picked, costs.tolist(), strict=True))
        return sorted(found, key=lambda item: item[1])

    def _cells(
        self,
        record: Mapping[str, Any],
        changed: Mapping[str, Any],
        attribute: str,
        run: np.ndarray,
    ) -> list[int]:
        """The first value of each new cell along ``run`` (values moving away from the
        applicant's), the other attributes as in ``changed``; the installment rate follows
        from the applicant's own request, as in scoring."""
        touched = {attribute}
        if attribute in (AMOUNT, DURATION):
            touched.add(INSTALLMENT_RATE)
        values = np.concatenate(([changed[attribute]], run)).astype(np.int64)
        n = len(values)
        columns: dict[str, Any] = {
            name: np.full(n, changed[name], dtype=np.int64)
            for name in FEATURE_NAMES
            if BY_NAME[name].kind is Kind.NUMERIC
        }
        columns[attribute] = values
        self._follow(record, columns)
        sides = []
        for column, thresholds in self._thresholds.items():
            if not self._reads[column] & touched:
                continue
            derivation = self._derived.get(column)
            raw = columns[column] if derivation is None else derivation.column(columns)
            x = np.asarray(raw, dtype=np.float64).astype(np.float32)
            sides.append(np.searchsorted(thresholds, x, side="left"))
        if not sides:
            return []
        signature = np.ascontiguousarray(np.stack(sides, axis=1))
        # Rows as single values, so that equal signatures compare (and sort) as one.
        rows = signature.view(np.dtype((np.void, signature.dtype.itemsize * signature.shape[1])))
        rows = rows.ravel()
        starts = np.flatnonzero(rows[1:] != rows[:-1]) + 1
        starts = starts[rows[starts] != rows[0]]
        # A cell met again gives the same output: only its first (cheapest) value is kept.
        _, first = np.unique(rows[starts], return_index=True)
        return values[np.sort(starts[first])].tolist()  # type: ignore[no-any-return]

    # -- the search ---------------------------------------------------------------------------

    def suggest(self, record: Mapping[str, Any]) -> RecourseResult:
        """The decision for a validated applicant and, for a rejection, up to three suggestions.

        Args:
            record: one validated applicant (codes and integers, as ``/predict`` takes).
        """
        (decision,) = self.scorer.score_records([record])
        if decision.decision == APPROVE:
            return RecourseResult(decision, [], "Approved: no change is needed.", 0)
        threshold = self.scorer.threshold
        lines = [
            _Line({}, 0.0, attribute, options)
            for attribute in self.actions
            if (options := self.options(record, attribute))
        ]
        if not lines:
            message = "No attribute the applicant can act on may change from these values."
            return RecourseResult(decision, [], message, 0)

        # 1. Each attribute alone, coarse to fine, then every cheaper cell not yet scored.
        scored = self._descend(record, lines, threshold, 0)
        scored += self._sweep(record, lines, threshold, scored)
        flips = {frozenset({line.attribute}): line.found for line in lines if line.found}
        frontiers = {
            line.attribute: self._frontier(line.seen, decision.probability_bad)
            for line in lines
            if line.found is None
        }
        frontiers = {attribute: kept for attribute, kept in frontiers.items() if kept}

        # 2. Pairs of attributes that do not flip alone; 3. triples from the closest pairs.
        closest: list[_Flip] = []
        if len(flips) < MAX_SUGGESTIONS and MAX_CHANGES >= 2:
            candidates = [
                _Flip({a: va, b: vb}, ca + cb, math.inf)
                for a, b in itertools.combinations(sorted(frontiers), 2)
                for (va, ca, _), (vb, cb, _) in itertools.product(frontiers[a], frontiers[b])
            ]
            scored += self._score_flips(record, candidates, scored)
            for candidate in candidates:
                if not self._keep(flips, candidate, threshold):
                    closest.append(candidate)
        if len(flips) < MAX_SUGGESTIONS and MAX_CHANGES >= 3 and closest:
            closest.sort(key=lambda f: (f.probability, f.cost))
            candidates = []
            for pair in closest[: self.beam]:
                for c in sorted(frontiers):
                    attributes = frozenset(pair.changes) | {c}
                    if c in pair.changes or self._has_flipping_subset(attributes, flips):
                        continue
                    candidates.extend(
                        _Flip({**pair.changes, c: vc}, pair.cost + cc, math.inf)
                        for vc, cc, _ in frontiers[c]
                    )
            scored += self._score_flips(record, candidates, scored)
            for candidate in candidates:
                self._keep(flips, candidate, threshold)

        chosen = self._choose(flips)
        scored += self._refine(record, chosen, threshold, scored)
        chosen.sort(key=lambda f: (len(f.changes), f.cost, f.probability))
        suggestions = self._verify(record, chosen)
        if suggestions:
            message = (
                f"Each suggestion changes at most {MAX_CHANGES} attributes the applicant can "
                "act on (never a protected or past one); the served model re-scored each and "
                "approves it."
            )
            return RecourseResult(decision, suggestions, message, scored)
        message = (
            f"No change of at most {MAX_CHANGES} attributes the applicant can act on turned "
            f"this rejection into an approval within the search ({scored} candidates scored, "
            f"budget {self.budget})."
        )
        return RecourseResult(decision, [], message, scored)

    def _score_flips(self, record: Mapping[str, Any], candidates: list[_Flip], scored: int) -> int:
        """Score the cheapest candidates that fit in what is left of the budget (the others
        keep an infinite probability); returns how many were scored."""
        room = max(0, self.budget - scored)
        if len(candidates) > room:
            candidates.sort(key=lambda f: f.cost)
            del candidates[room:]
        probability = self.probabilities(record, [c.changes for c in candidates])
        for candidate, p in zip(candidates, probability.tolist(), strict=True):
            candidate.probability = p
        return len(candidates)

    def _descend(
        self, record: Mapping[str, Any], lines: list[_Line], threshold: float, scored: int
    ) -> int:
        """Coarse to fine along each line at once: score :attr:`fanout` options evenly spread
        over the window, then search the window between the last option that did not flip and
        the first that did; until the window is empty. Returns the rows scored.

        Each line ends with the cheapest flip found (``found``) and every option scored
        (``seen``); the options must be sorted by cost.
        """
        total = 0
        active = [line for line in lines if line.high > line.low]
        while active:
            rows: list[dict[str, Any]] = []
            picks: list[list[int]] = []
            room = self.budget - scored - total
            for line in active:
                chosen = _evenly(self.fanout, line.low, line.high)[: max(0, room - len(rows))]
                picks.append(chosen)
                rows.extend({**line.others, line.attribute: line.options[i][0]} for i in chosen)
            if not rows:
                break
            probability = self.probabilities(record, rows).tolist()
            total += len(rows)
            following = []
            start = 0
            for line, chosen in zip(active, picks, strict=True):
                results = probability[start : start + len(chosen)]
                start += len(chosen)
                flipped = None
                for k, (i, p) in enumerate(zip(chosen, results, strict=True)):
                    value, cost = line.options[i]
                    line.seen.append((value, cost, p))
                    if flipped is None and p < threshold:
                        flipped = k
                if flipped is None:
                    continue
                i = chosen[flipped]
                value, cost = line.options[i]
                changes = {**line.others, line.attribute: value}
                line.found = _Flip(changes, line.others_cost + cost, results[flipped])
                line.low = chosen[flipped - 1] + 1 if flipped else line.low
                line.high = i
                if line.high > line.low:
                    following.append(line)
            active = following
        return total

    def _sweep(
        self, record: Mapping[str, Any], lines: list[_Line], threshold: float, scored: int
    ) -> int:
        """Score the options cheaper than each line's flip that the descent skipped (at most
        :attr:`sweep` per line, evenly spread): the probability need not fall steadily along
        an attribute, so one of them may flip too. Returns the rows scored."""
        rows: list[dict[str, Any]] = []
        owners: list[tuple[_Line, int]] = []
        for line in lines:
            if line.found is None:
                continue
            seen = {value for value, _, _ in line.seen}
            skipped = [i for i in range(line.high) if line.options[i][0] not in seen]
            room = max(0, self.budget - scored - len(rows))
            for i in [skipped[k] for k in _evenly(self.sweep, 0, len(skipped))][:room]:
                rows.append({**line.others, line.attribute: line.options[i][0]})
                owners.append((line, i))
        probability = self.probabilities(record, rows).tolist()
        for (line, i), p in zip(owners, probability, strict=True):
            value, cost = line.options[i]
            line.seen.append((value, cost, p))
            assert line.found is not None
            if p < threshold and line.others_cost + cost < line.found.cost:
                changes = {**line.others, line.attribute: value}
                line.found = _Flip(changes, line.others_cost + cost, p)
        return len(rows)

    @staticmethod
    def _keep(flips: dict[frozenset[str], _Flip], candidate: _Flip, threshold: float) -> bool:
        """Record a candidate that flips the decision (the cheapest per attribute set); a set
        with a flipping subset is not minimal and is left out."""
        if candidate.probability >= threshold:
            return False
        attributes = frozenset(candidate.changes)
        if RecourseSearch._has_flipping_subset(attributes, flips, proper=True):
            return True
        current = flips.get(attributes)
        if current is None or candidate.cost < current.cost:
            flips[attributes] = candidate
        return True

    @staticmethod
    def _has_flipping_subset(
        attributes: frozenset[str], flips: Mapping[frozenset[str], _Flip], proper: bool = False
    ) -> bool:
        return any(found <= attributes and (not proper or found != attributes) for found in flips)

    def _frontier(
        self, seen: Iterable[tuple[Any, float, float]], base: float
    ) -> list[tuple[Any, float, float]]:
        """Values that lowered the probability more than every cheaper value (at most
        :attr:`frontier`, evenly spread from the cheapest to the strongest)."""
        kept: list[tuple[Any, float, float]] = []
        best = base
        for value, cost, p in sorted(seen, key=lambda o: o[1]):
            if p < best:
                kept.append((value, cost, p))
                best = p
        return [kept[i] for i in _evenly(self.frontier, 0, len(kept))]

    @staticmethod
    def _choose(flips: Mapping[frozenset[str], _Flip]) -> list[_Flip]:
        """Up to three flips, fewest attributes then cheapest, no one's set inside another's."""
        chosen: list[_Flip] = []
        for flip in sorted(flips.values(), key=lambda f: (len(f.changes), f.cost, f.probability)):
            attributes = frozenset(flip.changes)
            if any(frozenset(c.changes) <= attributes for c in chosen):
                continue
            chosen.append(flip)
            if len(chosen) == MAX_SUGGESTIONS:
                break
        return chosen

    def _refine(
        self, record: Mapping[str, Any], chosen: list[_Flip], threshold: float, scored: int
    ) -> int:
        """Move each numeric value of a several-attribute flip back to the cheapest cell that
        still flips, the other changes applied, one attribute after the other (in place).
        Returns the rows scored."""
        total = 0
        for position in range(MAX_CHANGES):
            lines: list[tuple[int, _Line]] = []
            for index, flip in enumerate(chosen):
                members = [a for a in flip.changes if isinstance(self.actions[a], Range)]
                if len(flip.changes) < 2 or position >= len(members):
                    continue
                attribute = members[position]
                action = self.actions[attribute]
                assert isinstance(action, Range)
                current = action.cost(record[attribute], flip.changes[attribute])
                others = {k: v for k, v in flip.changes.items() if k != attribute}
                changed = {**record, **others}
                cheaper = [
                    (value, cost)
                    for value, cost in self.options(record, attribute, changed)
                    if cost < current
                ]
                if cheaper:
                    lines.append((index, _Line(others, flip.cost - current, attribute, cheaper)))
            if not lines:
                continue
            searched = [line for _, line in lines]
            total += self._descend(record, searched, threshold, scored + total)
            total += self._sweep(record, searched, threshold, scored + total)
            for index, line in lines:
                if line.found is not None:
                    chosen[index] = line.found
        return total

    def _verify(self, record: Mapping[str, Any], chosen: list[_Flip]) -> list[Suggestion]:
        """Re-score each flip with :meth:`Scorer.score_records` (the path ``/predict`` uses);
        keep those it approves."""
        if not chosen:
            return []
        applied = []
        for flip in chosen:
            changed = {**record, **flip.changes}
            changed[INSTALLMENT_RATE] = follow_installment_rate(
                record[INSTALLMENT_RATE],
                record[AMOUNT],
                record[DURATION],
                changed[AMOUNT],
                changed[DURATION],
            )
            applied.append(changed)
        decisions = self.scorer.score_records(applied)
        suggestions = []
        for flip, changed, decision in zip(chosen, applied, decisions, strict=True):
            if decision.decision != APPROVE:
                continue
            changes = [
                Change(name, record[name], changed[name])
                for name in FEATURE_NAMES
                if name in flip.changes
            ]
            if changed[INSTALLMENT_RATE] != record[INSTALLMENT_RATE]:
                rate = Change(
                    INSTALLMENT_RATE, record[INSTALLMENT_RATE], changed[INSTALLMENT_RATE], True
                )
                changes.append(rate)
            suggestions.append(
                Suggestion(
                    tuple(changes),
                    decision.probability_bad,
                    decision.decision,
                    flip.cost,
                    verified=True,
                )
            )
        return suggestions


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
