"""Calibration methods compared under repeated stratified CV (``make bench-calibration``).

For each method (none, sigmoid, isotonic) prints the out-of-fold Brier score, expected cost at
the cost-optimal out-of-fold threshold and ROC AUC, as mean ± std over seeds x folds, on the
training split of the shipped data with fixed forest hyperparameters. This is how the default
``calibration`` setting was chosen.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from credit_risk.config import get_settings
from credit_risk.data import load_training_data
from credit_risk.model import CALIBRATION_KEY, CALIBRATION_METHODS
from credit_risk.tune import cross_validate

PARAMS = {"n_estimators": 200, "max_depth": 10, "min_samples_leaf": 3, "max_features": 0.4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="CV repeats (seeds)")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    base = get_settings(cv_folds=args.folds)
    dataset = load_training_data(base)
    assert dataset.target is not None
    print(f"{'calibration':<12} {'brier':>15} {'cost':>15} {'roc_auc':>15}")
    for method in CALIBRATION_METHODS:
        folds: dict[str, list[float]] = {"brier": [], "cost": [], "roc_auc": []}
        for repeat in range(args.repeats):
            settings = get_settings(cv_folds=args.folds, seed=base.seed + repeat)
            cv = cross_validate(
                {**PARAMS, CALIBRATION_KEY: method}, dataset.features, dataset.target, settings
            )
            for fold in cv.per_fold:
                for name in folds:
                    folds[name].append(fold[name])
        cells = [f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" for v in folds.values()]
        print(f"{method:<12} " + " ".join(f"{c:>15}" for c in cells))
    print(
        f"{args.repeats} x {args.folds}-fold CV on all 1000 rows, params {PARAMS}; "
        f"elapsed {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
