"""The rows a training run reads: the base file and, with outcomes, the labelled decisions.

With ``Settings.train_with_outcomes`` (``credit-risk train --with-outcomes``) a run reads the
base file plus every logged decision whose realised outcome was observed by
``Settings.outcomes_until`` (:func:`credit_risk.outcomes.labelled_decisions`): the inputs the
service logged, with the outcome as the class. The base file is split as always (stratified,
seeded); the labelled decisions are split by time: the newest ``outcomes_holdout_fraction`` of
them are held out (out of time, for the promotion gate), the rest are trained on.

:func:`check_new_data` is the retraining guard of the monitor-and-retrain flow: a retrain is
worth running only when the rows it would read include some that the champion has neither
trained nor been evaluated on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from credit_risk.config import Settings
from credit_risk.data import (
    DataValidationError,
    file_sha256,
    load_training_data,
    validate_frame,
)
from credit_risk.fingerprint import (
    canonical_lines,
    lines_sha256,
    load_fingerprint,
    redact_url,
    row_hashes,
    rows_sha256,
)
from credit_risk.model_folder import DataFingerprint, DataSource
from credit_risk.schema import BY_NAME, CATEGORICAL, FEATURE_NAMES, TARGET, label_to_code

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

FILE: Final = "file"
DECISION_LOG: Final = "decision_log"


def pin_outcomes(settings: Settings) -> Settings:
    """The settings with ``outcomes_until`` fixed (now when unset), so every step of a run, and
    its gate, read the same labelled decisions even while outcomes keep arriving."""
    if settings.outcomes_until is not None:
        return settings
    return settings.model_copy(update={"outcomes_until": datetime.now(UTC)})


def log_exists(url: str) -> bool:
    """Whether the decision log can hold rows: a SQLite file must exist (reading must not create
    one in the working folder); a server database is assumed to."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    database = parsed.database or ""
    return bool(database) and database != ":memory:" and Path(database).is_file()


@dataclass(frozen=True)
class Labelled:
    """Labelled decisions, validated against the schema, ordered by decision time."""

    features: pd.DataFrame
    is_bad: pd.Series
    decided_at: pd.Series  # UTC timestamps
    request_id: pd.Series
    source: DataSource


def read_labelled(settings: Settings) -> Labelled:
    """The decision log's labelled decisions with outcomes observed by ``outcomes_until``.

    Raises:
        DataValidationError: a logged input no longer matches the schema (the request id and
            attribute are named).
    """
    from credit_risk.outcomes import LABELLED_COLUMNS, labelled_decisions

    url = settings.decision_log_url
    until = _utc(settings.outcomes_until or datetime.now(UTC))
    if log_exists(url):
        frame = labelled_decisions(url)
        frame = frame[frame["observed_at"] <= pd.Timestamp(until)].reset_index(drop=True)
    else:
        frame = pd.DataFrame({name: pd.Series(dtype="str") for name in LABELLED_COLUMNS})
    raw = frame[list(FEATURE_NAMES)].astype("str")
    for name in CATEGORICAL:  # a log written with readable labels (the API logs codes)
        attribute = BY_NAME[name]
        raw[name] = raw[name].map(lambda v, a=attribute: label_to_code(a, v) or v)
    raw[TARGET] = frame["outcome"].astype("str")
    where = Path(f"decision log {redact_url(url)}")
    try:
        dataset = validate_frame(raw, where, first_line=1)
    except DataValidationError as error:
        raise DataValidationError(
            f"{error} (line n is the n-th labelled decision by decision time)"
        ) from error
    is_bad = (
        dataset.target
        if dataset.target is not None
        else pd.Series(np.zeros(0, dtype="int64"), name="is_bad")
    )
    decided = pd.to_datetime(frame["decided_at"], utc=True).reset_index(drop=True)
    source = DataSource(
        kind=DECISION_LOG,
        location=redact_url(url),
        rows=len(frame),
        first_decided_at=_iso(decided.min()) if len(frame) else None,
        last_decided_at=_iso(decided.max()) if len(frame) else None,
        observed_until=_iso(pd.Timestamp(until)),
    )
    return Labelled(
        features=dataset.features,
        is_bad=is_bad.reset_index(drop=True),
        decided_at=decided,
        request_id=frame["request_id"].astype("str").reset_index(drop=True),
        source=source,
    )


