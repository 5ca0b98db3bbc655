"""The training run: split -> tune -> refit -> evaluate -> log -> register -> gate -> export."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.models import infer_signature

from credit_risk import __version__
from credit_risk.card import Assessment, assess_run, log_assessment
from credit_risk.config import (
    DEFAULT_DATA,
    GERMAN_DATA_SHA256,
    Objective,
    ProtectedPolicy,
    Settings,
)
from credit_risk.data import Dataset, file_sha256, read_applicants, split_dataset
from credit_risk.evaluate import (
    classification_metrics,
    confusion,
    save_plots,
    summarise,
)
from credit_risk.model import SKOPS_TRUSTED_TYPES, build_pipeline, classifier_importances
from credit_risk.registry import (
    THRESHOLD_TAG,
    GateDecision,
    champion_version,
    configure_mlflow,
    export_model,
    promotion_gate,
)
from credit_risk.tune import (
    costs_of,
    cross_validate,
    load_study,
    search_objective,
    threshold_basis,
    tune,
)

log = logging.getLogger(__name__)

# The metric the promotion gate compares, per objective, and whether higher is better.
GATE_METRIC: dict[Objective, tuple[str, bool]] = {
    Objective.COST: ("cost", False),
    Objective.RECALL: ("recall_bad", True),
    Objective.AUC: ("roc_auc", True),
}


@dataclass
class TrainingResult:
    """What a training run produced."""

    run_id: str
    model_uri: str
    model_name: str
    version: str
    params: dict[str, Any]
    threshold: float
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float]
    gate: GateDecision
    champion_version: str
    exported_to: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def load_training_data(settings: Settings) -> Dataset:
    """Read the training file; the shipped german.data must also match its checksum."""
    shipped = Path(settings.data_path).resolve() == DEFAULT_DATA.resolve()
    return read_applicants(settings.data_path, GERMAN_DATA_SHA256 if shipped else None)


def feature_importances(pipeline: Any) -> dict[str, float]:
    """Impurity importances of the encoded features, by encoded feature name."""
    names = pipeline.named_steps["encode"].get_feature_names_out()
    values = classifier_importances(pipeline.named_steps["classifier"])
    return {str(n): float(v) for n, v in zip(names, values, strict=True)}


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
    """A pipeline fitted on the training split, its threshold and its metrics."""

    pipeline: Any
    params: dict[str, Any]
    threshold: float
    probability: np.ndarray
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float]
    matrix: dict[str, Any]
    # Fairness audit, calibration and explanations (credit_risk.card.assess_run).
    responsible: Assessment


@dataclass(frozen=True)
class LoggedRun:
    """An MLflow run holding a logged (not yet registered) model."""

    run_id: str
    model_uri: str


def split_training_data(settings: Settings) -> Split:
    """Read and validate the training file, then split it (stratified, seeded)."""
    dataset = load_training_data(settings)
    return Split(*split_dataset(dataset, settings.test_size, settings.seed))


def search_params(settings: Settings, split: Split) -> tuple[dict[str, Any], optuna.Study | None]:
    """Tune on the training split; with ``trials=0`` and a named stored study, reuse its best.

    Returns:
        The classifier parameters and the study (None when no study was used).
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
    """``params`` completed with the settings' tree count and calibration (``params`` win)."""
    return {
        "n_estimators": settings.n_estimators,
        "calibration": settings.calibration,
        "calibration_folds": settings.calibration_folds,
        **params,
    }


def fit_evaluate(settings: Settings, params: dict[str, Any], split: Split) -> Evaluation:
    """Cross-validate on the training split (threshold, CV metrics), refit on it, test.

    The threshold follows ``settings.threshold_rule`` (see :func:`credit_risk.tune.threshold_rule`);
    either way the test split plays no part in it.
    """
    costs = costs_of(settings)
    drop_protected = settings.protected_policy is ProtectedPolicy.EXCLUDE
    params = final_params(settings, params)
    cv = cross_validate(params, split.x_train, split.y_train, settings)
    pipeline = build_pipeline(params, settings.seed, drop_protected, settings.n_jobs)
    pipeline.fit(split.x_train, split.y_train.to_numpy())
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
    )


