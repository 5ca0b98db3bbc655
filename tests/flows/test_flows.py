"""The Prefect training flow against a temporary Prefect server (``prefect_test_harness``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy.exc
from mlflow.tracking import MlflowClient
from prefect.exceptions import ObjectNotFound

from credit_risk.config import challenger_folder
from credit_risk.flows import WEEKLY_CRON, is_transient, training_flow, weekly_deployment
from credit_risk.train import sequence as training
from tests.conftest import FAST_PARAMS, make_settings

WORSE_PARAMS = {"n_estimators": 5, "max_depth": 2, "max_features": 0.1}

pytestmark = pytest.mark.xdist_group("prefect")


@pytest.mark.slow
def test_flow_run_tunes_registers_and_exports_a_champion(
    prefect_harness: None, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, trials=2, cv_folds=2, n_jobs=1)
    result = training_flow(settings)

    assert result["model_version"] == "1"
    assert result["promote"] and result["reason"] == "no champion yet"
    assert set(result["params"]) >= {"n_estimators", "max_depth"}
    client = MlflowClient(settings.tracking_uri)
    champion = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert str(champion.version) == "1"
    assert client.get_run(result["run_id"]).data.tags["promotion"] == "no champion yet"
    assert (settings.model_dir / "metadata.json").exists()
    assert result["exported_to"] == [str(settings.model_dir)]


def test_gate_keeps_the_champion_when_the_challenger_is_worse(
    prefect_harness: None, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, cv_folds=3)
    first = training_flow(settings, params=FAST_PARAMS)
    exported = (settings.model_dir / "metadata.json").read_text()
    second = training_flow(settings, params=WORSE_PARAMS, output=str(tmp_path / "challenger"))

    assert first["promote"] and not second["promote"]
    assert "champion kept" in second["reason"]
    assert second["model_version"] == "2" and second["champion_version"] == "1"
    client = MlflowClient(settings.tracking_uri)
    champion = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert str(champion.version) == "1"
    # The champion export is untouched; the challenger went where it was asked to, and beside
    # the champion as the challenger the service scores in shadow.
    assert (settings.model_dir / "metadata.json").read_text() == exported
    assert second["exported_to"] == [str(tmp_path / "challenger"), str(challenger_folder(settings))]
    challenger = client.get_model_version_by_alias(settings.registered_model_name, "challenger")
    assert str(challenger.version) == "2"


def test_transient_failure_is_retried_and_the_flow_completes(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, cv_folds=2, task_retry_delay_seconds=0)
    real = training.register_version
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("tracking server unreachable: connection refused")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "register_version", flaky)
    result = training_flow(settings, params=WORSE_PARAMS)
    assert len(calls) == 2
    assert result["model_version"] == "1"


def test_permanent_failure_is_not_retried(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, cv_folds=2, task_retry_delay_seconds=0)
    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        raise ValueError("bad model name")

    monkeypatch.setattr(training, "fit_evaluate", broken)
    with pytest.raises(ValueError, match="bad model name"):
        training_flow(settings, params=FAST_PARAMS)
    assert len(calls) == 1


def test_invalid_data_fails_before_tuning(prefect_harness: None, tmp_path: Path) -> None:
    bad = tmp_path / "bad.data"
    bad.write_text(
        "A11 6 A34 A43 1169 A65 A75 4 A93 A101 4 A121 67 A143 A152 2 A173 1 A192 A201 7\n"
    )
    settings = make_settings(tmp_path, data_path=bad)
    with pytest.raises(ValueError):
        training_flow(settings)
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionError("refused"), True),
        (TimeoutError(), True),
        (requests.ConnectionError("Max retries exceeded with url"), True),
        (sqlite3.OperationalError("database is locked"), True),
        (
            sqlalchemy.exc.OperationalError(
                "SELECT 1", {}, Exception("server closed the connection")
            ),
            True,
        ),
        (RuntimeError("API request failed with code 503"), True),
        (ValueError("bad model name"), False),
        (ValueError("model version 5031 not found"), False),
        (KeyError("threshold"), False),
    ],
)
def test_is_transient_classifies_errors(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_weekly_deployment_has_the_cron_schedule() -> None:
    deployment = weekly_deployment()
    assert deployment.name == "weekly-retraining"
    assert [s.schedule.cron for s in deployment.schedules] == [WEEKLY_CRON]
    assert deployment.parameters == {}


def test_root_entry_point_runs_the_package_flow() -> None:
    import prefect_flow

    assert prefect_flow.training_flow is training_flow


@pytest.mark.slow
def test_flow_serve_registers_the_scheduled_deployment(
    prefect_harness: None, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    serve = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("credit-risk")),
            "flow",
            "serve",
            "--cron",
            "0 3 * * 1",
            "--name",
            "test-weekly",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_deployment_by_name("credit-risk-training/test-weekly")

    try:
        deadline = time.monotonic() + 120
        while True:
            assert serve.poll() is None, serve.stdout.read() if serve.stdout else ""
            try:
                deployment = asyncio.run(read())
                break
            except ObjectNotFound:
                assert time.monotonic() < deadline, "deployment never registered"
                time.sleep(1)
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * 1"]
    assert deployment.schedules[0].active
