"""Protected attributes as model inputs or not: cost, AUC and fairness (``make bench-protected``).

For each policy (``exclude``, the default, and the ``include`` opt-in) and each of
``--repeats`` seeded stratified train/test splits (``Settings.test_size`` held out), a forest
with fixed hyperparameters (:data:`PARAMS`, ``--trees`` trees; no search), calibrated as the
settings say, is fitted on the training split and scored on the test split; its threshold
follows the settings' rule, the same for every row (by default the Bayes rule, 1/6 on
calibrated probabilities; with ``CREDIT_RISK_THRESHOLD_RULE=cross_validated`` the cost-optimal
threshold on the training split's out-of-fold predictions). Prints Markdown: headline metrics
and the fairness summary as mean ± std over the splits, the paired difference of the two
policies with its Nadeau-Bengio corrected 95% interval (repeated hold-out), then the per-group
table pooled over all test predictions. Protected attributes are always used for the audit,
whatever the policy. The nested-CV cost of the two policies with a tuned forest is in
``benchmarks/model_quality.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from credit_risk.config import ProtectedPolicy, get_settings
from credit_risk.data import load_training_data, split_dataset
from credit_risk.evaluate import classification_metrics, costs_of
from credit_risk.evaluate.intervals import resampled_interval
from credit_risk.fairness import AUDITED, SEX_CAVEAT, audit_predictions
from credit_risk.model import build_pipeline
from credit_risk.tune import run_threshold

PARAMS = {"n_estimators": 200, "max_depth": 10, "min_samples_leaf": 3, "max_features": 0.4}
METRICS = ("cost", "roc_auc", "recall_bad", "brier")


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def run(repeats: int, trees: int) -> str:
    base = get_settings()
    dataset = load_training_data(base)
    headline: dict[str, dict[str, list[float]]] = {}
    fairness: dict[str, dict[str, list[float]]] = {}
    pooled: list[pd.DataFrame] = []
    for policy in (ProtectedPolicy.EXCLUDE, ProtectedPolicy.INCLUDE):
        headline[policy.value] = {m: [] for m in METRICS}
        fairness[policy.value] = {}
        tests: list[pd.DataFrame] = []
        for repeat in range(repeats):
            settings = get_settings(seed=base.seed + repeat, protected_policy=policy)
            params = {
                **PARAMS,
                "n_estimators": trees,
                "calibration": settings.calibration,
                "calibration_folds": settings.calibration_folds,
            }
            x_train, x_test, y_train, y_test = split_dataset(
                dataset, settings.test_size, settings.seed
            )
            threshold = run_threshold(params, x_train, y_train, settings)
            pipeline = build_pipeline(
                params, settings.seed, policy is ProtectedPolicy.EXCLUDE, settings.n_jobs
            )
            pipeline.fit(x_train, y_train.to_numpy())
            probability = pipeline.predict_proba(x_test)[:, 1]
            metrics = classification_metrics(
                y_test.to_numpy(), probability, threshold, costs_of(settings)
            )
            for name in METRICS:
                headline[policy.value][name].append(metrics[name])
            audit = audit_predictions(
                "test", x_test, y_test.to_numpy(), probability, threshold, resamples=0
            )
            for name, value in audit.metrics.items():
                fairness[policy.value].setdefault(name, []).append(
                    np.nan if value is None else value
                )
            rejected = probability >= threshold
            tests.append(x_test.assign(bad=y_test.to_numpy(), rejected=rejected))
        pooled_frame = pd.concat(tests, ignore_index=True)
        # Each test prediction keeps its own split's decision: the 0/1 "rejected" indicator is
        # audited at threshold 0.5.
        table = audit_predictions(
            policy.value,
            pooled_frame,
            pooled_frame["bad"].to_numpy(),
            pooled_frame["rejected"].to_numpy(dtype=float),
            0.5,
            resamples=0,
        ).table
        pooled.append(table)

    lines = [
        f"### Headline metrics (test split, mean ± std over {repeats} seeded splits)",
        "",
        "| policy | " + " | ".join(METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for policy, values in headline.items():
        lines.append(f"| {policy} | " + " | ".join(_cell(values[m]) for m in METRICS) + " |")
    # Both policies see the same splits, so their per-split difference is the sharper measure.
    exclude, include = (
        headline[ProtectedPolicy.EXCLUDE.value],
        headline[ProtectedPolicy.INCLUDE.value],
    )
    paired = {m: list(np.subtract(exclude[m], include[m])) for m in METRICS}
    ratio = base.test_size / (1 - base.test_size)
    lines.append(
        "| exclude − include (paired; mean [95% corrected interval]) | "
        + " | ".join(str(resampled_interval(paired[m], ratio)) for m in METRICS)
        + " |"
    )
    lines += [
        "",
        "### Fairness (test split, mean ± std over the splits)",
        "",
        "| policy | attribute | disparate impact | equalized-odds difference |",
        "|---|---|---:|---:|",
    ]
    for policy, values in fairness.items():
        for attribute in AUDITED:
            ratio = values[f"test_{attribute}_disparate_impact"]
            gap = values[f"test_{attribute}_equalized_odds_difference"]
            lines.append(f"| {policy} | {attribute} | {_cell(ratio)} | {_cell(gap)} |")
    lines += [
        "",
        f"### By group (the {repeats} test splits pooled; splits overlap, so n counts "
        "test predictions, not distinct applicants)",
        "",
        "| policy | attribute | group | n | approval rate | recall of bad | FPR |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for table in pooled:
        for row in table.itertuples(index=False):
            lines.append(
                f"| {row.split} | {row.attribute} | {row.group} | {row.count} | "
                f"{row.selection_rate:.3f} | {row.recall_bad:.3f} | "
                f"{row.false_positive_rate:.3f} |"
            )
    lines += [
        "",
        SEX_CAVEAT,
        "",
        f"Forest parameters {PARAMS | {'n_estimators': trees}}, calibration "
        f"{base.calibration} ({base.calibration_folds} folds), threshold rule "
        f"{base.threshold_rule.value}; the default policy is {base.protected_policy.value}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="seeded train/test splits")
    parser.add_argument("--trees", type=int, default=PARAMS["n_estimators"], help="forest size")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown")
    args = parser.parse_args()
    started = time.perf_counter()
    report = run(args.repeats, args.trees)
    print(report)
    print(f"\nelapsed {time.perf_counter() - started:.0f} s")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")


if __name__ == "__main__":
    main()