def log_run(
    settings: Settings, evaluation: Evaluation, split: Split, study: optuna.Study | None
) -> LoggedRun:
    """Log parameters, metrics, plots and the model to a new MLflow run."""
    configure_mlflow(settings)
    costs = costs_of(settings)
    with mlflow.start_run(run_name=f"train-{settings.objective.value}") as run:
        mlflow.log_params(
            {
                **evaluation.params,
                "seed": settings.seed,
                "objective": settings.objective.value,
                "threshold_rule": threshold_basis(settings, evaluation.params),
                "search_objective": search_objective(settings).value,
                "cv_folds": settings.cv_folds,
                "test_size": settings.test_size,
                "trials": settings.trials if study else 0,
                "protected_policy": settings.protected_policy.value,
                "cost_bad_accepted": costs.bad_accepted,
                "cost_good_rejected": costs.good_rejected,
            }
        )
        mlflow.log_metrics(
            {
                **_prefixed("cv_", evaluation.cv_metrics),
                **_prefixed("test_", evaluation.test_metrics),
                "threshold": evaluation.threshold,
            }
        )
        mlflow.set_tags(
            {
                "data_sha256": file_sha256(Path(settings.data_path)),
                "data_path": str(settings.data_path),
                "package_version": __version__,
            }
        )
        mlflow.log_dict(evaluation.matrix, "confusion_matrix.json")
        if study is not None:
            mlflow.log_metric("study_best_value", float(study.best_value))
            mlflow.set_tag("study_name", study.study_name)
        with tempfile.TemporaryDirectory() as folder:
            save_plots(
                split.y_test.to_numpy(),
                evaluation.probability,
                evaluation.threshold,
                feature_importances(evaluation.pipeline),
                Path(folder),
            )
            mlflow.log_artifacts(folder, "plots")
        log_assessment(
            evaluation.responsible,
            model_metadata(settings, run.info.run_id, "(unregistered)", evaluation),
        )
        example = split.x_train.head(3)
        info = mlflow.sklearn.log_model(
            evaluation.pipeline,
            name="model",
            signature=infer_signature(example, evaluation.pipeline.predict(example)),
            input_example=example,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    return LoggedRun(run_id=run.info.run_id, model_uri=info.model_uri)


def register_version(settings: Settings, logged: LoggedRun, threshold: float) -> str:
    """Register the run's model as a new version tagged with its threshold and objective."""
    client = configure_mlflow(settings)
    name = settings.registered_model_name
    version = str(mlflow.register_model(logged.model_uri, name).version)
    client.set_model_version_tag(name, version, THRESHOLD_TAG, str(threshold))
    client.set_model_version_tag(name, version, "objective", settings.objective.value)
    return version


def gate_version(
    settings: Settings,
    run_id: str,
    version: str,
    split: Split,
    challenger_metrics: dict[str, float],
    limits_failed: list[str] | None = None,
) -> tuple[GateDecision, str]:
    """Compare the challenger with the champion on the same test split; move the alias if better.

    Returns:
        The decision and the champion's version number after it.
    """
    client = configure_mlflow(settings)
    name = settings.registered_model_name
    gate = _gate(client, settings, split.x_test, split.y_test, challenger_metrics, limits_failed)
    log.info("promotion gate for %s v%s: %s", name, version, gate.reason)
    client.set_tag(run_id, "promotion", gate.reason)
    if gate.promote:
        client.set_registered_model_alias(name, settings.champion_alias, version)
    champion = champion_version(client, name, settings.champion_alias)
    return gate, str(champion.version if champion else version)


def model_metadata(
    settings: Settings, run_id: str, version: str, evaluation: Evaluation
) -> dict[str, Any]:
    """What ``metadata.json`` of an exported model says about it."""
    costs = costs_of(settings)
    return {
        "model_name": settings.registered_model_name,
        "model_version": version,
        "run_id": run_id,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "objective": settings.objective.value,
        "threshold": evaluation.threshold,
        "threshold_rule": threshold_basis(settings, evaluation.params),
        "cost_matrix": {"bad_accepted": costs.bad_accepted, "good_rejected": costs.good_rejected},
        "protected_policy": settings.protected_policy.value,
        "params": evaluation.params,
        "seed": settings.seed,
        "test_metrics": evaluation.test_metrics,
        "cv_metrics": evaluation.cv_metrics,
        "confusion_matrix": evaluation.matrix,
        "responsible": evaluation.responsible.to_json(),
        "data_sha256": file_sha256(Path(settings.data_path)),
        "package_version": __version__,
    }


def export_version(
    settings: Settings,
    model_uri: str,
    metadata: dict[str, Any],
    promoted: bool,
    output: Path | None = None,
) -> list[Path]:
    """Export to ``output`` (any run) and to ``settings.model_dir`` (champions only)."""
    exported: list[Path] = []
    if output is not None:
        exported.append(export_model(model_uri, metadata, output))
    if promoted:
        exported.append(export_model(model_uri, metadata, settings.model_dir))
    return exported


def train(
    settings: Settings, params: dict[str, Any] | None = None, output: Path | None = None
) -> TrainingResult:
    """Run one training run end to end.

    Args:
        settings: all configuration (data, seed, objective, trials, stores).
        params: fixed classifier hyperparameters; None runs the Optuna search.
        output: also export this run's model (champion or not) to this folder.

    Returns:
        The run's ids, metrics, and the promotion decision.
    """
    started = time.perf_counter()
    split = split_training_data(settings)
    study = None
    if params is None:
        params, study = search_params(settings, split)
    evaluation = fit_evaluate(settings, params, split)
    logged = log_run(settings, evaluation, split, study)
    version = register_version(settings, logged, evaluation.threshold)
    gate, champion_number = gate_version(
        settings,
        logged.run_id,
        version,
        split,
        evaluation.test_metrics,
        evaluation.responsible.limits_failed,
    )
    metadata = model_metadata(settings, logged.run_id, version, evaluation)
    exported = export_version(settings, logged.model_uri, metadata, gate.promote, output)
    return TrainingResult(
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        model_name=settings.registered_model_name,
        version=version,
        params=params,
        threshold=evaluation.threshold,
        test_metrics=evaluation.test_metrics,
        cv_metrics=evaluation.cv_metrics,
        gate=gate,
        champion_version=champion_number,
        exported_to=exported,
        seconds=time.perf_counter() - started,
    )


def _gate(
    client: Any,
    settings: Settings,
    x_test: pd.DataFrame,
    y_test: pd.Series,
    challenger_metrics: dict[str, float],
    limits_failed: list[str] | None = None,
) -> GateDecision:
    """Score the current champion on this run's test split and compare."""
    metric, higher_is_better = GATE_METRIC[settings.objective]
    current = champion_version(client, settings.registered_model_name, settings.champion_alias)
    if current is None:
        return promotion_gate(
            metric, challenger_metrics[metric], None, higher_is_better, limits_failed
        )
    champion = mlflow.sklearn.load_model(
        f"models:/{settings.registered_model_name}@{settings.champion_alias}"
    )
    champion_threshold = float(current.tags.get(THRESHOLD_TAG, 0.5))
    champion_probability = champion.predict_proba(x_test)[:, 1]
    champion_metrics = classification_metrics(
        y_test.to_numpy(), champion_probability, champion_threshold, costs_of(settings)
    )
    return promotion_gate(
        metric,
        challenger_metrics[metric],
        champion_metrics[metric],
        higher_is_better,
        limits_failed,
    )


def result_summary(result: TrainingResult) -> str:
    """Readable summary of a run, for the CLI."""
    lines = [
        f"run {result.run_id}  model {result.model_name} v{result.version} "
        f"({result.seconds:.1f} s)",
        f"threshold {result.threshold:.4f}  params {json.dumps(result.params)}",
        "test:  " + "  ".join(f"{k}={v:.4f}" for k, v in result.test_metrics.items()),
        "cv:    "
        + "  ".join(
            f"{k[:-5]}={v:.4f}±{result.cv_metrics[k[:-5] + '_std']:.4f}"
            for k, v in result.cv_metrics.items()
            if k.endswith("_mean")
        ),
        f"gate:  {result.gate.reason}; champion is v{result.champion_version}",
    ]
    lines += [f"exported to {path}" for path in result.exported_to]
    return "\n".join(lines)
