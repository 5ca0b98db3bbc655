"""The training run, defined once: validate -> tune -> fit -> register -> gate -> export.

The model family (``Settings.family``) is the forest, tuned, or a points scorecard
(:mod:`credit_risk.scorecard`), which has nothing to tune and skips the search.

:func:`run_training` orders the steps; ``credit-risk train`` runs them in this process
(:func:`train`) and the Prefect flow runs the same sequence with a step runner that makes each
named step a task (:mod:`credit_risk.flows`). Steps hand each other small values (parameters,
run ids, model URIs, metric dicts), never DataFrames or fitted models: a step that needs the
data re-reads the (small, checksummed) file, and with outcomes the labelled decisions whose
outcomes were known when the run started (:mod:`credit_risk.training_data`), and re-splits them
with the same seed; the fitted model travels through MLflow, so a retried step recomputes from
the same inputs.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.models import infer_signature

from credit_risk import __version__
from credit_risk.card import Assessment, assess_run, log_assessment
from credit_risk.config import Family, Settings, challenger_folder
from credit_risk.data import Dataset, check_trainable, file_sha256
from credit_risk.evaluate import (
    classification_metrics,
    confusion,
    costs_of,
    save_plots,
    summarise,
    threshold_basis,
)
from credit_risk.fingerprint import fingerprint_tags, log_fingerprint
from credit_risk.gate import RECIPE_FILE, recipe_record, record_evidence, run_gate
from credit_risk.model import SKOPS_TRUSTED_TYPES, build_model, classifier_importances
from credit_risk.model_folder import DRIFT_REFERENCE_ARTIFACT, DRIFT_REFERENCE_FILE, DataFingerprint
from credit_risk.monitor import Reference, reference_provenance
from credit_risk.reasons import (
    ReasonReference,
    ReasonsUnavailable,
    build_reference,
    builtin_bytes,
    reason_codes_record,
)
from credit_risk.registry import (
    EXPORT_METADATA_ARTIFACT,
    FAMILY_TAG,
    REASON_CODES_ARTIFACT,
    REASON_REFERENCE_ARTIFACT,
    THRESHOLD_TAG,
    GateDecision,
    champion_version,
    configure_mlflow,
    export_model,
    store_lock,
)
from credit_risk.scorecard.family import TABLE_KEY, scorecard_params
from credit_risk.scorecard.model import PointsScorecard
from credit_risk.scorecard.publish import log_scorecard
from credit_risk.training_data import RunData, load_run_data, pin_outcomes
from credit_risk.tune import cross_validate, load_study, search_objective, tune

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


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


def feature_importances(pipeline: Any) -> dict[str, float]:
    """Impurity importances of the encoded features, by encoded feature name.

    A points scorecard's: the information value of each attribute it scores.
    """
    if isinstance(pipeline, PointsScorecard):
        return {a.attribute: float(a.iv or 0.0) for a in pipeline.points_table.selected}
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
    # The approved training rows the adverse-action reasons are measured from; None when the
    # model cannot give reasons (then it fails the promotion gate and is never served).
    reason_reference: ReasonReference | None
    reasons_unavailable: str | None = None
    # Bad rate of the rows the threshold was chosen on (the prior shift's sample rate).
    sample_bad_rate: float | None = None


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

    A scorecard's are completed with its settings (:func:`scorecard_params`).
    """
    if settings.family is Family.SCORECARD:
        return {**scorecard_params(settings), **params}
    return {
        "n_estimators": settings.n_estimators,
        "calibration": settings.calibration,
        "calibration_folds": settings.calibration_folds,
        **params,
    }


