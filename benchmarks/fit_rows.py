"""Which rows the exported model should be fitted on, measured as a user meets it.

The protocol is nested. Outer: stratified ``--folds``-fold splits of the data file (seeded by
``--seed``, which the training run never sees), ``--repeats`` times. On each outer training
part, written to a file of its own, the training run's own steps run in this process as
``credit-risk train`` runs them (:mod:`credit_risk.train`): its stratified train/test split
(``Settings.seed``, ``test_size``), the Optuna search on that training split (``--trials``; or
the search's starting parameters, ``DEFAULT_TRIAL``, with ``--fixed``), the threshold rule,
the fit on the training split, then the model each ``fit_rows`` value exports: ``split``
exports that fit, ``all`` refits the same recipe on every row of the part
(:func:`credit_risk.train.fit_exported`). Both exported models score the outer held-out part,
which no step saw, at the run's threshold. The search and the threshold are shared: the two
variants differ only in the rows of the final fit, so the paired difference measures that.

Printed: expected cost (5:1 matrix) and ROC AUC of each variant on the outer held-out parts,
and the paired difference ``all - split``, each with its Nadeau-Bengio corrected 95 % interval
over the ``folds x repeats`` outer test folds (:func:`credit_risk.evaluate.intervals.
corrected_interval`); and, beside them, the test-split cost the training run itself reports
(the recipe fitted on its training split, scored on its own test split).

MLflow, the fairness audit, the card and the gate are not run: they do not change the model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from credit_risk.config import Family, FitRows, get_settings
from credit_risk.data import load_training_data
from credit_risk.evaluate import classification_metrics, costs_of
from credit_risk.evaluate.intervals import Interval, corrected_interval
from credit_risk.fingerprint import canonical_lines
from credit_risk.model import DEFAULT_TRIAL
from credit_risk.train import (
    Split,
    final_params,
    fit_exported,
    fit_on_split,
    run_data,
    search_params,
)
from credit_risk.tune import run_threshold

VARIANTS = (FitRows.SPLIT, FitRows.ALL)
METRICS = (("cost", "expected cost"), ("roc_auc", "ROC AUC"))


def outer_folds(
    y: np.ndarray, folds: int, repeats: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified outer folds, ``repeats`` times (seeds ``seed``, ``seed + 1``, ...)."""
    from sklearn.model_selection import StratifiedKFold

    return [
        (train, test)
        for repeat in range(repeats)
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed + repeat).split(
            np.zeros(len(y)), y
        )
    ]


def one_fold(
    part: Path, x_test, y_test: np.ndarray, trials: int | None, trees: int | None
) -> dict[str, dict[str, float]]:
    """The training run on ``part`` (a data file); both exported models scored on the outer
    held-out rows. Returns ``{variant: metrics}`` plus ``run_test``: what the run reports."""
    overrides: dict[str, object] = {"data_path": part}
    if trials is not None:
        overrides["trials"] = trials
    if trees is not None:
        overrides["n_estimators"] = trees
    settings = get_settings(family=Family.FOREST, **overrides)  # the forest is what is measured
    data = run_data(settings)
    split = Split(*data.split())
    if trials is None:
        params = {"n_estimators": settings.n_estimators, **DEFAULT_TRIAL}
    else:
        params, _ = search_params(settings, split)
    params = final_params(settings, params)
    threshold = run_threshold(params, split.x_train, split.y_train, settings)
    on_split = fit_on_split(settings, params, split)
    costs = costs_of(settings)
    scores = {
        "run_test": classification_metrics(
            split.y_test.to_numpy(), on_split.predict_proba(split.x_test)[:, 1], threshold, costs
        )
    }
    for variant in VARIANTS:
        exported = fit_exported(
            settings.model_copy(update={"fit_rows": variant}), params, data, on_split
        )
        probability = exported.pipeline.predict_proba(x_test)[:, 1]
        scores[variant.value] = {
            **classification_metrics(y_test, probability, threshold, costs),
            "rows": float(len(exported.rows.train)),
        }
    return scores


