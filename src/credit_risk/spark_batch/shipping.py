"""The model shipped to the executors: the driver's verified fast-path files broadcast with
the metadata and digests, loaded and checked once per Python worker; the engine's errors.
"""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_risk.fastpath import (
    FASTPATH_DIR,
    GRAPH_FILE,
    META_FILE,
    TREES_FILE,
    FastPath,
    fingerprint,
    load_cached,
)
from credit_risk.model_folder import METADATA_FILE, model_file_digests, read_metadata
from credit_risk.scoring import Scorer

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast


class SparkBatchError(ValueError):
    """Scoring on Spark cannot start or finish: the message says what is missing or wrong."""


class ModelNotVerified(RuntimeError):
    """The shipped fast path does not verify where it was loaded (driver or executor)."""


# -- the model, shipped to the executors ------------------------------------------------------


@dataclass(frozen=True)
class ShippedModel:
    """What executors need to load the verified fast path: no model folder, no pipeline.

    Attributes:
        metadata: the model's validated metadata (threshold included).
        files: sha256 of the pipeline's files (part of the cache's key).
        cache: the verified fast-path cache's files, by name.
        source: the model folder, named in errors.
    """

    metadata: dict[str, Any]
    files: dict[str, str]
    cache: dict[str, bytes]
    source: str

    @property
    def key(self) -> str:
        """The model's identity (the cache's key)."""
        return fingerprint(self.metadata, self.files)


def ship_model(folder: Path) -> ShippedModel:
    """Load and check a model folder on the driver; return what the executors load.

    The fast path must load from the folder's verified cache (built, verified and cached by
    :meth:`Scorer.from_folder` when absent): a Spark job never scores with scikit-learn.

    Raises:
        ModelFolderError: the folder cannot be trusted (as for the local command).
        SparkBatchError: no verified fast path can be cached in the folder.
    """
    folder = Path(folder)
    metadata = read_metadata(folder)
    files = model_file_digests(folder)
    cache_dir = folder / FASTPATH_DIR
    if load_cached(cache_dir, metadata, files) is None:
        # Loads the pipeline, compiles, verifies and caches the fast path (if the folder is
        # writable); the executors then load that cache.
        Scorer.from_folder(folder, batch=True)
        if load_cached(cache_dir, metadata, files) is None:
            raise SparkBatchError(
                f"{folder}: no verified fast-path cache in {cache_dir}, and none could be "
                "written (is the folder read-only, or does the pipeline not compile?); run "
                "`credit-risk predict` once on a writable copy of the folder, or export it again"
            )
    cache = {name: (cache_dir / name).read_bytes() for name in (GRAPH_FILE, TREES_FILE, META_FILE)}
    return ShippedModel(metadata, files, cache, str(folder))


def load_shipped(shipped: ShippedModel) -> Scorer:
    """The scorer, from shipped cache files, verified as a local load verifies it.

    Raises:
        ModelNotVerified: the cache does not verify with the code installed here.
    """
    with tempfile.TemporaryDirectory(prefix="credit-risk-fastpath-") as folder:
        for name, payload in shipped.cache.items():
            (Path(folder) / name).write_bytes(payload)
        fast = load_cached(Path(folder), shipped.metadata, shipped.files)
    if fast is None:
        raise ModelNotVerified(
            f"the fast path of {shipped.source} does not verify on {socket.gethostname()} "
            "(the executors' credit_risk or its dependencies differ from the driver's? the "
            "worker's log says which check failed)"
        )
    return Scorer(None, shipped.metadata, fast, source=f"{shipped.source}/{METADATA_FILE}")


# One verified scorer per Python worker and model: Spark reuses its Python workers across tasks.
_WORKER_SCORERS: dict[str, Scorer] = {}


def _worker_scorer(model: Broadcast[ShippedModel]) -> Scorer:
    from pyspark import TaskContext

    shipped = model.value
    scorer = _WORKER_SCORERS.get(shipped.key)
    if scorer is None:
        _WORKER_SCORERS.clear()
        scorer = _WORKER_SCORERS[shipped.key] = load_shipped(shipped)
    context = TaskContext.get()
    if isinstance(scorer.fast, FastPath) and context is not None:
        # The task's share of the executor's cores (spark.task.cpus), not all the host's.
        scorer.fast.threads = max(1, int(context.cpus()))
    return scorer
