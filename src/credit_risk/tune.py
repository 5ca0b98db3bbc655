"""Optuna hyperparameter search scored by stratified k-fold CV on the training split.

Only the search lives here; which threshold a fold's predictions are cut at is threshold policy
(:mod:`credit_risk.evaluate.threshold`).

The forest balances classes by undersampling inside each tree's bootstrap, so resampling only
ever sees training folds. ``trials`` is the number of finished trials the study should reach:
re-running with the same ``--storage``/``--study-name`` resumes, and several workers sharing
one storage stop together once the study has that many.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from credit_risk.config import Objective, Settings, ThresholdRule
from credit_risk.evaluate import (
    CostMatrix,
    choose_threshold,
    classification_metrics,
    costs_of,
    fixed_threshold,
    threshold_rule,
)
from credit_risk.evaluate.prior import prior_of
from credit_risk.model import CALIBRATION_KEY, DEFAULT_TRIAL, build_model, suggest_params

log = logging.getLogger(__name__)

# Optuna 4.9 renamed RetryFailedTrialCallback (now a deprecated subclass) to this.
RetryStaleTrial = getattr(
    optuna.storages, "RetryHeartbeatStaleTrialCallback", optuna.storages.RetryFailedTrialCallback
)


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold probabilities, the chosen threshold and per-fold metrics at it."""

    probability: np.ndarray
    threshold: float
    per_fold: list[dict[str, float]]


def objective_value(
    objective: Objective, y: np.ndarray, probability: np.ndarray, costs: CostMatrix
) -> float:
    """Score of out-of-fold predictions under an objective."""
    threshold = choose_threshold(objective, y, probability, costs)
    metrics = classification_metrics(y, probability, threshold, costs)
    return {
        Objective.COST: metrics["cost"],
        Objective.RECALL: metrics["recall_bad"],
        Objective.AUC: metrics["roc_auc"],
    }[objective]


def search_objective(settings: Settings) -> Objective:
    """What the Optuna trials score: ``settings.search_objective``, else by the objective.

    Under the Bayes rule (and calibration) the cost objective's threshold comes from the cost
    matrix, not from the search, so the trials only have to rank applicants well: they score
    the out-of-fold ROC AUC, steadier on 640 rows than the lowest cost over all thresholds,
    which rewards the few applicants that happen to fall near a lucky cut (README, "Model
    quality"). Otherwise the trials score the objective itself.
    """
    if settings.search_objective is not None:
        return settings.search_objective
    bayes = threshold_rule(settings, {CALIBRATION_KEY: settings.calibration})
    if settings.objective is Objective.COST and bayes is ThresholdRule.BAYES:
        return Objective.AUC
    return settings.objective


def direction(objective: Objective) -> Literal["minimize", "maximize"]:
    return "minimize" if objective is Objective.COST else "maximize"


def folds(settings: Settings) -> StratifiedKFold:
    return StratifiedKFold(n_splits=settings.cv_folds, shuffle=True, random_state=settings.seed)