def reason_reference(
    pipeline: Any, split: Split, threshold: float
) -> tuple[ReasonReference | None, str | None]:
    """What a fitted model's adverse-action reasons are measured from, or why it has none.

    A forest: its approved reference over the training split (:func:`build_reference`). A
    points scorecard: nothing (its reasons are the points lost against each attribute's best
    bin, in its table), but it must approve its best possible score.

    Returns:
        The reference (None for a scorecard, or when there is none) and, when the model
        cannot give reasons (it is then never promoted), why not.
    """
    if isinstance(pipeline, PointsScorecard):
        problem = pipeline.points_table.reasons_unavailable(threshold)
        unavailable = None if problem is None else f"no adverse-action reasons: {problem}"
    else:
        try:
            return build_reference(pipeline, split.x_train, threshold), None
        except ReasonsUnavailable as error:
            unavailable = f"no adverse-action reasons: {error}"
    if unavailable is not None:
        log.warning("%s", unavailable)
    return None, unavailable


def fit_evaluate(settings: Settings, params: dict[str, Any], split: Split) -> Evaluation:
    """Cross-validate on the training split (threshold, CV metrics), refit on it, test.

    The threshold follows ``settings.threshold_rule`` (see
    :func:`credit_risk.evaluate.threshold_rule`); either way the test split plays no part in it.
    """
    costs = costs_of(settings)
    params = final_params(settings, params)
    cv = cross_validate(params, split.x_train, split.y_train, settings)
    pipeline = build_model(settings, params)
    pipeline.fit(split.x_train, split.y_train.to_numpy())
    probability = pipeline.predict_proba(split.x_test)[:, 1]
    y_test = split.y_test.to_numpy()
    reference, unavailable = reason_reference(pipeline, split, cv.threshold)
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
        reason_reference=reference,
        reasons_unavailable=unavailable,
        sample_bad_rate=float(split.y_train.mean()),
    )


def log_run(
    settings: Settings,
    evaluation: Evaluation,
    split: Split,
    search: SearchSummary | None,
    data: RunData | None = None,
) -> LoggedRun:
    """Log parameters, metrics, plots and the model to a new MLflow run.

    ``search`` is None when the parameters were given rather than searched; ``data`` (the rows
    ``split`` came from) adds the dataset fingerprint (:mod:`credit_risk.fingerprint`).
    """
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
                "trials": settings.trials if search else 0,
                "protected_policy": settings.protected_policy.value,
                "family": settings.family.value,
                "cost_bad_accepted": costs.bad_accepted,
                "cost_good_rejected": costs.good_rejected,
                "train_with_outcomes": settings.train_with_outcomes,
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
                "family": settings.family.value,
            }
        )
        mlflow.log_dict(evaluation.matrix, "confusion_matrix.json")
        if isinstance(evaluation.pipeline, PointsScorecard):
            log_scorecard(
                evaluation.pipeline.points_table, evaluation.threshold, len(split.x_train)
            )
        reference = drift_reference(settings, evaluation, split)
        mlflow.log_dict(reference.to_json(), DRIFT_REFERENCE_ARTIFACT)
        # What a registered version needs to give reasons (credit_risk.registry.load_registered).
        if evaluation.reason_reference is not None:
            mlflow.log_dict(evaluation.reason_reference.to_json(), REASON_REFERENCE_ARTIFACT)
        mlflow.log_text(builtin_bytes().decode(), REASON_CODES_ARTIFACT)
        mlflow.log_dict(
            recipe_record(evaluation.params, settings, evaluation.threshold), RECIPE_FILE
        )
        fingerprint = None
        if data is not None:
            fingerprint = data.fingerprint()
            log_fingerprint(fingerprint, data.hashes[data.train], data.hashes[data.test])
        if search is not None:
            mlflow.log_metric("study_best_value", search.best_value)
            mlflow.set_tag("study_name", search.study_name)
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
            model_metadata(settings, run.info.run_id, "(unregistered)", evaluation, fingerprint),
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


def drift_reference(settings: Settings, evaluation: Evaluation, split: Split) -> Reference:
    """What the drift monitor compares this model's decisions with (stored with the model).

    The training split's inputs (what the model learned from) and the model's probabilities on
    the held-out test split (in-sample scores would be more extreme than served ones).
    """
    return Reference.from_rows(
        split.x_train,
        evaluation.probability,
        reference_provenance(
            settings.seed, settings.test_size, file_sha256(Path(settings.data_path))
        ),
    )


