"""The recourse search: candidate values per attribute (cells of the forest's splits), single
changes coarse to fine, pairs and triples, refinement and verification.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.derivations import Derivation
from credit_risk.fastpath import FastPath
from credit_risk.recourse.actions import (
    ACTIONS,
    AMOUNT,
    DURATION,
    GRID_POINTS,
    INSTALLMENT_RATE,
    MAX_CELL_GRID,
    MAX_CHANGES,
    MAX_SUGGESTIONS,
    Action,
    Ladder,
    Range,
    follow_installment_rate,
)
from credit_risk.recourse.candidates import _CandidateEncoder, _evenly, _Flip, _Line, _sources
from credit_risk.recourse.suggestions import Change, RecourseResult, Suggestion
from credit_risk.schema import ATTRIBUTES, BY_NAME, FEATURE_NAMES, Kind
from credit_risk.scoring import APPROVE, Scorer


class RecourseSearch:
    """Finds recourse for rejected applicants of one loaded model (see :mod:`credit_risk.recourse`).

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

        A numeric attribute of a forest gives one value per cell (see
        :mod:`credit_risk.recourse`): the cheapest value past each change of side of a split
        threshold of a column that reads it.

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
