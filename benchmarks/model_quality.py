"""Model families under one nested repeated CV (``make bench-quality``).

Prints the quality report of :mod:`credit_risk.evaluate.report`: the seed's recipe, the points
scorecard, this project's tuned forest, a gradient-boosting model, their blend and the tuned
forest under the other protected policy, all on the same 5 repeats x 5 stratified folds
(seeded), each as mean [95% Nadeau-Bengio corrected interval]; paired fold-wise differences
against the seed recipe and the tuned forest; the expected cost at the sample's bad rate and
at a stated population rate (``--population-bad-rate``, default 10%); and the default family
by the rule (:func:`credit_risk.families.choose_default_family`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from credit_risk.config import ThresholdRule, get_settings
from credit_risk.evaluate.report import (
    DEFAULT_POPULATION_BAD_RATE,
    DEFAULT_RECIPES,
    format_table,
    repeated_cv_report,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=15, help="inner Optuna trials per fold")
    parser.add_argument(
        "--recipes",
        default=DEFAULT_RECIPES,
        help="comma-separated recipes, optionally name@policy (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=-1, help="outer folds fitted in parallel")
    parser.add_argument("--population-bad-rate", type=float, default=DEFAULT_POPULATION_BAD_RATE)
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep each outer fold's predictions here"
    )
    parser.add_argument(
        "--save", type=Path, default=None, help="also write the rows (per-fold metrics) as JSON"
    )
    parser.add_argument(
        "--threshold-rule",
        choices=[rule.value for rule in ThresholdRule],
        default=None,
        help="default: Settings.threshold_rule (CREDIT_RISK_THRESHOLD_RULE)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    settings = get_settings(seed=args.seed, threshold_rule=args.threshold_rule)
    rows = repeated_cv_report(
        settings,
        args.recipes.split(","),
        args.repeats,
        args.folds,
        args.trials,
        n_jobs=args.jobs,
        population_bad_rate=args.population_bad_rate,
        cache=args.cache,
    )
    print(format_table(rows, args.repeats, args.folds))
    if args.save is not None:
        saved = [{k: v for k, v in row.items() if k != "intervals"} for row in rows]
        args.save.write_text(json.dumps(saved, indent=1))
    print(
        f"\nelapsed {time.perf_counter() - started:.0f} s, inner trials {args.trials}, "
        f"{settings.n_estimators} trees (search {settings.search_n_estimators})"
    )


if __name__ == "__main__":
    main()
