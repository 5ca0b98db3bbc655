"""Dataset fingerprints: which rows a registered version was trained on, in a checkable form.

A row is an applicant's 20 attributes and the realised class. Its canonical line is the UCI
format's: the attributes in codebook order as UCI codes and integers, then the class 1 (good)
or 2 (bad), single spaces. A row's hash is the sha256 of that line, so the same data hashes the
same whether it came from ``german.data``, a CSV with the schema's columns or the decision log.
Identical rows share a hash on purpose: an evaluation row equal to a training row is in-sample,
whichever applicant it belongs to (the gate's folds keep identical rows together).

Every training run logs its fingerprint to MLflow (``fingerprint/fingerprint.json``, and the row
hashes it trained and held out as ``fingerprint/trained_rows.txt`` and
``fingerprint/held_out_rows.txt``), tags the registered version with its summary and writes the
summary into the exported ``metadata.json`` (:class:`credit_risk.model_folder.DataFingerprint`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from credit_risk.model_folder import DataFingerprint
from credit_risk.schema import BAD, FEATURE_NAMES, GOOD

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

FINGERPRINT_DIR = "fingerprint"
FINGERPRINT_FILE = "fingerprint.json"
TRAINED_ROWS_FILE = "trained_rows.txt"
HELD_OUT_ROWS_FILE = "held_out_rows.txt"
# Registry version tags (and run tags) carrying the fingerprint's summary.
TAG_PREFIX = "data_"


def canonical_lines(features: pd.DataFrame, is_bad: pd.Series | np.ndarray) -> list[str]:
    """The canonical line of each row: the UCI format, attributes then the class 1/2.

    Args:
        features: validated attributes (:func:`credit_risk.data.validate_frame`'s types:
            codes as text, numbers as integers), any column order.
        is_bad: 1 for a bad applicant, 0 for a good one, row by row.
    """
    columns = [features[name].astype("str").str.strip() for name in FEATURE_NAMES]
    labels = np.where(np.asarray(is_bad).astype(int) == 1, str(BAD), str(GOOD))
    columns.append(pd.Series(labels, index=features.index))
    joined = columns[0]
    for column in columns[1:]:
        joined = joined + " " + column
    return [str(line) for line in joined]


def row_hashes(features: pd.DataFrame, is_bad: pd.Series | np.ndarray) -> np.ndarray:
    """sha256 (hex) of each row's canonical line, in row order."""
    return np.array(
        [hashlib.sha256(line.encode()).hexdigest() for line in canonical_lines(features, is_bad)],
        dtype=object,
    )


def lines_sha256(lines: Iterable[str]) -> str:
    """sha256 of the lines in order, each ended by a newline (a canonical UCI file's sha256)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def rows_sha256(hashes: Iterable[str]) -> str:
    """One digest of a multiset of row hashes, independent of their order."""
    return lines_sha256(sorted(hashes))


@dataclass(frozen=True)
class RowSets:
    """The row hashes a version trained (and tuned) on and those its run held out."""

    trained: frozenset[str]
    held_out: frozenset[str]

    @property
    def seen(self) -> frozenset[str]:
        """Every row the run used, for training or for evaluation."""
        return self.trained | self.held_out


@dataclass(frozen=True)
class StoredFingerprint:
    """A version's fingerprint as read back from its MLflow run."""

    summary: DataFingerprint
    rows: RowSets


def fingerprint_tags(fingerprint: DataFingerprint) -> dict[str, str]:
    """The fingerprint's summary as registry version tags (and run tags)."""
    sources = "; ".join(
        f"{s.kind}:{s.location} ({s.rows} rows"
        + (f", sha256 {s.sha256[:12]}" if s.sha256 else "")
        + (f", decided {s.first_decided_at} to {s.last_decided_at}" if s.last_decided_at else "")
        + ")"
        for s in fingerprint.sources
    )
    tags = {
        "rows": str(fingerprint.rows),
        "sha256": fingerprint.sha256,
        "sources": sources,
        "split_seed": str(fingerprint.split_seed),
        "trained_rows": str(fingerprint.trained_rows),
        "trained_rows_sha256": fingerprint.trained_rows_sha256,
        "held_out_rows": str(fingerprint.held_out_rows),
        "labelled_trained_until": fingerprint.labelled_trained_until or "none",
    }
    return {f"{TAG_PREFIX}{key}": value for key, value in tags.items()}


def log_fingerprint(
    fingerprint: DataFingerprint, trained: Sequence[str], held_out: Sequence[str]
) -> None:
    """Log the fingerprint and its row hashes to the active MLflow run."""
    import mlflow

    mlflow.log_dict(fingerprint.model_dump(mode="json"), f"{FINGERPRINT_DIR}/{FINGERPRINT_FILE}")
    with tempfile.TemporaryDirectory() as folder:
        for name, hashes in ((TRAINED_ROWS_FILE, trained), (HELD_OUT_ROWS_FILE, held_out)):
            (Path(folder) / name).write_text("".join(f"{h}\n" for h in hashes))
        mlflow.log_artifacts(folder, FINGERPRINT_DIR)
    mlflow.set_tags(fingerprint_tags(fingerprint))


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow progress bars while a few small artifacts download (they would clutter the
    CLI's summary); the variable is restored afterwards."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def load_fingerprint(client: MlflowClient, run_id: str | None) -> StoredFingerprint | None:
    """The fingerprint a run logged, or None for a run logged before fingerprints existed."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    names = {a.path for a in client.list_artifacts(run_id, FINGERPRINT_DIR)}
    wanted = [f"{FINGERPRINT_DIR}/{n}" for n in (FINGERPRINT_FILE, TRAINED_ROWS_FILE)]
    if not set(wanted) <= names:
        return None
    with tempfile.TemporaryDirectory() as folder, quiet_downloads():
        try:
            local = Path(client.download_artifacts(run_id, FINGERPRINT_DIR, folder))
        except MlflowException:
            return None
        summary = DataFingerprint.model_validate(json.loads((local / FINGERPRINT_FILE).read_text()))
        trained = _read_hashes(local / TRAINED_ROWS_FILE)
        held_out = _read_hashes(local / HELD_OUT_ROWS_FILE)
    return StoredFingerprint(summary, RowSets(frozenset(trained), frozenset(held_out)))


def _read_hashes(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text().splitlines() if line]


def overlap(evaluated: Iterable[str], trained: frozenset[str]) -> int:
    """How many evaluation rows are among the training rows (by row hash)."""
    return sum(1 for row in evaluated if row in trained)


def redact_url(url: str) -> str:
    """A database URL without its password, for fingerprints and messages."""
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show no more than its scheme
        return url.split("://", 1)[0] + "://..." if "://" in url else url


def summary_of(metadata: dict[str, Any]) -> DataFingerprint | None:
    """The fingerprint summary in an exported model's metadata (None before fingerprints)."""
    stored = metadata.get("fingerprint")
    return DataFingerprint.model_validate(stored) if stored else None
