"""Fitting and scoring the recipe: the split, the search, the fit on the training split and
its test evaluation, the refit the run exports (``fit_rows``), and the references stored with
the exported model (the reasons' approved reference, the drift reference)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from credit_risk.card import Assessment, assess_run
from credit_risk.config import Family, FitRows, Settings
from credit_risk.data import Dataset, check_trainable, file_sha256
from credit_risk.evaluate import (
    classification_metrics,
    confusion,
    costs_of,
    summarise,
)
from credit_risk.fingerprint import TAG_PREFIX, fingerprint_tags
from credit_risk.model import build_model, classifier_importances
from credit_risk.model_folder import DataFingerprint
from credit_risk.monitor import Reference, reference_provenance
from credit_risk.reasons import (
    ReasonReference,
    ReasonsUnavailable,
    SubstitutionReference,
    build_reference,
    build_substitutes,
)
from credit_risk.scorecard.family import scorecard_params
from credit_risk.scorecard.model import PointsScorecard
from credit_risk.training_data import RunData, load_run_data
from credit_risk.tune import cross_validate, load_study, search_objective, tune

log = logging.getLogger(__name__)


def feature_importances(pipeline: Any) -> dict[str, float]:
    """Impurity importances of the encoded features, by encoded feature name.

    A points scorecard's: the information value of each attribute it scores.
    """
    if isinstance(pipeline, PointsScorecard):
        return {a.attribute: float(a.iv or 0.0) for a in pipeline.points_table.selected}
    if _is_gbm(pipeline):  # boosted trees keep no impurity importances
        return {}
    names = pipeline.named_steps["encode"].get_feature_names_out()
    values = classifier_importances(pipeline.named_steps["classifier"])
    return {str(n): float(v) for n, v in zip(names, values, strict=True)}


def _is_gbm(pipeline: Any) -> bool:
    """Whether a fitted pipeline's classifier is gradient boosting (calibrated or bare)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    steps = getattr(pipeline, "named_steps", {})
    classifier = steps.get("classifier") if hasattr(steps, "get") else None
    if isinstance(classifier, CalibratedClassifierCV):
        classifier = classifier.estimator
    return isinstance(classifier, HistGradientBoostingClassifier)


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{name}": value for name, value in metrics.items()}


@dataclass(frozen=True)
class Split:
    """The training and test splits of one data file."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


@dataclass
class Evaluation:
    """The recipe fitted on the training split, its threshold and its test-split metrics."""

    pipeline: Any
    params: dict[str, Any]
    threshold: float
    probability: np.ndarray
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float]
    matrix: dict[str, Any]
    # Fairness audit, calibration and explanations (credit_risk.card.assess_run).
    responsible: Assessment
    # Bad rate of the rows the threshold was chosen on (the prior shift's sample rate).
    sample_bad_rate: float | None = None


@dataclass(frozen=True)
class Exported:
    """The model a run registers and exports, and the rows it was fitted on.

    ``rows`` is the run's data with ``train`` the positions this model was fitted on and
    ``test`` those it never saw (:func:`exported_rows`); ``evaluated`` the training and test
    split sizes behind the run's test figures.
    """

    pipeline: Any
    fit_rows: FitRows
    rows: RunData
    evaluated: tuple[int, int]
    # The approved rows the adverse-action reasons are measured from (this model's, over the
    # rows it was fitted on); None when the model cannot give reasons (then it fails the
    # promotion gate and is never served). Gradient boosting's: the approved applicants'
    # typical values its reasons substitute (credit_risk.reasons.substitution).
    reason_reference: ReasonReference | SubstitutionReference | None = None
    reasons_unavailable: str | None = None

    @property
    def x(self) -> pd.DataFrame:
        """The applicants this model was fitted on."""
        return self.rows.features.iloc[self.rows.train].reset_index(drop=True)

    @property
    def y(self) -> pd.Series:
        return self.rows.is_bad.iloc[self.rows.train].reset_index(drop=True)

    def fingerprint(self) -> DataFingerprint:
        """The run's fingerprint: trained rows are this model's; how its rows were chosen."""
        summary = self.rows.fingerprint().model_dump(mode="json")
        train_rows, test_rows = self.evaluated
        return DataFingerprint.model_validate(
            {
                **summary,
                "fit_rows": self.fit_rows.value,
                "evaluated_on": {"trained_rows": train_rows, "test_rows": test_rows},
            }
        )

    def tags(self) -> dict[str, str]:
        """Registry version (and run) tags: the fingerprint's summary and the fit rule."""
        return {
            **fingerprint_tags(self.fingerprint()),
            f"{TAG_PREFIX}fit_rows": self.fit_rows.value,
        }

    def description(self) -> str:
        """Which rows, in words (the card, the run's tags, the CLI's summary)."""
        fitted, total = len(self.rows.train), len(self.rows.hashes)
        if self.fit_rows is FitRows.SPLIT:
            return f"the {fitted} training-split rows of {total}"
        if fitted == total:
            return f"all {total} rows"
        return (
            f"all {total} rows but the {total - fitted} labelled decisions held out of time "
            "for the promotion gate"
        )

    def test_figures(self) -> str:
        """Where the run's test figures come from."""
        train_rows, test_rows = self.evaluated
        if self.fit_rows is FitRows.SPLIT:
            return (
                f"this model (fitted on the {train_rows} training-split rows), scored on the "
                f"{test_rows} test-split rows it never saw"
            )
        return (
            f"the same recipe (parameters and threshold) fitted on the {train_rows} "
            f"training-split rows, scored on the {test_rows} test-split rows; this model, "
            f"refitted on {self.description()}, has no held-out rows of its own"
        )


