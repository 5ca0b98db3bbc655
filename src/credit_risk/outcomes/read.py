"""Reading outcomes back: logged decisions joined with their outcomes, and the labelled
decisions that training on grown data reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from credit_risk.decision_log import (
    decisions_table,
    make_engine,
    outcomes_table,
)
from credit_risk.outcomes.parse import _utc
from credit_risk.schema import CATEGORICAL, FEATURE_NAMES, NUMERIC

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
