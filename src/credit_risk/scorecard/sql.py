"""The points table as SQL: one ``CASE`` per attribute, summed, for any SQL database.

:func:`points_sql` is an expression over a row of applicants whose columns are the codebook's
attribute names (categorical attributes as their UCI codes, ``'A11'``; numeric ones as
numbers). :func:`score_query` wraps it into a ``SELECT`` that adds the points, the decision at
the model's threshold (as a points cut-off: the probability falls as points rise) and the
probability of bad. Only standard SQL is used (``CASE``, comparisons, ``EXP``); a value the
table does not know (a code outside the codebook, a NULL) gives a NULL score rather than a
silent number. The tests run both on SQLite and PostgreSQL against Python on every shipped row.
"""

from __future__ import annotations

from credit_risk.schema import BY_NAME, Kind
from credit_risk.scorecard.table import AttributeRow, PointsTable


def quote_identifier(name: str) -> str:
    """A double-quoted SQL identifier (standard SQL; SQLite and PostgreSQL alike)."""
    return '"' + name.replace('"', '""') + '"'


def quote_text(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def number(value: float) -> str:
    """A float as a SQL numeric literal that reads back to the same double."""
    text = repr(float(value))
    if "inf" in text or "nan" in text:
        raise ValueError(f"{value} has no SQL literal")
    return text


def attribute_case(row: AttributeRow, prefix: str = "") -> str:
    """The ``CASE`` giving an attribute's points (NULL for a value outside its bins)."""
    column = prefix + quote_identifier(row.attribute)
    if BY_NAME[row.attribute].kind is Kind.CATEGORICAL:
        arms = [
            f"WHEN {quote_text(code)} THEN {b.points}"
            for b in row.bins
            for code in sorted(b.codes, key=list(BY_NAME[row.attribute].codes).index)
        ]
        return f"CASE {column} " + " ".join(arms) + " END"
    arms = [f"WHEN {column} IS NULL THEN NULL"]
    arms += [
        f"WHEN {column} < {number(b.upper)} THEN {b.points}"
        for b in row.bins[:-1]
        if b.upper is not None
    ]
    return "CASE " + " ".join(arms) + f" ELSE {row.bins[-1].points} END"


def points_sql(table: PointsTable, prefix: str = "") -> str:
    """The score of a row: the sum of one ``CASE`` per selected attribute.

    Args:
        table: the fitted scorecard.
        prefix: put before each column name (e.g. ``"a."`` for a table alias).
    """
    cases = [f"  /* {row.attribute} */ ({attribute_case(row, prefix)})" for row in table.selected]
    return "(\n" + "\n  +\n".join(cases) + "\n)"


def probability_sql(table: PointsTable, points: str) -> str:
    """The probability of bad of a score given as the SQL expression ``points``."""
    calibration = table.calibration
    margin = f"{number(calibration.intercept)} + ({number(calibration.slope)}) * ({points})"
    return f"1.0 / (1.0 + EXP(-({margin})))"


def score_query(table: PointsTable, source: str, threshold: float) -> str:
    """Every column of ``source`` with its ``points``, ``decision`` and ``probability_bad``.

    Args:
        table: the fitted scorecard.
        source: the table (or view) of applicants, as it should appear after ``FROM``.
        threshold: the model's decision threshold on the probability of bad.
    """
    cutoff = table.calibration.reject_at_most(threshold)
    return (
        "SELECT scored.*,\n"
        f"  CASE WHEN scored.points <= {cutoff} THEN 'reject' ELSE 'approve' END AS decision,\n"
        f"  {probability_sql(table, 'scored.points')} AS probability_bad\n"
        "FROM (\n"
        f"  SELECT applicant.*, {points_sql(table, 'applicant.')} AS points\n"
        f"  FROM {source} AS applicant\n"
        ") AS scored"
    )