@dataclass(frozen=True)
class LoggedRun:
    """An MLflow run holding a logged (not yet registered) model."""

    run_id: str
    model_uri: str


def split_training_data(settings: Settings) -> Split:
    """Read and validate the run's rows, check they can be trained on, split them (stratified;
    labelled decisions by time, see :func:`load_run_data`)."""
    return Split(*run_data(settings).split())


def run_data(settings: Settings) -> RunData:
    """The run's rows (:func:`load_run_data`), refused when too few to train on."""
    data = load_run_data(settings)
    calibration_folds = None if settings.calibration == "none" else settings.calibration_folds
    check_trainable(
        Dataset(data.features, data.is_bad),
        settings.data_path,
        settings.test_size,
        settings.cv_folds,
        calibration_folds,
    )
    return data


@dataclass(frozen=True)
class SearchSummary:
    """What the search hands on: the best parameters and the study's name and best value."""

    params: dict[str, Any]
    study_name: str
    best_value: float


def search_params(settings: Settings, split: Split) -> tuple[dict[str, Any], optuna.Study]:
    """Tune on the training split; with ``trials=0`` and a named stored study, reuse its best.

    Returns:
        The classifier parameters and the study.
    """
    if settings.trials == 0 and settings.study_name is not None and settings.storage:
        study = load_study(settings)
        log.info("using the best of %d trials of study %s", len(study.trials), study.study_name)
    else:
        study = tune(split.x_train, split.y_train, settings)
    # A study stored before the tree count left the search space may carry its own.
    params = {"n_estimators": settings.n_estimators, **study.best_params}
    searched = search_objective(settings).value
    log.info("best CV %s=%.4f with %s", searched, study.best_value, params)
    return params, study


