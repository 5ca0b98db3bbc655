"""The shadow challenger in the service: logged for every request, answered to none, never a
failure; and the admin routes that show and reload the models."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from credit_risk.api import create_app
from credit_risk.api.metrics import ServiceMetrics
from credit_risk.api.shadow import ShadowScorer
from credit_risk.decision_log import DecisionLog, decisions_table, make_engine, shadow_table
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT, service_settings

KEY = "a-real-secret-key-for-tests"
# Applicants whose champion probabilities spread across the threshold.
APPLICANTS = [
    {**APPLICANT, "duration_months": d, "credit_amount": a, "checking_account_status": c}
    for d in (6, 12, 24, 48)
    for a in (1000, 4000, 12000)
    for c in ("A11", "A14")
]


class ShiftedScorer(Scorer):
    """The champion's model under another version and threshold, its probability of bad
    shifted: a challenger whose decisions differ from the champion's on some applicants."""

    def __init__(self, base: Scorer, version: str, threshold: float, shift: float) -> None:
        self.__dict__.update(base.__dict__)
        self.metadata = {**base.metadata, "model_version": version, "threshold": threshold}
        self.shift = shift
        self.calls = 0

    def explain_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self.calls += 1
        probability, contributions = super().explain_records(records)
        return np.clip(probability + self.shift, 0.0, 1.0), contributions


class BrokenScorer(ShiftedScorer):
    """A challenger that raises on every batch."""

    def explain_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self.calls += 1
        raise RuntimeError("the challenger broke")


def _serve(client: TestClient) -> list[dict[str, Any]]:
    """Every applicant alone, then all of them in one batch, and a Spanish one."""
    answers = []
    for applicant in APPLICANTS:
        response = client.post("/predict", json=applicant)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    batch = client.post("/predict/batch", json={"applicants": APPLICANTS})
    assert batch.status_code == 200, batch.text
    answers += batch.json()["predictions"]
    spanish = client.post("/predict?lang=es", json=APPLICANTS[0])
    assert spanish.status_code == 200
    return [*answers, spanish.json()]


def _rows(url: str, table: sa.Table) -> dict[str, Any]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = {r.request_id: r for r in connection.execute(sa.select(table))}
    engine.dispose()
    return rows


def test_every_request_has_a_shadow_decision_and_none_is_answered(
    model_dir: Path, tmp_path: Path, scorer: Scorer
) -> None:
    settings = service_settings(model_dir, tmp_path)
    challenger = ShiftedScorer(scorer, "challenger-7", threshold=0.5, shift=0.05)
    with TestClient(create_app(settings, scorer=scorer, challenger=challenger)) as client:
        answers = _serve(client)
        assert client.get("/admin/models").json()["challenger"] == "challenger-7"
    # The service has stopped: what was queued for the shadow was scored and logged first.
    decisions = _rows(settings.decision_log_url, decisions_table)
    shadows = _rows(settings.decision_log_url, shadow_table)
    assert set(shadows) == set(decisions) == {a["request_id"] for a in answers}
    disagreements = 0
    for answer in answers:
        logged, shadow = decisions[answer["request_id"]], shadows[answer["request_id"]]
        assert shadow.model_version == "challenger-7"
        assert shadow.threshold == 0.5
        assert shadow.probability_bad == pytest.approx(min(1.0, logged.probability_bad + 0.05))
        assert shadow.decision == ("reject" if shadow.probability_bad >= 0.5 else "approve")
        # The answer is the champion's, whatever the challenger decided.
        assert answer["model_version"] == scorer.version
        assert answer["decision"] == logged.decision
        assert answer["probability_bad"] == pytest.approx(logged.probability_bad)
        assert "challenger" not in str(answer)
        disagreements += shadow.decision != answer["decision"]
    assert disagreements > 0  # else the test could not tell whose decision was answered


def test_a_challenger_that_raises_fails_no_request(
    model_dir: Path, tmp_path: Path, scorer: Scorer
) -> None:
    settings = service_settings(model_dir, tmp_path)
    broken = BrokenScorer(scorer, "broken-1", threshold=0.5, shift=0.0)
    with TestClient(create_app(settings, scorer=scorer, challenger=broken)) as client:
        answers = _serve(client)
        # Answers went out before the challenger was even asked: wait for it to have failed.
        client.app.state.service.shadow.close()  # type: ignore[attr-defined]
        metrics = client.get("/metrics").text
    assert broken.calls > 0
    assert 'credit_risk_shadow_errors_total{stage="score"}' in metrics
    assert len(_rows(settings.decision_log_url, decisions_table)) == len(answers)
    assert _rows(settings.decision_log_url, shadow_table) == {}


