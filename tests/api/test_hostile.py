"""Hostile input: every answer is bounded in size and in event-loop time, whatever is sent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from credit_risk.api import create_app
from credit_risk.api.body import default_body_limit, largest_applicant_bytes
from credit_risk.api.models import Applicant
from credit_risk.config import Settings
from credit_risk.schema import ATTRIBUTES, BY_NAME, Kind
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT

MB = 1 << 20
MAX_ERROR_BYTES = 64 * 1024
MAX_STALL_SECONDS = 0.050
KEY = "a-long-test-secret-123"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _with_key_repeated(applicant: dict[str, Any], key: str, value: Any) -> bytes:
    """An applicant object naming ``key`` twice (json.dumps cannot write that)."""
    return _json(applicant)[:-1] + f", {json.dumps(key)}: {json.dumps(value)}}}".encode()


def _longest_applicant() -> dict[str, Any]:
    longest: dict[str, Any] = {}
    for a in ATTRIBUTES:
        if a.kind is Kind.CATEGORICAL:
            longest[a.name] = max(a.codes.values(), key=len)
        else:
            longest[a.name] = a.maximum
    return longest


# The worst bodies of at most 1 MB found for each way of costing the server (issue 11).
BAD_VALUES = {a.name: "xxxxx" for a in ATTRIBUTES}
WORST: dict[str, tuple[str, bytes]] = {
    "batch of empty objects": ("/predict/batch", _json({"applicants": [{}] * 1000})),
    "1 MB of empty objects": (
        "/predict/batch",
        b'{"applicants": [' + b",".join([b"{}"] * (MB // 3 - 10)) + b"]}",
    ),
    "many extra keys": ("/predict", _json({f"k{i}": 0 for i in range(80_000)})),
    "extra keys in every row": (
        "/predict/batch",
        _json({"applicants": [{f"k{j}": 0 for j in range(21)}] * 1000}),
    ),
    "1 MB string": ("/predict", _json({**APPLICANT, "purpose": "x" * (MB - 1000)})),
    "deep nesting": (
        "/predict",
        b'{"purpose": ' + b"[" * (MB // 2 - 10) + b"]" * (MB // 2 - 10) + b"}",
    ),
    "bad values in every row": ("/predict/batch", _json({"applicants": [BAD_VALUES] * 1000})),
    "repeated key in every row": (
        "/predict/batch",
        b'{"applicants": ['
        + b",".join([_with_key_repeated(APPLICANT, "job", "A173")] * 1000)
        + b"]}",
    ),
    "twice too many applicants": ("/predict/batch", _json({"applicants": [APPLICANT] * 2000})),
    "two extra keys in every row": (
        "/predict/batch",
        _json({"applicants": [{**APPLICANT, "zz": 1, "zy": 2}] * 1000}),
    ),
    "1 MB number": (
        "/predict",
        _json(APPLICANT)[:-1] + b', "age_years": ' + b"9" * (MB - 600) + b"}",
    ),
}


@pytest.fixture
def guarded(app_settings: Settings, scorer: Scorer) -> Any:
    settings = app_settings.model_copy(update={"api_key": KEY})
    with TestClient(create_app(settings, scorer=scorer)) as test_client:
        yield test_client


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text[:500]
    detail: list[dict[str, Any]] = response.json()["detail"]
    return detail


def test_batch_of_empty_objects_lists_each_allowed_value_once(client: TestClient) -> None:
    response = client.post("/predict/batch", json={"applicants": [{}] * 1000})
    detail = _errors(response)
    assert len(response.content) <= 16 * 1024  # was 5.4 MB
    assert len(detail) == 50
    assert response.json()["omitted_errors"] == 1000 * len(ATTRIBUTES) - 50
    first = detail[0]
    assert (first["field"], first["type"]) == ("applicants[0].checking_account_status", "missing")
    for attribute in ATTRIBUTES:
        mine = [e for e in detail if e["field"].endswith(f".{attribute.name}")]
        assert mine and mine[0]["allowed"] == attribute.allowed()
        assert all(e["allowed"] == f"see GET /schema ({attribute.name})" for e in mine[1:])


def test_omitted_errors_count_every_problem_not_listed(client: TestClient) -> None:
    """Past the cap, problems are counted (not built): the count matches full validation."""
    rows: list[Any] = [
        {},
        {**APPLICANT, "purpose": "yacht", "duration_months": 12.5},
        {**APPLICANT, "age_years": True, "extra": 1, "other": [1]},
        {k: v for k, v in APPLICANT.items() if k != "job"},
        {**APPLICANT, "credit_amount": 1e9, "housing": 152, "telephone": None},
        [1, 2],
        "text",
    ] * 20
    response = client.post("/predict/batch", json={"applicants": rows})
    detail = _errors(response)
    try:
        TypeAdapter(list[Applicant]).validate_python(rows)  # type: ignore[valid-type]
    except ValidationError as error:
        expected = error.error_count()
    assert len(detail) == 50
    assert len(detail) + response.json()["omitted_errors"] == expected


def test_long_string_is_echoed_cut(client: TestClient) -> None:
    response = client.post("/predict", json={**APPLICANT, "purpose": "y" * MB})
    (error,) = _errors(response)
    assert error["field"] == "purpose"
    assert error["value"].startswith("y" * 100)
    assert len(error["value"]) < 140 and str(MB) in error["value"]  # says how long it was
    assert len(response.content) < 2048


def test_long_extra_key_is_named_cut(client: TestClient) -> None:
    response = client.post("/predict", json={**APPLICANT, "k" * 100_000: 1})
    (error,) = _errors(response)
    assert error["type"] == "extra_forbidden"
    assert error["field"].startswith("k" * 60) and len(error["field"]) < 100
    assert len(response.content) < 2048


def test_many_extra_keys_are_refused_naming_the_first(client: TestClient) -> None:
    body = _json({**APPLICANT, **{f"unexpected_{i}": 0 for i in range(80_000)}})
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    (error,) = _errors(response)
    assert error["type"] == "body_too_complex"
    assert "80020 keys" in error["message"]
    assert "'unexpected_0', 'unexpected_1'" in error["message"]
    assert len(response.content) < 2048  # was 39 MB


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_repeated_key_is_422_naming_it(client: TestClient, path: str) -> None:
    applicant = _with_key_repeated(APPLICANT, "checking_account_status", "A14")
    body = applicant if path == "/predict" else b'{"applicants": [' + applicant + b"]}"
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    (error,) = _errors(response)
    assert error["type"] == "duplicate_key"
    prefix = "" if path == "/predict" else "applicants[0]."
    assert error["field"] == prefix + "checking_account_status"
    # Keys are counted to spot repeats cheaply: a label holding a colon is not one.
    labelled = {**APPLICANT, "personal_status_sex": BY_NAME["personal_status_sex"].codes["A93"]}
    assert ":" in labelled["personal_status_sex"]
    payload = labelled if path == "/predict" else {"applicants": [labelled, APPLICANT]}
    assert client.post(path, json=payload).status_code == 200


def test_repeated_batch_key_is_422(client: TestClient) -> None:
    body = b'{"applicants": [], "applicants": [' + _json(APPLICANT) + b"]}"
    response = client.post(
        "/predict/batch", content=body, headers={"content-type": "application/json"}
    )
    (error,) = _errors(response)
    assert (error["type"], error["field"]) == ("duplicate_key", "applicants")


@pytest.mark.parametrize(
    ("path", "body", "with_key"),
    [
        ("/predict", b"{not json", 422),
        ("/predict/batch", b'{"applicants": [', 422),
        ("/predict", b"x" * (8 * MB), 413),
    ],
)
def test_unauthenticated_request_gets_401_whatever_its_body(
    guarded: TestClient, path: str, body: bytes, with_key: int
) -> None:
    headers = {"content-type": "application/json"}
    response = guarded.post(path, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or wrong X-API-Key"}
    assert response.headers["www-authenticate"] == "APIKey"
    wrong = guarded.post(path, content=body, headers={**headers, "X-API-Key": "not-the-key-0"})
    assert wrong.status_code == 401
    right = guarded.post(path, content=body, headers={**headers, "X-API-Key": KEY})
    assert right.status_code == with_key


def test_body_over_the_limit_is_413(app_settings: Settings, scorer: Scorer) -> None:
    settings = app_settings.model_copy(update={"max_body_bytes": 4096})
    with TestClient(create_app(settings, scorer=scorer)) as client:
        padded = _json(APPLICANT)[:-1] + b" " * 5000 + b"}"
        for path in ("/predict", "/predict/batch"):
            response = client.post(
                path, content=padded, headers={"content-type": "application/json"}
            )
            assert response.status_code == 413
            assert "4096 bytes" in response.json()["detail"]
        assert client.post("/predict", json=APPLICANT).status_code == 200


def test_default_limit_takes_the_largest_valid_batch_and_refuses_more(
    app_settings: Settings, scorer: Scorer
) -> None:
    settings = app_settings.model_copy(update={"max_batch": 100})
    limit = default_body_limit(100)
    batch = json.dumps({"applicants": [_longest_applicant()] * 100}, indent=4).encode()
    assert len(batch) * 1.5 < limit
    assert len(json.dumps(_longest_applicant(), indent=4)) <= largest_applicant_bytes()
    with TestClient(create_app(settings, scorer=scorer)) as client:
        headers = {"content-type": "application/json"}
        assert client.post("/predict/batch", content=batch, headers=headers).status_code == 200
        over = batch[:-1] + b" " * (limit - len(batch) + 1) + b"}"
        assert client.post("/predict/batch", content=over, headers=headers).status_code == 413


async def _asgi(
    app: FastAPI, headers: list[tuple[bytes, bytes]], receive: Callable[[], Awaitable[Any]]
) -> tuple[int, list[Any]]:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return sent[0]["status"], sent


def test_declared_length_over_the_limit_is_413_before_reading(
    app_settings: Settings, scorer: Scorer
) -> None:
    app = create_app(app_settings.model_copy(update={"max_body_bytes": 4096}), scorer=scorer)

    async def never() -> Any:
        raise AssertionError("the body was read")

    status, _ = asyncio.run(_asgi(app, [(b"content-length", b"1000000000")], never))
    assert status == 413


def test_streamed_body_over_the_limit_is_413_without_reading_it_all(
    app_settings: Settings, scorer: Scorer
) -> None:
    """A chunked body (no Content-Length) is counted as it arrives."""
    app = create_app(app_settings.model_copy(update={"max_body_bytes": 100_000}), scorer=scorer)
    chunks = 0

    async def stream() -> Any:
        nonlocal chunks
        chunks += 1
        return {"type": "http.request", "body": b" " * 10_000, "more_body": chunks < 50}

    status, _ = asyncio.run(_asgi(app, [], stream))
    assert status == 413
    assert chunks == 11  # stopped at the first chunk past 100,000 bytes


async def _stall_while(app: FastAPI, path: str, body: bytes) -> tuple[httpx.Response, float]:
    """The answer to ``body``, and the longest the event loop was blocked meanwhile.

    Blocked time is the event-loop thread's CPU time between two turns of a ticker task: what
    the request made the loop spend, without the time a busy machine kept the process off a
    core (wall time between ticks measured the machine's load as much as the request).
    """
    longest = 0.0
    done = False

    async def tick() -> None:  # what a concurrent /health probe would wait, at worst
        nonlocal longest
        while not done:
            started = time.thread_time()
            await asyncio.sleep(0)
            longest = max(longest, time.thread_time() - started)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            path, content=body, headers={"content-type": "application/json"}
        )
    done = True
    await ticker
    return response, longest


def test_no_body_of_1mb_costs_over_50ms_of_event_loop_or_64kb_of_error(
    app_settings: Settings, scorer: Scorer
) -> None:
    app = create_app(app_settings, scorer=scorer)

    async def measure() -> dict[str, tuple[int, int, float]]:
        found = {}
        async with app.router.lifespan_context(app):
            for name, (path, body) in WORST.items():
                assert len(body) <= MB, name
                stalls = []
                for _ in range(3):  # the least of three: robust to a busy machine
                    response, stall = await _stall_while(app, path, body)
                    stalls.append(stall)
                found[name] = (response.status_code, len(response.content), min(stalls))
        return found

    found = asyncio.run(measure())
    offenders = {
        name: (status, size, f"{stall * 1000:.1f} ms")
        for name, (status, size, stall) in found.items()
        if status != 422 or size > MAX_ERROR_BYTES or stall > MAX_STALL_SECONDS
    }
    assert not offenders, offenders
