"""Realised outcomes of logged decisions: validating, recording and reading them back.

An outcome says what became of an applicant the service decided on: ``good`` (1) or ``bad``
(2), the dataset's target coding, observed at some time after the decision. Outcomes arrive
through ``POST /outcomes`` or ``credit-risk outcomes import FILE`` and are stored beside the
decisions, in the decision-log database (:data:`credit_risk.decision_log.outcomes_table`).

Rules, one transaction per request or file (nothing is ever half-recorded):

- the same outcome sent again is accepted once and reported ``unchanged`` (idempotent);
- a different outcome, or a different observation time, for a decision that already has one is
  refused (:class:`ConflictingOutcomes`) unless a replacement is asked for explicitly;
- an unknown request id is refused, and named (:class:`UnknownRequests`);
- any invalid item refuses the whole batch, naming its line or position (:class:`InvalidOutcomes`).

The reading side, :func:`labelled_decisions`, joins logged decisions with their outcomes, one
row each: realised performance (:mod:`credit_risk.performance`) and training on grown data read
it.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from credit_risk.decision_log import (
    decisions_table,
    make_engine,
    outcomes_table,
    upgrade_schema,
)
from credit_risk.schema import BAD, CATEGORICAL, CLASS_LABELS, FEATURE_NAMES, GOOD, NUMERIC

log = logging.getLogger(__name__)

# Columns of an outcomes file (and keys of one outcome in ``POST /outcomes``).
OUTCOME_FIELDS = ("request_id", "outcome", "observed_at")
REQUEST_ID_LENGTH: int = getattr(decisions_table.c.request_id.type, "length", None) or 64
ALLOWED = {
    "request_id": f"the request_id of a logged decision (1 to {REQUEST_ID_LENGTH} visible ASCII "
    "characters, as returned by /predict)",
    "outcome": '"good" or "bad" (or the dataset\'s codes 1 = good, 2 = bad)',
    "observed_at": "an ISO 8601 date or date-time, e.g. 2025-03-31 or 2025-03-31T14:00:00Z "
    "(UTC when it has no offset), after the decision and not in the future",
}
# Visible ASCII: what the service issues (hex), and safe in any database and message.
REQUEST_ID_PATTERN = f"^[!-~]{{1,{REQUEST_ID_LENGTH}}}$"
_OUTCOME_CODES = {"good": GOOD, "bad": BAD, str(GOOD): GOOD, str(BAD): BAD}
# Clocks of the service and of the system reporting outcomes may disagree by this much.
CLOCK_TOLERANCE = timedelta(hours=1)
# Problems listed in an error; the rest are counted.
MAX_LISTED_PROBLEMS = 20
# Request ids per IN (...) lookup.
_LOOKUP_CHUNK = 500
_RECORD_ATTEMPTS = 3
_READ_BATCH = 1000
# The columns read_decisions_with_outcomes selects, in order (then the input, when asked).
_READ_COLUMNS = (
    "request_id",
    "created_at",
    "model_version",
    "probability_bad",
    "decision",
    "outcome",
    "observed_at",
)

# Columns of :func:`labelled_decisions`, in order.
LABELLED_COLUMNS = (
    "request_id",
    "decided_at",
    "model_version",
    "probability_bad",
    "decision",
    *FEATURE_NAMES,
    "outcome",
    "observed_at",
)


@dataclass(frozen=True)
class Outcome:
    """One validated outcome.

    Attributes:
        request_id: the decision's request id.
        outcome: 1 good, 2 bad.
        observed_at: when it was observed (UTC).
        where: where it came from in its batch: ``line 4`` of a file, ``outcomes[3]`` of a body.
    """

    request_id: str
    outcome: int
    observed_at: datetime
    where: str = ""


@dataclass(frozen=True)
class Problem:
    """What is wrong with one item: where, which field, the value, what is allowed."""

    where: str
    field: str
    message: str
    value: Any = None
    allowed: str | None = None
    kind: str = "value_error"

    def text(self) -> str:
        head = f"{self.where}, {self.field}" if self.field else self.where
        text = f"{head}: {self.message}"
        return f"{text}; expected {self.allowed}" if self.allowed else text


class OutcomeError(ValueError):
    """Outcomes refused; nothing was recorded. ``problems`` lists at most
    :data:`MAX_LISTED_PROBLEMS` of them; ``omitted`` counts the rest."""

    def __init__(self, summary: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = list(problems[:MAX_LISTED_PROBLEMS])
        self.omitted = max(0, len(problems) - MAX_LISTED_PROBLEMS)

    def __str__(self) -> str:
        lines = [self.summary, *(f"  {problem.text()}" for problem in self.problems)]
        if self.omitted:
            lines.append(f"  ... and {self.omitted} more")
        return "\n".join(lines)


class InvalidOutcomes(OutcomeError):
    """The input is malformed: a field is missing or has a value that is not allowed."""


class UnknownRequests(OutcomeError):
    """Request ids that are not in the decision log."""


class ConflictingOutcomes(OutcomeError):
    """Decisions that already have a different outcome (replace explicitly to overwrite)."""


def outcome_label(code: int) -> str:
    return CLASS_LABELS.get(code, str(code))


def _utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite hands timestamps back naive: they were written in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text)} characters)"


def well_formed_id(value: Any) -> str | None:
    """``value`` if it can be a request id (:data:`REQUEST_ID_PATTERN`), else None."""
    if isinstance(value, str) and re.fullmatch(REQUEST_ID_PATTERN, value):
        return value
    return None


def _outcome_code(value: Any) -> int | None:
    if isinstance(value, bool):  # True == 1 in Python; not an outcome
        return None
    if isinstance(value, int):
        return value if value in (GOOD, BAD) else None
    if isinstance(value, str):
        return _OUTCOME_CODES.get(value.strip().lower())
    return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        return None


def parse_outcome(
    raw: Mapping[str, Any], where: str, problems: list[Problem], now: datetime | None = None
) -> Outcome | None:
    """One outcome from its fields (a CSV row or a JSON object), or None with its problems.

    Args:
        raw: ``request_id``, ``outcome`` and ``observed_at`` (other keys are reported).
        where: the item's place, for the messages (``line 4``, ``outcomes[3]``).
        problems: where problems are appended.
        now: the present (observations after it, beyond :data:`CLOCK_TOLERANCE`, are refused).
    """
    found = len(problems)
    for key in raw:
        if key not in OUTCOME_FIELDS:
            problems.append(
                Problem(
                    where,
                    str(key)[:60],
                    f"unexpected field {str(key)[:60]!r}",
                    raw[key],
                    "only the fields request_id, outcome, observed_at",
                    "extra_forbidden",
                )
            )
    values = {}
    for name in OUTCOME_FIELDS:
        value = raw.get(name)
        if value is None or value == "":
            problems.append(Problem(where, name, "missing", None, ALLOWED[name], "missing"))
        else:
            values[name] = value
    request_id = values.get("request_id")
    if request_id is not None and well_formed_id(request_id) is None:
        problems.append(
            Problem(
                where,
                "request_id",
                f"{_shown(request_id)} is not a request id",
                request_id,
                ALLOWED["request_id"],
            )
        )
    code = None
    if "outcome" in values:
        code = _outcome_code(values["outcome"])
        if code is None:
            problems.append(
                Problem(
                    where,
                    "outcome",
                    f"{_shown(values['outcome'])} is not an allowed value",
                    values["outcome"],
                    ALLOWED["outcome"],
                )
            )
    observed_at = None
    if "observed_at" in values:
        observed_at = _moment(values["observed_at"])
        if observed_at is None:
            problems.append(
                Problem(
                    where,
                    "observed_at",
                    f"{_shown(values['observed_at'])} is not a date or date-time",
                    values["observed_at"],
                    ALLOWED["observed_at"],
                )
            )
        elif observed_at > (now or datetime.now(UTC)) + CLOCK_TOLERANCE:
            problems.append(
                Problem(
                    where,
                    "observed_at",
                    f"{observed_at.isoformat()} is in the future",
                    values["observed_at"],
                    ALLOWED["observed_at"],
                    "future",
                )
            )
    if len(problems) > found or code is None or observed_at is None:
        return None
    return Outcome(str(request_id), code, observed_at, where)


@dataclass
class ParsedOutcomes:
    """The items of a request or a file, read: valid outcomes, problems, request ids named.

    Attributes:
        outcomes: the valid items.
        problems: what is wrong with the others (the batch is refused if there is any).
        references: ``(where, request_id)`` of every item whose request id is well formed,
            valid or not: unknown ids are reported with the other problems.
    """

    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    references: list[tuple[str, str]] = field(default_factory=list)

    def add(self, raw: Mapping[str, Any], where: str, now: datetime | None = None) -> None:
        """Read one item (see :func:`parse_outcome`)."""
        request_id = well_formed_id(raw.get("request_id"))
        if request_id is not None:
            self.references.append((where, request_id))
        outcome = parse_outcome(raw, where, self.problems, now)
        if outcome is not None:
            self.outcomes.append(outcome)

    def valid(self) -> list[Outcome]:
        """The outcomes, when every item is valid.

        Raises:
            InvalidOutcomes: any problem, or no item at all.
        """
        if self.problems:
            raise InvalidOutcomes(
                f"{len(self.problems)} invalid value(s); nothing was recorded", self.problems
            )
        if not self.outcomes:
            raise InvalidOutcomes("no outcomes given; nothing was recorded")
        return self.outcomes


def parse_outcomes(
    items: Iterable[tuple[str, Mapping[str, Any]]], now: datetime | None = None
) -> ParsedOutcomes:
    """Read every item (``(where, fields)`` pairs); see :class:`ParsedOutcomes`."""
    parsed = ParsedOutcomes()
    for where, raw in items:
        parsed.add(raw, where, now)
    return parsed


def _header_allowed() -> str:
    return "a header line with the columns " + ", ".join(OUTCOME_FIELDS) + " (any order)"


def _check_header(path: Path, columns: list[str]) -> None:
    missing = [name for name in OUTCOME_FIELDS if name not in columns]
    unexpected = [name for name in columns if name not in OUTCOME_FIELDS]
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if missing or unexpected or repeated:
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if unexpected:
            parts.append("unexpected column(s) " + ", ".join(repr(n[:60]) for n in unexpected))
        if repeated:
            parts.append("repeated column(s) " + ", ".join(repeated))
        problem = Problem("line 1", "", "; ".join(parts), columns, _header_allowed(), "header")
        raise InvalidOutcomes(f"{path} has the wrong header; nothing was recorded", [problem])


def read_outcomes_file(path: Path, now: datetime | None = None) -> ParsedOutcomes:
    """The outcomes of a CSV file with the columns ``request_id, outcome, observed_at``.

    UTF-8 (a byte-order mark is allowed), a header line, then one outcome per line; each item
    is named by its line number in the file. Blank lines are skipped. Every row is read; the
    problems of invalid ones name their lines (see :class:`ParsedOutcomes`).

    Raises:
        InvalidOutcomes: the file cannot be read, is not UTF-8 CSV, or its header is wrong.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidOutcomes(f"cannot read {path}: {error.strerror or error}") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problem = Problem(f"line {line}", "", f"not UTF-8 text (byte {error.start} of the file)")
        raise InvalidOutcomes(f"{path} is not a UTF-8 CSV file", [problem]) from error
    reader = csv.reader(io.StringIO(text, newline=""))
    parsed = ParsedOutcomes()
    try:
        header = next(reader, None)
        if header is None:
            problem = Problem("line 1", "", "no header line", None, _header_allowed(), "header")
            raise InvalidOutcomes(f"{path} is empty; nothing was recorded", [problem])
        columns = [name.strip() for name in header]
        _check_header(path, columns)
        for row in reader:
            where = f"line {reader.line_num}"
            if not row:
                continue
            if len(row) != len(columns):
                parsed.problems.append(
                    Problem(
                        where,
                        "",
                        f"{len(row)} field(s), expected {len(columns)}",
                        None,
                        "one value per column: " + ", ".join(columns),
                        "field_count",
                    )
                )
                continue
            parsed.add(
                {name: cell.strip() for name, cell in zip(columns, row, strict=True)}, where, now
            )
    except csv.Error as error:
        problem = Problem(f"line {reader.line_num}", "", f"not a readable CSV row ({error})")
        raise InvalidOutcomes(f"{path} is not a readable CSV file", [problem]) from error
    return parsed


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


