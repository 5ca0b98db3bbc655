"""Calibration methods compared under repeated stratified CV (``make bench-calibration``).

For each method (none, sigmoid, isotonic): out-of-fold predictions of a forest with fixed
hyperparameters (:data:`PARAMS`, no search) under ``--repeats`` seeded stratified
``--folds``-fold CVs of all rows of the data file (no test split is held out). Every row is
scored by the same two threshold rules, so rows compare:

- cost at 1/6: the Bayes threshold of the cost matrix, fixed in advance. It is the right cut
  only for calibrated probabilities, which is what the ``none`` row shows;
- cost at the OOF optimum: the threshold that minimises the cost of the same out-of-fold
  predictions it is scored on (one per repeat). Optimistic for every row alike: it measures
  how well the scores rank at the best possible cut, which a monotone calibration cannot
  change much.

Brier score and ROC AUC need no threshold. Each cell is the mean over repeats x folds with the
Nadeau-Bengio corrected 95% interval. This is how the default ``calibration`` setting was
chosen.
"""

from __future__ import annotations

import argparse
import time

from credit_risk.config import ThresholdRule, get_settings
from credit_risk.data import load_training_data
from credit_risk.evaluate import bayes_threshold, classification_metrics, costs_of
from credit_risk.evaluate.intervals import corrected_interval
from credit_risk.evaluate.threshold import cost_optimal_threshold
from credit_risk.model import CALIBRATION_KEY, CALIBRATION_METHODS
from credit_risk.tune import cross_validate, folds

PARAMS = {"n_estimators": 200, "max_depth": 10, "min_samples_leaf": 3, "max_features": 0.4}
COLUMNS = ("brier", "cost_bayes", "cost_oof_optimum", "roc_auc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="CV repeats (seeds)")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    base = get_settings(cv_folds=args.folds)
    costs = costs_of(base)
    dataset = load_training_data(base)
    assert dataset.target is not None
    y = dataset.target.to_numpy()
    print(
        f"| calibration | Brier | cost at {bayes_threshold(costs):.3f} | "
        "cost at the OOF optimum | ROC AUC |\n|---|---|---|---|---|"
    )
    for method in CALIBRATION_METHODS:
        scores: dict[str, list[float]] = {name: [] for name in COLUMNS}
        for repeat in range(args.repeats):
            # The threshold cross_validate picks is not used: both rules are applied below.
            settings = get_settings(
                cv_folds=args.folds,
                seed=base.seed + repeat,
                threshold_rule=ThresholdRule.BAYES,
            )
            cv = cross_validate(
                {**PARAMS, CALIBRATION_KEY: method}, dataset.features, dataset.target, settings
            )
            optimum = cost_optimal_threshold(y, cv.probability, costs)[0]
            for _, test in folds(settings).split(dataset.features, y):
                at_bayes = classification_metrics(
                    y[test], cv.probability[test], bayes_threshold(costs), costs
                )
                at_optimum = classification_metrics(y[test], cv.probability[test], optimum, costs)
                scores["brier"].append(at_bayes["brier"])
                scores["roc_auc"].append(at_bayes["roc_auc"])
                scores["cost_bayes"].append(at_bayes["cost"])
                scores["cost_oof_optimum"].append(at_optimum["cost"])
        cells = [str(corrected_interval(scores[name], args.folds)) for name in COLUMNS]
        print(f"| {method} | " + " | ".join(cells) + " |")
    print(
        f"\n{args.repeats} x {args.folds}-fold CV on all {len(y)} rows, params {PARAMS}; "
        f"mean [95% interval, Nadeau-Bengio corrected]; "
        f"elapsed {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
