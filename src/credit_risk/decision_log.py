"""The decision log: every decision the API returns is first written to a database.

SQLite file by default, PostgreSQL (or any SQLAlchemy URL) by setting ``decision_log_url``.
Writes are group-committed by one writer thread: a request hands its rows over and awaits the
commit, so its response never leaves before its row is durable, while many concurrent requests
share one transaction. On shutdown the queue is drained before the connection closes, so a
graceful stop under load loses nothing that was answered.

The same database holds the realised outcomes of the decisions (:data:`outcomes_table`, written
by :mod:`credit_risk.outcomes`), the shadow challenger's decisions (:data:`shadow_table`,
written off the response path by :mod:`credit_risk.api.shadow`) and the log's schema version
(:data:`schema_table`). Opening a log brings it to :data:`SCHEMA_VERSION`
(:func:`upgrade_schema`): a log written before outcomes or shadow decisions existed gets their
tables on its first open by this code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from credit_risk.errors import UserError
from credit_risk.files import sqlite_file

log = logging.getLogger(__name__)

TABLE_NAME = "decisions"
# Most rows one transaction takes from the queue; bounds a commit's latency under load.
MAX_GROUP = 512
# SQLite: WAL frames (pages, 4 KiB) beyond which the checkpoint thread holds commits for one
# complete checkpoint, so the WAL can rewind. That hold stalls the event loop's commits (two
# fsyncs); a high limit makes it rare enough to stay out of the p99 at saturation.
MAX_WAL_FRAMES = 65536
# A WAL file is cut back to this size after a checkpoint: the limit's frames (page and header),
# so a rewound WAL is overwritten in place rather than truncated and grown (block allocation)
# again. At most ~270 MB beside the log under sustained load; close() truncates it to zero.
WAL_SIZE_LIMIT = MAX_WAL_FRAMES * (4096 + 24) + 32

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
# The realised outcome of a logged decision, once known (credit_risk.outcomes). No foreign key:
# the shared PostgreSQL log's decisions table must stay droppable and writable as before; the
# request id is checked against the decisions in the transaction that records the outcome.
outcomes_table = sa.Table(
    "outcomes",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    # The dataset's target coding: 1 good, 2 bad.
    sa.Column("outcome", sa.SmallInteger, nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    # Where it came from: "api" or "file:<name>".
    sa.Column("source", sa.String(255), nullable=False),
    # 1 when first recorded; +1 for every explicit replacement.
    sa.Column("revision", sa.Integer, nullable=False),
)
# The challenger's decision on a logged request, scored in shadow after the champion's answer
# (credit_risk.api.shadow): never returned to anyone. Keyed by the champion's request id (one
# challenger per request); no foreign key, for the reason given for the outcomes.
shadow_table = sa.Table(
    "shadow_decisions",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("probability_bad", sa.Float, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
)
# One row per schema version applied to this log (its highest is the log's version).
schema_table = sa.Table(
    "decision_log_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(255), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


class DecisionLogError(UserError):
    """The decision log's location cannot be used (named in the message)."""


def check_log_location(url: str) -> None:
    """Refuse a SQLite decision log whose folder does not exist.

    SQLite would say only "unable to open database file", naming no path. Other databases are
    checked when they are connected to.

    Raises:
        DecisionLogError: names the folder and the setting.
    """
    database = sqlite_file(url)
    if database is None:
        return
    folder = database.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DecisionLogError(
            f"decision log {url}: the folder {folder} {what}; create it or set "
            "CREDIT_RISK_DECISION_LOG_URL to a database in an existing folder"
        )


def check_log_exists(url: str) -> None:
    """Refuse to read a SQLite decision log that is not there (opening it would create it).

    Raises:
        DecisionLogError: names the file and the setting.
    """
    database = sqlite_file(url)
    if database is not None and not database.is_file():
        raise DecisionLogError(
            f"decision log {url}: no database at {database}; point --log-url "
            "(CREDIT_RISK_DECISION_LOG_URL) at the log the service writes"
        )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, autocheckpoint: bool = True) -> Engine:
    """An engine for the log; SQLite gets WAL so readers never block the writer.

    Args:
        url: SQLAlchemy database URL.
        autocheckpoint: let SQLite checkpoint the WAL inside the commit that crosses its size
            limit (SQLite's default). The decision log's writer turns it off and checkpoints
            from a thread of its own instead: the checkpoint's fsync made one commit in a few
            hundred many times slower, and requests waited for it.
    """
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
            if not autocheckpoint:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
                # After a checkpoint, a WAL file that grew past this is cut back to it.
                cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            cursor.close()

        return engine
    return sa.create_engine(url, json_serializer=_dumps, pool_pre_ping=True)


class SchemaVersionError(RuntimeError):
    """The log was written by a newer release than this code (its schema is unknown here)."""


def _create(*tables: sa.Table) -> Callable[[sa.Connection], None]:
    def step(connection: sa.Connection) -> None:
        metadata.create_all(connection, tables=list(tables), checkfirst=True)

    return step


