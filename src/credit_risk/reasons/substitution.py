"""Model-agnostic reasons (the gradient-boosting family): what each attribute alone adds to the
applicant's calibrated log-odds of bad, against the approved applicants' typical value.

**Reference.** :class:`SubstitutionReference`, stored with the model (metadata key
:data:`SUBSTITUTES_KEY`): for each attribute the most common code (categorical) or the median,
rounded to an integer (numeric), over the training rows the model approves; and the calibrated
probability of bad of the applicant holding all of them, which must be below the threshold.

**Drops.** For an applicant ``x`` with served probability ``p = P(x)`` and each attribute
``j``, ``d_j = logit(P(x)) - logit(P(x with x_j set to ref_j))``: the change in the served
(calibrated) log-odds when that attribute alone takes the approved value. ``d_j > 0`` means the
applicant's own value of ``j`` raised this applicant's risk on the served scale. All ``20 n``
modified rows are scored in one ``predict_proba`` call per chunk.

**Reasons** of a rejection: the attributes that may be cited (never a protected one) with
``d_j > 0``, largest first, at most :data:`MAX_REASONS`; approvals get none. A rejection none of
whose citable attributes raised its risk carries the single code :data:`FALLBACK_CODE`, whose
amount is ``logit(p) - logit(p_ref)`` (positive: the reference is approved, the applicant not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from credit_risk.reasons.codes import (
    FALLBACK,
    MAX_REASONS,
    UNIT_LOG_ODDS,
    ReasonCodes,
    ReasonsUnavailable,
)
from credit_risk.reasons.explainers import (
    _code_row,
    _largest_citable,
    _largest_citable_row,
    _logit_of,
    _placed,
)
from credit_risk.reasons.reference import logit
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, Kind

# The metadata key (and the MLflow run's artifact) of a substitution reference.
SUBSTITUTES_KEY = "reason_substitutes"
SUBSTITUTES_ARTIFACT = "reasons/reason_substitutes.json"
# What the amounts of these reasons mean (``credit-risk reasons``).
SUBSTITUTION_MEANING = (
    "the fall in the served (calibrated) log-odds of bad when the attribute alone takes the "
    "approved training applicants' typical value"
)
# Applicants per predict_proba call (each becomes 21 rows).
CHUNK_ROWS = 5_000


@dataclass(frozen=True)
class SubstitutionReference:
    """The approved applicants' typical value of each attribute (codebook order).

    Attributes:
        values: the most common code (categorical) or integer median (numeric) per attribute.
        probability_bad: the calibrated probability of bad of an applicant with all of them.
        rows: how many approved training rows they summarise.
    """

    values: tuple[str | int, ...]
    probability_bad: float
    rows: int
    basis: str = "training rows the model approves: most common code, or median"

    def to_json(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "rows": self.rows,
            "probability_bad": self.probability_bad,
            "values": dict(zip(FEATURE_NAMES, self.values, strict=True)),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubstitutionReference:
        values = data["values"]
        return cls(
            values=tuple(_typed(a.kind, values[a.name]) for a in ATTRIBUTES),
            probability_bad=float(data["probability_bad"]),
            rows=int(data["rows"]),
            basis=str(data.get("basis", cls.basis)),
        )

    def frame(self) -> pd.DataFrame:
        """The reference as one applicant (a frame of one row)."""
        return _frame([dict(zip(FEATURE_NAMES, self.values, strict=True))])


def _typed(kind: Kind, value: Any) -> str | int:
    return int(value) if kind is Kind.NUMERIC else str(value)


def _frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(records), columns=list(FEATURE_NAMES))


def build_substitutes(
    pipeline: Any, applicants: pd.DataFrame, threshold: float
) -> SubstitutionReference:
    """The substitution reference of a fitted model over its training rows.

    Raises:
        ReasonsUnavailable: the model approves none of its training rows, or the applicant
            holding the approved values is not approved itself.
    """
    probability = pipeline.predict_proba(applicants)[:, 1]
    approved = applicants[probability < threshold]
    if not len(approved):
        raise ReasonsUnavailable(
            f"the model approves none of its training applicants at threshold {threshold:.4g}"
        )
    values: list[str | int] = []
    for attribute in ATTRIBUTES:
        column = approved[attribute.name]
        if attribute.kind is Kind.NUMERIC:
            values.append(round(float(column.median())))
        else:  # the most common code, ties to the first in codebook order
            counts = column.astype(str).value_counts()
            top = counts.max()
            values.append(next(c for c in attribute.codes if counts.get(c, 0) == top))
    reference = SubstitutionReference(tuple(values), 0.0, len(approved))
    p_ref = float(pipeline.predict_proba(reference.frame())[0, 1])
    if not p_ref < threshold:
        raise ReasonsUnavailable(
            f"the approved applicants' typical values score {p_ref:.4g} >= threshold "
            f"{threshold:.4g}"
        )
    return SubstitutionReference(tuple(values), p_ref, len(approved))


def substitution_drops(
    pipeline: Any, applicants: pd.DataFrame, reference: SubstitutionReference
) -> tuple[np.ndarray, np.ndarray]:
    """Served probability of bad ``(n,)`` and drops ``d`` ``(n, 20)`` (module docstring)."""
    n = len(applicants)
    probability = np.empty(n, dtype=np.float64)
    drops = np.empty((n, len(ATTRIBUTES)), dtype=np.float64)
    for start in range(0, n, CHUNK_ROWS):
        chunk = applicants.iloc[start : start + CHUNK_ROWS].reset_index(drop=True)
        p, d = _drops(pipeline, chunk, reference)
        probability[start : start + len(chunk)] = p
        drops[start : start + len(chunk)] = d
    return probability, drops


def _drops(
    pipeline: Any, applicants: pd.DataFrame, reference: SubstitutionReference
) -> tuple[np.ndarray, np.ndarray]:
    n, k = len(applicants), len(ATTRIBUTES)
    frame = applicants[list(FEATURE_NAMES)].reset_index(drop=True)
    # Row i * k + j: applicant i with attribute j set to the reference's value.
    modified = frame.iloc[np.repeat(np.arange(n), k)].reset_index(drop=True)
    which = np.tile(np.arange(k), n)
    for j, attribute in enumerate(ATTRIBUTES):
        rows = which == j
        column = modified[attribute.name]
        if attribute.kind is Kind.NUMERIC:
            values = column.to_numpy(dtype=np.int64, copy=True)
            values[rows] = int(reference.values[j])
        else:
            values = column.astype(str).to_numpy(dtype=object, copy=True)
            values[rows] = str(reference.values[j])
        modified[attribute.name] = values
    scored = pipeline.predict_proba(pd.concat([frame, modified], ignore_index=True))[:, 1]
    probability = scored[:n]
    substituted = scored[n:].reshape(n, k)
    drops = logit(probability)[:, None] - logit(substituted)
    return probability, drops


@dataclass(frozen=True)
class SubstitutionExplainer:
    """Ranks the reasons of a model explained by substitution (module docstring).

    The same interface as :class:`credit_risk.reasons.Explainer`: the contributions it ranks
    are the drops ``d``, reported on the calibrated log-odds scale.
    """

    reference: SubstitutionReference
    codes: ReasonCodes
    threshold: float
    limit: int = MAX_REASONS
    unit: ClassVar[str] = UNIT_LOG_ODDS

    @property
    def _reference_logit(self) -> float:
        return float(logit(np.array([self.reference.probability_bad]))[0])

    def rank(self, probability: np.ndarray, drops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, limit)`` attribute indices (largest drop first, :data:`NO_REASON` in unused
        slots and for approvals, :data:`FALLBACK` in slot 0 of an unexplained rejection) and
        ``(n, limit)`` their drops in calibrated log-odds."""
        probability = np.asarray(probability, dtype=np.float64)
        rows = np.flatnonzero(probability >= self.threshold)
        order, picked = _largest_citable(np.asarray(drops, dtype=np.float64)[rows], self.limit)
        above = logit(probability[rows]) - self._reference_logit
        return _placed(len(probability), self.limit, rows, order, picked, picked, above)

    def rank_records(
        self, probability: Sequence[float], drops: np.ndarray
    ) -> list[list[tuple[int, float]]]:
        """:meth:`rank` as lists: per row, ``(attribute index or FALLBACK, drop)``."""
        ranked: list[list[tuple[int, float]]] = [[] for _ in probability]
        reference_logit = self._reference_logit
        for i, p in enumerate(probability):
            if p < self.threshold:
                continue
            raised = _largest_citable_row([float(v) for v in drops[i].tolist()], self.limit)
            if raised:
                ranked[i] = [(k, amount) for amount, k in raised]
            else:
                ranked[i] = [(FALLBACK, _logit_of(p) - reference_logit)]
        return ranked

    def code_row(self, k: int, record: Mapping[str, Any]) -> int:
        """The table row of reason ``k`` (an attribute index or FALLBACK) for an applicant."""
        return _code_row(self.codes, k, record)
