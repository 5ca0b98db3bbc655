"""The approved reference: the log-odds of the approved training applicants that a forest's
reasons are measured against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from credit_risk.reasons.codes import _LOGIT_EPS, ReasonsUnavailable
from credit_risk.schema import FEATURE_NAMES

# --- the approved reference -------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonReference:
    """The baseline the reasons are measured from: the approved applicants of the training data.

    Attributes:
        contributions: mean path contribution of each attribute (codebook order).
        raw_probability: the forest's raw score at the reference, ``bias + sum(contributions)``.
        probability_bad: the calibrated probability there (below the threshold).
        rows: how many approved training rows it averages.
    """

    contributions: tuple[float, ...]
    raw_probability: float
    probability_bad: float
    rows: int
    basis: str = "training rows the model approves"

    def to_json(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "rows": self.rows,
            "raw_probability": self.raw_probability,
            "probability_bad": self.probability_bad,
            "contributions": dict(zip(FEATURE_NAMES, self.contributions, strict=True)),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReasonReference:
        contributions = data["contributions"]
        return cls(
            contributions=tuple(float(contributions[name]) for name in FEATURE_NAMES),
            raw_probability=float(data["raw_probability"]),
            probability_bad=float(data["probability_bad"]),
            rows=int(data["rows"]),
            basis=str(data.get("basis", cls.basis)),
        )


def logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, _LOGIT_EPS, 1 - _LOGIT_EPS)
    return np.log(clipped) - np.log1p(-clipped)


def build_reference(pipeline: Any, applicants: Any, threshold: float) -> ReasonReference:
    """The approved reference of a fitted pipeline over its training rows.

    Args:
        pipeline: the fitted pipeline (a forest, calibrated with one calibrator or bare).
        applicants: its training rows.
        threshold: the decision threshold (reject when the probability is at least this).

    Raises:
        ReasonsUnavailable: the calibrator is not non-decreasing, or there are several (the
            argument of the module docstring needs one monotone map), or the model approves
            none of its training rows (no approved reference exists).
    """
    from credit_risk.fastpath import calibrate, components, reference_contributions

    found = components(pipeline)
    if len(found) != 1:
        raise ReasonsUnavailable(
            f"reasons need one forest and at most one calibrator, not {len(found)} "
            "(CalibratedClassifierCV(ensemble=False))"
        )
    forest, calibrator = found[0]
    if calibrator is not None and not _non_decreasing(calibrator):
        raise ReasonsUnavailable("the calibrator is not non-decreasing in the forest's score")
    probability = pipeline.predict_proba(applicants)[:, 1]
    approved = probability < threshold
    if not approved.any():
        raise ReasonsUnavailable(
            f"the model approves none of its training applicants at threshold {threshold:.4g}"
        )
    contributions = reference_contributions(pipeline, applicants[approved])
    mean = contributions.mean(axis=0)
    encoded = pipeline[:-1].transform(applicants[approved])
    raw = float(forest.predict_proba(encoded)[:, 1].mean())
    reference_probability = float(calibrate(np.array([raw]), calibrator)[0])
    if not reference_probability < threshold:  # cannot happen for a monotone calibrator
        raise ReasonsUnavailable(
            f"the approved reference scores {reference_probability} >= threshold {threshold}"
        )
    return ReasonReference(
        contributions=tuple(float(v) for v in mean),
        raw_probability=raw,
        probability_bad=reference_probability,
        rows=int(approved.sum()),
    )


def _non_decreasing(calibrator: Mapping[str, Any]) -> bool:
    if calibrator["kind"] == "sigmoid":  # 1 / (1 + exp(a f + b)) grows with f when a <= 0
        return bool(calibrator["a"] <= 0)
    return bool(np.all(np.diff(np.asarray(calibrator["y"], dtype=float)) >= 0))