# The log's schema, step by step; a step must be safe to run again (a crash between a step and
# its record, or two workers upgrading at once, repeats it). Version 1 is the decisions table
# alone: every log written before versions were recorded.
MIGRATIONS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "decisions", _create(decisions_table)),
    (2, "outcomes: the realised outcome of a logged decision", _create(outcomes_table)),
    (3, "shadow: the challenger's decision beside the champion's", _create(shadow_table)),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
_UPGRADE_ATTEMPTS = 5


def schema_version(engine: Engine) -> int:
    """The log's schema version: 0 for an empty database, 1 for a log from before versions."""
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        if inspector.has_table(schema_table.name):
            applied = connection.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
            if applied is not None:
                return int(applied)
        return 1 if inspector.has_table(decisions_table.name) else 0


def _upgrade_once(engine: Engine) -> list[int]:
    with engine.begin() as connection:
        schema_table.create(connection, checkfirst=True)
        applied = set(connection.execute(sa.select(schema_table.c.version)).scalars())
    newest = max(applied, default=0)
    if newest > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the decision log at {engine.url.render_as_string(hide_password=True)} has schema "
            f"version {newest}; this release knows versions up to {SCHEMA_VERSION}: upgrade "
            "credit-risk before opening it"
        )
    done = []
    for version, description, step in MIGRATIONS:
        if version in applied:
            continue
        # One transaction per step where the database has transactional DDL (PostgreSQL).
        with engine.begin() as connection:
            step(connection)
            connection.execute(
                sa.insert(schema_table).values(
                    version=version, description=description, applied_at=datetime.now(UTC)
                )
            )
        done.append(version)
    return done


def upgrade_schema(engine: Engine) -> list[int]:
    """Bring the log to :data:`SCHEMA_VERSION`: create what is missing, record each step.

    Tolerates other workers upgrading the same database at the same time (a lost race is
    retried: the steps already applied are skipped then).

    Returns:
        The versions applied now (empty when the log was up to date).

    Raises:
        SchemaVersionError: the log is newer than this code.
    """
    attempts = 1
    while True:
        try:
            return _upgrade_once(engine)
        except sa.exc.SQLAlchemyError:
            # Lost a race with another worker (a table or version row created meanwhile).
            if attempts == _UPGRADE_ATTEMPTS:
                raise
            attempts += 1
            log.info("decision log schema upgrade raced another worker; trying again")


def create_table(engine: Engine) -> None:
    """Create the log's tables if missing, upgrading an older log (see :func:`upgrade_schema`)."""
    applied = upgrade_schema(engine)
    if applied:
        log.info("decision log schema: applied version(s) %s", applied)