def _window(query: Any, since: datetime | None, until: datetime | None) -> Any:
    # SQLite compares the stored text: bounds in UTC, as the timestamps were written.
    column = decisions_table.c.created_at
    if since is not None:
        query = query.where(column >= _utc(since))
    if until is not None:
        query = query.where(column < _utc(until))
    return query


def read_decisions_with_outcomes(
    engine: Engine,
    since: datetime | None = None,
    until: datetime | None = None,
    labelled_only: bool = False,
    attributes: bool = True,
) -> pd.DataFrame:
    """Logged decisions decided in ``[since, until)``, with their outcome where one exists.

    Columns: :data:`LABELLED_COLUMNS` (without the 20 attributes unless ``attributes``: they
    are the costly part to read); ``outcome`` (nullable Int64) and ``observed_at`` are missing
    for decisions without an outcome. A log without decisions reads as no rows, a log without
    the outcomes table (never opened by a release that has it) as decisions without outcomes.
    """
    d, o = decisions_table, outcomes_table
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        if not inspector.has_table(d.name):
            return _frame([], attributes)
        columns = [
            d.c.request_id,
            d.c.created_at,
            d.c.model_version,
            d.c.probability_bad,
            d.c.decision,
        ]
        if inspector.has_table(o.name):
            joined = d.join(o, o.c.request_id == d.c.request_id, isouter=not labelled_only)
            query = sa.select(*columns, o.c.outcome, o.c.observed_at).select_from(joined)
        elif labelled_only:
            return _frame([], attributes)
        else:
            query = sa.select(
                *columns,
                sa.null().label("outcome"),
                sa.null().label("observed_at"),
            )
        if attributes:
            query = query.add_columns(d.c.input)
        query = _window(query, since, until).order_by(d.c.created_at, d.c.request_id)
        # In batches of plain tuples: the service reads in a background thread, and few
        # objects and a batch at a time leave the interpreter to its requests in between.
        result = connection.execution_options(yield_per=_READ_BATCH).execute(query)
        rows: list[Sequence[Any]] = []
        for partition in result.partitions():
            rows.extend(partition)
    return _frame(rows, attributes)


