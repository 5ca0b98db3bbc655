"""Concurrent requests are scored and logged together, and each still gets its own answer."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from credit_risk.api.coalesce import Coalescer, DecisionLogUnavailable, new_request_id
from credit_risk.api.metrics import ServiceMetrics
from credit_risk.decision_log import (
    DecisionLog,
    _driver_insert,
    count_rows,
    decision_row,
    decisions_table,
    make_engine,
)
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT, POSTGRES_URL


class CountingScorer:
    """Wraps a scorer and records how many applicants each scoring call received."""

    def __init__(self, scorer: Scorer) -> None:
        self.inner = scorer
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def score_records(self, records: Any) -> Any:
        self.calls.append(len(records))
        return self.inner.score_records(records)


def test_coalesce_concurrent_requests_one_scoring_call(scorer: Scorer, tmp_path: Path) -> None:
    counting = CountingScorer(scorer)
    applicants = [{**APPLICANT, "duration_months": d} for d in (6, 12, 24, 36, 48, 60)]
    log = DecisionLog(f"sqlite:///{tmp_path / 'd.db'}")
    log.start()

    async def go() -> list[list[dict[str, Any]]]:
        coalescer = Coalescer(ServiceMetrics())
        return await asyncio.gather(
            *(coalescer.submit(counting, [a], log) for a in applicants)  # type: ignore[arg-type]
        )

    answers = asyncio.run(go())
    log.close()
    assert counting.calls == [len(applicants)]
    # Each request gets the answer for its own applicant, as if scored alone.
    for applicant, (payload,) in zip(applicants, answers, strict=True):
        (alone,) = scorer.score_records([applicant])
        assert payload["probability_bad"] == pytest.approx(alone.probability_bad, abs=1e-9)
        assert [r["attribute"] for r in payload["reasons"]] == [r.attribute for r in alone.reasons]
    ids = [payload["request_id"] for (payload,) in answers]
    assert len(set(ids)) == len(ids)
    assert count_rows(make_engine(f"sqlite:///{tmp_path / 'd.db'}"), ids) == len(ids)


def test_coalesce_lone_request_is_not_held_back(scorer: Scorer) -> None:
    async def go() -> float:
        coalescer = Coalescer(ServiceMetrics())
        started = time.perf_counter()
        await coalescer.submit(scorer, [APPLICANT], None)
        return time.perf_counter() - started

    assert asyncio.run(go()) < 1.0


def test_coalesce_failed_log_fails_every_request_of_the_batch(
    scorer: Scorer, tmp_path: Path
) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path / 'd.db'}")
    log.start()
    with log.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE decisions")

    async def go() -> list[Any]:
        coalescer = Coalescer(ServiceMetrics())
        return await asyncio.gather(
            *(coalescer.submit(scorer, [APPLICANT], log) for _ in range(3)),
            return_exceptions=True,
        )

    results = asyncio.run(go())
    log.close()
    assert all(isinstance(r, DecisionLogUnavailable) for r in results)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_driver_insert_stores_what_sqlalchemy_insert_stores(backend: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}" if backend == "sqlite" else POSTGRES_URL
    engine = make_engine(url)
    table = f"decisions_{uuid.uuid4().hex[:8]}"
    copy = decisions_table.to_metadata(sa.MetaData(), name=table)
    copy.create(engine)
    try:
        now = datetime.now(UTC)
        reasons = [{"attribute": "duration_months", "contribution": 0.1}]
        row = decision_row("a", now, "3", APPLICANT, 0.25, 2, "reject", 0.2, reasons)
        insert = _driver_insert(engine)
        assert insert is not None
        sql, to_params = insert
        with engine.begin() as connection:
            connection.execute(copy.insert(), [row])
            connection.exec_driver_sql(
                sql.replace(
                    engine.dialect.identifier_preparer.format_table(decisions_table), table
                ),
                [to_params({**row, "request_id": "b"})],
            )
        with engine.connect() as connection:
            raw = connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY request_id").all()
            typed = connection.execute(sa.select(copy).order_by(copy.c.request_id)).all()
        assert raw[0][1:] == raw[1][1:]
        assert typed[0][1:] == typed[1][1:]
        assert typed[1].input == APPLICANT and typed[1].reasons == reasons
    finally:
        copy.drop(engine)
        engine.dispose()


def test_decision_log_checkpoints_wal_in_background(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    log = DecisionLog(f"sqlite:///{path}", checkpoint_seconds=0.05)
    log.start()
    empty = path.stat().st_size  # the schema only: commits go to the WAL, not to this file

    async def write_all() -> None:
        for i in range(300):
            row = decision_row(str(i), datetime.now(UTC), "1", APPLICANT, 0.5, 2, "reject", 0.3, [])
            await log.write([row])

    asyncio.run(write_all())
    time.sleep(0.5)
    # The writer never checkpoints (autocheckpoint is off); the background thread copied the
    # committed pages back into the database file while the log was still open.
    assert path.stat().st_size > empty
    log.close()
    assert count_rows(make_engine(f"sqlite:///{path}")) == 300


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "writer-thread"])
def test_decision_log_rows_committed_when_write_returns(inline: bool, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    log = DecisionLog(url, inline=inline)
    log.start()
    reader = make_engine(url)

    async def write_and_count() -> list[int]:
        seen = []
        for i in range(20):
            row = decision_row(str(i), datetime.now(UTC), "1", APPLICANT, 0.5, 2, "reject", 0.3, [])
            await log.write([row])
            seen.append(count_rows(reader))  # another connection sees it: committed
        return seen

    assert asyncio.run(write_and_count()) == list(range(1, 21))
    log.close()
    reader.dispose()


def test_new_request_id_unique_and_time_ordered() -> None:
    first = [new_request_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_request_id()
    assert len(set(first)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first)
    assert later > max(first)  # a later millisecond sorts after every earlier id
