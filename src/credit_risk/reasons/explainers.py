"""Ranking a rejection's reasons: the forest's explainer (log-odds above the reference) and
the points scorecard's (points lost against the best bin).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from credit_risk.reasons.codes import (
    _LOGIT_EPS,
    FALLBACK,
    MAX_REASONS,
    NO_REASON,
    UNIT_LOG_ODDS,
    UNIT_POINTS,
    ReasonCodes,
)
from credit_risk.reasons.reference import ReasonReference, logit
from credit_risk.schema import ATTRIBUTES

# --- ranking ----------------------------------------------------------------------------------

# The attributes a reason may cite: never a protected one (codebook order).
_CITABLE_MASK = np.array([not a.protected for a in ATTRIBUTES])
_CITABLE_MASK.flags.writeable = False
_CITABLE = tuple(int(k) for k in np.flatnonzero(_CITABLE_MASK))


def _largest_citable(values: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``values`` (``(n, 20)``, codebook order), the ``limit`` citable attributes of
    largest value, ties in codebook order: their indices and values (``-inf`` past the
    citable ones). A reason is one whose value is positive."""
    citable = np.where(_CITABLE_MASK, values, -np.inf)
    order = np.argsort(-citable, axis=1, kind="stable")[:, :limit]
    return order, np.take_along_axis(citable, order, axis=1)


def _largest_citable_row(row: Sequence[float], limit: int) -> list[tuple[float, int]]:
    """:func:`_largest_citable` of one row in plain Python: ``(value, attribute)`` of the
    positive values (the reasons), largest first, ties in codebook order."""
    positive = [(row[k], k) for k in _CITABLE if row[k] > 0]
    return sorted(positive, key=lambda pair: (-pair[0], pair[1]))[:limit]


