"""The reference stored with a model: its JSON form and where it is found (folder, registry,
rebuilt).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from credit_risk.model_folder import (
    DRIFT_REFERENCE_ARTIFACT,
    DRIFT_REFERENCE_FILE,
    METADATA_FILE,
    ModelFolderError,
    read_metadata,
)
from credit_risk.monitor.statistics import REFERENCE_FORMAT, SCORE, value_key
from credit_risk.schema import FEATURE_NAMES, NUMERIC

if TYPE_CHECKING:
    from credit_risk.config import Settings

log = logging.getLogger(__name__)


# --- the reference stored with a model ------------------------------------------------------


class InvalidReference(ValueError):
    """A stored drift reference that cannot be used, with the field at fault."""

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.problem = problem
        self.field = field
        super().__init__(f"{field}: {problem}" if field else problem)


class ReferenceUnavailable(RuntimeError):
    """No reference could be found for a model version (not stored, or no registry)."""


@dataclass(frozen=True, eq=False)
class Reference:
    """What one model version's windows are compared with.

    Attributes:
        attributes: per attribute, its values' counts over the model's training rows (values as
            :func:`value_key` text). Marginal counts only: no applicant's row can be rebuilt.
        scores: the model's probabilities of bad on its held-out test split.
        provenance: seed, test size and data checksum of the split, the rows' roles.
        source: where this reference was read from (for the report).
    """

    attributes: Mapping[str, Mapping[str, int]]
    scores: np.ndarray
    provenance: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    _sorted: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rows(self) -> int:
        """Training rows behind the attribute counts."""
        return sum(self.attributes[FEATURE_NAMES[0]].values())

    def values(self, name: str) -> np.ndarray:
        """A numeric attribute's (or the score's) reference values, sorted."""
        if name not in self._sorted:
            if name == SCORE:
                values = np.sort(np.asarray(self.scores, dtype="float64"))
            else:
                counts = self.attributes[name]
                values = np.repeat(
                    np.array([float(v) for v in counts], dtype="float64"),
                    np.array(list(counts.values()), dtype="int64"),
                )
                values.sort()
            self._sorted[name] = values
        return self._sorted[name]

    @classmethod
    def from_rows(
        cls,
        features: pd.DataFrame,
        scores: Sequence[float] | np.ndarray,
        provenance: Mapping[str, Any] | None = None,
        source: str = "",
    ) -> Reference:
        """The reference of a model: its training rows' inputs and its held-out scores."""
        attributes = {
            name: {
                value_key(value): int(count)
                for value, count in sorted(
                    features[name].value_counts().items(), key=lambda item: value_key(item[0])
                )
            }
            for name in FEATURE_NAMES
        }
        return cls(
            attributes=attributes,
            scores=np.asarray(scores, dtype="float64"),
            provenance=dict(provenance or {}),
            source=source,
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form (``drift_reference.json``)."""
        return {
            "format": REFERENCE_FORMAT,
            **self.provenance,
            "attribute_rows": self.rows,
            "score_rows": len(self.scores),
            "attributes": {name: dict(counts) for name, counts in self.attributes.items()},
            "scores": [float(s) for s in self.scores],
        }

    @classmethod
    def from_json(cls, document: Any, source: str = "") -> Reference:
        """Read and check a stored reference.

        Raises:
            InvalidReference: not the format written by training, an attribute missing, counts
                that are not positive integers or disagree on the number of rows, scores that
                are not probabilities.
        """
        if not isinstance(document, Mapping):
            raise InvalidReference(f"must be a JSON object, not {type(document).__name__}")
        if document.get("format") != REFERENCE_FORMAT:
            raise InvalidReference(
                f"unsupported format {document.get('format')!r} (this version reads "
                f"{REFERENCE_FORMAT})",
                "format",
            )
        attributes = document.get("attributes")
        if not isinstance(attributes, Mapping):
            raise InvalidReference("required: value counts per attribute", "attributes")
        checked: dict[str, dict[str, int]] = {}
        rows: int | None = None
        for name in FEATURE_NAMES:
            where = f"attributes.{name}"
            counts = attributes.get(name)
            if not isinstance(counts, Mapping) or not counts:
                raise InvalidReference("required: value counts of the training rows", where)
            if not all(type(c) is int and c > 0 for c in counts.values()):
                raise InvalidReference("counts must be positive integers", where)
            if name in NUMERIC:
                try:
                    [float(value) for value in counts]
                except ValueError as error:
                    raise InvalidReference(f"values must be numbers ({error})", where) from None
            total = sum(counts.values())
            if rows is not None and total != rows:
                raise InvalidReference(f"counts sum to {total}, other attributes to {rows}", where)
            rows = total
            checked[name] = {str(value): int(count) for value, count in counts.items()}
        scores = document.get("scores")
        if (
            not isinstance(scores, list)
            or not scores
            or not all(
                isinstance(s, int | float) and not isinstance(s, bool) and 0 <= s <= 1
                for s in scores
            )
        ):
            raise InvalidReference("required: a non-empty list of probabilities", "scores")
        provenance = {
            key: value
            for key, value in document.items()
            if key not in ("format", "attributes", "scores", "attribute_rows", "score_rows")
        }
        return cls(checked, np.asarray(scores, dtype="float64"), provenance, source)


def reference_provenance(seed: int, test_size: float, data_sha256: str) -> dict[str, Any]:
    """How a reference's rows were chosen (stored with it)."""
    return {
        "seed": seed,
        "test_size": test_size,
        "data_sha256": data_sha256,
        "attribute_sample": "training split",
        "score_sample": "held-out test split",
    }


def folder_reference(settings: Settings, folder: Path) -> Reference:
    """The reference stored in an exported model folder (see :func:`rebuild_reference`).

    Raises:
        ModelFolderError: the metadata names a reference that is missing or unreadable, or the
            folder has none and it cannot be rebuilt.
    """
    folder = Path(folder)
    metadata = read_metadata(folder)
    name = metadata.get("drift_reference")
    if not name:
        return rebuild_reference(settings, folder, metadata)
    path = folder / name
    if not path.is_file():
        raise ModelFolderError(
            path,
            "missing: metadata.json names it as the drift reference; export the model again",
            "drift_reference",
        )
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(path, f"cannot be read as JSON ({error})") from error
    try:
        return Reference.from_json(document, source=str(path))
    except InvalidReference as error:
        raise ModelFolderError(path, error.problem, error.field) from error


def rebuild_reference(settings: Settings, folder: Path, metadata: Mapping[str, Any]) -> Reference:
    """Fallback for a folder exported before references were stored with models (logged).

    Rebuilds the split with the model's own seed (from its metadata, never ``settings.seed``),
    on a data file whose checksum is the one the model was trained on, and scores the held-out
    rows with the folder's pipeline; nothing is refitted.

    Raises:
        ModelFolderError: the metadata has no seed or checksum, or the data file differs.
    """
    from credit_risk.data import file_sha256, load_training_data, split_dataset
    from credit_risk.model_folder import load_pipeline

    where = Path(folder) / METADATA_FILE
    seed, checksum = metadata.get("seed"), metadata.get("data_sha256")
    data = Path(settings.data_path)
    cannot = (
        f"no stored drift reference ({DRIFT_REFERENCE_FILE}: the folder was exported before "
        "references were stored with models) and it cannot be rebuilt: "
    )
    fix = "; train the model again (`credit-risk train`) to store one"
    if not isinstance(seed, int) or not isinstance(checksum, str):
        raise ModelFolderError(where, cannot + "the metadata has no seed or data_sha256" + fix)
    if not data.is_file() or file_sha256(data) != checksum:
        raise ModelFolderError(
            where, cannot + f"{data} is not the data file the model was trained on" + fix
        )
    test_size = float(metadata.get("test_size", settings.test_size))
    log.warning(
        "%s has no stored drift reference: rebuilt from %s with the model's own seed %d and "
        "test_size %s (training rows; the stored pipeline's probabilities on the held-out "
        "rows; nothing refitted). Train the model again to store one.",
        folder,
        data,
        seed,
        test_size,
    )
    x_train, x_test, _, _ = split_dataset(load_training_data(settings), test_size, seed)
    scores = load_pipeline(folder).predict_proba(x_test)[:, 1]
    return Reference.from_rows(
        x_train,
        scores,
        reference_provenance(seed, test_size, checksum),
        source=f"rebuilt from {data} (seed {seed}, test_size {test_size}): none stored",
    )


def registry_reference(settings: Settings, version: str) -> Reference:
    """The reference a registered version's training run stored (``drift/`` artifact).

    Raises:
        ReferenceUnavailable: no such version, no reference in its run, or no store to ask.
    """
    import tempfile

    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ReferenceUnavailable(f"no MLflow store at {uri} to look version {version} up in")
    try:
        import mlflow
        from mlflow.tracking import MlflowClient

        registered = MlflowClient(uri).get_model_version(settings.registered_model_name, version)
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                run_id=registered.run_id,
                artifact_path=DRIFT_REFERENCE_ARTIFACT,
                dst_path=folder,
                tracking_uri=uri,
            )
            document = json.loads(Path(path).read_text())
    except Exception as error:  # MLflow's, the network's, the file's: all mean "not available"
        raise ReferenceUnavailable(
            f"no drift reference for {settings.registered_model_name} version {version} in "
            f"{uri} ({type(error).__name__}: {str(error)[:200]})"
        ) from error
    source = f"models:/{settings.registered_model_name}/{version} (run {registered.run_id})"
    try:
        return Reference.from_json(document, source=source)
    except InvalidReference as error:
        raise ReferenceUnavailable(f"{source}: {error}") from error
