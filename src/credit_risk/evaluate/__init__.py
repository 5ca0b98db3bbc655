"""Evaluation: costs and metrics, threshold policy, plots, and the model-quality report.

- :mod:`.metrics`: the cost matrix and the metrics of accept/reject decisions.
- :mod:`.threshold`: which threshold a run uses (seed 0.5, Bayes rule, cross-validated).
- :mod:`.plots`: the PNG plots logged with each training run.
- :mod:`.report`: the repeated-CV quality report that ``credit-risk evaluate`` prints.

The report is not re-exported here: it runs the Optuna search (:mod:`credit_risk.tune`), which
itself scores trials with the metrics and thresholds above; import it as
``credit_risk.evaluate.report``.
"""

from credit_risk.evaluate.metrics import (
    CostMatrix,
    classification_metrics,
    confusion,
    costs_of,
    expected_cost,
    summarise,
)
from credit_risk.evaluate.plots import save_plots
from credit_risk.evaluate.threshold import (
    SEED_RULE,
    SEED_THRESHOLD,
    bayes_threshold,
    choose_threshold,
    cost_optimal_threshold,
    fixed_threshold,
    threshold_basis,
    threshold_rule,
)

__all__ = [
    "SEED_RULE",
    "SEED_THRESHOLD",
    "CostMatrix",
    "bayes_threshold",
    "choose_threshold",
    "classification_metrics",
    "confusion",
    "cost_optimal_threshold",
    "costs_of",
    "expected_cost",
    "fixed_threshold",
    "save_plots",
    "summarise",
    "threshold_basis",
    "threshold_rule",
]
