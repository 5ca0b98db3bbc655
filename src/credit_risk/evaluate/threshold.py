"""Threshold policy: which threshold a run uses, and how it follows from the costs.

The recall objective keeps the seed's 0.5. Otherwise the Bayes rule sets it from the cost
matrix alone (calibrated probabilities only), or it is the cost-optimal threshold of
out-of-fold predictions. An applicant is rejected when ``probability >= threshold``.

With a population bad rate (``Settings.population_bad_rate``, :mod:`.prior`) the Bayes rule
applies on the population scale and the returned threshold is its sample-scale equivalent; the
cost-optimal threshold minimises the cost of the out-of-fold rows reweighted to the population.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from credit_risk.config import Objective, Settings, ThresholdRule
from credit_risk.evaluate.metrics import CostMatrix
from credit_risk.evaluate.prior import Prior, sample_threshold
from credit_risk.model import CALIBRATION_KEY, DEFAULT_CALIBRATION

# Threshold used by the seed's recall objective, and how runs record it.
SEED_THRESHOLD = 0.5
SEED_RULE = "seed_0.5"


def bayes_threshold(costs: CostMatrix) -> float:
    """Threshold that minimises the expected cost when probabilities are calibrated.

    Rejecting an applicant with probability of bad ``p`` costs ``(1 - p) * good_rejected`` on
    average, accepting costs ``p * bad_accepted``; rejecting is cheaper from
    ``p = good_rejected / (good_rejected + bad_accepted)`` on (1/6 for german.doc's 5:1).
    Unlike :func:`cost_optimal_threshold` it does not depend on the sample, so it does not
    chase the few applicants near the cut in 800 training rows.
    """
    total = costs.good_rejected + costs.bad_accepted
    if total <= 0:
        raise ValueError("at least one of the two costs must be positive")
    return float(costs.good_rejected / total)


def cost_optimal_threshold(
    y: np.ndarray, probability: np.ndarray, costs: CostMatrix, prior: Prior | None = None
) -> tuple[float, float]:
    """Threshold that minimises the expected cost on these predictions.

    Candidates are the midpoints between consecutive distinct probabilities, plus "reject
    everyone" (0.0) and "accept everyone" (just above the largest probability, capped at 1).
    Ties go to the lowest threshold (the cautious choice). With a ``prior`` the rows are
    reweighted by class to stand for the population (:meth:`Prior.class_weights`).

    Returns:
        ``(threshold, cost at that threshold)``.
    """
    y = np.asarray(y).astype(bool)
    probability = np.asarray(probability, dtype="float64")
    weights = np.ones(len(y)) if prior is None else prior.class_weights(y)
    order = np.argsort(probability, kind="stable")
    sorted_p = probability[order]
    sorted_y = y[order]
    sorted_w = weights[order]
    distinct = np.unique(sorted_p)
    top = float(np.nextafter(distinct[-1], np.inf)) if distinct[-1] < 1.0 else 1.0 + 1e-12
    candidates = np.concatenate([[0.0], (distinct[:-1] + distinct[1:]) / 2.0, [top]])
    # Vectorised: number rejected at candidate t = count of p >= t.
    first_rejected = np.searchsorted(sorted_p, candidates, side="left")
    bad_cum = np.concatenate([[0.0], np.cumsum(sorted_y * sorted_w)])  # bads among the lowest k
    good_cum = np.concatenate([[0.0], np.cumsum(~sorted_y * sorted_w)])
    bad_accepted = bad_cum[first_rejected]
    good_rejected = good_cum[-1] - good_cum[first_rejected]
    total = float(weights.sum())
    cost = (costs.bad_accepted * bad_accepted + costs.good_rejected * good_rejected) / total
    best = int(np.argmin(cost))
    return float(min(candidates[best], 1.0)), float(cost[best])


def threshold_rule(settings: Settings, params: dict[str, Any]) -> ThresholdRule:
    """``settings.threshold_rule`` for calibrated pipelines; cross-validated otherwise.

    The uncalibrated forest's scores overstate the bad rate (each tree trains on a balanced
    sample), so the Bayes threshold only applies once a calibrator maps them to probabilities.
    """
    calibrated = str(params.get(CALIBRATION_KEY, DEFAULT_CALIBRATION)) != "none"
    return settings.threshold_rule if calibrated else ThresholdRule.CROSS_VALIDATED


def threshold_basis(settings: Settings, params: dict[str, Any]) -> str:
    """What set the threshold, as recorded in the run and metadata.

    ``seed_0.5`` for the recall objective (the seed's threshold), else the
    :class:`ThresholdRule` that applies (see :func:`threshold_rule`).
    """
    if settings.objective is Objective.RECALL:
        return SEED_RULE
    return threshold_rule(settings, params).value


def fixed_threshold(
    objective: Objective, rule: ThresholdRule, costs: CostMatrix, prior: Prior | None = None
) -> float | None:
    """The threshold when it needs no predictions (recall: the seed's 0.5; the Bayes rule).

    Under the Bayes rule with a ``prior``: the sample-scale threshold equivalent to the Bayes
    threshold on the population scale (the seed's 0.5 ignores the prior).

    Returns:
        The threshold, or None when it must be chosen on out-of-fold predictions.
    """
    if objective is Objective.RECALL:
        return SEED_THRESHOLD
    if rule is ThresholdRule.BAYES:
        return sample_threshold(bayes_threshold(costs), prior)
    return None


def choose_threshold(
    objective: Objective,
    y: np.ndarray,
    probability: np.ndarray,
    costs: CostMatrix,
    rule: ThresholdRule = ThresholdRule.CROSS_VALIDATED,
    prior: Prior | None = None,
) -> float:
    """The recall objective keeps the seed's 0.5; the others follow ``rule``.

    Args:
        objective: what the run optimises.
        y, probability: out-of-fold labels (1 = bad) and probabilities of bad.
        costs: the cost matrix.
        rule: Bayes (calibrated probabilities only) or the cost-optimal threshold on ``y``.
        prior: shift to the population's bad rate (None: the population is like the sample).
    """
    fixed = fixed_threshold(objective, rule, costs, prior)
    if fixed is not None:
        return fixed
    return cost_optimal_threshold(y, probability, costs, prior)[0]