class DecisionLog:
    """Group-committing writer of decision rows.

    Args:
        url: SQLAlchemy database URL (``sqlite:///decisions.db``, ``postgresql://...``).
        checkpoint_seconds: SQLite only: how often a background thread checkpoints the WAL
            into the database file (passively: it never blocks the writer).
        inline: commit in the caller's thread (the event loop) instead of the writer thread.
            For SQLite a commit is a little local work with no fsync (WAL, checkpoints run
            elsewhere), less than handing it to another thread and back, which also makes the
            writer wait for the interpreter lock while the event loop is busy. Default: inline
            for SQLite, the writer thread for server databases (a commit waits on the network
            and the server's fsync, which must not block the event loop).
    """

    def __init__(
        self, url: str, checkpoint_seconds: float = 0.2, inline: bool | None = None
    ) -> None:
        self.url = url
        self._sqlite = url.startswith("sqlite")
        self.inline = self._sqlite if inline is None else inline
        self._running = False
        self.engine = make_engine(url, autocheckpoint=not self._sqlite)
        self._checkpoint_seconds = checkpoint_seconds
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._write_lock = threading.Lock()
        # The writer thread's own driver connection (its hot loop skips the pool).
        self._raw: Any = None
        self._queue: queue.Queue[
            tuple[list[dict[str, Any]], asyncio.Future[None], asyncio.AbstractEventLoop] | None
        ] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._insert = _driver_insert(self.engine)
        self.written = 0

    def start(self) -> None:
        """Create the table and start the writer thread (and the SQLite checkpoints).

        Raises:
            DecisionLogError: a SQLite log in a folder that does not exist.
        """
        check_log_location(self.url)
        create_table(self.engine)
        if not self.inline:
            self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
            self._thread.start()
        self._running = True
        if self._sqlite:
            self._stop_checkpoints.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoints, name="decision-log-checkpoint", daemon=True
            )
            self._checkpointer.start()

    async def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write rows and return once they are committed.

        Raises:
            RuntimeError: the log is not running.
            sqlalchemy.exc.SQLAlchemyError: the commit failed (the caller must not answer).
        """
        await self.submit(rows)

    def submit(self, rows: Sequence[dict[str, Any]]) -> asyncio.Future[None]:
        """Queue rows for the next group commit; the future completes once they are committed.

        Must be called from a running event loop (the future belongs to it).

        Raises:
            RuntimeError: the log is not running.
        """
        if not self._running or (
            not self.inline and (self._thread is None or not self._thread.is_alive())
        ):
            raise RuntimeError("the decision log is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self.inline:
            error = self._commit_rows(list(rows))
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
            return future
        self._queue.put((list(rows), future, loop))
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Drain what is queued, commit it, stop the writer and close the engine."""
        self._running = False
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join(timeout)
            self._checkpointer = None
            self._checkpoint("TRUNCATE")
        self.engine.dispose()

    def write_shadow(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert shadow decisions (:data:`shadow_table`) in one transaction, from any thread.

        Not on any response's path: the caller is the shadow scorer's thread. A SQLite log
        takes its turn with the decisions' commits (one writer at a time: a commit waiting on
        SQLite's busy lock would stall the event loop; waiting on this lock is as short as one
        small insert).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the commit failed.
        """
        if not rows:
            return
        lock = self._write_lock if self._sqlite else contextlib.nullcontext()
        with lock, self.engine.begin() as connection:
            connection.execute(shadow_table.insert(), list(rows))

    def _insert_rows(self, rows: list[dict[str, Any]]) -> None:
        """Insert and commit in one transaction on the writer's own driver connection."""
        if self._insert is None:
            with self.engine.begin() as connection:
                connection.execute(decisions_table.insert(), rows)
            return
        sql, to_params = self._insert
        params = [to_params(row) for row in rows]
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        raw = self._raw
        try:
            cursor = raw.cursor()
            try:
                cursor.executemany(sql, params)
            finally:
                cursor.close()
            raw.commit()
        except Exception as error:
            dialect = self.engine.dialect
            disconnect = isinstance(error, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
                error, raw.driver_connection, None
            )
            with contextlib.suppress(Exception):  # the connection is dropped below anyway
                raw.rollback()
            raw.invalidate()
            self._raw = None
            raise sa.exc.DBAPIError.instance(
                sql,
                params[:1],
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=disconnect,
                dialect=dialect,
                ismulti=True,
            ) from error

    def _checkpoint(self, mode: str) -> int:
        """Run a WAL checkpoint; return the number of frames in the WAL (0 if it failed)."""
        try:
            with self.engine.connect() as connection:
                result = connection.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})").first()
        except sa.exc.SQLAlchemyError as error:  # the next round tries again
            log.warning("decision log checkpoint failed: %s", error)
            return 0
        return int(result[1]) if result is not None else 0

    def _checkpoints(self) -> None:
        while not self._stop_checkpoints.wait(self._checkpoint_seconds):
            # Copy the WAL back into the database while commits go on. Under steady load a
            # passive checkpoint never catches up with the last commit, and only a complete
            # one lets the next commit rewind the WAL: once it has grown past the limit,
            # commits are held off while the few frames written since are copied too.
            if self._checkpoint("PASSIVE") > MAX_WAL_FRAMES:
                with self._write_lock:
                    self._checkpoint("PASSIVE")

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
        error = self._commit_rows([row for rows, _, _ in group for row in rows])
        # One wake-up per event loop for the whole group, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, future, loop in group:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(_settle, futures, error)

    def _commit_rows(self, rows: list[dict[str, Any]]) -> BaseException | None:
        """Insert and commit ``rows`` in one transaction; the error, if it failed."""
        try:
            with self._write_lock:
                try:
                    self._insert_rows(rows)
                except sa.exc.DBAPIError as first:
                    if not first.connection_invalidated:
                        raise
                    # The server went away between commits (restart, idle timeout): once more
                    # on a fresh connection, as pool_pre_ping would have done at checkout.
                    self._insert_rows(rows)
            self.written += len(rows)
        except Exception as exc:  # reported to every waiting request
            log.exception("decision log commit of %d rows failed", len(rows))
            return exc
        return None


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _driver_insert(
    engine: Engine,
) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]] | None:
    """The INSERT as driver SQL, and a row -> parameters function, for the writer's hot loop.

    SQLAlchemy's compiled ``insert()`` runs every value of every row through its type
    processors in Python while holding the GIL; the writer thread then competes with the
    event loop. Here JSON is serialised by orjson and the timestamp by the dialect's own
    processor, once, so the stored values are exactly what ``insert()`` would store.
    None when the driver's parameter style is not one of the common ones (``insert()`` is
    used then).
    """
    placeholder = _PLACEHOLDERS.get(engine.dialect.paramstyle)
    if placeholder is None:
        return None
    columns = list(decisions_table.columns)
    preparer = engine.dialect.identifier_preparer
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        preparer.format_table(decisions_table),
        ", ".join(preparer.format_column(c) for c in columns),
        ", ".join([placeholder] * len(columns)),
    )
    created_at_type = decisions_table.c.created_at.type.dialect_impl(engine.dialect)
    stamp = created_at_type.bind_processor(engine.dialect)
    json_columns = {c.name for c in columns if isinstance(c.type, sa.JSON)}
    names = [c.name for c in columns]

    def to_params(row: dict[str, Any]) -> tuple[Any, ...]:
        values = []
        for name in names:
            value = row[name]
            if name in json_columns:
                value = _dumps(value)
            elif name == "created_at" and stamp is not None:
                value = stamp(value)
            values.append(value)
        return tuple(values)

    return sql, to_params


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