def register_version(
    settings: Settings, logged: LoggedRun, threshold: float, tags: dict[str, str] | None = None
) -> str:
    """Register the run's model as a new version tagged with its threshold and objective.

    ``tags``: more version tags (the dataset fingerprint's summary).
    """
    client = configure_mlflow(settings)
    name = settings.registered_model_name
    with store_lock(settings.tracking_uri, "register a model version"):
        version = str(mlflow.register_model(logged.model_uri, name).version)
        client.set_model_version_tag(name, version, THRESHOLD_TAG, str(threshold))
        client.set_model_version_tag(name, version, "objective", settings.objective.value)
        client.set_model_version_tag(name, version, FAMILY_TAG, settings.family.value)
        for key, value in (tags or {}).items():
            client.set_model_version_tag(name, version, key, value)
    return version


def gate_version(
    settings: Settings, run_id: str, version: str, limits_failed: list[str] | None = None
) -> tuple[GateDecision, str]:
    """Compare the challenger with the champion on rows neither trained on; move the alias if
    the challenger is better with the configured confidence (:func:`credit_risk.gate.run_gate`).

    The evidence goes to the run and to the version's tags (:func:`record_evidence`).

    Returns:
        The decision and the champion's version number after it.
    """
    client = configure_mlflow(settings)
    name = settings.registered_model_name
    # One run at a time compares with the champion and moves the alias: two runs racing here
    # could each promote against a champion the other had just replaced.
    with store_lock(settings.tracking_uri, "compare with the champion"):
        report = run_gate(settings, client, version, limits_failed)
        log.info(
            "promotion gate for %s v%s (%.1f s): %s", name, version, report.seconds, report.reason
        )
        record_evidence(client, settings, run_id, version, report)
        if report.promote:
            client.set_registered_model_alias(name, settings.champion_alias, version)
        elif not limits_failed:  # kept on the comparison: it scores in shadow (api/shadow.py)
            client.set_registered_model_alias(name, settings.challenger_alias, version)
        champion = champion_version(client, name, settings.champion_alias)
    gate = GateDecision(report.promote, report.reason, report.evidence(settings))
    return gate, str(champion.version if champion else version)


def model_metadata(
    settings: Settings,
    run_id: str,
    version: str,
    evaluation: Evaluation,
    fingerprint: DataFingerprint | None = None,
) -> dict[str, Any]:
    """What ``metadata.json`` of an exported model says about it."""
    costs = costs_of(settings)
    scorecard = (
        {TABLE_KEY: evaluation.pipeline.table_}
        if isinstance(evaluation.pipeline, PointsScorecard)
        else {}
    )
    return {
        "model_name": settings.registered_model_name,
        "family": settings.family.value,
        "model_version": version,
        "run_id": run_id,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "objective": settings.objective.value,
        "threshold": evaluation.threshold,
        "threshold_rule": threshold_basis(settings, evaluation.params),
        # The threshold is Bayes on this population rate (None: the sample's), see evaluate.prior.
        "population_bad_rate": settings.population_bad_rate,
        "sample_bad_rate": evaluation.sample_bad_rate,
        "cost_matrix": {"bad_accepted": costs.bad_accepted, "good_rejected": costs.good_rejected},
        "protected_policy": settings.protected_policy.value,
        "params": evaluation.params,
        "seed": settings.seed,
        "test_size": settings.test_size,
        "drift_reference": DRIFT_REFERENCE_FILE,
        "test_metrics": evaluation.test_metrics,
        "cv_metrics": evaluation.cv_metrics,
        "confusion_matrix": evaluation.matrix,
        "responsible": evaluation.responsible.to_json(),
        "reason_codes": reason_codes_record(),
        "reason_reference": (
            evaluation.reason_reference.to_json() if evaluation.reason_reference else None
        ),
        "data_sha256": file_sha256(Path(settings.data_path)),
        "fingerprint": fingerprint.model_dump(mode="json") if fingerprint else None,
        "package_version": __version__,
        **scorecard,
    }


