"""The predict routes: decisions with reasons, and 422s that say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from credit_risk.api import create_app
from credit_risk.config import Language, Settings
from credit_risk.schema import BY_NAME
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT, APPROVED


def test_predict_returns_decision_threshold_and_reasons(client: TestClient, scorer: Scorer) -> None:
    response = client.post("/predict", json=APPLICANT)
    assert response.status_code == 200
    body = response.json()
    assert 0 <= body["probability_bad"] <= 1
    assert body["threshold"] == pytest.approx(scorer.threshold)
    rejected = body["probability_bad"] >= body["threshold"]
    assert body["decision"] == ("reject" if rejected else "approve")
    assert body["risk_class"] == (2 if rejected else 1)
    assert body["risk_label"] == ("bad" if rejected else "good")
    assert body["model_version"] == scorer.version
    assert len(body["request_id"]) == 32
    assert response.headers["X-Request-ID"] == body["request_id"]
    assert body["decision"] == "reject"
    assert 1 <= len(body["reasons"]) <= 4
    contributions = [r["contribution"] for r in body["reasons"]]
    assert contributions == sorted(contributions, reverse=True)
    assert all(c > 0 for c in contributions)
    table = {c.code: c for c in scorer.codes.codes}
    for reason in body["reasons"]:
        assert reason["attribute"] in BY_NAME and not BY_NAME[reason["attribute"]].protected
        assert reason["value"] == APPLICANT[reason["attribute"]]
        assert table[reason["code"]].attribute == reason["attribute"]
        assert reason["text"] == table[reason["code"]].text["en"]


def test_predict_risky_applicant_cites_checking_account(client: TestClient) -> None:
    body = client.post("/predict", json=APPLICANT).json()
    assert body["decision"] == "reject"
    cited = {r["attribute"]: (r["code"], r["text"]) for r in body["reasons"]}
    assert cited.get("checking_account_status") == (
        "R01-A11",
        "Status of existing checking account: < 0 DM",
    )


def test_predict_approval_has_no_reasons(client: TestClient) -> None:
    body = client.post("/predict", json=APPROVED).json()
    assert body["decision"] == "approve"
    assert body["reasons"] == []


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_predict_reason_texts_in_spanish_on_request(client: TestClient, path: str) -> None:
    payload: Any = {"applicants": [APPLICANT]} if path.endswith("batch") else APPLICANT
    english, spanish = (
        client.post(path, json=payload, params=params).json() for params in ({}, {"lang": "es"})
    )
    if path.endswith("batch"):
        english, spanish = english["predictions"][0], spanish["predictions"][0]
    assert [r["code"] for r in spanish["reasons"]] == [r["code"] for r in english["reasons"]]
    cited = {r["code"]: r["text"] for r in spanish["reasons"]}
    assert cited["R01-A11"] == "Estado de la cuenta corriente: < 0 DM"
    assert client.post(path, json=payload, params={"lang": "en"}).json() != {}


def test_predict_unknown_language_is_422_naming_the_parameter(client: TestClient) -> None:
    response = client.post("/predict", json=APPLICANT, params={"lang": "fr"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "lang"]
    assert "'en'" in error["message"] and "'es'" in error["message"]


def test_reason_language_setting_is_the_default(app_settings: Settings, scorer: Scorer) -> None:
    settings = app_settings.model_copy(update={"reason_language": Language.ES})
    with TestClient(create_app(settings, scorer=scorer)) as client:
        body = client.post("/predict", json=APPLICANT).json()
        assert "Estado de la cuenta corriente: < 0 DM" in [r["text"] for r in body["reasons"]]
        english = client.post("/predict", json=APPLICANT, params={"lang": "en"}).json()
        assert "Status of existing checking account: < 0 DM" in [
            r["text"] for r in english["reasons"]
        ]


def test_reasons_route_serves_the_models_table(client: TestClient, model_dir: Path) -> None:
    response = client.get("/reasons")
    assert response.status_code == 200
    assert response.json() == json.loads((model_dir / "reason_codes.json").read_text())
    assert response.json()["protected_attributes_cited"] is False


def test_predict_accepts_readable_labels(client: TestClient) -> None:
    by_code = client.post("/predict", json=APPLICANT).json()
    labelled = {**APPLICANT, "purpose": "car (new)", "checking_account_status": "< 0 DM"}
    by_label = client.post("/predict", json=labelled).json()
    assert by_label["probability_bad"] == pytest.approx(by_code["probability_bad"])
    assert by_label["decision"] == by_code["decision"]


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        ({"purpose": "A499"}, "purpose", "literal_error"),
        ({"duration_months": 500}, "duration_months", "less_than_equal"),
        ({"age_years": 12}, "age_years", "greater_than_equal"),
        ({"credit_amount": "lots"}, "credit_amount", "int_type"),
        ({"credit_amount": 99.5}, "credit_amount", "int_type"),
        ({"housing": 152}, "housing", "literal_error"),
        ({"shoe_size": 42}, "shoe_size", "extra_forbidden"),
    ],
)
def test_predict_bad_value_names_field_value_and_allowed(
    client: TestClient, change: dict[str, Any], field: str, kind: str
) -> None:
    response = client.post("/predict", json={**APPLICANT, **change})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["field"] == field
    assert error["type"] == kind
    assert error["value"] == change[field]
    assert error["allowed"]
    if field in BY_NAME:
        assert error["allowed"] == BY_NAME[field].allowed()


def test_predict_missing_field_is_422(client: TestClient) -> None:
    applicant = {k: v for k, v in APPLICANT.items() if k != "job"}
    (error,) = client.post("/predict", json=applicant).json()["detail"]
    assert (error["field"], error["type"], error["value"]) == ("job", "missing", None)
    assert "A173" in error["allowed"]


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b"null", b'"text"', b"\xff\xfe{"])
def test_predict_malformed_body_is_422(client: TestClient, body: bytes) -> None:
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["message"]


def test_batch_matches_single_predictions(client: TestClient) -> None:
    others = [
        APPLICANT,
        {**APPLICANT, "checking_account_status": "A14", "duration_months": 6},
        {**APPLICANT, "credit_history": "A34", "savings_account": "A65"},
    ]
    response = client.post("/predict/batch", json={"applicants": others})
    assert response.status_code == 200
    batch = response.json()
    assert len(batch["predictions"]) == 3
    for applicant, predicted in zip(others, batch["predictions"], strict=True):
        single = client.post("/predict", json=applicant).json()
        assert predicted["probability_bad"] == pytest.approx(single["probability_bad"])
        assert predicted["reasons"] == single["reasons"]
    assert len({p["request_id"] for p in batch["predictions"]}) == 3


def test_batch_over_limit_is_422(app_settings: Settings, scorer: Scorer) -> None:
    settings = app_settings.model_copy(update={"max_batch": 5})
    with TestClient(create_app(settings, scorer=scorer)) as client:
        response = client.post("/predict/batch", json={"applicants": [APPLICANT] * 6})
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["field"] == "applicants"
        assert error["value"] == "6 items"
        assert "1 to 5" in error["allowed"]
        assert (
            client.post("/predict/batch", json={"applicants": [APPLICANT] * 5}).status_code == 200
        )


def test_batch_error_names_the_row(client: TestClient) -> None:
    rows = [APPLICANT, {**APPLICANT, "telephone": "maybe"}]
    (error,) = client.post("/predict/batch", json={"applicants": rows}).json()["detail"]
    assert error["field"] == "applicants[1].telephone"
    assert error["value"] == "maybe"


@pytest.mark.parametrize("route", ["/predict", "/recourse"])
def test_api_key_guards_predict_routes_when_set(
    app_settings: Settings, scorer: Scorer, route: str
) -> None:
    settings = app_settings.model_copy(update={"api_key": "a-long-test-secret-123"})
    with TestClient(create_app(settings, scorer=scorer)) as client:
        assert client.post(route, json=APPLICANT).status_code == 401
        wrong = client.post(route, json=APPLICANT, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        right = client.post(route, json=APPLICANT, headers={"X-API-Key": "a-long-test-secret-123"})
        assert right.status_code == 200
        assert client.get("/schema").status_code == 200  # only predict routes are guarded


def test_placeholder_api_key_is_refused(app_settings: Settings) -> None:
    from pydantic import ValidationError

    from credit_risk.config import get_settings

    with pytest.raises(ValidationError):
        get_settings(api_key="changeme")


def test_cors_origin_allowed_when_configured(app_settings: Settings, scorer: Scorer) -> None:
    settings = app_settings.model_copy(update={"cors_origins": ["https://lender.example"]})
    with TestClient(create_app(settings, scorer=scorer)) as client:
        response = client.options(
            "/predict",
            headers={"Origin": "https://lender.example", "Access-Control-Request-Method": "POST"},
        )
        assert response.headers["access-control-allow-origin"] == "https://lender.example"
        other = client.options(
            "/predict",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
