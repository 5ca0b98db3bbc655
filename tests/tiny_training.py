"""Training small enough for a test, as environment variables: the forest, one trial, few
trees, two folds, no bootstrap intervals (for a ``credit-risk train`` run in a subprocess or
container)."""

from __future__ import annotations

TINY_TRAINING = {
    "CREDIT_RISK_TRIALS": "1",
    "CREDIT_RISK_N_ESTIMATORS": "20",
    "CREDIT_RISK_SEARCH_N_ESTIMATORS": "10",
    "CREDIT_RISK_CV_FOLDS": "2",
    "CREDIT_RISK_CALIBRATION_FOLDS": "2",
    "CREDIT_RISK_FAIRNESS_BOOTSTRAP_RESAMPLES": "0",
    "CREDIT_RISK_N_JOBS": "1",
    # Trials and trees are the forest's (the default family, the scorecard, has neither).
    "CREDIT_RISK_FAMILY": "forest",
}
