"""The quality report of ``credit-risk evaluate``: repeated stratified k-fold CV, nested tuning.

Each recipe is fitted on the outer training fold only; its hyperparameters (tuned recipe) are
chosen on inner cross-validation of that training fold, and its threshold either there too
or, under the Bayes rule, from the cost matrix alone, so nothing ever sees the outer test fold
before it is scored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold

from credit_risk.config import ProtectedPolicy, Settings, ThresholdRule
from credit_risk.data import load_training_data
from credit_risk.evaluate.metrics import classification_metrics, costs_of, summarise
from credit_risk.evaluate.threshold import (
    SEED_THRESHOLD,
    bayes_threshold,
    cost_optimal_threshold,
)
from credit_risk.model import (
    CALIBRATION_FOLDS_KEY,
    CALIBRATION_KEY,
    build_logistic_pipeline,
    build_pipeline,
)
from credit_risk.tune import run_threshold, search_objective, tune

RECIPES: dict[str, str] = {
    "seed": "seed recipe: BalancedRandomForest, defaults, threshold 0.5",
    "logistic": "logistic regression, cost-optimal threshold (inner CV)",
    "defaults": "BalancedRandomForest defaults, calibrated, {threshold}",
    "tuned": "this project: BalancedRandomForest tuned by inner-CV {search} ({trees} trees), "
    "calibrated, {threshold} (nested)",
}
REPORTED = ("roc_auc", "cost", "recall_bad", "accuracy")


def _inner_oof(
    make: Callable[[], Any], x: pd.DataFrame, y: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    probability = np.zeros(len(y))
    for train_index, test_index in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        x, y
    ):
        model = make()
        model.fit(x.iloc[train_index], y[train_index])
        probability[test_index] = model.predict_proba(x.iloc[test_index])[:, 1]
    return probability


def fit_recipe(
    recipe: str, x: pd.DataFrame, y: pd.Series, settings: Settings, inner_trials: int
) -> tuple[Any, float]:
    """Fit one recipe on a training fold; return the model and its threshold."""
    costs = costs_of(settings)
    drop = settings.protected_policy is ProtectedPolicy.EXCLUDE
    y_array = y.to_numpy()
    if recipe == "seed":
        model = build_pipeline({CALIBRATION_KEY: "none"}, settings.seed, drop, n_jobs=1)
        return model.fit(x, y_array), SEED_THRESHOLD
    if recipe == "logistic":

        def make() -> Any:
            return build_logistic_pipeline(settings.seed, drop)

        oof = _inner_oof(make, x, y_array, settings.cv_folds, settings.seed)
        threshold = cost_optimal_threshold(y_array, oof, costs)[0]
        return make().fit(x, y_array), threshold
    if recipe in ("defaults", "tuned"):
        inner = settings.model_copy(
            update={"trials": inner_trials, "n_jobs": 1, "storage": None, "study_name": None}
        )
        # The tuned recipe fits the settings' tree count; "defaults" keeps the library's 100.
        best = (
            {"n_estimators": settings.n_estimators, **tune(x, y, inner).best_params}
            if recipe == "tuned"
            else {}
        )
        params = {
            CALIBRATION_KEY: settings.calibration,
            CALIBRATION_FOLDS_KEY: settings.calibration_folds,
            **best,
        }
        threshold = run_threshold(params, x, y, inner)
        model = build_pipeline(params, settings.seed, drop, n_jobs=1)
        return model.fit(x, y_array), threshold
    raise ValueError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")


def describe(recipe: str, settings: Settings) -> str:
    """The recipe's description, naming the settings' threshold rule and tree count."""
    threshold = (
        f"Bayes threshold {bayes_threshold(costs_of(settings)):.3f}"
        if settings.threshold_rule is ThresholdRule.BAYES
        else "cost-optimal threshold (inner CV)"
    )
    return RECIPES[recipe].format(
        threshold=threshold,
        trees=settings.n_estimators,
        search=search_objective(settings).value,
    )


def _outer_fold(
    recipe: str,
    x: pd.DataFrame,
    y: pd.Series,
    train_index: np.ndarray,
    test_index: np.ndarray,
    settings: Settings,
    inner_trials: int,
) -> dict[str, float]:
    model, threshold = fit_recipe(
        recipe,
        x.iloc[train_index].reset_index(drop=True),
        y.iloc[train_index].reset_index(drop=True),
        settings,
        inner_trials,
    )
    probability = model.predict_proba(x.iloc[test_index])[:, 1]
    return classification_metrics(
        y.to_numpy()[test_index], probability, threshold, costs_of(settings)
    )


def repeated_cv_report(
    settings: Settings,
    recipes: list[str],
    repeats: int = 5,
    folds: int = 5,
    inner_trials: int = 15,
    n_jobs: int = -1,
) -> list[dict[str, Any]]:
    """Repeated stratified CV of each recipe on the whole data set.

    Returns:
        One row per recipe: its name, description and ``<metric>_mean`` / ``<metric>_std``.
    """
    dataset = load_training_data(settings)
    x, y = dataset.features, dataset.target
    assert y is not None
    splitter = RepeatedStratifiedKFold(
        n_splits=folds, n_repeats=repeats, random_state=settings.seed
    )
    splits = list(splitter.split(x, y))
    rows = []
    for recipe in recipes:
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
        per_fold = Parallel(n_jobs=n_jobs)(
            delayed(_outer_fold)(recipe, x, y, train_index, test_index, settings, inner_trials)
            for train_index, test_index in splits
        )
        rows.append(
            {"recipe": recipe, "description": describe(recipe, settings), **summarise(per_fold)}
        )
    return rows


def format_table(rows: list[dict[str, Any]], repeats: int, folds: int) -> str:
    """Markdown table of the report (mean ± std over repeats × folds)."""
    header = (
        "| recipe | ROC AUC | expected cost | recall of bad | accuracy |\n|---|---|---|---|---|"
    )
    lines = [
        f"Repeated stratified {folds}-fold CV, {repeats} repeats "
        f"({repeats * folds} test folds); mean ± std over folds.",
        "",
        header,
    ]
    for row in rows:
        cells = [f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_std']:.3f}" for m in REPORTED]
        lines.append(f"| {row['description']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
