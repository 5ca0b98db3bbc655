"""The decision log: every decision the API returns is first written to a database.

SQLite file by default, PostgreSQL (or any SQLAlchemy URL) by setting ``decision_log_url``.
Writes are group-committed by one writer thread: a request hands its rows over and awaits the
commit, so its response never leaves before its row is durable, while many concurrent requests
share one transaction. On shutdown the queue is drained before the connection closes, so a
graceful stop under load loses nothing that was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

TABLE_NAME = "decisions"
# Most rows one transaction takes from the queue; bounds a commit's latency under load.
MAX_GROUP = 512

metadata = sa.MetaData()
decisions_table = sa.Table(
    TABLE_NAME,
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("input", sa.JSON, nullable=False),
    sa.Column("probability_bad", sa.Float, nullable=False),
    sa.Column("risk_class", sa.Integer, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str) -> Engine:
    """An engine for the log; SQLite gets WAL so readers never block the writer."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, json_serializer=_dumps, connect_args={"check_same_thread": False, "timeout": 30}
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a process crash; fsync at checkpoints.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, json_serializer=_dumps, pool_pre_ping=True)


def create_table(engine: Engine) -> None:
    """Create the table if missing (tolerates another worker creating it at the same time)."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except sa.exc.SQLAlchemyError:
        # Lost a creation race with another worker process: the table now exists.
        metadata.create_all(engine, checkfirst=True)


class DecisionLog:
    """Group-committing writer of decision rows.

    Args:
        url: SQLAlchemy database URL (``sqlite:///decisions.db``, ``postgresql://...``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._queue: queue.Queue[
            tuple[list[dict[str, Any]], asyncio.Future[None], asyncio.AbstractEventLoop] | None
        ] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> None:
        """Create the table and start the writer thread."""
        create_table(self.engine)
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    async def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write rows and return once they are committed.

        Raises:
            RuntimeError: the log is not running.
            sqlalchemy.exc.SQLAlchemyError: the commit failed (the caller must not answer).
        """
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the decision log is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((list(rows), future, loop))
        await future

    def close(self, timeout: float = 30.0) -> None:
        """Drain what is queued, commit it, stop the writer and close the engine."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        self.engine.dispose()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            group = []
            if item is None:
                stopping = True
            else:
                group.append(item)
            # Take whatever else is already waiting into the same transaction.
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    continue
                group.append(item)
            if group:
                self._commit(group)

    def _commit(
        self,
        group: list[tuple[list[dict[str, Any]], asyncio.Future[None], asyncio.AbstractEventLoop]],
    ) -> None:
        rows = [row for rows, _, _ in group for row in rows]
        error: BaseException | None = None
        try:
            with self.engine.begin() as connection:
                connection.execute(decisions_table.insert(), rows)
            self.written += len(rows)
        except Exception as exc:  # reported to every waiting request
            log.exception("decision log commit of %d rows failed", len(rows))
            error = exc
        for _, future, loop in group:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def decision_row(
    request_id: str,
    created_at: datetime,
    model_version: str,
    applicant: dict[str, Any],
    probability_bad: float,
    risk_class: int,
    decision: str,
    threshold: float,
    reasons: list[dict[str, Any]],
) -> dict[str, Any]:
    """One row of the decision log."""
    return {
        "request_id": request_id,
        "created_at": created_at,
        "model_version": model_version,
        "input": applicant,
        "probability_bad": probability_bad,
        "risk_class": risk_class,
        "decision": decision,
        "threshold": threshold,
        "reasons": reasons,
    }


def count_rows(engine: Engine, request_ids: Sequence[str] | None = None) -> int:
    """Rows in the log (only those with the given request ids, when given)."""
    query = sa.select(sa.func.count()).select_from(decisions_table)
    if request_ids is not None:
        query = query.where(decisions_table.c.request_id.in_(list(request_ids)))
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())