def _placed(
    n: int,
    limit: int,
    rows: np.ndarray,
    order: np.ndarray,
    picked: np.ndarray,
    amounts: np.ndarray,
    fallback: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(n, limit)`` reason slots of every explainer's :meth:`rank`.

    ``rows`` are the rejected rows; ``order``/``picked`` their :func:`_largest_citable`;
    ``amounts`` what each picked reason reports; ``fallback`` what :data:`FALLBACK` reports
    for a rejected row with no positive citable value. Approvals and unused slots hold
    :data:`NO_REASON` and 0.
    """
    top = np.full((n, limit), NO_REASON, dtype=np.int64)
    served = np.zeros((n, limit), dtype=np.float64)
    if not len(rows):
        return top, served
    keep = picked > 0
    top[rows] = np.where(keep, order, NO_REASON)
    served[rows] = np.where(keep, amounts, 0.0)
    unexplained = ~keep[:, 0]
    top[rows[unexplained], 0] = FALLBACK
    served[rows[unexplained], 0] = fallback[unexplained]
    return top, served


def _logit_of(p: float) -> float:
    """The log-odds of one probability in plain Python (clamped as :func:`logit` clamps)."""
    q = min(max(p, _LOGIT_EPS), 1 - _LOGIT_EPS)
    return math.log(q) - math.log1p(-q)


@dataclass(frozen=True)
class Explainer:
    """Ranks adverse reasons against a model's reference (see the module docstring).

    Attributes:
        reference: the approved reference.
        codes: the reason-code table.
        threshold: reject when the probability of bad is at least this.
    """

    reference: ReasonReference
    codes: ReasonCodes
    threshold: float
    limit: int = MAX_REASONS
    unit: ClassVar[str] = UNIT_LOG_ODDS

    @functools.cached_property
    def _reference(self) -> np.ndarray:
        return np.asarray(self.reference.contributions, dtype=np.float64)

    @functools.cached_property
    def _reference_logit(self) -> float:
        return float(logit(np.array([self.reference.probability_bad]))[0])

    def rank(
        self, probability: np.ndarray, contributions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The reasons of each row: attributes (or :data:`FALLBACK`) and served contributions.

        Args:
            probability: ``(n,)`` calibrated probabilities of bad.
            contributions: ``(n, 20)`` path contributions (root baseline).

        Returns:
            ``(n, limit)`` attribute indices, largest served contribution first,
            :data:`NO_REASON` in unused slots and for approvals, :data:`FALLBACK` in slot 0
            of a rejection no attribute that may be cited explains; and ``(n, limit)`` the
            contributions on the calibrated log-odds scale (the fallback's: the whole
            distance ``logit(p) - logit(p_ref)``).
        """
        rows = np.flatnonzero(probability >= self.threshold)
        shifted = contributions[rows].astype(np.float64) - self._reference
        gap = shifted.sum(axis=1)  # f - f_ref > 0 for a rejection
        distance = logit(np.asarray(probability[rows], dtype=np.float64)) - self._reference_logit
        scale = np.divide(distance, gap, out=np.zeros_like(gap), where=gap > 0)
        order, picked = _largest_citable(shifted, self.limit)
        return _placed(
            len(probability), self.limit, rows, order, picked, picked * scale[:, None], distance
        )

    # Rejections up to which rank_records ranks row by row in plain Python: for a request's
    # few rows, some 30 numpy calls cost more than the arithmetic on 20 numbers.
    PYTHON_ROWS: ClassVar[int] = 16

    @functools.cached_property
    def _scalars(self) -> tuple[list[float], float]:
        return list(self.reference.contributions), self._reference_logit

    def rank_records(
        self, probability: Sequence[float], contributions: np.ndarray
    ) -> list[list[tuple[int, float]]]:
        """:meth:`rank` as lists: per row, ``(attribute index or FALLBACK, served
        contribution)`` of each reason, largest first; empty for an approval.

        A few rejections (a request) are ranked row by row in Python, more in numpy; both
        give the same reasons (``tests/test_reasons.py`` compares them on every row).
        """
        threshold = self.threshold
        rejected = [i for i, p in enumerate(probability) if p >= threshold]
        ranked: list[list[tuple[int, float]]] = [[] for _ in probability]
        if len(rejected) > self.PYTHON_ROWS:
            top, served = self.rank(np.asarray(probability), contributions)
            for i in rejected:
                ranked[i] = [
                    (k, amount)
                    for k, amount in zip(top[i].tolist(), served[i].tolist(), strict=True)
                    if k != NO_REASON
                ]
            return ranked
        reference, reference_logit = self._scalars
        for i in rejected:
            row = contributions[i].tolist()
            shifted = [value - base for value, base in zip(row, reference, strict=True)]
            gap = math.fsum(shifted)
            distance = _logit_of(probability[i]) - reference_logit
            scale = distance / gap if gap > 0 else 0.0
            raised = _largest_citable_row(shifted, self.limit)
            ranked[i] = (
                [(k, amount * scale) for amount, k in raised] if raised else [(FALLBACK, distance)]
            )
        return ranked

    def code_row(self, k: int, record: Mapping[str, Any]) -> int:
        """The table row of reason ``k`` (an attribute index or FALLBACK) for an applicant."""
        return _code_row(self.codes, k, record)


def _code_row(codes: ReasonCodes, k: int, record: Mapping[str, Any]) -> int:
    if k == FALLBACK:
        return codes.fallback
    return codes.code_index(k, record[ATTRIBUTES[k].name])


@dataclass(frozen=True)
class PointsExplainer:
    """Ranks a points scorecard's adverse reasons: points lost against each best bin.

    The same interface as :class:`Explainer` (``rank``, ``rank_records``, ``code_row``); the
    contributions it ranks are the points lost per attribute (``best bin's points - the
    applicant's``, 0 where the attribute earns no points), and so are the amounts it reports.

    Attributes:
        codes: the reason-code table (the code of a reason is that of the applicant's value).
        threshold: reject when the probability of bad is at least this.
    """

    codes: ReasonCodes
    threshold: float
    limit: int = MAX_REASONS
    unit: ClassVar[str] = UNIT_POINTS

    def rank(self, probability: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The reasons of each row: attributes (or :data:`FALLBACK`) and points lost.

        Args:
            probability: ``(n,)`` calibrated probabilities of bad.
            lost: ``(n, 20)`` points lost against each attribute's best bin (codebook order).

        Returns:
            ``(n, limit)`` attribute indices, most points lost first (ties in codebook order),
            :data:`NO_REASON` in unused slots and for approvals, :data:`FALLBACK` in slot 0 of
            a rejection that lost points on protected attributes only; and ``(n, limit)`` the
            points lost (the fallback's: all points lost).
        """
        rows = np.flatnonzero(np.asarray(probability) >= self.threshold)
        below = np.asarray(lost, dtype=np.float64)[rows]
        order, picked = _largest_citable(below, self.limit)
        return _placed(len(probability), self.limit, rows, order, picked, picked, below.sum(axis=1))

    def rank_records(
        self, probability: Sequence[float], lost: np.ndarray
    ) -> list[list[tuple[int, float]]]:
        """:meth:`rank` as lists: per row, ``(attribute index or FALLBACK, points lost)`` of
        each reason, most first; empty for an approval (same order as :meth:`rank`)."""
        ranked: list[list[tuple[int, float]]] = [[] for _ in probability]
        for i, p in enumerate(probability):
            if p < self.threshold:
                continue
            row = [float(v) for v in lost[i].tolist()]
            raised = _largest_citable_row(row, self.limit)
            ranked[i] = (
                [(k, amount) for amount, k in raised] if raised else [(FALLBACK, math.fsum(row))]
            )
        return ranked

    def code_row(self, k: int, record: Mapping[str, Any]) -> int:
        """The table row of reason ``k`` (an attribute index or FALLBACK) for an applicant."""
        return _code_row(self.codes, k, record)