def cross_validate(
    params: dict[str, Any],
    x: pd.DataFrame,
    y: pd.Series,
    settings: Settings,
    trial: optuna.Trial | None = None,
) -> CrossValidation:
    """Stratified k-fold CV of the model of ``settings.family`` with ``params``.

    With a ``trial``, reports the objective on the folds seen so far after each fold and
    raises ``optuna.TrialPruned`` when the pruner says so. The threshold follows
    :func:`threshold_rule`; the out-of-fold probabilities are returned either way.
    """
    costs = costs_of(settings)
    y_array = y.to_numpy()
    probability = np.full(len(y), np.nan)
    seen = np.zeros(len(y), dtype=bool)
    fold_indices = list(folds(settings).split(x, y_array))
    for step, (train_index, test_index) in enumerate(fold_indices):
        pipeline = build_model(settings, params)
        pipeline.fit(x.iloc[train_index], y_array[train_index])
        probability[test_index] = pipeline.predict_proba(x.iloc[test_index])[:, 1]
        seen[test_index] = True
        if trial is not None and step < len(fold_indices) - 1:
            partial = objective_value(
                search_objective(settings), y_array[seen], probability[seen], costs
            )
            trial.report(partial, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
    rule = threshold_rule(settings, params)
    prior = prior_of(settings.population_bad_rate, y_array)
    threshold = choose_threshold(settings.objective, y_array, probability, costs, rule, prior)
    per_fold = [
        classification_metrics(y_array[test_index], probability[test_index], threshold, costs)
        for _, test_index in fold_indices
    ]
    return CrossValidation(probability=probability, threshold=threshold, per_fold=per_fold)


def run_threshold(
    params: dict[str, Any], x: pd.DataFrame, y: pd.Series, settings: Settings
) -> float:
    """The threshold a training run on ``(x, y)`` uses with ``params``.

    The rule's fixed value when it needs no predictions (the seed's 0.5, the Bayes rule on a
    calibrated model); otherwise the one :func:`cross_validate` chooses on out-of-fold
    predictions. Either way shifted to ``settings.population_bad_rate`` when it is set.
    """
    rule = threshold_rule(settings, params)
    prior = prior_of(settings.population_bad_rate, y.to_numpy())
    fixed = fixed_threshold(settings.objective, rule, costs_of(settings), prior)
    return fixed if fixed is not None else cross_validate(params, x, y, settings).threshold


def database_url(url: str) -> str:
    """Name the PostgreSQL driver we ship (psycopg2) when the URL leaves it to SQLAlchemy.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed.
    """
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def create_storage(settings: Settings) -> optuna.storages.BaseStorage | None:
    """The study's storage: None (in memory), or an RDB storage with trial heartbeats.

    With a database URL, every running trial writes a heartbeat; a trial whose worker died
    (no heartbeat for ``heartbeat_grace_seconds``) is marked FAIL by the next worker that
    starts a trial, and Optuna's retry callback (``RetryHeartbeatStaleTrialCallback``, formerly
    ``RetryFailedTrialCallback``) enqueues it again with the same
    parameters, so a killed worker leaves neither a RUNNING trial nor a gap in the count.
    """
    if not settings.storage:
        return None
    if not settings.storage.startswith(("postgresql", "mysql", "sqlite")):
        return optuna.storages.get_storage(settings.storage)
    with warnings.catch_warnings():  # the retry callback is flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            database_url(settings.storage),
            heartbeat_interval=settings.heartbeat_seconds,
            grace_period=settings.heartbeat_grace_seconds,
            heartbeat_stale_trial_callback=RetryStaleTrial(max_retry=settings.trial_max_retry),
            engine_kwargs={"pool_pre_ping": True},
        )


def create_study(settings: Settings) -> optuna.Study:
    """A seeded-TPE study with median pruning, in memory or in ``settings.storage``."""
    return optuna.create_study(
        study_name=settings.study_name,
        storage=create_storage(settings),
        load_if_exists=settings.study_name is not None,
        direction=direction(search_objective(settings)),
        sampler=optuna.samplers.TPESampler(
            seed=settings.seed if settings.sampler_seed is None else settings.sampler_seed
        ),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )


def load_study(settings: Settings) -> optuna.Study:
    """An existing stored study (``settings.storage`` and ``settings.study_name``)."""
    storage = create_storage(settings)
    if storage is None or settings.study_name is None:
        raise ValueError("loading a study needs both a storage URL and a study name")
    return optuna.load_study(study_name=settings.study_name, storage=storage)


def finished_trials(study: optuna.Study) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def tune(
    x: pd.DataFrame, y: pd.Series, settings: Settings, study: optuna.Study | None = None
) -> optuna.Study:
    """Run the search until the study has ``settings.trials`` finished trials.

    Args:
        x, y: the training split (y: 1 = bad).
        settings: objective, folds, seed, storage, trials.
        study: an existing study (default: :func:`create_study`).

    Returns:
        The study; ``study.best_params`` are classifier keyword arguments.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = study or create_study(settings)
    costs = costs_of(settings)

    def objective(trial: optuna.Trial) -> float:
        # Trials score the uncalibrated forest: calibration is a monotone map fitted per
        # fold, so it barely moves AUC or the cost at the best threshold, and skipping it
        # makes each trial 4x cheaper. The final fit calibrates (see train.fit_evaluate).
        # Trials also use fewer trees (``search_n_estimators``); the final fit uses
        # ``n_estimators``.
        params = {
            "n_estimators": settings.search_n_estimators,
            **suggest_params(trial),
            CALIBRATION_KEY: "none",
        }
        result = cross_validate(params, x, y, settings, trial)
        value = objective_value(search_objective(settings), y.to_numpy(), result.probability, costs)
        trial.set_user_attr("threshold", result.threshold)
        return value

    remaining = settings.trials - finished_trials(study)
    if remaining <= 0:
        log.info(
            "study %s already has %d finished trials", study.study_name, finished_trials(study)
        )
        return study
    if not study.trials:
        study.enqueue_trial(DEFAULT_TRIAL)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    study.optimize(
        objective,
        n_trials=remaining,
        timeout=settings.timeout_seconds,
        callbacks=[optuna.study.MaxTrialsCallback(settings.trials, states=states)],
        show_progress_bar=sys.stderr.isatty(),
        gc_after_trial=False,
    )
    return study
