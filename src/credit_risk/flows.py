"""Prefect 3 flows: the training run as tasks, and drift monitoring that retrains.

Thin: the training flow runs :func:`credit_risk.train.run_training`, the same sequence as
``credit-risk train``, with each of its steps (validate-data -> tune -> fit-evaluate ->
register -> promotion-gate -> export) as a task. Steps hand each other small values, never
DataFrames or fitted models (see :mod:`credit_risk.train`). Results are not cached or
persisted, so a retry or a re-run always recomputes.

Tasks that talk to the tracking server or the study database retry on transient failures
(connection refused or reset, database busy or restarting); other errors fail at once.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from credit_risk import train as training
from credit_risk.config import Settings, get_settings

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


_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
# Steps that only read the local data file: a failure there is bad data, not an outage.
NOT_RETRIED = frozenset({"validate-data"})


def as_tasks(settings: Settings) -> training.StepRunner:
    """A step runner that runs each training step as a Prefect task named after it.

    The task logs the step's (small) result to the run's log; every step but
    :data:`NOT_RETRIED` retries transient failures (:func:`with_retries`).
    """

    def run_as_task(name: str, step: Callable[P, R], /) -> Callable[P, R]:
        @functools.wraps(step)
        def logged(*args: P.args, **kwargs: P.kwargs) -> R:
            result = step(*args, **kwargs)
            get_run_logger().info("%s: %s", name, result)
            return result

        as_task = task(name=name, **_TASK_OPTIONS)(logged)
        return as_task if name in NOT_RETRIED else with_retries(as_task, settings)

    return run_as_task


@flow(name=FLOW_NAME, log_prints=True, persist_result=False)
def training_flow(
    settings: Settings | None = None,
    params: dict[str, Any] | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """Retrain, register and gate a model: :func:`credit_risk.train.run_training` as tasks.

    Args:
        settings: all configuration; None reads the environment (``CREDIT_RISK_*``) at run
            time, which is what a scheduled deployment does.
        params: fixed classifier parameters; None tunes.
        output: also export this run's model to this folder.

    Returns:
        Run id, model version, promotion decision, champion version, test metrics, exports.
    """
    settings = settings or get_settings()
    run = training.run_training(
        settings, params, Path(output) if output else None, run_step=as_tasks(settings)
    )
    result = run.result
    return {
        "run_id": result.run_id,
        "model_version": result.version,
        "params": result.params,
        "test_metrics": result.test_metrics,
        "data_sha256": run.data.sha256,
        "model_uri": result.model_uri,
        "promote": result.gate.promote,
        "reason": result.gate.reason,
        "gate": result.gate.evidence,
        "champion_version": result.champion_version,
        "exported_to": [str(folder) for folder in result.exported_to],
    }


@task(name="drift-monitor", **_TASK_OPTIONS)
def check_drift(settings: Settings, since: str | None) -> dict[str, Any]:
    """Test the decision log's recent inputs and scores against each model's reference."""
    from credit_risk.monitor import monitor, parse_since

    result = monitor(settings, since=parse_since(since))
    get_run_logger().info(result.summary())
    return {
        "drift": result.drift,
        "enough_data": result.enough_data,
        "decisions": result.current_rows,
        "tests": result.tests,
        "alarm_rate": result.alarm_rate,
        "reasons": result.reasons,
        "report": str(result.report_path),
    }


@task(name="new-data-check", **_TASK_OPTIONS)
def check_new_data(settings: Settings) -> dict[str, Any]:
    """Whether a retrain would read rows the champion has not seen (training_data's guard)."""
    from credit_risk.training_data import check_new_data as guard

    check = guard(settings)
    get_run_logger().info("new data: %s", check.reason)
    return {"retrain": check.retrain, "reason": check.reason, "new_rows": check.new_rows}


@flow(name="monitor-and-retrain", log_prints=True, persist_result=False)
def monitor_flow(settings: Settings | None = None, since: str | None = "7d") -> dict[str, Any]:
    """Check drift on the decision log; retrain (tune, gate, export) only when a test alarms
    and the rows a retrain would read include some the champion has not seen (by row hash).

    The monitor's tests hold their false-alarm rate (``monitor_alarm_rate``, per run) at any
    window size, so a quiet week of few decisions retrains no more often than that.

    Returns:
        The drift verdict, and under ``retrained`` the training flow's result when it ran; under
        ``retrain_skipped`` why it did not, when drift was found.
    """
    settings = settings or get_settings()
    drift = check_drift(settings, since)
    if drift["drift"]:
        new_data = check_new_data(settings)
        if not new_data["retrain"]:
            return {**drift, "retrained": None, "retrain_skipped": new_data["reason"]}
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
