"""Model changes without downtime: a real server picks up a new challenger (POST /admin/reload)
and a new champion (SIGHUP) while requests keep coming, and not one of them fails."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from credit_risk.decision_log import decisions_table, make_engine, shadow_table
from credit_risk.localserver import free_port, wait_until_ready
from tests.api.conftest import APPLICANT, start_server

LOAD_THREADS = 3


@dataclass(frozen=True)
class Answer:
    sent: float
    answered: float
    status: int | None  # None: no HTTP answer at all
    body: dict[str, Any]


class Load:
    """Threads posting applicants continuously, each answer timed and kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(LOAD_THREADS)]

    def _run(self, index: int) -> None:
        with httpx.Client(timeout=60) as client:
            count = 0
            while not self._stop.is_set():
                applicant = {**APPLICANT, "duration_months": 6 + (index * 7 + count) % 60}
                count += 1
                sent = time.monotonic()
                try:
                    response = client.post(f"{self.url}/predict", json=applicant)
                    answer = Answer(sent, time.monotonic(), response.status_code, response.json())
                except (httpx.HTTPError, ValueError) as error:
                    answer = Answer(sent, time.monotonic(), None, {"error": repr(error)})
                with self._lock:
                    self.answers.append(answer)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` more answers have come back."""
        target = len(self.answers) + count
        deadline = time.monotonic() + timeout
        while len(self.answers) < target:
            assert time.monotonic() < deadline, f"fewer than {count} answers in {timeout} s"
            time.sleep(0.02)


def _served(url: str, timeout: float = 120) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/admin/models", timeout=timeout).json())


def _replace(source: Path, folder: Path) -> None:
    """Put a copy of ``source`` at ``folder`` in one rename, as an export does."""
    staging = folder.with_name(f".{folder.name}-new")
    shutil.copytree(source, staging)
    old = folder.with_name(f".{folder.name}-old")
    folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old)


def test_new_challenger_and_champion_under_load_fail_no_request(
    champion_and_challenger: tuple[Any, Path, Path], tmp_path: Path
) -> None:
    _, first, second = champion_and_challenger
    models = tmp_path / "models"
    champion_dir, challenger_dir = models / "champion", models / "challenger"
    shutil.copytree(first, champion_dir)
    log_url = f"sqlite:///{tmp_path / 'decisions.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(champion_dir, log_url, port)
    try:
        wait_until_ready(f"{url}/health", process)
        assert _served(url) == {"champion": "1", "challenger": None, "shadow_pending": 0}
        with Load(url) as load:
            load.wait_for(50)
            # A training run kept the champion: its version is exported beside it.
            shutil.copytree(second, challenger_dir)
            reload_sent = time.monotonic()
            reloaded = httpx.post(f"{url}/admin/reload", timeout=120)
            challenger_from = time.monotonic()
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["challenger"] == {"before": None, "after": "2", "error": None}
            load.wait_for(100)
            # `credit-risk promote --alias champion 2`: new champion, challenger cleared.
            challenger_until = time.monotonic()
            _replace(second, champion_dir)
            shutil.rmtree(challenger_dir)
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 120
            while _served(url) != {"champion": "2", "challenger": None, "shadow_pending": 0}:
                assert time.monotonic() < deadline, _served(url)
                time.sleep(0.05)
            swapped = time.monotonic()
            load.wait_for(50)
        assert process.poll() is None  # SIGHUP reloaded; it did not stop the server
    finally:
        process.terminate()  # graceful: the shadow and the log are flushed first
        process.wait(60)
    answers = load.answers
    failed = [a for a in answers if a.status != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed: {failed[:3]}"
    versions = [a.body["model_version"] for a in sorted(answers, key=lambda a: a.answered)]
    assert versions[0] == "1" and versions[-1] == "2"
    assert all(a.body["model_version"] == "2" for a in answers if a.sent > swapped)

    engine = make_engine(log_url)
    with engine.connect() as connection:
        logged = {r.request_id for r in connection.execute(sa.select(decisions_table.c.request_id))}
        shadows = {
            r.request_id: r.model_version for r in connection.execute(sa.select(shadow_table))
        }
    engine.dispose()
    ids = {a.body["request_id"] for a in answers}
    assert ids <= logged
    # Served while the challenger was loaded (sent after the reload answered, answered before
    # the champion changed): every one has the challenger's shadow decision.
    during = {
        a.body["request_id"]
        for a in answers
        if challenger_from < a.sent and a.answered < challenger_until
    }
    assert len(during) >= 90
    assert {shadows.get(i) for i in during} == {"2"}
    # None before the challenger was loaded, none after it was cleared.
    before = {a.body["request_id"] for a in answers if a.answered < reload_sent}
    after = {a.body["request_id"] for a in answers if a.sent > swapped}
    assert before and after and not (before | after) & set(shadows)
    assert set(shadows) <= ids
