"""The quality report of ``credit-risk evaluate``: model families under one nested repeated CV.

Every recipe is scored on the same outer folds (one seeded repeated stratified k-fold
splitter), so rows compare fold for fold. Each recipe is fitted on the outer training fold
only; its hyperparameters (tuned forest) are chosen on inner cross-validation of that training
fold, and its threshold either there too or, under the Bayes rule, from the cost matrix alone,
so nothing ever sees the outer test fold before it is scored.

The table shows each metric's mean over the test folds with the Nadeau-Bengio corrected 95 %
interval (:mod:`.intervals`); paired fold-wise differences against the seed recipe and the
tuned forest carry the same interval. Each fold is scored twice: at the threshold for the
sample's bad rate, and at the threshold for a stated population bad rate (:mod:`.prior`), the
second cost reweighting the test rows to that rate. A recipe name may carry a protected policy
(``tuned@include``): that row runs under it, and is compared with the settings' policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Memory, Parallel, delayed
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from credit_risk.config import Family, ProtectedPolicy, Settings, ThresholdRule
from credit_risk.data import load_training_data
from credit_risk.evaluate.intervals import Interval, corrected_interval
from credit_risk.evaluate.metrics import classification_metrics, costs_of, summarise
from credit_risk.evaluate.prior import population_cost, prior_of, sample_threshold
from credit_risk.evaluate.threshold import (
    SEED_THRESHOLD,
    bayes_threshold,
    cost_optimal_threshold,
    fixed_threshold,
    threshold_rule,
)
from credit_risk.families import (
    SIMPLICITY,
    FamilyChoice,
    blend_probability,
    build_gbm_pipeline,
    choose_default_family,
)
from credit_risk.model import (
    CALIBRATION_FOLDS_KEY,
    CALIBRATION_KEY,
    build_logistic_pipeline,
    build_pipeline,
)
from credit_risk.scorecard.family import build_scorecard, scorecard_params
from credit_risk.tune import run_threshold, search_objective, tune

RECIPES: dict[str, str] = {
    "seed": "seed recipe: BalancedRandomForest, defaults, threshold 0.5 (both rates)",
    "logistic": "logistic regression, cost-optimal threshold (inner CV)",
    "defaults": "BalancedRandomForest defaults, calibrated, {threshold}",
    "tuned": "forest (this project): BalancedRandomForest tuned by inner-CV {search} "
    "({trees} trees), calibrated, {threshold} (nested)",
    "scorecard": "points scorecard (credit-risk train --family scorecard), calibrated, {threshold}",
    "gbm": "gradient boosting: HistGradientBoosting, class-weighted, fixed small parameters, "
    "calibrated, {threshold}",
    "blend": "blend: mean of the tuned forest's and the scorecard's calibrated probabilities, "
    "Bayes threshold",
}
# The recipes that are candidate families for the default, by family name.
FAMILY_OF: dict[str, str] = {
    "scorecard": "scorecard",
    "tuned": "forest",
    "gbm": "gbm",
    "blend": "blend",
}
DEFAULT_RECIPES = "seed,scorecard,tuned,gbm,blend,tuned@include"
# The blend is built from these recipes' probabilities on the same fold (not refitted).
BLEND_MEMBERS = ("tuned", "scorecard")
REFERENCES = ("seed", "tuned")
# A stated population bad rate (the sample's is 30 %; see README, "Model quality").
DEFAULT_POPULATION_BAD_RATE = 0.10
REPORTED = ("roc_auc", "cost", "cost_population", "recall_bad", "accuracy")
COMPARED = ("cost", "roc_auc")


def parse_recipe(name: str) -> tuple[str, ProtectedPolicy | None]:
    """``"tuned@include"`` -> ``("tuned", ProtectedPolicy.INCLUDE)``; no ``@``: the settings'.

    Raises:
        ValueError: an unknown recipe or policy, named with the allowed values.
    """
    recipe, _, policy = name.strip().partition("@")
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    if not policy:
        return recipe, None
    allowed = [p.value for p in ProtectedPolicy]
    if policy not in allowed:
        raise ValueError(
            f"unknown protected policy {policy!r} in {name!r}; expected one of {', '.join(allowed)}"
        )
    return recipe, ProtectedPolicy(policy)


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


def _thresholds(
    make: Callable[[], Any],
    calibration: str,
    x: pd.DataFrame,
    y: np.ndarray,
    settings: Settings,
    rates: Sequence[float | None],
) -> list[float]:
    """The threshold policy's threshold for each population rate (Bayes, else inner CV)."""
    costs = costs_of(settings)
    rule = threshold_rule(settings, {CALIBRATION_KEY: calibration})
    priors = [prior_of(rate, y) for rate in rates]
    fixed = [fixed_threshold(settings.objective, rule, costs, prior) for prior in priors]
    if all(t is not None for t in fixed):
        return [float(t) for t in fixed if t is not None]
    oof = _inner_oof(make, x, y, settings.cv_folds, settings.seed)
    return [cost_optimal_threshold(y, oof, costs, prior)[0] for prior in priors]