def export_version(
    settings: Settings,
    model_uri: str,
    metadata: dict[str, Any],
    promoted: bool,
    output: Path | None = None,
) -> list[Path]:
    """Export to ``output`` (any run), and to ``settings.model_dir`` (a champion) or the
    challenger folder (a version the gate kept out on the comparison: it took the challenger
    alias; one that failed the gate's limits took no alias and is not exported there).

    The alias's folder is written under the store's lock, and only if this version still
    holds the alias: a run that took it after this one and exported first must not be
    overwritten. The metadata also goes to the run (:data:`EXPORT_METADATA_ARTIFACT`), so that
    ``credit-risk promote`` can export this version again exactly.
    """
    exported: list[Path] = []
    reference = (
        f"runs:/{metadata['run_id']}/{DRIFT_REFERENCE_ARTIFACT}"
        if metadata.get("drift_reference")
        else None
    )
    if output is not None:
        exported.append(export_model(model_uri, metadata, output, reference))
    client = configure_mlflow(settings)
    client.log_text(
        metadata["run_id"], json.dumps(metadata, indent=2, default=str), EXPORT_METADATA_ARTIFACT
    )
    alias, folder = (
        (settings.champion_alias, settings.model_dir)
        if promoted
        else (settings.challenger_alias, challenger_folder(settings))
    )
    with store_lock(settings.tracking_uri, f"export the {alias}"):
        holder = champion_version(client, settings.registered_model_name, alias)
        held_by = None if holder is None else str(holder.version)
        version = str(metadata.get("model_version"))
        if held_by == version or (promoted and held_by is None):
            exported.append(export_model(model_uri, metadata, folder, reference))
        else:
            log.info(
                "not exporting v%s to %s: the %s alias is held by %s",
                version,
                folder,
                alias,
                f"v{held_by}" if held_by else "no version",
            )
    return exported


class StepRunner(Protocol):
    """Runs one named step of :func:`run_training` (the flow's runner makes it a Prefect task)."""

    def __call__(self, name: str, step: Callable[P, R], /) -> Callable[P, R]: ...


def call_directly(name: str, step: Callable[P, R], /) -> Callable[P, R]:
    """The default step runner: the step itself, in this process."""
    return step


@dataclass(frozen=True)
class DataSummary:
    """What the data check found: the file, its checksum, the split sizes, the bad rate."""

    path: str
    sha256: str
    train_rows: int
    test_rows: int
    bad_rate: float
    # Labelled decisions read from the decision log (training with outcomes).
    labelled_rows: int = 0


@dataclass(frozen=True)
class FitSummary:
    """What the fit hands on: ids and small metric dicts, not the fitted model."""

    run_id: str
    model_uri: str
    threshold: float
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float] = field(repr=False)
    # Promotion-gate limits the fairness audit breaks (credit_risk.card.assess_run).
    limits_failed: list[str] | None
    # metadata.json of the export, but for the version number (not known before registering).
    metadata: dict[str, Any] = field(repr=False)
    # Registry version tags summarising the dataset fingerprint.
    data_tags: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class TrainingRun:
    """A finished training run: what the data check found and what the run produced."""

    data: DataSummary
    result: TrainingResult


def validate_data(settings: Settings) -> DataSummary:
    """Read, validate and split the run's rows: bad data fails here, before any tuning."""
    data = run_data(settings)
    split = Split(*data.split())
    return DataSummary(
        path=str(settings.data_path),
        sha256=file_sha256(Path(settings.data_path)),
        train_rows=len(split.y_train),
        test_rows=len(split.y_test),
        bad_rate=float(split.y_train.mean()),
        labelled_rows=int(data.labelled.sum()),
    )


def tune_params(settings: Settings) -> SearchSummary:
    """Optuna search on the training split (or the stored study's best with ``trials=0``)."""
    params, study = search_params(settings, split_training_data(settings))
    return SearchSummary(params, study.study_name, float(study.best_value))