def test_without_a_challenger_nothing_is_scored_in_shadow(
    model_dir: Path, tmp_path: Path, scorer: Scorer
) -> None:
    settings = service_settings(model_dir, tmp_path)
    with TestClient(create_app(settings, scorer=scorer)) as client:
        answers = _serve(client)
        assert client.get("/admin/models").json() == {
            "champion": scorer.version,
            "challenger": None,
            "shadow_pending": 0,
        }
    assert len(_rows(settings.decision_log_url, decisions_table)) == len(answers)
    assert _rows(settings.decision_log_url, shadow_table) == {}


def test_admin_routes_need_the_api_key(model_dir: Path, tmp_path: Path, scorer: Scorer) -> None:
    settings = service_settings(model_dir, tmp_path, api_key=KEY)
    with TestClient(create_app(settings, scorer=scorer)) as client:
        assert client.post("/admin/reload").status_code == 401
        assert (
            client.get("/admin/models", headers={"X-API-Key": "wrong-key-123456"}).status_code
            == 401
        )
        reloaded = client.post("/admin/reload", headers={"X-API-Key": KEY})
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["champion"] == {
            "before": scorer.version,
            "after": scorer.version,
            "error": None,
        }


def test_a_model_that_fails_to_load_leaves_the_old_one_serving(
    model_dir: Path, tmp_path: Path, scorer: Scorer
) -> None:
    empty = tmp_path / "models" / "champion"
    empty.mkdir(parents=True)
    (tmp_path / "models" / "challenger").mkdir()
    (tmp_path / "models" / "challenger" / "metadata.json").write_text("{not json")
    settings = service_settings(empty, tmp_path)
    challenger = ShiftedScorer(scorer, "challenger-3", threshold=0.5, shift=0.0)
    with TestClient(create_app(settings, scorer=scorer, challenger=challenger)) as client:
        reloaded = client.post("/admin/reload")
        assert reloaded.status_code == 409
        body = reloaded.json()
        assert body["champion"]["after"] == scorer.version
        assert "metadata.json" in body["champion"]["error"]
        assert body["challenger"]["after"] == "challenger-3"
        assert "metadata.json" in body["challenger"]["error"]
        assert client.post("/predict", json=APPLICANT).status_code == 200
        assert client.get("/health").json()["status"] == "ready"


def test_a_challenger_folder_beside_the_champion_is_loaded_and_reloaded(
    champion_and_challenger: tuple[Any, Path, Path], tmp_path: Path
) -> None:
    """The service's own loading: the champion's folder, and "challenger" beside it."""
    _, first, second = champion_and_challenger
    champion_dir = tmp_path / "models" / "champion"
    shutil.copytree(first, champion_dir)
    shutil.copytree(second, tmp_path / "models" / "challenger")
    settings = service_settings(champion_dir, tmp_path)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/admin/models").json()["challenger"] is None:
            assert client.get("/health").json()["status"] != "failed"
            assert time.monotonic() < deadline, "the challenger was not loaded in 120 s"
            time.sleep(0.05)
        assert client.get("/admin/models").json()["champion"] == "1"
        answer = client.post("/predict", json=APPLICANT).json()
        shutil.rmtree(tmp_path / "models" / "challenger")  # the alias was cleared
        reloaded = client.post("/admin/reload").json()
        assert reloaded["challenger"] == {"before": "2", "after": None, "error": None}
    shadows = _rows(settings.decision_log_url, shadow_table)
    assert shadows[answer["request_id"]].model_version == "2"


class _RecordingLog:
    """Stands in for the decision log: records the shadow rows it is given."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write_shadow(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows.extend(rows)


class _BlockingScorer(ShiftedScorer):
    """Waits for ``release`` before scoring (a challenger slower than the traffic)."""

    release = threading.Event()
    started = threading.Event()

    def explain_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self.started.set()
        assert self.release.wait(30)
        return super().explain_records(records)


def test_a_full_shadow_queue_drops_and_counts(scorer: Scorer) -> None:
    metrics = ServiceMetrics()
    shadow = ShadowScorer(metrics, max_pending=3, interval=0.0)
    shadow.challenger = _BlockingScorer(scorer, "slow-1", threshold=0.5, shift=0.0)
    log = cast(DecisionLog, _RecordingLog())
    rows = [{"request_id": f"r{i}", "input": APPLICANT, "decision": "approve"} for i in range(6)]
    shadow.start()
    try:
        shadow.submit(log, rows[0:2])  # taken by the thread, which then waits
        assert _BlockingScorer.started.wait(30)
        shadow.submit(log, rows[2:4])  # queued: 2 waiting
        shadow.submit(log, rows[4:6])  # 4 > 3: dropped
        assert shadow.pending() == 2
    finally:
        _BlockingScorer.release.set()
        shadow.close()
    recorded = cast(_RecordingLog, log).rows
    assert [r["request_id"] for r in recorded] == ["r0", "r1", "r2", "r3"]
    assert metrics.registry.get_sample_value("credit_risk_shadow_dropped_total") == 2
