"""The promotion gate: the challenger replaces the champion only on rows neither trained on.

Two protocols, each comparing the two models applicant by applicant on the same rows:

- **Out of time** (decides when there are ``Settings.gate_min_rows`` such rows): the two fitted
  models, at their own thresholds, on the labelled decisions (logged inputs with realised
  outcomes) decided after the newest labelled decision either model trained on.
- **Paired cross-validation of the recipes** (otherwise): every row of this run's data is scored
  out of fold by both recipes (the champion's and the challenger's parameters, inputs and
  threshold), each refitted on the same training folds, ``gate_cv_folds`` x
  ``gate_cv_repeats``; identical rows share a fold. No row is scored by a model fitted on it,
  and no row is locked away from training (1000 rows is little to set aside).

Before comparing, the gate checks by row hash (:mod:`credit_risk.fingerprint`) that no
evaluation row is among the rows either model (out of time) or either fold's refit (cross-
validation) trained on, and refuses to compare, saying why, when one is. It decides by a paired
bootstrap over applicants of the improvement in the objective (cost per applicant by default):
promotion only when the whole ``gate_confidence`` interval lies above ``gate_margin``. The
fairness limits of the settings bind both models on the same rows.

The package, by step: :mod:`.recipe` (what is compared), :mod:`.statistics` (the paired
comparison and its bootstrap), :mod:`.protocols` (out of time, paired cross-validation) and
:mod:`.decision` (the decision and its recorded evidence).
"""

from credit_risk.gate.decision import (
    GateReport,
    decide,
    evidence_tags,
    evidence_text,
    fairness_fails,
    record_evidence,
    run_gate,
)
from credit_risk.gate.protocols import (
    OutOfTimeRows,
    Scored,
    fold_overlap,
    gate_folds,
    out_of_time,
    out_of_time_rows,
    paired_cv,
)
from credit_risk.gate.recipe import (
    EVIDENCE_FILE,
    GATE_METRIC,
    OUT_OF_TIME,
    PAIRED_CV,
    RECIPE_FILE,
    Contender,
    GateRefused,
    Recipe,
    contender,
    recipe_of,
    recipe_record,
)
from credit_risk.gate.statistics import (
    Comparison,
    compare_predictions,
    metric_value,
    paired_ratio_bootstrap,
    paired_statistic_bootstrap,
)

__all__ = [
    "EVIDENCE_FILE",
    "GATE_METRIC",
    "OUT_OF_TIME",
    "PAIRED_CV",
    "RECIPE_FILE",
    "Comparison",
    "Contender",
    "GateRefused",
    "GateReport",
    "OutOfTimeRows",
    "Recipe",
    "Scored",
    "compare_predictions",
    "contender",
    "decide",
    "evidence_tags",
    "evidence_text",
    "fairness_fails",
    "fold_overlap",
    "gate_folds",
    "metric_value",
    "out_of_time",
    "out_of_time_rows",
    "paired_cv",
    "paired_ratio_bootstrap",
    "paired_statistic_bootstrap",
    "recipe_of",
    "recipe_record",
    "record_evidence",
    "run_gate",
]
