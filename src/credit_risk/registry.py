"""MLflow tracking and registry: experiment set-up, champion alias, export.

The exported folder is self-contained: ``model/`` (an MLflow model in the sklearn flavour,
serialised with skops, with the package's code bundled), ``metadata.json`` (threshold,
version, metrics, the reasons' approved reference...), ``reason_codes.json`` (the reason-code
table the model's decisions cite, see :mod:`credit_risk.reasons`), ``drift_reference.json``
(what the drift monitor compares this model's decisions with, see :mod:`credit_risk.monitor`)
and, once verified, ``fastpath/`` (the compiled fast path, see :mod:`credit_risk.fastpath`).
Serving loads it without any MLflow server, and without MLflow at all when the fast-path cache
is intact; MLflow is imported only by the functions that use it.

Training runs sharing one SQLite store take turns (:func:`store_lock`) where they would
otherwise collide: MLflow creating and migrating a fresh store (two runs at once fail inside
the schema migration), registering a version, moving the champion alias and exporting the
champion.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from credit_risk.files import sqlite_file
from credit_risk.model_folder import DRIFT_REFERENCE_FILE, METADATA_FILE, MODEL_SUBDIR

if TYPE_CHECKING:
    from credit_risk.reasons import ReasonCodes

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from credit_risk.config import Settings

log = logging.getLogger(__name__)

THRESHOLD_TAG = "threshold"
# Run artifacts that let a registered version give reasons without its exported folder.
REASON_REFERENCE_ARTIFACT = "reasons/reference.json"
REASON_CODES_ARTIFACT = "reasons/reason_codes.json"
# The exported folder's metadata.json, in the run: what `credit-risk promote` exports again.
EXPORT_METADATA_ARTIFACT = "export/metadata.json"
# Registered version tag naming the model's family (credit_risk.config.Family).
FAMILY_TAG = "family"


def _is_local_store(tracking_uri: str) -> bool:
    scheme = urlparse(tracking_uri).scheme
    return scheme in ("", "file", "sqlite") or tracking_uri.startswith(("postgresql", "mysql"))


@contextlib.contextmanager
def store_lock(tracking_uri: str, purpose: str) -> Iterator[None]:
    """Hold the store's lock: an exclusive ``flock`` on ``<database file>.lock``.

    For SQLite stores only (a tracking server or a server database serialises its own
    writers); elsewhere a no-op. Waiting is logged, once, with what the lock is wanted for. The
    lock is released when the process ends, however it ends.

    Args:
        tracking_uri: the MLflow store.
        purpose: what the lock is taken for, in words (for the wait message).
    """
    database = sqlite_file(tracking_uri)
    if database is None:
        yield
        return
    import fcntl

    # MLflow creates a SQLite store's folder; the lock beside it comes first.
    database.parent.mkdir(parents=True, exist_ok=True)
    path = database.with_name(database.name + ".lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for the store lock held by another run (%s) to %s", path, purpose)
            started = time.perf_counter()
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            log.info("got the store lock after %.1f s", time.perf_counter() - started)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the settings' store and make sure the experiment exists.

    With a database or file store, artifacts go to ``settings.artifact_location``; with a
    tracking server the server decides. A fresh SQLite store is created (and migrated) under
    :func:`store_lock`.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with store_lock(settings.tracking_uri, "create or open the store"):
        mlflow.set_tracking_uri(settings.tracking_uri)
        client = MlflowClient(settings.tracking_uri)
        experiment = client.get_experiment_by_name(settings.experiment_name)
        if experiment is None:
            location = None
            if _is_local_store(settings.tracking_uri):
                location = Path(settings.artifact_location).resolve().as_uri()
            with contextlib.suppress(MlflowException):  # created concurrently by another process
                client.create_experiment(settings.experiment_name, artifact_location=location)
        mlflow.set_experiment(settings.experiment_name)
    return client


def champion_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding the alias, or None when there is no champion yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger took the alias, why, and the evidence (:mod:`credit_risk.gate`)."""

    promote: bool
    reason: str
    evidence: dict[str, Any] | None = None