def _utc(moment: datetime) -> datetime:
    """Aware UTC (a naive ``outcomes_until`` is UTC, as the log's timestamps are)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: pd.Timestamp) -> str:
    return pd.Timestamp(moment).tz_convert(UTC).isoformat()


@dataclass(frozen=True)
class RunData:
    """Every row a run reads (base file first, then labelled decisions by decision time) and
    how it splits them. ``train`` and ``test`` are row positions, in the split's order."""

    features: pd.DataFrame
    is_bad: pd.Series
    hashes: np.ndarray
    decided_at: pd.Series  # NaT for rows of the base file
    train: np.ndarray
    test: np.ndarray
    sources: list[DataSource]
    seed: int
    test_size: float

    def split(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
        """``x_train, x_test, y_train, y_test`` with fresh 0..n-1 indexes."""

        def rows(positions: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
            return (
                self.features.iloc[positions].reset_index(drop=True),
                self.is_bad.iloc[positions].reset_index(drop=True),
            )

        (x_train, y_train), (x_test, y_test) = rows(self.train), rows(self.test)
        return x_train, x_test, y_train, y_test

    @property
    def labelled(self) -> np.ndarray:
        """Whether each row is a labelled decision (else a row of the base file)."""
        return self.decided_at.notna().to_numpy()

    def fingerprint(self) -> DataFingerprint:
        """The fingerprint of these rows and this split."""
        trained_labelled = self.decided_at.iloc[self.train].dropna()
        return DataFingerprint(
            rows=len(self.features),
            sha256=lines_sha256(canonical_lines(self.features, self.is_bad)),
            sources=self.sources,
            split_seed=self.seed,
            test_size=self.test_size,
            trained_rows=len(self.train),
            trained_rows_sha256=rows_sha256(self.hashes[self.train]),
            held_out_rows=len(self.test),
            held_out_rows_sha256=rows_sha256(self.hashes[self.test]),
            labelled_trained_until=_iso(trained_labelled.max()) if len(trained_labelled) else None,
        )


def _stratified_split(
    is_bad: pd.Series, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of :func:`credit_risk.data.split_dataset`'s split (same rows, same order)."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(is_bad)), test_size=test_size, random_state=seed, stratify=is_bad
    )
    return np.asarray(train), np.asarray(test)


def out_of_time_split(decided_at: pd.Series, fraction: float) -> np.ndarray:
    """Whether each labelled decision is held out: the newest ``fraction`` of them by decision
    time (at least one when ``fraction`` > 0), every decision of the cut-off instant included."""
    held = np.zeros(len(decided_at), dtype=bool)
    if fraction <= 0 or len(decided_at) == 0:
        return held
    ordered = decided_at.sort_values(kind="stable")
    count = max(1, math.ceil(fraction * len(decided_at)))
    cutoff = ordered.iloc[len(decided_at) - count]
    return (decided_at >= cutoff).to_numpy()


def load_run_data(settings: Settings, with_outcomes: bool | None = None) -> RunData:
    """Read, validate and split the rows of a run.

    Args:
        settings: the base file, seed, test size and, for labelled decisions, the decision log,
            ``outcomes_until`` and ``outcomes_holdout_fraction``.
        with_outcomes: read the labelled decisions too (default: ``train_with_outcomes``).
    """
    dataset = load_training_data(settings)
    if dataset.target is None:
        raise DataValidationError(f"the data has no {TARGET} column; training needs the class")
    base_x, base_y = dataset.features, dataset.target.reset_index(drop=True)
    base_train, base_test = _stratified_split(base_y, settings.test_size, settings.seed)
    path = Path(settings.data_path)
    sources = [
        DataSource(kind=FILE, location=str(path), rows=len(base_x), sha256=file_sha256(path))
    ]
    features, is_bad, hashes = base_x, base_y, row_hashes(base_x, base_y)
    decided = pd.Series(pd.NaT, index=range(len(base_x)), dtype="datetime64[ns, UTC]")
    train, test = base_train, base_test
    use_outcomes = settings.train_with_outcomes if with_outcomes is None else with_outcomes
    if use_outcomes:
        labelled = read_labelled(settings)
        sources.append(labelled.source)
        held = out_of_time_split(labelled.decided_at, settings.outcomes_holdout_fraction)
        if len(held) and held.all():
            log.warning(
                "all %d labelled decisions share the newest decision time (one batch?): all are "
                "held out of time, none is trained on",
                len(held),
            )
        offset = len(base_x)
        positions = np.arange(offset, offset + len(held))
        train = np.concatenate([base_train, positions[~held]])
        test = np.concatenate([base_test, positions[held]])
        labelled_hashes = row_hashes(labelled.features, labelled.is_bad)
        repeated = len(set(labelled_hashes) & set(hashes))
        if repeated:
            log.warning(
                "%d labelled decisions are identical to rows of %s (applicant and outcome): "
                "replayed rows? the gate will not count them as out of sample",
                repeated,
                path,
            )
        features = pd.concat([base_x, labelled.features], ignore_index=True)
        is_bad = pd.concat([base_y, labelled.is_bad], ignore_index=True)
        decided = pd.concat([decided, labelled.decided_at], ignore_index=True)
        hashes = np.concatenate([hashes, labelled_hashes])
    return RunData(
        features=features,
        is_bad=is_bad.rename("is_bad"),
        hashes=hashes,
        decided_at=decided,
        train=train,
        test=test,
        sources=sources,
        seed=settings.seed,
        test_size=settings.test_size,
    )


@dataclass(frozen=True)
class RetrainCheck:
    """Whether retraining would read rows the champion has not seen, and what was found."""

    retrain: bool
    reason: str
    new_rows: int = 0
    new_labelled_rows: int = 0


def check_new_data(settings: Settings, client: MlflowClient | None = None) -> RetrainCheck:
    """The retraining guard: are there rows the next run would read that the champion (and the
    latest challenger, if it was not promoted) neither trained nor was evaluated on?

    The rows are compared by row hash with the versions' fingerprints. Labelled decisions the
    champion has not seen are counted even when training with outcomes is off, so that the
    reason can say so.
    """
    from credit_risk.registry import champion_version, configure_mlflow

    settings = pin_outcomes(settings)
    client = client or configure_mlflow(settings)
    name = settings.registered_model_name
    champion = champion_version(client, name, settings.champion_alias)
    if champion is None:
        return RetrainCheck(True, "no champion yet")
    stored = load_fingerprint(client, champion.run_id)
    if stored is None:
        return RetrainCheck(
            True, f"champion v{champion.version} records no data fingerprint; its rows are unknown"
        )
    data = load_run_data(settings)
    unseen = np.array([h not in stored.rows.seen for h in data.hashes], dtype=bool)
    new_labelled = int((unseen & data.labelled).sum())
    if not settings.train_with_outcomes:
        labelled = read_labelled(settings)
        new_labelled = sum(
            1 for h in row_hashes(labelled.features, labelled.is_bad) if h not in stored.rows.seen
        )
    new_rows = int(unseen.sum())
    if new_rows < settings.retrain_min_new_rows:
        reason = (
            f"no retraining: all {len(data.hashes)} rows a run would read are in champion "
            f"v{champion.version}'s training or evaluation rows"
        )
        if new_labelled and not settings.train_with_outcomes:
            reason += (
                f"; {new_labelled} labelled decisions it has not seen are in the decision log, "
                "but training with outcomes is off (--with-outcomes, "
                "CREDIT_RISK_TRAIN_WITH_OUTCOMES=true)"
            )
        elif new_rows:
            reason += f" but {new_rows} (fewer than {settings.retrain_min_new_rows} needed)"
        return RetrainCheck(False, reason, new_rows, new_labelled)
    tried = _latest_challenger_saw(client, settings, data.hashes, str(champion.version))
    if tried is not None:
        return RetrainCheck(
            False,
            f"no retraining: v{tried}, trained after champion v{champion.version} and not "
            "promoted, already used every row a run would read",
            new_rows,
            new_labelled,
        )
    return RetrainCheck(
        True,
        f"{new_rows} rows new to champion v{champion.version} ({new_labelled} labelled decisions)",
        new_rows,
        new_labelled,
    )


def _latest_challenger_saw(
    client: MlflowClient, settings: Settings, hashes: np.ndarray, champion: str
) -> str | None:
    """The newest registered version, when it is newer than the champion and its run saw every
    one of ``hashes``; else None."""
    versions = client.search_model_versions(f"name='{settings.registered_model_name}'")
    if not versions:
        return None
    latest = max(versions, key=lambda v: int(v.version))
    if int(latest.version) <= int(champion):
        return None
    stored = load_fingerprint(client, latest.run_id)
    if stored is None or any(h not in stored.rows.seen for h in hashes):
        return None
    return str(latest.version)
