"""POST /recourse: verified suggestions for a rejection, none for an approval, /predict's 422s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from credit_risk.api import create_app
from credit_risk.config import Settings
from credit_risk.data import read_applicants
from credit_risk.recourse import FIXED, RecourseSearch
from credit_risk.schema import BY_NAME, PROTECTED
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT, APPROVED, service_settings
from tests.conftest import DATA


def reversible_rejection(post: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The first shipped applicant the model rejects with at least two suggestions.

    Args:
        post: sends an applicant to ``POST /recourse``, returns the response.
    """
    for record in read_applicants(DATA).features.to_dict("records"):
        body = post(record).json()
        if body["decision"] == "reject" and len(body["suggestions"]) >= 2:
            return record
    raise AssertionError("no shipped rejection has two suggestions")


@pytest.fixture(scope="module")
def reversible(
    model_dir: Path, scorer: Scorer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    settings = service_settings(model_dir, tmp_path_factory.mktemp("reversible"))
    with TestClient(create_app(settings, scorer=scorer)) as client:
        return reversible_rejection(lambda record: client.post("/recourse", json=record))


def _applied(applicant: dict[str, Any], suggestion: dict[str, Any]) -> dict[str, Any]:
    return {**applicant, **{c["attribute"]: c["after"] for c in suggestion["changes"]}}


def test_recourse_suggestions_are_approved_by_predict(
    client: TestClient, scorer: Scorer, reversible: dict[str, Any]
) -> None:
    response = client.post("/recourse", json=reversible)
    assert response.status_code == 200
    body = response.json()
    predicted = client.post("/predict", json=reversible).json()
    assert body["decision"] == predicted["decision"] == "reject"
    assert body["probability_bad"] == pytest.approx(predicted["probability_bad"])
    assert [r["code"] for r in body["reasons"]] == [r["code"] for r in predicted["reasons"]]
    assert body["model_version"] == scorer.version
    assert body["threshold"] == pytest.approx(scorer.threshold)
    assert 2 <= len(body["suggestions"]) <= 3
    assert body["candidates_scored"] > 0
    for suggestion in body["suggestions"]:
        assert suggestion["verified"] is True and suggestion["decision"] == "approve"
        # Applied and sent to /predict, each suggestion is approved at the stated probability.
        again = client.post("/predict", json=_applied(reversible, suggestion)).json()
        assert again["decision"] == "approve"
        assert again["probability_bad"] == pytest.approx(suggestion["probability_bad"])
        for change in suggestion["changes"]:
            attribute = BY_NAME[change["attribute"]]
            assert change["before"] == reversible[attribute.name]
            assert change["before"] != change["after"]
            assert change["before_text"] == attribute.label(change["before"])
            assert change["after_text"] == attribute.label(change["after"])
            assert change["description"] == attribute.description
            assert attribute.name not in PROTECTED
            assert change["consequence"] == (attribute.name in FIXED)
    sets = [
        frozenset(c["attribute"] for c in s["changes"] if not c["consequence"])
        for s in body["suggestions"]
    ]
    assert len(set(sets)) == len(sets)


def test_recourse_none_found_is_200_with_the_reason(client: TestClient, scorer: Scorer) -> None:
    # A search with no budget finds nothing: the answer says so, with the decision and reasons.
    client.app.state.recourse = RecourseSearch(scorer, budget=0)  # type: ignore[attr-defined]
    body = client.post("/recourse", json=APPLICANT).json()
    assert body["decision"] == "reject" and body["reasons"]
    assert body["suggestions"] == []
    assert "within the search (0 candidates scored, budget 0)" in body["explanation"]


def test_recourse_approved_applicant_needs_no_change(client: TestClient) -> None:
    response = client.post("/recourse", json=APPROVED)
    assert response.status_code == 200
    body = response.json()
    assert body["decision"] == "approve"
    assert body["suggestions"] == [] and body["reasons"] == []
    assert body["explanation"].startswith("Approved")


def test_recourse_reasons_in_spanish_on_request(client: TestClient) -> None:
    english = client.post("/recourse", json=APPLICANT).json()
    spanish = client.post("/recourse?lang=es", json=APPLICANT).json()
    assert [r["code"] for r in spanish["reasons"]] == [r["code"] for r in english["reasons"]]
    assert spanish["reasons"][0]["text"] != english["reasons"][0]["text"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("credit_amount", -5), ("savings_account", "A69"), ("duration_months", "twelve")],
)
def test_recourse_invalid_input_is_predicts_422(client: TestClient, field: str, value: Any) -> None:
    body = {**APPLICANT, field: value}
    response = client.post("/recourse", json=body)
    assert response.status_code == 422
    assert response.json() == client.post("/predict", json=body).json()
    (error,) = response.json()["detail"]
    assert error["field"] == field
    assert error["value"] == value


def test_recourse_missing_field_and_extra_key_are_422(client: TestClient) -> None:
    missing = {k: v for k, v in APPLICANT.items() if k != "age_years"}
    response = client.post("/recourse", json=missing)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "age_years"
    extra = client.post("/recourse", json={**APPLICANT, "income": 3000})
    assert extra.status_code == 422
    assert extra.json() == client.post("/predict", json={**APPLICANT, "income": 3000}).json()


def test_recourse_accepts_readable_labels(client: TestClient) -> None:
    labelled = {**APPLICANT, "checking_account_status": "< 0 DM", "housing": "rent"}
    by_label = client.post("/recourse", json=labelled).json()
    by_code = client.post("/recourse", json=APPLICANT).json()
    assert by_label["probability_bad"] == by_code["probability_bad"]
    assert by_label["suggestions"] == by_code["suggestions"]


def test_recourse_body_over_the_limit_is_413(app_settings: Settings, scorer: Scorer) -> None:
    settings = app_settings.model_copy(update={"max_body_bytes": 2048})
    with TestClient(create_app(settings, scorer=scorer)) as client:
        padded = {**APPLICANT, "purpose": "A40" + " " * 4000}
        assert client.post("/recourse", json=padded).status_code == 413


def test_recourse_in_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/recourse" in spec["paths"]