def fit_recipe_thresholds(
    recipe: str,
    x: pd.DataFrame,
    y: pd.Series,
    settings: Settings,
    inner_trials: int,
    rates: Sequence[float | None] = (None,),
) -> tuple[Any, list[float]]:
    """Fit one recipe on a training fold; return the model and its threshold for each rate.

    Args:
        rates: population bad rates (None: the training rows' own rate), see :mod:`.prior`.
    """
    drop = settings.protected_policy is ProtectedPolicy.EXCLUDE
    y_array = y.to_numpy()
    if recipe == "seed":
        model = build_pipeline({CALIBRATION_KEY: "none"}, settings.seed, drop, n_jobs=1)
        return model.fit(x, y_array), [SEED_THRESHOLD for _ in rates]
    if recipe == "logistic":

        def make_logistic() -> Any:
            return build_logistic_pipeline(settings.seed, drop)

        # Kept as first measured: the cost-optimal threshold whatever the rule.
        rule_settings = settings.model_copy(
            update={"threshold_rule": ThresholdRule.CROSS_VALIDATED}
        )
        thresholds = _thresholds(make_logistic, "none", x, y_array, rule_settings, rates)
        return make_logistic().fit(x, y_array), thresholds
    if recipe == "scorecard":
        params = scorecard_params(settings)
        card_settings = settings.model_copy(update={"family": Family.SCORECARD})

        def make_card() -> Any:
            return build_scorecard(card_settings, params)

        thresholds = _thresholds(
            make_card, str(params[CALIBRATION_KEY]), x, y_array, card_settings, rates
        )
        return make_card().fit(x, y_array), thresholds
    if recipe == "gbm":

        def make_gbm() -> Any:
            return build_gbm_pipeline(
                settings.seed, drop, settings.calibration, settings.calibration_folds
            )

        # One OpenMP thread: on a busy machine one per core spins, 20x slower on 800 rows.
        with threadpool_limits(limits=1, user_api="openmp"):
            thresholds = _thresholds(make_gbm, settings.calibration, x, y_array, settings, rates)
            return make_gbm().fit(x, y_array), thresholds
    if recipe in ("defaults", "tuned"):
        inner = settings.model_copy(
            update={
                "trials": inner_trials,
                "n_jobs": 1,
                "storage": None,
                "study_name": None,
                "family": Family.FOREST,
            }
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
        thresholds = [
            run_threshold(params, x, y, inner.model_copy(update={"population_bad_rate": rate}))
            for rate in rates
        ]
        model = build_pipeline(params, settings.seed, drop, n_jobs=1)
        return model.fit(x, y_array), thresholds
    if recipe == "blend":
        raise ValueError("the blend is not fitted on its own: it averages its members' scores")
    raise ValueError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")


def fit_recipe(
    recipe: str, x: pd.DataFrame, y: pd.Series, settings: Settings, inner_trials: int
) -> tuple[Any, float]:
    """Fit one recipe on a training fold; return the model and its threshold (the settings'
    population rate)."""
    model, thresholds = fit_recipe_thresholds(
        recipe, x, y, settings, inner_trials, (settings.population_bad_rate,)
    )
    return model, thresholds[0]


def describe(recipe: str, settings: Settings) -> str:
    """The recipe's description, naming the settings' threshold rule and tree count."""
    name, policy = parse_recipe(recipe)
    threshold = (
        f"Bayes threshold {bayes_threshold(costs_of(settings)):.3f}"
        if settings.threshold_rule is ThresholdRule.BAYES
        else "cost-optimal threshold (inner CV)"
    )
    text = RECIPES[name].format(
        threshold=threshold,
        trees=settings.n_estimators,
        search=search_objective(settings).value,
    )
    if policy is not None:
        text += f"; protected_policy {policy.value}"
    return text


def _outer_fold(
    recipe: str,
    x: pd.DataFrame,
    y: pd.Series,
    train_index: np.ndarray,
    settings: Settings,
    inner_trials: int,
    test_index: np.ndarray,
    rates: Sequence[float | None],
) -> tuple[np.ndarray, list[float]]:
    # One OpenMP thread (the gradient boosting's predictions too); the folds run in parallel.
    with threadpool_limits(limits=1, user_api="openmp"):
        model, thresholds = fit_recipe_thresholds(
            recipe,
            x.iloc[train_index].reset_index(drop=True),
            y.iloc[train_index].reset_index(drop=True),
            settings,
            inner_trials,
            rates,
        )
        return model.predict_proba(x.iloc[test_index])[:, 1], thresholds


def fold_metrics(
    y: np.ndarray,
    probability: np.ndarray,
    thresholds: Sequence[float],
    settings: Settings,
    population_bad_rate: float,
) -> dict[str, float]:
    """One test fold's metrics: at the sample-rate threshold, plus the population-rate cost
    (rows reweighted to ``population_bad_rate``, cut at its own threshold)."""
    costs = costs_of(settings)
    metrics = classification_metrics(y, probability, thresholds[0], costs)
    metrics["cost_population"] = population_cost(
        y, probability >= thresholds[1], costs, population_bad_rate
    )
    metrics["threshold"] = float(thresholds[0])
    metrics["threshold_population"] = float(thresholds[1])
    return metrics


def repeated_cv_report(
    settings: Settings,
    recipes: list[str],
    repeats: int = 5,
    folds: int = 5,
    inner_trials: int = 15,
    n_jobs: int = -1,
    population_bad_rate: float = DEFAULT_POPULATION_BAD_RATE,
    cache: Path | None = None,
) -> list[dict[str, Any]]:
    """Nested repeated stratified CV of each recipe on the whole data set, the same folds for all.

    Args:
        recipes: names of :data:`RECIPES`, optionally ``name@policy`` (a protected policy).
        population_bad_rate: the stated population rate of the second cost column.
        cache: a folder where each outer fold's predictions are kept (joblib.Memory, keyed by
            the fold's rows, recipe and settings), so an interrupted report resumes.

    Returns:
        One row per recipe: ``recipe``, ``description``, ``per_fold`` (metric dicts in fold
        order), ``<metric>_mean`` / ``<metric>_std`` and ``intervals`` (metric -> corrected
        :class:`Interval`); ``repeats`` and ``folds`` of the protocol.
    """
    parsed = {name.strip(): parse_recipe(name) for name in recipes}
    missing = [m for m in BLEND_MEMBERS if "blend" in parsed and m not in parsed]
    if missing:
        raise ValueError(f"the blend needs the recipes {', '.join(BLEND_MEMBERS)} in the report")
    dataset = load_training_data(settings)
    x, y = dataset.features, dataset.target
    assert y is not None
    y_array = y.to_numpy()
    splitter = RepeatedStratifiedKFold(
        n_splits=folds, n_repeats=repeats, random_state=settings.seed
    )
    splits = list(splitter.split(x, y_array))
    rates: tuple[float | None, float] = (None, population_bad_rate)
    fitted = [(name, recipe, policy) for name, (recipe, policy) in parsed.items()]
    fitted = [item for item in fitted if item[1] != "blend"]

    def settings_for(policy: ProtectedPolicy | None) -> Settings:
        # Column 1 is the sample's rate whatever the settings say; column 2 the stated rate.
        update: dict[str, Any] = {"population_bad_rate": None}
        if policy is not None:
            update["protected_policy"] = policy
        return settings.model_copy(update=update)

    fold_job = _outer_fold if cache is None else Memory(cache, verbose=0).cache(_outer_fold)
    jobs = [
        delayed(fold_job)(recipe, x, y, train, settings_for(policy), inner_trials, test, rates)
        for _, recipe, policy in fitted
        for train, test in splits
    ]
    results = Parallel(n_jobs=n_jobs)(jobs)
    scored: dict[str, list[tuple[np.ndarray, list[float]]]] = {}
    for position, (name, _, _) in enumerate(fitted):
        scored[name] = results[position * len(splits) : (position + 1) * len(splits)]
    if "blend" in parsed:
        costs = costs_of(settings)
        scored["blend"] = [
            (
                blend_probability(*(scored[m][fold][0] for m in BLEND_MEMBERS)),
                [
                    sample_threshold(bayes_threshold(costs), prior_of(rate, y_array[train]))
                    for rate in rates
                ],
            )
            for fold, (train, _) in enumerate(splits)
        ]
    rows = []
    for name in parsed:
        per_fold = [
            fold_metrics(y_array[test], probability, thresholds, settings, population_bad_rate)
            for (probability, thresholds), (_, test) in zip(scored[name], splits, strict=True)
        ]
        rows.append(
            {
                "recipe": name,
                "description": describe(name, settings),
                "per_fold": per_fold,
                "intervals": {
                    m: corrected_interval([f[m] for f in per_fold], folds) for m in REPORTED
                }
                if len(splits) > 1
                else {},
                "repeats": repeats,
                "folds": folds,
                "population_bad_rate": population_bad_rate,
                **summarise(per_fold),
            }
        )
    return rows


def paired_difference(
    row: dict[str, Any], reference: dict[str, Any], metric: str, folds: int
) -> Interval:
    """Corrected interval of ``row - reference`` in ``metric``, fold by fold."""
    values = np.array([f[metric] for f in row["per_fold"]])
    base = np.array([f[metric] for f in reference["per_fold"]])
    if values.size != base.size:
        raise ValueError("paired rows must be scored on the same folds")
    return corrected_interval(values - base, folds)


def default_family(rows: list[dict[str, Any]], folds: int, metric: str = "cost") -> FamilyChoice:
    """:func:`credit_risk.families.choose_default_family` on the report's candidate rows
    (the settings' protected policy only)."""
    costs = {
        FAMILY_OF[row["recipe"]]: [f[metric] for f in row["per_fold"]]
        for row in rows
        if row["recipe"] in FAMILY_OF
    }
    return choose_default_family(costs, folds)


def _interval_cell(interval: Interval, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{interval.mean:{sign}.3f} [{interval.low:{sign}.3f}, {interval.high:{sign}.3f}]"


def format_table(rows: list[dict[str, Any]], repeats: int, folds: int) -> str:
    """The printed report: the table with corrected intervals, the paired comparisons, the
    protected policies' difference and the default family by the rule."""
    rate = rows[0].get("population_bad_rate", DEFAULT_POPULATION_BAD_RATE) if rows else 0.0
    lines = [
        f"Nested repeated stratified {folds}-fold CV, {repeats} repeats "
        f"({repeats * folds} test folds, the same for every row); mean "
        "[95% interval, Nadeau-Bengio corrected].",
        f"cost: expected cost per applicant at the sample's bad rate; cost at {rate:.0%} bad: "
        f"test rows reweighted to a population with {rate:.0%} bad, each recipe's threshold "
        "chosen for that rate.",
        "",
        *(f"- {row['recipe']}: {row['description']}" for row in rows),
        "",
        f"| recipe | ROC AUC | expected cost | cost at {rate:.0%} bad | recall of bad | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [_interval_cell(row["intervals"][m]) for m in REPORTED]
        lines.append(f"| {row['recipe']} | " + " | ".join(cells) + " |")
    by_name = {row["recipe"]: row for row in rows}
    for reference in REFERENCES:
        if reference not in by_name:
            continue
        lines += [
            "",
            f"Paired fold-wise differences, row minus {reference} (negative cost, positive "
            "ROC AUC: better than it):",
            "",
            f"| recipe | cost difference | cost at {rate:.0%} bad difference | "
            "ROC AUC difference |",
            "|---|---|---|---|",
        ]
        for row in rows:
            if row["recipe"] == reference:
                continue
            cells = [
                _interval_cell(paired_difference(row, by_name[reference], m, folds), signed=True)
                for m in ("cost", "cost_population", "roc_auc")
            ]
            lines.append(f"| {row['recipe']} | " + " | ".join(cells) + " |")
    policy_rows = [
        (row, by_name[row["recipe"].partition("@")[0]])
        for row in rows
        if "@" in row["recipe"] and row["recipe"].partition("@")[0] in by_name
    ]
    if policy_rows:
        lines += [
            "",
            "Protected policies, paired (row minus the same recipe under the settings' policy):",
            "",
        ]
        for row, base in policy_rows:
            cost = paired_difference(row, base, "cost", folds)
            auc = paired_difference(row, base, "roc_auc", folds)
            lines.append(
                f"- {row['recipe']} minus {base['recipe']}: cost {_interval_cell(cost, True)}, "
                f"ROC AUC {_interval_cell(auc, True)}"
            )
    candidates = [row for row in rows if row["recipe"] in FAMILY_OF]
    if candidates:
        names = ", ".join(FAMILY_OF[row["recipe"]] for row in candidates)
        choice = default_family(rows, folds)
        population_choice = default_family(rows, folds, "cost_population")
        lines += [
            "",
            f"Rule: lowest mean expected cost among {names}; a family whose paired corrected "
            "cost-difference interval against a simpler one contains 0 ties, and ties go to "
            f"the simpler ({' < '.join(SIMPLICITY)}).",
            f"default family by the rule: {choice.family} ({choice.reason})",
            f"at {rate:.0%} bad, the same rule: {population_choice.family} "
            f"({population_choice.reason})",
        ]
    return "\n".join(lines)
