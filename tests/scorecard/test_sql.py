"""The SQL export scores like Python on every shipped row, in SQLite and in PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, Kind
from credit_risk.scorecard import PointsLookup
from credit_risk.scorecard.model import PointsScorecard
from credit_risk.scorecard.sql import points_sql, score_query

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
THRESHOLD = 1 / 6


def _create_table(cursor: Any, name: str, temporary: str = "") -> None:
    columns = ", ".join(
        f'"{a.name}" {"INTEGER" if a.kind is Kind.NUMERIC else "TEXT"}' for a in ATTRIBUTES
    )
    cursor.execute(f"CREATE {temporary} TABLE {name} (row_id INTEGER, {columns})")


def _rows(applicants: pd.DataFrame) -> list[tuple[Any, ...]]:
    frame = applicants[list(FEATURE_NAMES)]
    return [
        (i, *(v.item() if hasattr(v, "item") else v for v in row))
        for i, row in enumerate(frame.itertuples(index=False))
    ]


def _python_scores(model: PointsScorecard, applicants: pd.DataFrame) -> pd.DataFrame:
    lookup = PointsLookup(model.points_table)
    probability, _ = lookup.run_frame(applicants)
    return pd.DataFrame(
        {
            "points": lookup.points_frame(applicants).sum(axis=1),
            "decision": np.where(probability >= THRESHOLD, "reject", "approve"),
            "probability_bad": probability,
        }
    )


def _check(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    result = result.sort_values("row_id").reset_index(drop=True)
    assert len(result) == 1000
    np.testing.assert_array_equal(result["points"].astype(int), expected["points"])
    np.testing.assert_array_equal(result["decision"], expected["decision"])
    np.testing.assert_allclose(
        result["probability_bad"].astype(float), expected["probability_bad"], rtol=1e-12
    )
    # Both decisions occur, so the cut-off is exercised on each side.
    assert set(expected["decision"]) == {"approve", "reject"}


def test_sqlite_scores_every_shipped_row_as_python(
    scorecard: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    applicants, _ = shipped
    with sqlite3.connect(":memory:") as connection:
        cursor = connection.cursor()
        _create_table(cursor, "applicants")
        marks = ", ".join("?" * (len(FEATURE_NAMES) + 1))
        cursor.executemany(f"INSERT INTO applicants VALUES ({marks})", _rows(applicants))
        query = score_query(scorecard.points_table, "applicants", THRESHOLD)
        result = pd.read_sql_query(query, connection)
    _check(result, _python_scores(scorecard, applicants))


@pytest.fixture
def postgres() -> Iterator[Any]:
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        connection = psycopg2.connect(POSTGRES_DSN, connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {error}")
    try:
        yield connection
    finally:
        connection.rollback()
        connection.close()


def test_postgresql_scores_every_shipped_row_as_python(
    scorecard: PointsScorecard, shipped: tuple[pd.DataFrame, np.ndarray], postgres: Any
) -> None:
    from psycopg2.extras import execute_values

    applicants, _ = shipped
    with postgres.cursor() as cursor:
        _create_table(cursor, "scorecard_applicants", temporary="TEMPORARY")
        execute_values(cursor, "INSERT INTO scorecard_applicants VALUES %s", _rows(applicants))
        cursor.execute(score_query(scorecard.points_table, "scorecard_applicants", THRESHOLD))
        names = [column.name for column in cursor.description]
        result = pd.DataFrame(cursor.fetchall(), columns=names)
    _check(result, _python_scores(scorecard, applicants))


def test_an_unknown_code_or_null_scores_null_not_a_number(scorecard: PointsScorecard) -> None:
    table = scorecard.points_table
    selected = {row.attribute for row in table.selected}
    assert {"checking_account_status", "duration_months"} <= selected
    with sqlite3.connect(":memory:") as connection:
        cursor = connection.cursor()
        _create_table(cursor, "a")
        base = {a.name: a.default for a in ATTRIBUTES}
        for i, change in enumerate(
            ({}, {"checking_account_status": "A19"}, {"duration_months": None})
        ):
            row = base | change
            cursor.execute(
                f"INSERT INTO a VALUES ({', '.join('?' * 21)})",
                (i, *(row[name] for name in FEATURE_NAMES)),
            )
        points = [
            value
            for (value,) in cursor.execute(f"SELECT {points_sql(table)} FROM a ORDER BY row_id")
        ]
    assert isinstance(points[0], int) and points[1:] == [None, None]