def export_model(
    model_uri: str, metadata: dict[str, Any], folder: Path, reference_uri: str | None = None
) -> Path:
    """Copy a logged model and its metadata into a self-contained folder, atomically.

    The new folder is assembled beside the target and swapped in, so a reader never sees a
    half-written model. Its fast path is compiled and verified there first (see
    :func:`compile_fast_path`), so the first load of the new model is already the light one.

    Args:
        model_uri: the logged model.
        metadata: written as ``metadata.json``.
        folder: the target folder (replaced).
        reference_uri: the run's drift reference artifact, copied as ``drift_reference.json``.
    """
    import mlflow

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(staging / "dl"))
    (staging / "dl").rename(staging / MODEL_SUBDIR)
    if reference_uri is not None:
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=reference_uri, dst_path=str(staging / "reference")
        )
        Path(downloaded).rename(staging / DRIFT_REFERENCE_FILE)
        shutil.rmtree(staging / "reference")
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
    write_reason_codes(staging, metadata)
    compile_fast_path(staging)
    old = folder.with_name(f".{folder.name}-old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    log.info("exported %s to %s", model_uri, folder)
    return folder


def write_reason_codes(folder: Path, metadata: dict[str, Any]) -> None:
    """Save this package's reason-code table beside ``metadata.json``, which lists it.

    Raises:
        ValueError: the metadata lists another table (a run logged by another version of the
            package: export it with that version).
    """
    from credit_risk.reasons import REASON_CODES_FILE, builtin_bytes, reason_codes_record

    listed = metadata.get("reason_codes")
    if listed != reason_codes_record():
        raise ValueError(
            f"metadata lists reason codes {listed!r}, this package has {reason_codes_record()!r}"
        )
    (Path(folder) / REASON_CODES_FILE).write_bytes(builtin_bytes())


def read_metadata(folder: Path) -> dict[str, Any]:
    """The validated metadata of an exported model folder (see :mod:`credit_risk.model_folder`)."""
    from credit_risk.model_folder import read_metadata as read_validated

    return read_validated(folder)


def compile_fast_path(folder: Path) -> bool:
    """Compile, verify and cache the fast path of an exported folder (in ``folder/fastpath``).

    Returns:
        Whether it compiled and passed verification; if not, serving falls back to the pipeline.
    """
    from credit_risk.config import Family
    from credit_risk.fastpath import FASTPATH_DIR, FastPathUnavailable, load_or_build
    from credit_risk.model_folder import model_file_digests

    try:
        pipeline, metadata = load_exported(folder)
        if metadata.get("family") == Family.SCORECARD.value:
            return True  # its fast path is the points table in its metadata: nothing to compile
        if metadata.get("family") == Family.GBM.value:
            return False  # gradient boosting is scored by scikit-learn: no fast path
        files = model_file_digests(folder)
        load_or_build(pipeline, metadata, Path(folder) / FASTPATH_DIR, files=files)
    # Not a compilable forest pipeline (e.g. no "encode" step), or a folder that serving will
    # refuse with the same error (ModelFolderError): export it all the same.
    except (FastPathUnavailable, KeyError, AttributeError, TypeError, ValueError) as error:
        log.warning("no fast path for %s: %s", folder, error)
        return False
    return True


def load_exported(folder: Path) -> tuple[Any, dict[str, Any]]:
    """Load an exported model folder: the fitted pipeline and its validated metadata."""
    from credit_risk.model_folder import load_pipeline

    metadata = read_metadata(folder)
    return load_pipeline(folder), metadata


def load_registered(model_uri: str, tracking_uri: str) -> tuple[Any, dict[str, Any], ReasonCodes]:
    """Load a registered model (``models:/<name>@<alias>`` or ``models:/<name>/<version>``).

    The metadata is rebuilt from the registry: the version's threshold and objective tags, its
    run's ``test_*`` and ``cv_*`` metrics, and the run's reason artifacts (approved reference
    and reason-code table).

    Returns:
        The fitted pipeline, metadata shaped like an exported folder's ``metadata.json``, and
        the reason-code table the run was logged with.
    """
    from datetime import UTC, datetime

    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    reference = model_uri.removeprefix("models:/")
    if "@" in reference:
        name, alias = reference.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        name, number = reference.rsplit("/", 1)
        version = client.get_model_version(name, number)
    if THRESHOLD_TAG not in version.tags:
        raise MlflowException(
            f"{model_uri} has no {THRESHOLD_TAG!r} tag; it was not registered "
            "by `credit-risk train`"
        )
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    from credit_risk.config import Family
    from credit_risk.model_folder import ReasonCodesRecord, parse_reason_codes
    from credit_risk.reasons import SUBSTITUTES_ARTIFACT, SUBSTITUTES_KEY, table_sha256

    run = f"runs:/{version.run_id}"
    # Versions registered before families were forests.
    family = version.tags.get(FAMILY_TAG, Family.FOREST.value)
    try:
        # A scorecard's reasons are measured against its points table, not a reference.
        reason_reference = (
            None
            if family in (Family.SCORECARD, Family.GBM)
            else mlflow.artifacts.load_dict(f"{run}/{REASON_REFERENCE_ARTIFACT}")
        )
        # Gradient boosting's reasons substitute the approved applicants' typical values.
        substitutes = (
            mlflow.artifacts.load_dict(f"{run}/{SUBSTITUTES_ARTIFACT}")
            if family == Family.GBM
            else None
        )
        table = mlflow.artifacts.load_text(f"{run}/{REASON_CODES_ARTIFACT}").encode()
    except (MlflowException, OSError) as error:
        raise MlflowException(
            f"{model_uri} has no reason artifacts ({REASON_REFERENCE_ARTIFACT}, "
            f"{REASON_CODES_ARTIFACT}); it was logged before adverse-action reasons: train it "
            "again"
        ) from error
    try:  # the table's own version: parse_reason_codes then checks the rest
        listed = str(json.loads(table)["reason_codes_version"])
    except (ValueError, KeyError, TypeError):
        listed = "unknown"
    record = ReasonCodesRecord(version=listed, sha256=table_sha256(table))
    codes = parse_reason_codes(table, record, f"{model_uri} {REASON_CODES_ARTIFACT}")
    metadata: dict[str, Any] = {
        "model_name": name,
        "model_version": str(version.version),
        "run_id": version.run_id,
        "trained_at": datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(
            timespec="seconds"
        ),
        "objective": version.tags.get("objective"),
        "threshold": float(version.tags[THRESHOLD_TAG]),
        "test_metrics": {k[5:]: v for k, v in metrics.items() if k.startswith("test_")},
        "cv_metrics": {k[3:]: v for k, v in metrics.items() if k.startswith("cv_")},
        "source": model_uri,
        "family": family,
        "reason_codes": record.model_dump(),
        "reason_reference": reason_reference,
    }
    if family == Family.GBM:
        metadata[SUBSTITUTES_KEY] = substitutes
    pipeline = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    if family == Family.SCORECARD and hasattr(pipeline, "table_"):
        metadata["scorecard"] = pipeline.table_  # the table is the fitted scorecard's state
    return pipeline, metadata, codes