def _frame(rows: Sequence[Sequence[Any]], attributes: bool = True) -> pd.DataFrame:
    """One row per decision: its metadata, the 20 attributes as logged, the outcome.

    Args:
        rows: tuples in the order of :data:`_READ_COLUMNS` (then the input, with attributes).
    """
    names = (*_READ_COLUMNS, "input") if attributes else _READ_COLUMNS
    columns: dict[str, Sequence[Any]] = (
        dict(zip(names, zip(*rows, strict=True), strict=True))
        if rows
        else {name: [] for name in names}
    )
    inputs = pd.DataFrame(
        list(columns["input"]) if attributes else None,
        columns=[*(FEATURE_NAMES if attributes else ())],
    )
    for name in NUMERIC if attributes else ():
        inputs[name] = pd.to_numeric(inputs[name], errors="coerce")
    for name in CATEGORICAL if attributes else ():
        inputs[name] = inputs[name].astype("str")
    # Timestamps come back naive from SQLite (written in UTC), aware from PostgreSQL.
    frame = pd.DataFrame(
        {
            "request_id": pd.Series(columns["request_id"], dtype="str"),
            "decided_at": pd.to_datetime(list(columns["created_at"]), utc=True),
            "model_version": pd.Series(columns["model_version"], dtype="str"),
            "probability_bad": pd.Series(columns["probability_bad"], dtype="float64"),
            "decision": pd.Series(columns["decision"], dtype="str"),
            "outcome": pd.array(list(columns["outcome"]), dtype="Int64"),
            "observed_at": pd.to_datetime(list(columns["observed_at"]), utc=True),
        }
    )
    ordered = [c for c in LABELLED_COLUMNS if attributes or c not in FEATURE_NAMES]
    return pd.concat([frame, inputs], axis=1)[ordered]


def labelled_decisions(
    log_url: str, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every logged decision that has a realised outcome, decided in ``[since, until)``.

    One row per decision, ordered by decision time, with the columns (:data:`LABELLED_COLUMNS`):

    - ``request_id`` (str), ``decided_at`` (UTC timestamp), ``model_version`` (str),
      ``probability_bad`` (float, as served), ``decision`` (``approve``/``reject``);
    - the 20 attributes under their schema names (:data:`credit_risk.schema.FEATURE_NAMES`),
      values as logged: UCI codes (str) and integers;
    - ``outcome``: 1 good, 2 bad (the dataset's target coding, int64);
    - ``observed_at``: when the outcome was observed (UTC timestamp).

    Args:
        log_url: the decision-log database URL (``settings.decision_log_url``).
        since, until: window of decision times, ``since`` included, ``until`` excluded (naive
            datetimes are UTC); None: unbounded.
    """
    engine = make_engine(log_url)
    try:
        frame = read_decisions_with_outcomes(engine, since, until, labelled_only=True)
    finally:
        engine.dispose()
    frame["outcome"] = frame["outcome"].astype("int64")
    return frame
