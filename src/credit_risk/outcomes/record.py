"""Recording outcomes beside the logged decisions, all or nothing: unknown ids and conflicts
refused, the same outcome again reported unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from credit_risk.decision_log import (
    decisions_table,
    make_engine,
    outcomes_table,
    upgrade_schema,
)
from credit_risk.outcomes.parse import (
    ALLOWED,
    ConflictingOutcomes,
    InvalidOutcomes,
    Outcome,
    ParsedOutcomes,
    Problem,
    UnknownRequests,
    _utc,
    outcome_label,
    read_outcomes_file,
)

# Request ids per IN (...) lookup.
_LOOKUP_CHUNK = 500
_RECORD_ATTEMPTS = 3


def _same(a: Outcome, outcome: int, observed_at: datetime) -> bool:
    return a.outcome == outcome and a.observed_at == observed_at


def _describe(outcome: int, observed_at: datetime) -> str:
    return f"{outcome_label(outcome)} observed at {observed_at.isoformat()}"


def _unique(outcomes: Sequence[Outcome]) -> dict[str, Outcome]:
    """The first occurrence of each request id; a repeat must say the same.

    Raises:
        InvalidOutcomes: a request id given twice with different outcomes or times.
    """
    first: dict[str, Outcome] = {}
    problems = []
    for outcome in outcomes:
        seen = first.setdefault(outcome.request_id, outcome)
        if seen is not outcome and not _same(seen, outcome.outcome, outcome.observed_at):
            problems.append(
                Problem(
                    outcome.where,
                    "request_id",
                    f"{outcome.request_id!r} is given again with a different outcome: "
                    f"{_describe(outcome.outcome, outcome.observed_at)}, but "
                    f"{seen.where} says {_describe(seen.outcome, seen.observed_at)}",
                    outcome.request_id,
                    "one outcome per request id",
                    "repeated",
                )
            )
    if problems:
        raise InvalidOutcomes(
            f"{len(problems)} request id(s) given twice with different outcomes; "
            "nothing was recorded",
            problems,
        )
    return first


@dataclass
class RecordResult:
    """What recording a batch did, item by item (in the batch's order).

    Attributes:
        statuses: ``(request_id, status)``; status is ``recorded`` (new), ``replaced`` (an
            explicit replacement of a different outcome) or ``unchanged`` (already stored
            exactly so, or repeated within the batch).
    """

    statuses: list[tuple[str, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for _, s in self.statuses if s == status)

    def counts(self) -> dict[str, int]:
        return {s: self.count(s) for s in ("recorded", "replaced", "unchanged")}

    def summary(self) -> str:
        counts = self.counts()
        return ", ".join(f"{n} {status}" for status, n in counts.items())


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _LOOKUP_CHUNK):
        yield values[start : start + _LOOKUP_CHUNK]


def _decided_at(connection: Connection, ids: list[str]) -> dict[str, datetime]:
    table = decisions_table
    found = {}
    for chunk in _chunks(ids):
        query = sa.select(table.c.request_id, table.c.created_at).where(
            table.c.request_id.in_(chunk)
        )
        found.update({row.request_id: _utc(row.created_at) for row in connection.execute(query)})
    return found


def _stored(connection: Connection, ids: list[str]) -> dict[str, tuple[int, datetime]]:
    table = outcomes_table
    found = {}
    for chunk in _chunks(ids):
        query = sa.select(table.c.request_id, table.c.outcome, table.c.observed_at).where(
            table.c.request_id.in_(chunk)
        )
        found.update(
            {
                row.request_id: (int(row.outcome), _utc(row.observed_at))
                for row in connection.execute(query)
            }
        )
    return found


def _record(
    connection: Connection, parsed: ParsedOutcomes, replace: bool, source: str
) -> RecordResult:
    named = list(dict.fromkeys(request_id for _, request_id in parsed.references))
    decided = _decided_at(connection, named)
    unknown = [
        Problem(
            where,
            "request_id",
            f"{request_id!r} is not a decision in the log",
            request_id,
            ALLOWED["request_id"],
            "unknown_request_id",
        )
        for where, request_id in parsed.references
        if request_id not in decided
    ]
    if unknown:
        # Every problem at once: the unknown ids first, then what else is wrong.
        invalid = f" and {len(parsed.problems)} invalid value(s)" if parsed.problems else ""
        raise UnknownRequests(
            f"{len(unknown)} unknown request id(s){invalid}; nothing was recorded",
            unknown + parsed.problems,
        )
    outcomes = parsed.valid()
    unique = _unique(outcomes)
    ids = list(unique)
    early = [
        Problem(
            o.where,
            "observed_at",
            f"{o.observed_at.isoformat()} is before the decision on {o.request_id!r} "
            f"({decided[o.request_id].isoformat()})",
            o.observed_at.isoformat(),
            "a time after the decision",
            "before_decision",
        )
        for o in unique.values()
        if o.observed_at < decided[o.request_id]
    ]
    if early:
        raise InvalidOutcomes(
            f"{len(early)} outcome(s) observed before their decision; nothing was recorded", early
        )
    stored = _stored(connection, ids)
    new, changed, status = [], [], {}
    for request_id, outcome in unique.items():
        before = stored.get(request_id)
        if before is None:
            new.append(outcome)
            status[request_id] = "recorded"
        elif _same(outcome, *before):
            status[request_id] = "unchanged"
        else:
            changed.append(outcome)
            status[request_id] = "replaced"
    if changed and not replace:
        conflicts = [
            Problem(
                o.where,
                "outcome",
                f"{o.request_id!r} already has {_describe(*stored[o.request_id])}; this says "
                f"{_describe(o.outcome, o.observed_at)}",
                outcome_label(o.outcome),
                'the stored outcome, or an explicit replacement (--replace, "replace": true)',
                "conflict",
            )
            for o in changed
        ]
        raise ConflictingOutcomes(
            f"{len(changed)} decision(s) already have a different outcome; nothing was "
            "recorded (replace explicitly to overwrite)",
            conflicts,
        )
    now = datetime.now(UTC)
    if new:
        connection.execute(
            sa.insert(outcomes_table),
            [
                {
                    "request_id": o.request_id,
                    "outcome": o.outcome,
                    "observed_at": o.observed_at,
                    "recorded_at": now,
                    "source": source[:255],
                    "revision": 1,
                }
                for o in new
            ],
        )
    if changed:
        table = outcomes_table
        connection.execute(
            sa.update(table)
            .where(table.c.request_id == sa.bindparam("key"))
            .values(
                outcome=sa.bindparam("new_outcome"),
                observed_at=sa.bindparam("new_observed_at"),
                recorded_at=now,
                source=source[:255],
                revision=table.c.revision + 1,
            ),
            [
                {"key": o.request_id, "new_outcome": o.outcome, "new_observed_at": o.observed_at}
                for o in changed
            ],
        )
    result = RecordResult()
    reported: set[str] = set()
    for outcome in parsed.outcomes:
        first = outcome.request_id not in reported
        reported.add(outcome.request_id)
        result.statuses.append(
            (outcome.request_id, status[outcome.request_id] if first else "unchanged")
        )
    return result


def record_outcomes(
    engine: Engine,
    outcomes: ParsedOutcomes | Sequence[Outcome],
    replace: bool = False,
    source: str = "api",
) -> RecordResult:
    """Record outcomes in one transaction: all of them, or none.

    The log's schema must be current (:func:`credit_risk.decision_log.upgrade_schema`; the
    service does it when it opens the log).

    Args:
        engine: the decision-log database.
        outcomes: what :func:`parse_outcomes` or :func:`read_outcomes_file` read (its problems
            are raised here, with the unknown request ids), or validated outcomes.
        replace: overwrite a different stored outcome instead of refusing it.
        source: recorded with each row (``api``, ``file:<name>``).

    Raises:
        UnknownRequests: request ids not in the log (all named, up to the listing limit,
            followed by the batch's other problems).
        InvalidOutcomes: invalid items, no item, a request id repeated with different values,
            or an outcome observed before its decision.
        ConflictingOutcomes: without ``replace``, decisions whose stored outcome differs.
    """
    parsed = (
        outcomes
        if isinstance(outcomes, ParsedOutcomes)
        else ParsedOutcomes(list(outcomes), [], [(o.where, o.request_id) for o in outcomes])
    )
    if not parsed.references:  # nothing to look up: the problems alone (or "no outcomes")
        parsed.valid()
    attempts = 1
    while True:
        try:
            with engine.connect() as connection:
                if connection.dialect.name == "sqlite":
                    # Take the write lock first: a read transaction upgraded to a write fails
                    # at once (no busy wait) when the decision log committed in between.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                result = _record(connection, parsed, replace, source)
                connection.commit()
                return result
        except sa.exc.IntegrityError:
            # Another writer recorded one of these request ids meanwhile: judge again.
            if attempts == _RECORD_ATTEMPTS:
                raise
            attempts += 1


def import_outcomes(
    url: str, path: Path, replace: bool = False, now: datetime | None = None
) -> RecordResult:
    """Read an outcomes CSV file and record it in the decision log at ``url`` (all or nothing).

    Upgrades the log's schema first when it predates outcomes.

    Raises:
        OutcomeError: see :func:`read_outcomes_file` and :func:`record_outcomes`.
    """
    outcomes = read_outcomes_file(path, now)
    engine = make_engine(url)
    try:
        upgrade_schema(engine)
        return record_outcomes(engine, outcomes, replace, source=f"file:{path.name}")
    finally:
        engine.dispose()
