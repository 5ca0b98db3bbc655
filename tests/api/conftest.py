"""Fixtures for the service: a loaded scorer, an app on it, and a running uvicorn server."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from credit_risk.api import create_app
from credit_risk.config import Settings
from credit_risk.localserver import free_port, serve_command, wait_until_ready
from credit_risk.scoring import Scorer
from tests.conftest import REPO, make_settings

POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"

APPLICANT: dict[str, Any] = {
    "checking_account_status": "A11",
    "duration_months": 48,
    "credit_history": "A32",
    "purpose": "A40",
    "credit_amount": 7500,
    "savings_account": "A61",
    "employment_since": "A72",
    "installment_rate": 4,
    "personal_status_sex": "A93",
    "other_debtors": "A101",
    "residence_since": 2,
    "property": "A124",
    "age_years": 23,
    "other_installment_plans": "A143",
    "housing": "A151",
    "existing_credits": 1,
    "job": "A173",
    "people_liable": 1,
    "telephone": "A191",
    "foreign_worker": "A201",
}

# Approved by the fixture model (also the page's approval in tests/api/test_browser.py).
APPROVED: dict[str, Any] = {
    **APPLICANT,
    "checking_account_status": "A14",
    "duration_months": 6,
    "credit_amount": 1200,
    "credit_history": "A34",
    "savings_account": "A65",
    "property": "A121",
    "housing": "A152",
    "employment_since": "A75",
    "installment_rate": 4,
}


def service_settings(model_dir: Path, folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_dir": model_dir,
        "decision_log_url": f"sqlite:///{folder / 'decisions.db'}",
    }
    values.update(overrides)
    return make_settings(folder, **values)


@pytest.fixture
def app_settings(model_dir: Path, tmp_path: Path) -> Settings:
    return service_settings(model_dir, tmp_path)


@pytest.fixture
def client(app_settings: Settings, scorer: Scorer) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings, scorer=scorer)) as test_client:
        yield test_client


def settled_health(client: TestClient, timeout: float = 120) -> httpx.Response:
    """``GET /health`` once the model has finished loading (or failed to)."""
    deadline = time.monotonic() + timeout
    while (response := client.get("/health")).json()["status"] == "loading":
        assert time.monotonic() < deadline, f"still loading after {timeout:.0f} s"
        time.sleep(0.05)
    return response


def start_server(
    model_dir: Path, log_url: str, port: int, workers: int = 1
) -> subprocess.Popen[bytes]:
    """``credit-risk serve`` in a subprocess (the real entry point, real uvicorn)."""
    env = {**os.environ, "CREDIT_RISK_DECISION_LOG_URL": log_url}
    return subprocess.Popen(
        serve_command(model_dir, port, workers),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="session")
def live_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server on a free port, for the browser and fuzz tests."""
    folder = tmp_path_factory.mktemp("live")
    port = free_port()
    process = start_server(model_dir, f"sqlite:///{folder / 'decisions.db'}", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", process)
        yield url
    finally:
        process.terminate()
        process.wait(30)