def fit_and_log(
    settings: Settings, params: dict[str, Any], search: SearchSummary | None
) -> FitSummary:
    """Fit, evaluate on the test split and log the run and its model to MLflow."""
    data = run_data(settings)
    split = Split(*data.split())
    evaluation = fit_evaluate(settings, params, split)
    logged = log_run(settings, evaluation, split, search, data)
    fingerprint = data.fingerprint()
    return FitSummary(
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        threshold=evaluation.threshold,
        test_metrics=evaluation.test_metrics,
        cv_metrics=evaluation.cv_metrics,
        # A model that cannot give reasons for its rejections is never promoted.
        limits_failed=[
            *evaluation.responsible.limits_failed,
            *([evaluation.reasons_unavailable] if evaluation.reasons_unavailable else []),
        ],
        metadata=model_metadata(settings, logged.run_id, "", evaluation, fingerprint),
        data_tags=fingerprint_tags(fingerprint),
    )


def run_training(
    settings: Settings,
    params: dict[str, Any] | None = None,
    output: Path | None = None,
    run_step: StepRunner = call_directly,
) -> TrainingRun:
    """The training sequence, each step run through ``run_step`` under its name.

    Args:
        settings: all configuration (data, seed, objective, trials, stores, family).
        params: fixed classifier hyperparameters; None runs the Optuna search (a scorecard
            is not tuned: None takes its parameters from the settings).
        output: also export this run's model (champion or not) to this folder.
        run_step: how each step runs (default: directly; the flow: as a Prefect task).

    Returns:
        The data check's summary and the run's result.
    """
    started = time.perf_counter()
    # Every step (and the gate) reads the labelled decisions whose outcomes are known now.
    settings = pin_outcomes(settings)
    data = run_step("validate-data", validate_data)(settings)
    search = None
    if params is None and settings.family is Family.SCORECARD:
        params = scorecard_params(settings)  # nothing to tune: binning is fitted per attribute
    if params is None:
        search = run_step("tune", tune_params)(settings)
        params = search.params
    fitted = run_step("fit-evaluate", fit_and_log)(settings, params, search)
    logged = LoggedRun(fitted.run_id, fitted.model_uri)
    version = run_step("register", register_version)(
        settings, logged, fitted.threshold, fitted.data_tags
    )
    gate, champion_number = run_step("promotion-gate", gate_version)(
        settings, fitted.run_id, version, fitted.limits_failed
    )
    metadata = {**fitted.metadata, "model_version": version, "gate": gate.evidence}
    exported = run_step("export", export_version)(
        settings, fitted.model_uri, metadata, gate.promote, output
    )
    result = TrainingResult(
        run_id=fitted.run_id,
        model_uri=fitted.model_uri,
        model_name=settings.registered_model_name,
        version=version,
        params=params,
        threshold=fitted.threshold,
        test_metrics=fitted.test_metrics,
        cv_metrics=fitted.cv_metrics,
        gate=gate,
        champion_version=champion_number,
        exported_to=exported,
        seconds=time.perf_counter() - started,
    )
    return TrainingRun(data, result)


def train(
    settings: Settings, params: dict[str, Any] | None = None, output: Path | None = None
) -> TrainingResult:
    """Run one training run end to end, in this process (:func:`run_training`).

    Args:
        settings: all configuration (data, seed, objective, trials, stores).
        params: fixed classifier hyperparameters; None runs the Optuna search.
        output: also export this run's model (champion or not) to this folder.

    Returns:
        The run's ids, metrics, and the promotion decision.
    """
    return run_training(settings, params, output).result


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
    evidence = result.gate.evidence or {}
    if evidence.get("summary"):
        lines.append(f"       evidence: {evidence['summary']}")
    lines += [f"       note: {note}" for note in evidence.get("notes", [])]
    if evidence:
        lines.append(f"       gate took {evidence['seconds']:.1f} s")
    lines += [f"exported to {path}" for path in result.exported_to]
    return "\n".join(lines)
