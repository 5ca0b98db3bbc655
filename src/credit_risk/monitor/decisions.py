"""Reading the decision log: the time window, the decisions as a frame, windows per model
version.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from credit_risk.model_folder import read_metadata
from credit_risk.monitor.drift import Window
from credit_risk.monitor.reference import (
    Reference,
    ReferenceUnavailable,
    folder_reference,
    registry_reference,
)
from credit_risk.monitor.statistics import MODEL_VERSION, SCORE
from credit_risk.schema import BY_NAME, CATEGORICAL, FEATURE_NAMES, NUMERIC, label_to_code

if TYPE_CHECKING:
    from credit_risk.config import Settings

log = logging.getLogger(__name__)


# --- reading the decision log ---------------------------------------------------------------


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """``7d``, ``24h``, ``90m`` (before now) or an ISO date/time (UTC when naive)."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+)\s*([dhm])", value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: amount})
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def decisions_to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Logged decisions (``input`` dict + ``probability_bad``...) as one row per applicant.

    Categorical inputs logged as readable labels are mapped back to their codes.
    """
    inputs = pd.DataFrame([record["input"] for record in records], columns=list(FEATURE_NAMES))
    for name in CATEGORICAL:
        attribute = BY_NAME[name]
        inputs[name] = inputs[name].map(lambda v, a=attribute: label_to_code(a, str(v)) or str(v))
    for name in NUMERIC:
        inputs[name] = pd.to_numeric(inputs[name], errors="coerce")
    meta = pd.DataFrame(
        [
            {k: record.get(k) for k in ("request_id", "created_at", "model_version", SCORE)}
            for record in records
        ]
    )
    return pd.concat([inputs, meta], axis=1)


def read_decisions(
    url: str, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """The decision log's rows in a time window (see :mod:`credit_risk.decision_log`)."""
    import sqlalchemy as sa

    from credit_risk.decision_log import (
        DecisionLogError,
        check_log_exists,
        decisions_table,
        make_engine,
    )

    try:  # connecting to a SQLite file that is not there would create an empty log
        check_log_exists(url)
    except DecisionLogError as error:
        log.warning("%s: no decisions to read", error)
        return decisions_to_frame([])
    table = decisions_table
    query = sa.select(
        table.c.request_id,
        table.c.created_at,
        table.c.model_version,
        table.c.input,
        table.c.probability_bad,
    )
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            records = [dict(row._mapping) for row in connection.execute(query)]
    except sa.exc.OperationalError as error:  # no table yet: nothing was decided
        log.warning("cannot read the decision log at %s: %s", url, error)
        records = []
    finally:
        engine.dispose()
    return decisions_to_frame(records)


def windows_by_version(
    settings: Settings, decisions: pd.DataFrame, folder: Path
) -> tuple[list[Window], dict[str, str]]:
    """Split decisions by the model version that decided them; find each version's reference.

    The exported folder's version reads the folder's reference; any other version, the
    reference its training run stored in the registry. Decisions without a version are the
    folder's. Windows too small to test are not looked up.

    Returns:
        The windows, and the versions that could not be tested with the reason.
    """
    own = str(read_metadata(folder)["model_version"])
    versions = (
        decisions[MODEL_VERSION].astype(object).where(decisions[MODEL_VERSION].notna(), own)
        if MODEL_VERSION in decisions
        else pd.Series(own, index=decisions.index)
    ).astype(str)
    windows: list[Window] = []
    skipped: dict[str, str] = {}
    for version, rows in decisions.groupby(versions, sort=True):
        version = str(version)
        reference: Reference | None = None
        if len(rows) >= settings.monitor_min_rows:
            if version == own:
                reference = folder_reference(settings, folder)
            else:
                try:
                    reference = registry_reference(settings, version)
                except ReferenceUnavailable as error:
                    log.warning("version %s: %s", version, error)
                    skipped[version] = f"{len(rows)} decisions: {error}"
                    continue
        windows.append(Window(version, rows.reset_index(drop=True), reference))
    return windows, skipped
