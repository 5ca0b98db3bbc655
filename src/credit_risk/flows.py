"""Prefect 3 flow: validate data -> tune -> fit + evaluate -> register -> gate -> export.

Thin: every task calls one public function of :mod:`credit_risk.train`. Tasks hand each other
small values (parameters, run ids, model URIs, metric dicts), never DataFrames or fitted
models: each task that needs the data re-reads the (small, checksummed) file and re-splits it
with the same seed, and the fitted model travels through MLflow. Results are not cached or
persisted, so a retry or a re-run always recomputes.

Tasks that talk to the tracking server or the study database retry on transient failures
(connection refused or reset, database busy or restarting); other errors fail at once.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from credit_risk import train as training
from credit_risk.config import Settings, get_settings
from credit_risk.data import file_sha256

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

FLOW_NAME = "credit-risk-training"
DEPLOYMENT_NAME = "weekly-retraining"
WEEKLY_CRON = "0 3 * * 1"

# Substrings of error messages that mean "try again later", not "this is wrong".
TRANSIENT_MESSAGES = (
    "connection refused",
    "connection reset",
    "could not connect",
    "server closed the connection",
    "database is locked",
    "database is busy",
    "too many connections",
    "timed out",
    "timeout",
    "temporarily unavailable",
    "the database system is starting up",
    "the database system is shutting down",
    "max retries exceeded",
)
# Gateway and availability errors of the tracking server (HTTP 502, 503, 504).
TRANSIENT_STATUS = re.compile(r"\b50[234]\b")


def is_transient(error: BaseException, depth: int = 0) -> bool:
    """Whether an error is worth retrying: network, tracking server or database unavailability.

    Args:
        error: the exception a task raised (its causes are examined too).
        depth: how far down the chain of causes this call is.

    Returns:
        True for connection problems and busy/locked/restarting databases.
    """
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return "locked" in str(error) or "busy" in str(error)
    try:
        import sqlalchemy.exc

        if isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.DisconnectionError):
            return True
    except ImportError:  # pragma: no cover - sqlalchemy ships with mlflow and optuna
        pass
    try:
        import requests

        if isinstance(error, requests.ConnectionError | requests.Timeout):
            return True
    except ImportError:  # pragma: no cover
        pass
    message = str(error).lower()
    if any(text in message for text in TRANSIENT_MESSAGES) or TRANSIENT_STATUS.search(message):
        return True
    cause = error.__cause__ or error.__context__
    return cause is not None and depth < 5 and is_transient(cause, depth + 1)


def retry_if_transient(task: Any, task_run: TaskRun, state: State) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            state.result()
        except BaseException as raised:  # the state re-raises the task's exception
            error = raised
    return error is not None and is_transient(error)


def with_retries(step: Task[P, R], settings: Settings) -> Task[P, R]:
    """The task, retried ``settings.task_retries`` times on transient failures only."""
    return step.with_options(
        retries=settings.task_retries,
        retry_delay_seconds=settings.task_retry_delay_seconds,
        retry_condition_fn=retry_if_transient,
    )


@dataclass(frozen=True)
class FitSummary:
    """What the fit task hands on: ids and small metric dicts, not the fitted model."""

    run_id: str
    model_uri: str
    threshold: float
    test_metrics: dict[str, float]
    metadata: dict[str, Any]
    limits_failed: list[str]  # fairness limits of the promotion gate that the run breaks


_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="validate-data", **_TASK_OPTIONS)
def validate_data(settings: Settings) -> dict[str, Any]:
    """Read and validate the training file; fail the flow on bad data before any tuning."""
    split = training.split_training_data(settings)
    summary = {
        "path": str(settings.data_path),
        "sha256": file_sha256(Path(settings.data_path)),
        "train_rows": len(split.y_train),
        "test_rows": len(split.y_test),
        "bad_rate": float(split.y_train.mean()),
    }
    get_run_logger().info("data ok: %s", summary)
    return summary


@task(name="tune", **_TASK_OPTIONS)
def tune_params(settings: Settings) -> dict[str, Any]:
    """Optuna search on the training split (or the stored study's best with ``trials=0``)."""
    params, _ = training.search_params(settings, training.split_training_data(settings))
    return params


@task(name="fit-evaluate", **_TASK_OPTIONS)
def fit_and_log(settings: Settings, params: dict[str, Any], tuned: bool) -> FitSummary:
    """Fit, evaluate on the test split and log the run and model to MLflow."""
    split = training.split_training_data(settings)
    evaluation = training.fit_evaluate(settings, params, split)
    study = None
    if tuned and settings.storage and settings.study_name:
        study = training.load_study(settings)
    logged = training.log_run(settings, evaluation, split, study)
    metadata = training.model_metadata(settings, logged.run_id, "", evaluation)
    return FitSummary(
        logged.run_id,
        logged.model_uri,
        evaluation.threshold,
        evaluation.test_metrics,
        metadata,
        evaluation.responsible.limits_failed,
    )


@task(name="register", **_TASK_OPTIONS)
def register(settings: Settings, fitted: FitSummary) -> str:
    """Register the logged model as a new version of the registered model."""
    return training.register_version(
        settings, training.LoggedRun(fitted.run_id, fitted.model_uri), fitted.threshold
    )


@task(name="promotion-gate", **_TASK_OPTIONS)
def gate(settings: Settings, fitted: FitSummary, version: str) -> dict[str, Any]:
    """Challenger vs champion on the same test split; the alias moves only if it is better."""
    split = training.split_training_data(settings)
    decision, champion = training.gate_version(
        settings, fitted.run_id, version, split, fitted.test_metrics, fitted.limits_failed
    )
    get_run_logger().info("gate: %s", decision.reason)
    return {"promote": decision.promote, "reason": decision.reason, "champion_version": champion}


@task(name="export", **_TASK_OPTIONS)
def export(
    settings: Settings, fitted: FitSummary, version: str, promote: bool, output: str | None
) -> list[str]:
    """Export the champion to ``settings.model_dir`` (and any run to ``output``)."""
    metadata = {**fitted.metadata, "model_version": version}
    folders = training.export_version(
        settings, fitted.model_uri, metadata, promote, Path(output) if output else None
    )
    return [str(folder) for folder in folders]


@flow(name=FLOW_NAME, log_prints=True, persist_result=False)
def training_flow(
    settings: Settings | None = None,
    params: dict[str, Any] | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """Retrain, register and gate a model; the same run as ``credit-risk train``.

    Args:
        settings: all configuration; None reads the environment (``CREDIT_RISK_*``) at run
            time, which is what a scheduled deployment does.
        params: fixed classifier parameters; None tunes.
        output: also export this run's model to this folder.

    Returns:
        Run id, model version, promotion decision, champion version, test metrics, exports.
    """
    settings = settings or get_settings()
    data = validate_data(settings)
    tuned = params is None
    if tuned:
        params = with_retries(tune_params, settings)(settings)
    assert params is not None
    fitted = with_retries(fit_and_log, settings)(settings, params, tuned)
    version = with_retries(register, settings)(settings, fitted)
    decision = with_retries(gate, settings)(settings, fitted, version)
    exported = with_retries(export, settings)(
        settings, fitted, version, decision["promote"], output
    )
    return {
        "run_id": fitted.run_id,
        "model_version": version,
        "params": params,
        "test_metrics": fitted.test_metrics,
        "data_sha256": data["sha256"],
        "model_uri": fitted.model_uri,
        **decision,
        "exported_to": exported,
    }


@task(name="drift-monitor", **_TASK_OPTIONS)
def check_drift(settings: Settings, since: str | None) -> dict[str, Any]:
    """Compare the decision log's recent inputs and scores with the training data."""
    from credit_risk.monitor import monitor, parse_since

    result = monitor(settings, since=parse_since(since))
    get_run_logger().info(result.summary())
    return {"drift": result.drift, "reasons": result.reasons, "report": str(result.report_path)}


@flow(name="monitor-and-retrain", log_prints=True, persist_result=False)
def monitor_flow(settings: Settings | None = None, since: str | None = "7d") -> dict[str, Any]:
    """Check drift on the decision log; retrain (tune, gate, export) only when it is found.

    Returns:
        The drift verdict, and under ``retrained`` the training flow's result when it ran.
    """
    settings = settings or get_settings()
    drift = check_drift(settings, since)
    if drift["drift"]:
        return {**drift, "retrained": training_flow(settings)}
    return {**drift, "retrained": None}


def weekly_deployment(cron: str = WEEKLY_CRON, name: str = DEPLOYMENT_NAME) -> Any:
    """A deployment of :func:`training_flow` on a cron schedule (settings read at run time)."""
    return training_flow.to_deployment(
        name=name,
        cron=cron,
        tags=["credit-risk", "retraining"],
        description="Scheduled retraining: tune, fit, register, gate, export the champion.",
    )


def serve_weekly(cron: str = WEEKLY_CRON, name: str = DEPLOYMENT_NAME) -> None:
    """Serve the scheduled deployment from this process (blocks; Ctrl-C stops it)."""
    from prefect import serve

    serve(weekly_deployment(cron, name))
