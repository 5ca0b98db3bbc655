"""A decision log holding labelled decisions, as the service and `outcomes import` leave it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from credit_risk.data import read_applicants
from credit_risk.decision_log import decision_row, decisions_table, make_engine, upgrade_schema
from credit_risk.outcomes import Outcome, record_outcomes
from credit_risk.schema import BAD, CATEGORICAL, FEATURE_NAMES, GOOD, NUMERIC, TARGET
from tests.conftest import DATA


def applicant_json(row: pd.Series) -> dict[str, object]:
    """One applicant as the API logs it: codes as text, numbers as integers."""
    values: dict[str, object] = {name: str(row[name]) for name in CATEGORICAL}
    values.update({name: int(row[name]) for name in NUMERIC})
    return {name: values[name] for name in FEATURE_NAMES}


def log_labelled(
    url: str,
    features: pd.DataFrame,
    is_bad: Sequence[int] | np.ndarray,
    start: datetime,
    prefix: str = "r",
    step: timedelta = timedelta(hours=1),
    observed_after: timedelta = timedelta(days=30),
) -> list[str]:
    """Log one decision per row, ``step`` apart from ``start``, and record each outcome.

    Returns:
        The request ids, in row order.
    """
    engine = make_engine(url)
    try:
        upgrade_schema(engine)
        ids = [f"{prefix}{i}" for i in range(len(features))]
        decided = [start + i * step for i in range(len(features))]
        rows = [
            decision_row(
                request_id,
                moment,
                "1",
                applicant_json(features.iloc[i]),
                0.2,
                1,
                "approve",
                1 / 6,
                [],
            )
            for i, (request_id, moment) in enumerate(zip(ids, decided, strict=True))
        ]
        with engine.begin() as connection:
            connection.execute(sa.insert(decisions_table), rows)
        outcomes = [
            Outcome(request_id, BAD if bad else GOOD, moment + observed_after, request_id)
            for request_id, bad, moment in zip(ids, np.asarray(is_bad), decided, strict=True)
        ]
        record_outcomes(engine, outcomes, source="test")
    finally:
        engine.dispose()
    return ids


def log_shipped(folder: Path, rows: slice, start: datetime) -> str:
    """Log german.data's ``rows`` with their outcomes in ``folder``'s decision log (where
    :func:`tests.conftest.make_settings` puts it), as :func:`log_labelled` does.

    Returns:
        The log's URL.
    """
    dataset = read_applicants(DATA)
    assert dataset.target is not None
    url = f"sqlite:///{folder / 'decisions.db'}"
    log_labelled(url, dataset.features.iloc[rows], dataset.target.iloc[rows], start)
    return url


def write_base_file(path: Path, rows: slice) -> Path:
    """Some rows of german.data as a CSV with the schema's column names and the class 1/2."""
    dataset = read_applicants(DATA)
    assert dataset.target is not None
    frame = dataset.features.iloc[rows].copy()
    frame[TARGET] = np.where(dataset.target.iloc[rows] == 1, BAD, GOOD)
    frame.to_csv(path, index=False)
    return path
