"""MLflow tracking and registry: experiment set-up, champion alias, promotion gate, export.

The exported folder is self-contained: ``model/`` (an MLflow model in the sklearn flavour,
serialised with skops, with the package's code bundled) and ``metadata.json`` (threshold,
version, metrics...) and, once verified, ``fastpath/`` (the compiled fast path, see
:mod:`credit_risk.fastpath`). Serving loads it without any MLflow server, and without MLflow at
all when the fast-path cache is intact; MLflow is imported only by the functions that use it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from credit_risk.model_folder import METADATA_FILE, MODEL_SUBDIR

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from credit_risk.config import Settings

log = logging.getLogger(__name__)

THRESHOLD_TAG = "threshold"


def _is_local_store(tracking_uri: str) -> bool:
    scheme = urlparse(tracking_uri).scheme
    return scheme in ("", "file", "sqlite") or tracking_uri.startswith(("postgresql", "mysql"))


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the settings' store and make sure the experiment exists.

    With a database or file store, artifacts go to ``settings.artifact_location``; with a
    tracking server the server decides.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

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
    promote: bool
    reason: str


def promotion_gate(
    metric: str,
    challenger: float,
    champion: float | None,
    higher_is_better: bool,
    limits_failed: list[str] | None = None,
) -> GateDecision:
    """Decide whether the challenger takes the alias. A tie or worse keeps the champion.

    Args:
        metric: name of the compared metric (for the reason).
        challenger: challenger's value on the evaluation data.
        champion: champion's value on the same data, or None without a champion.
        higher_is_better: direction of the metric.
        limits_failed: extra gate conditions the challenger failed (e.g. fairness limits).
    """
    if limits_failed:
        return GateDecision(False, "challenger fails gate limits: " + "; ".join(limits_failed))
    if champion is None:
        return GateDecision(True, "no champion yet")
    better = challenger > champion if higher_is_better else challenger < champion
    relation = "better than" if better else ("ties" if challenger == champion else "worse than")
    verdict = "promoted" if better else "champion kept"
    return GateDecision(
        better,
        f"{verdict}: challenger {metric}={challenger:.4f} {relation} champion "
        f"{metric}={champion:.4f} on the same test split",
    )


def export_model(model_uri: str, metadata: dict[str, Any], folder: Path) -> Path:
    """Copy a logged model and its metadata into a self-contained folder, atomically.

    The new folder is assembled beside the target and swapped in, so a reader never sees a
    half-written model. Its fast path is compiled and verified there first (see
    :func:`compile_fast_path`), so the first load of the new model is already the light one.
    """
    import mlflow

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(staging / "dl"))
    (staging / "dl").rename(staging / MODEL_SUBDIR)
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
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


def load_registered(model_uri: str, tracking_uri: str) -> tuple[Any, dict[str, Any]]:
    """Load a registered model (``models:/<name>@<alias>`` or ``models:/<name>/<version>``).

    The metadata is rebuilt from the registry: the version's threshold and objective tags and
    its run's ``test_*`` and ``cv_*`` metrics.

    Returns:
        The fitted pipeline and metadata shaped like an exported folder's ``metadata.json``.
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
    }
    pipeline = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    return pipeline, metadata
