"""Model families compared by the quality report, and the rule that picks the default one.

The families, simplest first (:data:`SIMPLICITY`): the points ``scorecard``, the tuned
balanced random ``forest``, a gradient-boosting model (``gbm``) and a ``blend`` (the average of
the calibrated forest's and the scorecard's probabilities of bad). The report
(:mod:`credit_risk.evaluate.report`) scores them under one nested repeated CV;
:func:`choose_default_family` reads its per-fold costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from imblearn.pipeline import Pipeline
from sklearn.ensemble import HistGradientBoostingClassifier

from credit_risk.evaluate.intervals import Interval, corrected_interval
from credit_risk.model import calibrated_pipeline

# Order of simplicity: a tie goes to the family earlier here.
SIMPLICITY: tuple[str, ...] = ("scorecard", "forest", "gbm", "blend")

# Small fixed parameters (no search): shallow trees, a slow learning rate and a fixed number
# of rounds suit 800 rows; classes are balanced by weight, then calibrated like the forest.
GBM_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 200,
    "max_leaf_nodes": 8,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "class_weight": "balanced",
    "early_stopping": False,
}


def build_gbm_pipeline(
    seed: int,
    drop_protected: bool = True,
    calibration: str = "sigmoid",
    calibration_folds: int = 3,
    params: Mapping[str, Any] | None = None,
) -> Pipeline:
    """Features -> one-hot encoding -> HistGradientBoostingClassifier, calibrated on out-of-fold
    scores like the forest (``calibration="none"`` leaves the class-weighted scores as they are).
    """
    classifier = HistGradientBoostingClassifier(
        random_state=seed, **{**GBM_PARAMS, **(params or {})}
    )
    return calibrated_pipeline(classifier, calibration, calibration_folds, drop_protected)


def blend_probability(*probabilities: np.ndarray) -> np.ndarray:
    """The blend's probability of bad: the mean of calibrated members' probabilities.

    An average of calibrated probabilities stays on the probability scale, so the Bayes
    threshold still applies to it.
    """
    if not probabilities:
        raise ValueError("a blend needs at least one member")
    return np.mean(np.vstack([np.asarray(p, dtype="float64") for p in probabilities]), axis=0)


@dataclass(frozen=True)
class FamilyChoice:
    """The family the rule picks, and why."""

    family: str
    reason: str


def choose_default_family(
    costs: Mapping[str, Sequence[float] | np.ndarray], folds: int, confidence: float = 0.95
) -> FamilyChoice:
    """The default family by the printed table.

    The family with the lowest mean expected cost, except that when the corrected interval
    (:func:`corrected_interval`) of its paired fold-wise cost difference against a simpler
    family contains 0, the two are tied and the simplest tied family wins.

    Args:
        costs: per-fold expected costs of each candidate family, the same folds in the same
            order for every family; names from :data:`SIMPLICITY`.
        folds: k of the repeated k-fold CV (for the interval's correction).
        confidence: of the paired intervals.

    Raises:
        ValueError: no candidates, an unknown family, or families scored on different folds.
    """
    if not costs:
        raise ValueError("no candidate families")
    unknown = sorted(set(costs) - set(SIMPLICITY))
    if unknown:
        raise ValueError(
            f"unknown family {', '.join(unknown)}; expected some of {', '.join(SIMPLICITY)}"
        )
    arrays = {name: np.asarray(values, dtype="float64") for name, values in costs.items()}
    sizes = {a.size for a in arrays.values()}
    if len(sizes) != 1:
        raise ValueError("every family must be scored on the same folds")
    means = {name: float(a.mean()) for name, a in arrays.items()}
    lowest = min(arrays, key=lambda name: (means[name], SIMPLICITY.index(name)))
    simpler = [name for name in SIMPLICITY[: SIMPLICITY.index(lowest)] if name in arrays]
    tied: list[tuple[str, Interval]] = []
    for name in simpler:
        difference = corrected_interval(arrays[lowest] - arrays[name], folds, confidence)
        if difference.contains(0.0):
            tied.append((name, difference))
    if not tied:
        if not simpler:
            return FamilyChoice(
                lowest, f"lowest mean expected cost {means[lowest]:.3f}, and the simplest scored"
            )
        return FamilyChoice(
            lowest,
            f"lowest mean expected cost {means[lowest]:.3f}; its paired cost difference against "
            f"each simpler family ({', '.join(simpler)}) excludes 0",
        )
    winner, difference = tied[0]
    return FamilyChoice(
        winner,
        f"{lowest} has the lowest mean expected cost ({means[lowest]:.3f}), but its paired cost "
        f"difference against the simpler {winner} ({means[winner]:.3f}) is {difference} "
        f"(corrected {confidence:.0%} interval), which contains 0: a tie, which goes to the "
        "simpler family",
    )
