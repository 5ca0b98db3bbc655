"""What a training run records: the MLflow run (parameters, metrics, plots, card, model), the
registered version, the promotion gate's step, the exported metadata and model folder."""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.models import infer_signature

from credit_risk import __version__
from credit_risk.card import log_assessment
from credit_risk.config import Family, Settings, challenger_folder
from credit_risk.data import file_sha256
from credit_risk.evaluate import (
    costs_of,
    save_plots,
    threshold_basis,
)
from credit_risk.fingerprint import log_fingerprint
from credit_risk.gate import RECIPE_FILE, recipe_record, record_evidence, run_gate
from credit_risk.model import SKOPS_TRUSTED_TYPES
from credit_risk.model_folder import DRIFT_REFERENCE_ARTIFACT, DRIFT_REFERENCE_FILE
from credit_risk.reasons import (
    SUBSTITUTES_ARTIFACT,
    SUBSTITUTES_KEY,
    SubstitutionReference,
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
from credit_risk.scorecard.family import TABLE_KEY
from credit_risk.scorecard.model import PointsScorecard
from credit_risk.scorecard.publish import log_scorecard
from credit_risk.train.fitting import (
    Evaluation,
    Exported,
    LoggedRun,
    SearchSummary,
    Split,
    _prefixed,
    drift_reference,
    feature_importances,
)
from credit_risk.tune import search_objective

log = logging.getLogger(__name__)


def log_run(
    settings: Settings,
    evaluation: Evaluation,
    exported: Exported,
    split: Split,
    search: SearchSummary | None,
) -> LoggedRun:
    """Log parameters, metrics, plots and the exported model to a new MLflow run.

    The ``test_*`` metrics are ``evaluation``'s (the recipe fitted on the training split); the
    run's ``test_metrics_model`` tag says so, and which rows the logged model was fitted on
    (``exported``, whose rows give the dataset fingerprint, :mod:`credit_risk.fingerprint`).
    ``search`` is None when the parameters were given rather than searched.
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
                "fit_rows": exported.fit_rows.value,
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
                "fit_rows": exported.fit_rows.value,
                "model_fitted_on": exported.description(),
                "test_metrics_model": exported.test_figures(),
            }
        )
        mlflow.log_dict(evaluation.matrix, "confusion_matrix.json")
        if isinstance(exported.pipeline, PointsScorecard):
            log_scorecard(exported.pipeline.points_table, evaluation.threshold, len(exported.x))
        reference = drift_reference(settings, evaluation, exported)
        mlflow.log_dict(reference.to_json(), DRIFT_REFERENCE_ARTIFACT)
        # What a registered version needs to give reasons (credit_risk.registry.load_registered).
        if isinstance(exported.reason_reference, SubstitutionReference):
            mlflow.log_dict(exported.reason_reference.to_json(), SUBSTITUTES_ARTIFACT)
        elif exported.reason_reference is not None:
            mlflow.log_dict(exported.reason_reference.to_json(), REASON_REFERENCE_ARTIFACT)
        mlflow.log_text(builtin_bytes().decode(), REASON_CODES_ARTIFACT)
        mlflow.log_dict(
            recipe_record(evaluation.params, settings, evaluation.threshold), RECIPE_FILE
        )
        fingerprint = exported.fingerprint()
        rows = exported.rows
        log_fingerprint(fingerprint, rows.hashes[rows.train], rows.hashes[rows.test])
        mlflow.set_tags(exported.tags())
        if search is not None:
            mlflow.log_metric("study_best_value", search.best_value)
            mlflow.set_tag("study_name", search.study_name)
        with tempfile.TemporaryDirectory() as folder:
            save_plots(
                split.y_test.to_numpy(),
                evaluation.probability,
                evaluation.threshold,
                feature_importances(exported.pipeline),
                Path(folder),
            )
            mlflow.log_artifacts(folder, "plots")
        log_assessment(
            evaluation.responsible,
            model_metadata(settings, run.info.run_id, "(unregistered)", evaluation, exported),
        )
        example = split.x_train.head(3)
        info = mlflow.sklearn.log_model(
            exported.pipeline,
            name="model",
            signature=infer_signature(example, exported.pipeline.predict(example)),
            input_example=example,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    return LoggedRun(run_id=run.info.run_id, model_uri=info.model_uri)


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
    exported: Exported,
) -> dict[str, Any]:
    """What ``metadata.json`` of an exported model says about it."""
    costs = costs_of(settings)
    scorecard = (
        {TABLE_KEY: exported.pipeline.table_}
        if isinstance(exported.pipeline, PointsScorecard)
        else {}
    )
    # A forest's approved reference, or gradient boosting's substitution reference.
    reference: dict[str, Any] = {"reason_reference": None}
    if isinstance(exported.reason_reference, SubstitutionReference):
        reference[SUBSTITUTES_KEY] = exported.reason_reference.to_json()
    elif exported.reason_reference is not None:
        reference["reason_reference"] = exported.reason_reference.to_json()
    elif settings.family is Family.GBM:
        reference[SUBSTITUTES_KEY] = None
    train_rows, test_rows = exported.evaluated
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
        # Which rows this model was fitted on, and where its test figures come from.
        "fit_rows": exported.fit_rows.value,
        "fitted_rows": len(exported.rows.train),
        "fitted_on": exported.description(),
        "test_evaluation": {
            "trained_rows": train_rows,
            "test_rows": test_rows,
            "of": exported.test_figures(),
        },
        "drift_reference": DRIFT_REFERENCE_FILE,
        "test_metrics": evaluation.test_metrics,
        "cv_metrics": evaluation.cv_metrics,
        "confusion_matrix": evaluation.matrix,
        "responsible": evaluation.responsible.to_json(),
        "reason_codes": reason_codes_record(),
        **reference,
        "data_sha256": file_sha256(Path(settings.data_path)),
        "fingerprint": exported.fingerprint().model_dump(mode="json"),
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
