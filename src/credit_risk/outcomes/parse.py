"""Validating outcomes: the fields and their allowed values, one outcome from a CSV row or a
JSON object, a file of them, the errors that name each problem.
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

from credit_risk.decision_log import decisions_table
from credit_risk.schema import BAD, CLASS_LABELS, GOOD

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

    def refuse(name: str, message: str, kind: str = "value_error") -> None:
        problems.append(Problem(where, name, message, values[name], ALLOWED[name], kind))

    request_id = values.get("request_id")
    if request_id is not None and well_formed_id(request_id) is None:
        refuse("request_id", f"{_shown(request_id)} is not a request id")
    code = None
    if "outcome" in values:
        code = _outcome_code(values["outcome"])
        if code is None:
            refuse("outcome", f"{_shown(values['outcome'])} is not an allowed value")
    observed_at = None
    if "observed_at" in values:
        observed_at = _moment(values["observed_at"])
        if observed_at is None:
            refuse("observed_at", f"{_shown(values['observed_at'])} is not a date or date-time")
        elif observed_at > (now or datetime.now(UTC)) + CLOCK_TOLERANCE:
            refuse("observed_at", f"{observed_at.isoformat()} is in the future", "future")
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
