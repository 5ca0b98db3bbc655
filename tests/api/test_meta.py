"""Schema, model, health, metrics, docs and the page."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from credit_risk import schema
from credit_risk.api import app as app_module
from credit_risk.api import create_app
from credit_risk.api.state import load_scorer
from credit_risk.config import Settings
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT, settled_health


def test_schema_is_the_codebook(client: TestClient) -> None:
    assert client.get("/schema").json() == schema.as_json()


def test_model_describes_the_served_model(client: TestClient, scorer: Scorer) -> None:
    body = client.get("/model").json()
    assert body["version"] == scorer.version
    assert body["threshold"] == scorer.threshold
    assert body["run_id"] == scorer.metadata["run_id"]
    assert "cost" in body["test_metrics"]
    assert "cost_mean" in body["cv_metrics"]
    assert body["fast_path"] is True


def test_health_is_ready_only_once_the_model_is_loaded(
    app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The load is held until the first probes are answered: a cached load takes milliseconds,
    # and finishing between the two probes made the "loading" branch racy.
    released = threading.Event()

    def held_load(settings: Settings) -> Scorer:
        released.wait(30)
        return load_scorer(settings)

    monkeypatch.setattr(app_module, "load_scorer", held_load)
    with TestClient(create_app(app_settings)) as client:  # loads model_dir in the background
        first = client.get("/health")
        assert first.status_code in (200, 503)
        if first.status_code == 503:
            assert first.json()["status"] == "loading"
            assert client.post("/predict", json=APPLICANT).status_code == 503
        released.set()
        deadline = time.monotonic() + 60
        while client.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/health").json()["status"] == "ready"
        assert client.post("/predict", json=APPLICANT).status_code == 200


def test_health_reports_a_missing_model(app_settings: Settings, tmp_path: Path) -> None:
    settings = app_settings.model_copy(update={"model_dir": tmp_path / "nothing"})
    with TestClient(create_app(settings)) as client:
        response = settled_health(client, timeout=30)
        assert response.status_code == 503
        assert response.json()["status"] == "failed"
        assert "no metadata.json" in response.json()["detail"]
        assert client.post("/predict", json=APPLICANT).status_code == 503


def test_metrics_count_requests_and_decisions(client: TestClient) -> None:
    decisions = [client.post("/predict", json=APPLICANT).json()["decision"] for _ in range(3)]
    client.post("/predict", json={**APPLICANT, "purpose": "yacht"})
    text = client.get("/metrics").text
    assert f'credit_risk_decisions_total{{decision="{decisions[0]}"}} 3.0' in text
    assert 'route="/predict",status="200"} 3.0' in text
    assert 'route="/predict",status="422"} 1.0' in text
    assert "credit_risk_http_request_duration_seconds_bucket" in text


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    applicant = spec["components"]["schemas"]["Applicant"]
    assert set(applicant["required"]) == set(schema.FEATURE_NAMES)
    assert "A11" in str(applicant["properties"]["checking_account_status"])
    assert "< 0 DM" in str(applicant["properties"]["checking_account_status"])


def test_page_is_served_without_a_codebook_copy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "app.js" in page.text
    script = client.get("/static/app.js").text
    assert "/schema" in script
    # The codebook's labels live in the package only; the page fetches them.
    assert "no checking account" not in script
    assert "A14" not in script