def final_params(settings: Settings, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` completed with the settings' tree count and calibration (``params`` win).

    A scorecard's are completed with its settings (:func:`scorecard_params`); gradient
    boosting's with its fixed parameters (:func:`gbm_params`).
    """
    if settings.family is Family.SCORECARD:
        return {**scorecard_params(settings), **params}
    if settings.family is Family.GBM:
        return {**gbm_params(settings), **params}
    return {
        "n_estimators": settings.n_estimators,
        "calibration": settings.calibration,
        "calibration_folds": settings.calibration_folds,
        **params,
    }


def gbm_params(settings: Settings) -> dict[str, Any]:
    """Gradient boosting's parameters: the fixed small ones of
    :data:`credit_risk.families.GBM_PARAMS` (nothing is searched) and the settings' calibration.
    """
    from credit_risk.families import GBM_PARAMS

    return {
        **GBM_PARAMS,
        "calibration": settings.calibration,
        "calibration_folds": settings.calibration_folds,
    }


def reason_reference(
    pipeline: Any, applicants: pd.DataFrame, threshold: float
) -> tuple[ReasonReference | SubstitutionReference | None, str | None]:
    """What a fitted model's adverse-action reasons are measured from, or why it has none.

    A forest: its approved reference over ``applicants``, the rows it was fitted on
    (:func:`build_reference`). A
    points scorecard: nothing (its reasons are the points lost against each attribute's best
    bin, in its table), but it must approve its best possible score. Gradient boosting: the
    approved applicants' typical values its reasons substitute (:func:`build_substitutes`).

    Returns:
        The reference (None for a scorecard, or when there is none) and, when the model
        cannot give reasons (it is then never promoted), why not.
    """
    if isinstance(pipeline, PointsScorecard):
        problem = pipeline.points_table.reasons_unavailable(threshold)
        unavailable = None if problem is None else f"no adverse-action reasons: {problem}"
    else:
        try:
            if _is_gbm(pipeline):
                return build_substitutes(pipeline, applicants, threshold), None
            return build_reference(pipeline, applicants, threshold), None
        except ReasonsUnavailable as error:
            unavailable = f"no adverse-action reasons: {error}"
    if unavailable is not None:
        log.warning("%s", unavailable)
    return None, unavailable


def fit_on_split(settings: Settings, params: dict[str, Any], split: Split) -> Any:
    """The recipe (``params``: final parameters, see :func:`final_params`) fitted on the
    training split: the model the run evaluates on its test split."""
    pipeline = build_model(settings, params)
    pipeline.fit(split.x_train, split.y_train.to_numpy())
    return pipeline


def fit_evaluate(settings: Settings, params: dict[str, Any], split: Split) -> Evaluation:
    """Cross-validate on the training split (threshold, CV metrics), fit on it, test.

    The threshold follows ``settings.threshold_rule`` (see
    :func:`credit_risk.evaluate.threshold_rule`); either way the test split plays no part in it.
    """
    costs = costs_of(settings)
    params = final_params(settings, params)
    cv = cross_validate(params, split.x_train, split.y_train, settings)
    pipeline = fit_on_split(settings, params, split)
    probability = pipeline.predict_proba(split.x_test)[:, 1]
    y_test = split.y_test.to_numpy()
    return Evaluation(
        pipeline=pipeline,
        params=params,
        threshold=cv.threshold,
        probability=probability,
        test_metrics=classification_metrics(y_test, probability, cv.threshold, costs),
        cv_metrics=summarise(cv.per_fold),
        matrix=confusion(y_test, probability, cv.threshold),
        responsible=assess_run(
            settings,
            pipeline,
            params,
            split.x_train,
            split.y_train,
            cv.probability,
            split.x_test,
            y_test,
            probability,
            cv.threshold,
        ),
        sample_bad_rate=float(split.y_train.mean()),
    )


def exported_rows(settings: Settings, data: RunData) -> RunData:
    """``data`` with ``train`` the rows the exported model is fitted on, ``test`` the rest.

    ``split``: the training split. ``all``: every row but the labelled decisions held out of
    time (``outcomes_holdout_fraction``), which stay the promotion gate's out-of-time rows.
    """
    if FitRows(settings.fit_rows) is FitRows.SPLIT:
        return data
    out_of_time = data.labelled[data.test]
    return dataclasses.replace(
        data,
        train=np.concatenate([data.train, data.test[~out_of_time]]),
        test=data.test[out_of_time],
    )


def fit_exported(
    settings: Settings, params: dict[str, Any], data: RunData, fitted_on_split: Any
) -> Exported:
    """The model the run exports (``settings.fit_rows``), without its reasons' reference.

    ``split``: ``fitted_on_split`` itself. ``all``: the same recipe (``params``: the final
    parameters, calibration included; the threshold is the run's) refitted on
    :func:`exported_rows`.
    """
    rule = FitRows(settings.fit_rows)
    rows = exported_rows(settings, data)
    exported = Exported(fitted_on_split, rule, rows, (len(data.train), len(data.test)))
    if rule is FitRows.ALL:
        pipeline = build_model(settings, params)
        pipeline.fit(exported.x, exported.y.to_numpy())
        exported = dataclasses.replace(exported, pipeline=pipeline)
    return exported


def with_reasons(exported: Exported, threshold: float) -> Exported:
    """``exported`` with its reasons' approved reference over the rows it was fitted on."""
    reference, unavailable = reason_reference(exported.pipeline, exported.x, threshold)
    return dataclasses.replace(
        exported, reason_reference=reference, reasons_unavailable=unavailable
    )


def drift_reference(settings: Settings, evaluation: Evaluation, exported: Exported) -> Reference:
    """What the drift monitor compares this model's decisions with (stored with the model).

    The inputs of the rows the exported model was fitted on (what it learned from), and
    probabilities on the held-out test split (in-sample scores would be more extreme than
    served ones): under ``fit_rows`` ``all`` the exported model has no held-out rows, so they
    are the recipe's fitted on the training split, the same recipe on 80 % of the rows.
    """
    provenance = reference_provenance(
        settings.seed, settings.test_size, file_sha256(Path(settings.data_path))
    )
    provenance["attribute_sample"] = f"the exported model's training rows: {exported.description()}"
    if exported.fit_rows is FitRows.ALL:
        provenance["score_sample"] = (
            "held-out test split, scored by the same recipe fitted on the training split"
        )
    return Reference.from_rows(exported.x, evaluation.probability, provenance)
