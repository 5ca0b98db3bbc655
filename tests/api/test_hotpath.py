"""The ``POST /predict`` hot path answers exactly as the FastAPI route would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from credit_risk.api import create_app
from credit_risk.api.hotpath import PredictHotPath
from credit_risk.config import Settings
from credit_risk.decision_log import count_rows, make_engine
from credit_risk.schema import ATTRIBUTES, Kind
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT, service_settings

LABELLED = {
    a.name: (a.codes[APPLICANT[a.name]] if a.kind is Kind.CATEGORICAL else APPLICANT[a.name])
    for a in ATTRIBUTES
}

# (body bytes, content type or None): what the hot path must answer like the route.
VALID: list[tuple[bytes, str | None]] = [
    (json.dumps(APPLICANT).encode(), "application/json"),
    (json.dumps(LABELLED).encode(), "application/json"),
    (json.dumps({**APPLICANT, "duration_months": 12.0}).encode(), "application/json"),
    (json.dumps(APPLICANT, indent=2).encode(), "application/json; charset=utf-8"),
    (json.dumps(APPLICANT).encode(), "application/vnd.lender+json"),
    (json.dumps(APPLICANT).encode(), "Application/JSON"),
]
INVALID: list[tuple[bytes, str | None]] = [
    (json.dumps({**APPLICANT, "purpose": "A499"}).encode(), "application/json"),
    (json.dumps({**APPLICANT, "age_years": 12}).encode(), "application/json"),
    (json.dumps({**APPLICANT, "age_years": "31"}).encode(), "application/json"),
    (json.dumps({**APPLICANT, "telephone": True}).encode(), "application/json"),
    (json.dumps({**APPLICANT, "duration_months": 12.5}).encode(), "application/json"),
    (json.dumps({**APPLICANT, "favourite_colour": "blue"}).encode(), "application/json"),
    (json.dumps({k: v for k, v in APPLICANT.items() if k != "job"}).encode(), "application/json"),
    (json.dumps([APPLICANT]).encode(), "application/json"),
    (b'{"checking_account_status": "A11",', "application/json"),
    (b"\xff\xfe not utf-8", "application/json"),
    (b"", "application/json"),
    (json.dumps(APPLICANT).encode(), "text/plain"),
    (json.dumps(APPLICANT).encode(), None),
]


def _without_hot_path(app: FastAPI) -> FastAPI:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not PredictHotPath]
    return app


@pytest.fixture
def clients(
    model_dir: Path, tmp_path: Path, scorer: Scorer
) -> Iterator[tuple[TestClient, TestClient]]:
    for name in ("hot", "routed"):
        (tmp_path / name).mkdir()
    hot = create_app(service_settings(model_dir, tmp_path / "hot"), scorer=scorer)
    routed = _without_hot_path(
        create_app(service_settings(model_dir, tmp_path / "routed"), scorer=scorer)
    )
    assert any(m.cls is PredictHotPath for m in hot.user_middleware)
    with TestClient(hot) as hot_client, TestClient(routed) as routed_client:
        yield hot_client, routed_client


def _post(client: TestClient, body: bytes, content_type: str | None) -> Any:
    headers = {"content-type": content_type} if content_type else {}
    return client.post("/predict", content=body, headers=headers)


def _comparable(response: Any) -> tuple[int, str, Any]:
    body = response.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
    return response.status_code, response.headers["content-type"], body


@pytest.mark.parametrize(("body", "content_type"), VALID + INVALID)
def test_hot_path_answers_like_the_route(
    clients: tuple[TestClient, TestClient], body: bytes, content_type: str | None
) -> None:
    hot, routed = clients
    answer = _post(hot, body, content_type)
    assert _comparable(answer) == _comparable(_post(routed, body, content_type))
    if answer.status_code == 200:
        assert answer.headers["x-request-id"] == answer.json()["request_id"]


@pytest.mark.parametrize("query", ["lang=es", "lang=en", "lang=fr", "lang=es&lang=en", "lang="])
def test_hot_path_answers_a_language_query_like_the_route(
    clients: tuple[TestClient, TestClient], query: str
) -> None:
    body = json.dumps(APPLICANT).encode()
    headers = {"content-type": "application/json"}
    answers = [c.post(f"/predict?{query}", content=body, headers=headers) for c in clients]
    assert _comparable(answers[0]) == _comparable(answers[1])
    if query == "lang=es":
        assert "Estado de la cuenta corriente: < 0 DM" in [
            r["text"] for r in answers[0].json()["reasons"]
        ]


def test_hot_path_serves_valid_requests_without_the_route(
    clients: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid requests never reach the route; invalid ones still get the route's 422."""
    from credit_risk.api.routes import predict

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the route handled a request the hot path should have")

    monkeypatch.setattr(predict, "score_and_log", unreachable)
    hot, _ = clients
    for body, content_type in VALID:
        assert _post(hot, body, content_type).status_code == 200
    for query in ("lang=es", "lang=en"):
        answer = hot.post(f"/predict?{query}", json=APPLICANT)
        assert answer.status_code == 200
    error = _post(hot, *INVALID[0]).json()["detail"][0]
    assert (error["field"], error["value"]) == ("purpose", "A499")


def test_hot_path_logs_and_counts_every_decision(model_dir: Path, tmp_path: Path) -> None:
    settings: Settings = service_settings(model_dir, tmp_path)
    scorer = Scorer.from_folder(model_dir)
    with TestClient(create_app(settings, scorer=scorer)) as client:
        ids = [client.post("/predict", json=APPLICANT).json()["request_id"] for _ in range(5)]
        metrics = client.get("/metrics").text
    assert count_rows(make_engine(settings.decision_log_url), ids) == 5
    assert 'route="/predict",status="200"} 5.0' in metrics
    decisions = [line for line in metrics.splitlines() if line.startswith("credit_risk_decisions")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in decisions if "_total" in line) == 5
