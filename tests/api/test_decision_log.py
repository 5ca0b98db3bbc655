"""Every decision the API returns is in the decision log first; shutdown under load loses none."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from credit_risk.api import create_app
from credit_risk.decision_log import (
    DecisionLog,
    DecisionLogError,
    count_rows,
    decisions_table,
    make_engine,
)
from credit_risk.localserver import free_port, wait_until_ready
from credit_risk.scoring import Scorer
from tests.api.conftest import (
    APPLICANT,
    POSTGRES_URL,
    service_settings,
    start_server,
)


def _post_some(client: TestClient) -> list[dict[str, Any]]:
    answers = [
        client.post("/predict", json={**APPLICANT, "duration_months": d}).json()
        for d in (6, 12, 24, 48)
    ]
    batch = client.post("/predict/batch", json={"applicants": [APPLICANT] * 5}).json()
    return answers + batch["predictions"]


def _check_rows(url: str, answers: list[dict[str, Any]]) -> None:
    engine = make_engine(url)
    ids = [a["request_id"] for a in answers]
    assert count_rows(engine, ids) == len(answers)
    with engine.connect() as connection:
        rows = {
            r.request_id: r
            for r in connection.execute(
                sa.select(decisions_table).where(decisions_table.c.request_id.in_(ids))
            )
        }
    for answer in answers:
        row = rows[answer["request_id"]]
        assert row.probability_bad == pytest.approx(answer["probability_bad"])
        assert row.decision == answer["decision"]
        assert row.model_version == answer["model_version"]
        assert row.reasons == answer["reasons"]
        assert set(row.input) == set(APPLICANT)
    engine.dispose()


def test_every_response_is_logged_sqlite(model_dir: Path, tmp_path: Path, scorer: Scorer) -> None:
    settings = service_settings(model_dir, tmp_path)
    with TestClient(create_app(settings, scorer=scorer)) as client:
        answers = _post_some(client)
    _check_rows(settings.decision_log_url, answers)
    assert count_rows(make_engine(settings.decision_log_url)) == len(answers)


@pytest.mark.postgres
def test_every_response_is_logged_postgres(model_dir: Path, tmp_path: Path, scorer: Scorer) -> None:
    settings = service_settings(model_dir, tmp_path, decision_log_url=POSTGRES_URL)
    with TestClient(create_app(settings, scorer=scorer)) as client:
        answers = _post_some(client)
    _check_rows(POSTGRES_URL, answers)


def test_unwritable_log_means_no_decision(model_dir: Path, tmp_path: Path, scorer: Scorer) -> None:
    settings = service_settings(model_dir, tmp_path)
    log = DecisionLog(settings.decision_log_url)
    with TestClient(create_app(settings, scorer=scorer, decision_log=log)) as client:
        with log.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE decisions"))
        response = client.post("/predict", json=APPLICANT)
        assert response.status_code == 503
        assert "decision log" in response.json()["detail"]


def test_log_in_a_folder_that_does_not_exist_stops_the_start_naming_it(
    model_dir: Path, tmp_path: Path, scorer: Scorer
) -> None:
    folder = tmp_path / "no-such-folder"
    url = f"sqlite:///{folder / 'decisions.db'}"
    settings = service_settings(model_dir, tmp_path, decision_log_url=url)
    with (
        pytest.raises(DecisionLogError, match=f"the folder {folder} does not exist"),
        TestClient(create_app(settings, scorer=scorer)),
    ):
        pass
    assert not folder.exists()


async def _load(url: str, stop_after: float, on_half: Any) -> list[str]:
    """16 concurrent clients posting until the server goes away; returns answered ids."""
    answered: list[str] = []
    started = time.monotonic()
    fired = False

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal fired
        while True:
            if not fired and time.monotonic() - started > stop_after:
                fired = True
                on_half()
            try:
                response = await client.post(f"{url}/predict", json=APPLICANT)
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                answered.append(response.json()["request_id"])
            elif fired:
                return

    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    return answered


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_graceful_shutdown_under_load_loses_nothing(
    model_dir: Path, tmp_path: Path, backend: str
) -> None:
    url_db = f"sqlite:///{tmp_path / 'decisions.db'}" if backend == "sqlite" else POSTGRES_URL
    port = free_port()
    process = start_server(model_dir, url_db, port, workers=2)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", process)
        answered = asyncio.run(_load(url, 1.5, lambda: process.send_signal(signal.SIGTERM)))
        assert process.wait(60) == 0, process.stderr.read().decode() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
    assert len(answered) > 50
    engine = make_engine(url_db)
    assert count_rows(engine, answered) == len(answered)
    if backend == "sqlite":
        assert count_rows(engine) >= len(answered)  # at most extra rows, never missing ones
    engine.dispose()


def test_decision_log_drains_queue_on_close(tmp_path: Path) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path / 'd.db'}")
    log.start()
    ids = [uuid.uuid4().hex for _ in range(200)]

    async def write_all() -> None:
        from datetime import UTC, datetime

        from credit_risk.decision_log import decision_row

        rows = [
            decision_row(i, datetime.now(UTC), "1", APPLICANT, 0.5, 2, "reject", 0.3, [])
            for i in ids
        ]
        await asyncio.gather(*(log.write([row]) for row in rows))

    asyncio.run(write_all())
    log.close()
    assert count_rows(make_engine(f"sqlite:///{tmp_path / 'd.db'}"), ids) == 200