def _cell(interval: Interval, signed: bool = False) -> str:
    form = "+.3f" if signed else ".3f"
    return f"{interval.mean:{form}} [{interval.low:{form}}, {interval.high:{form}}]"


def report(results: list[dict[str, dict[str, float]]], folds: int) -> str:
    def values(variant: str, metric: str) -> np.ndarray:
        return np.array([r[variant][metric] for r in results])

    lines = [
        "| exported model (fit_rows) | rows fitted | expected cost | ROC AUC |",
        "|---|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        rows = values(variant.value, "rows").mean()
        cells = [_cell(corrected_interval(values(variant.value, m), folds)) for m, _ in METRICS]
        lines.append(f"| `{variant.value}` | {rows:.0f} | {' | '.join(cells)} |")
    paired = [
        _cell(corrected_interval(values("all", m) - values("split", m), folds), signed=True)
        for m, _ in METRICS
    ]
    lines.append(f"| paired difference all − split | | {' | '.join(paired)} |")
    run_test = [_cell(corrected_interval(values("run_test", m), folds)) for m, _ in METRICS]
    lines.append(
        f"| (the run's own test-split figures, what `credit-risk train` reports) | "
        f"{values('split', 'rows').mean():.0f} | {' | '.join(run_test)} |"
    )
    better = int((values("all", "cost") < values("split", "cost")).sum())
    worse = int((values("all", "cost") > values("split", "cost")).sum())
    lines.append("")
    lines.append(
        f"Mean over {len(results)} outer test folds [Nadeau-Bengio corrected 95 % interval, "
        f"t with {len(results) - 1} d.f.]; cost lower with `all` on {better} folds, higher on "
        f"{worse}."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5, help="outer folds (default 5)")
    parser.add_argument("--repeats", type=int, default=1, help="outer repeats (default 1)")
    parser.add_argument("--seed", type=int, default=2026, help="outer folds' seed")
    parser.add_argument("--trials", type=int, default=15, help="Optuna trials per run")
    parser.add_argument(
        "--fixed",
        action="store_true",
        help="no search: the search's starting parameters (DEFAULT_TRIAL), for speed",
    )
    parser.add_argument("--trees", type=int, default=None, help="trees of the fitted forest")
    args = parser.parse_args()

    started = time.perf_counter()
    base = get_settings()
    dataset = load_training_data(base)
    assert dataset.target is not None
    x, y = dataset.features, dataset.target.to_numpy()
    splits = outer_folds(y, args.folds, args.repeats, args.seed)
    search = "fixed parameters (DEFAULT_TRIAL)" if args.fixed else f"{args.trials} Optuna trials"
    print(
        f"fit_rows, nested: outer stratified {args.folds}-fold x {args.repeats} (seed "
        f"{args.seed}) over {len(y)} rows of {base.data_path}; on each outer training part the "
        f"training run's protocol: {1 - base.test_size:.0%}/{base.test_size:.0%} split "
        f"(seed {base.seed}), {search}, threshold rule {base.threshold_rule.value}, "
        f"calibration {base.calibration}, {args.trees or base.n_estimators} trees.",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for number, (train, test) in enumerate(splits, start=1):
            part = Path(folder) / f"outer_{number}.data"
            lines = canonical_lines(x.iloc[train], y[train])
            part.write_text("".join(f"{line}\n" for line in lines))
            fold_started = time.perf_counter()
            scores = one_fold(
                part,
                x.iloc[test].reset_index(drop=True),
                y[test],
                None if args.fixed else args.trials,
                args.trees,
            )
            results.append(scores)
            print(
                f"  outer fold {number}/{len(splits)}: cost split {scores['split']['cost']:.3f}"
                f" all {scores['all']['cost']:.3f}; ROC AUC split "
                f"{scores['split']['roc_auc']:.3f} all {scores['all']['roc_auc']:.3f} "
                f"({time.perf_counter() - fold_started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    print()
    print(report(results, args.folds))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
