"""POST /outcomes records outcomes of logged decisions, all or nothing; /metrics has the
realised-performance gauges."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from credit_risk.api import create_app
from credit_risk.api.metrics import ServiceMetrics
from credit_risk.api.realised import RealisedPerformanceCollector
from credit_risk.api.routes.outcomes import outcomes_body_limit
from credit_risk.decision_log import make_engine
from credit_risk.outcomes import labelled_decisions
from credit_risk.performance import latest_window
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT, service_settings

KEY = "a-real-secret-key-123"


def decide(client: TestClient, count: int, **headers: str) -> list[dict[str, Any]]:
    applicants = [{**APPLICANT, "duration_months": 6 + 6 * i} for i in range(count)]
    response = client.post("/predict/batch", json={"applicants": applicants}, headers=headers)
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def now() -> str:
    return datetime.now(UTC).isoformat()


def stored(client: TestClient) -> dict[str, int]:
    url = client.app.state.service.settings.decision_log_url  # type: ignore[attr-defined]
    frame = labelled_decisions(url)
    return dict(zip(frame["request_id"], frame["outcome"], strict=True))


@pytest.fixture
def decided(client: TestClient) -> list[str]:
    return [p["request_id"] for p in decide(client, 3)]


def test_post_outcomes_records_once_and_reports_unchanged(
    client: TestClient, decided: list[str]
) -> None:
    observed = now()
    body = {
        "outcomes": [
            {"request_id": decided[0], "outcome": "good", "observed_at": observed},
            {"request_id": decided[1], "outcome": 2, "observed_at": observed},
        ]
    }
    first = client.post("/outcomes", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["recorded"] == 2
    again = client.post("/outcomes", json=body)
    assert again.status_code == 200
    assert (again.json()["recorded"], again.json()["unchanged"]) == (0, 2)
    assert [o["status"] for o in again.json()["outcomes"]] == ["unchanged", "unchanged"]
    assert stored(client) == {decided[0]: 1, decided[1]: 2}


def test_post_outcomes_conflict_is_409_and_changes_nothing(
    client: TestClient, decided: list[str]
) -> None:
    observed = now()
    item = {"request_id": decided[0], "outcome": "good", "observed_at": observed}
    assert client.post("/outcomes", json={"outcomes": [item]}).status_code == 200
    conflicting = {
        "outcomes": [
            {"request_id": decided[1], "outcome": "bad", "observed_at": observed},
            {**item, "outcome": "bad"},
        ]
    }
    response = client.post("/outcomes", json=conflicting)
    assert response.status_code == 409
    (problem,) = response.json()["detail"]
    assert problem["field"] == "outcomes[1].outcome"
    assert decided[0] in problem["message"] and "already has good" in problem["message"]
    assert stored(client) == {decided[0]: 1}

    replaced = client.post("/outcomes", json={**conflicting, "replace": True})
    assert replaced.status_code == 200
    assert (replaced.json()["recorded"], replaced.json()["replaced"]) == (1, 1)
    assert stored(client) == {decided[0]: 2, decided[1]: 2}


def test_post_outcomes_unknown_request_id_is_named(client: TestClient, decided: list[str]) -> None:
    body = {
        "outcomes": [
            {"request_id": decided[0], "outcome": "good", "observed_at": now()},
            {"request_id": "no-such-decision", "outcome": "bad", "observed_at": now()},
        ]
    }
    response = client.post("/outcomes", json=body)
    assert response.status_code == 404
    (problem,) = response.json()["detail"]
    assert problem["field"] == "outcomes[1].request_id"
    assert problem["type"] == "unknown_request_id"
    assert "'no-such-decision' is not a decision in the log" in problem["message"]
    assert stored(client) == {}


@pytest.mark.parametrize(
    ("item", "field", "allowed"),
    [
        ({"outcome": "maybe"}, "outcomes[0].outcome", '"good" or "bad"'),
        ({"outcome": 3}, "outcomes[0].outcome", "1 = good, 2 = bad"),
        ({"observed_at": "next week"}, "outcomes[0].observed_at", "ISO 8601"),
        ({"observed_at": "2001-01-01"}, "outcomes[0].observed_at", "after the decision"),
        ({"colour": "red"}, "outcomes[0].colour", "only the fields"),
    ],
)
def test_post_outcomes_invalid_values_name_field_and_allowed(
    client: TestClient, decided: list[str], item: dict[str, Any], field: str, allowed: str
) -> None:
    good = {"request_id": decided[1], "outcome": "bad", "observed_at": now()}
    body = {
        "outcomes": [
            {"request_id": decided[0], "outcome": "good", "observed_at": now(), **item},
            good,
        ]
    }
    response = client.post("/outcomes", json=body)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["field"] == field
    assert allowed in problem["allowed"]
    assert stored(client) == {}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (b'{"outcomes": []}', "outcomes", "a list of 1 to"),
        (b'{"outcomes": [1]}', "outcomes[0]", "an object with request_id"),
        (b'{"outcomes": "x", "replace": "yes"}', "replace", "true or false"),
        (b'{"outcomes": [], "force": true}', "force", "only outcomes and replace"),
        (b"[1, 2]", "body", '{"outcomes"'),
        (b'{"outcomes": [', "body", '{"outcomes"'),
        (
            b'{"outcomes": [{"request_id": "a", "outcome": "good", "outcome": "bad"}]}',
            "body",
            "each key once",
        ),
    ],
)
def test_post_outcomes_malformed_bodies_are_422(
    client: TestClient, body: bytes, field: str, says: str
) -> None:
    response = client.post("/outcomes", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    fields = {p["field"]: p for p in response.json()["detail"]}
    assert field in fields
    assert says in fields[field]["allowed"]


def test_post_outcomes_too_many_or_too_large(app_settings: Any, scorer: Scorer) -> None:
    settings = app_settings.model_copy(update={"max_batch": 3})
    with TestClient(create_app(settings, scorer=scorer)) as client:
        items = [{"request_id": f"r{i}", "outcome": "good", "observed_at": now()} for i in range(4)]
        response = client.post("/outcomes", json={"outcomes": items})
        assert response.status_code == 422
        assert response.json()["detail"][0]["allowed"] == "a list of 1 to 3 outcomes"
        limit = outcomes_body_limit(3)
        padded = b'{"outcomes": []' + b" " * limit + b"}"
        response = client.post(
            "/outcomes", content=padded, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert str(limit) in response.json()["detail"]


def test_post_outcomes_needs_the_api_key_when_set(
    model_dir: Path, tmp_path: Path, scorer: Scorer
) -> None:
    settings = service_settings(model_dir, tmp_path, api_key=KEY)
    with TestClient(create_app(settings, scorer=scorer)) as client:
        (prediction,) = decide(client, 1, **{"X-API-Key": KEY})
        body = {
            "outcomes": [
                {"request_id": prediction["request_id"], "outcome": "bad", "observed_at": now()}
            ]
        }
        assert client.post("/outcomes", json=body).status_code == 401
        assert (
            client.post("/outcomes", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        )
        assert stored(client) == {}
        assert client.post("/outcomes", json=body, headers={"X-API-Key": KEY}).status_code == 200
        spec = client.get("/openapi.json").json()
        operation = spec["paths"]["/outcomes"]["post"]
        assert "401" in operation["responses"] and "409" in operation["responses"]
        assert (
            "outcomes"
            in operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
        )


def _gauges(client: TestClient) -> dict[tuple[str, str], float]:
    text = client.get("/metrics").text
    values = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("credit_risk_realised"):
            for sample in family.samples:
                label = sample.labels.get("bound") or sample.labels.get("decision") or ""
                values[(sample.name, label)] = sample.value
    return values


@pytest.fixture
def metrics_client(app_settings: Any, scorer: Scorer) -> Iterator[TestClient]:
    settings = app_settings.model_copy(
        update={"performance_refresh_seconds": 1, "performance_bootstrap_resamples": 200}
    )
    with TestClient(create_app(settings, scorer=scorer)) as client:
        yield client


def test_metrics_export_the_latest_window_off_the_request_path(
    metrics_client: TestClient,
) -> None:
    client = metrics_client
    predictions = decide(client, 8)
    observed = now()
    outcomes = [
        {
            "request_id": p["request_id"],
            "outcome": "bad" if i % 3 == 0 else "good",
            "observed_at": observed,
        }
        for i, p in enumerate(predictions)
    ]
    assert client.post("/outcomes", json={"outcomes": outcomes}).status_code == 200
    deadline = time.monotonic() + 60
    while True:
        gauges = _gauges(client)  # the first scrape starts the computation and does not wait
        if gauges.get(("credit_risk_realised_outcomes", "approve"), 0) + gauges.get(
            ("credit_risk_realised_outcomes", "reject"), 0
        ) == len(predictions):
            break
        assert time.monotonic() < deadline, gauges
        time.sleep(0.2)
    state = client.app.state.service  # type: ignore[attr-defined]
    engine = make_engine(state.settings.decision_log_url)
    expected = latest_window(engine, state.settings)
    engine.dispose()
    assert gauges[("credit_risk_realised_window_days", "")] == 30
    assert gauges[("credit_risk_realised_decisions", "approve")] == expected.approved
    assert gauges[("credit_risk_realised_roc_auc", "estimate")] == pytest.approx(
        expected.roc_auc.value, nan_ok=True
    )
    assert gauges[("credit_risk_realised_cost_per_labelled_decision", "estimate")] == pytest.approx(
        expected.cost.value
    )
    low = gauges[("credit_risk_realised_cost_per_labelled_decision", "low")]
    high = gauges[("credit_risk_realised_cost_per_labelled_decision", "high")]
    assert low <= expected.cost.value <= high
    assert gauges[("credit_risk_realised_refresh_duration_seconds", "")] > 0


def test_gauges_are_exposed_in_multiprocess_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = ServiceMetrics()
    collector = RealisedPerformanceCollector(lambda: None, 60, 30)
    metrics.add_collector(collector)
    for _ in range(2):  # each scrape builds its registry anew
        body, _ = metrics.exposition()
        assert b"credit_risk_realised_window_days 30.0" in body
