"""An exported model folder, checked as a whole before anything is scored with it.

The folder holds ``metadata.json`` (threshold, version, metrics), ``model/`` (the fitted
pipeline, an MLflow model) and, once verified, ``fastpath/`` (see :mod:`credit_risk.fastpath`).
:func:`read_metadata` validates the metadata against :class:`ModelMetadata` (a threshold
strictly between 0 and 1, the keys the service and the CLI read, their types), and
:func:`model_file_digests` fingerprints ``model/`` so that the fast-path cache is trusted only
for exactly the files it was verified with. Every failure is a :class:`ModelFolderError` that
names the file and the field. Light on imports: serving from the cache needs no MLflow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError, field_validator

from credit_risk.config import Objective

METADATA_FILE = "metadata.json"
MODEL_SUBDIR = "model"
MLMODEL_FILE = "MLmodel"
# Errors listed in one ModelFolderError message: the first few say what to fix.
_MAX_LISTED = 3
_ECHO = 60


class ModelFolderError(ValueError):
    """A model folder (or registered model) that cannot be trusted, with what is wrong where.

    Attributes:
        path: the file (or model URI) at fault.
        field: the metadata field at fault, when one is (e.g. ``threshold``).
        problem: what is wrong, in words.
    """

    def __init__(self, path: Path | str, problem: str, field: str | None = None) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {problem}")


class ModelMetadata(BaseModel):
    """What ``metadata.json`` must hold for the model to be served (extra keys are kept)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    run_id: str | None
    trained_at: str | None  # ISO 8601, checked below
    objective: Objective | None
    # Reject when probability_bad >= threshold: 0 would reject everyone, 1 approve everyone.
    threshold: StrictFloat = Field(gt=0, lt=1, allow_inf_nan=False)
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float]
    params: dict[str, Any] = Field(default_factory=dict)
    package_version: str | None = None
    source: str | None = None

    @field_validator("trained_at")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.fromisoformat(value)  # ValueError: reported as the field's problem
        return value


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    field = ".".join(str(part) for part in error["loc"]) or "(document)"
    if error["type"] == "missing":
        return field, "required but missing"
    echoed = repr(error.get("input"))
    if len(echoed) > _ECHO:
        echoed = echoed[:_ECHO] + "..."
    return field, f"{error['msg']} (found {echoed})"


def validate_metadata(metadata: Any, source: Path | str) -> ModelMetadata:
    """Check a model's metadata; ``source`` names where it came from in the error.

    Raises:
        ModelFolderError: not an object, a required key missing, or a value of the wrong type
            or out of range (the first few problems, the first one's field as ``field``).
    """
    if not isinstance(metadata, Mapping):
        raise ModelFolderError(source, f"must be a JSON object, not {type(metadata).__name__}")
    try:
        return ModelMetadata.model_validate(dict(metadata))
    except ValidationError as error:
        problems = [_describe(e) for e in error.errors(include_url=False)]
        field, problem = problems[0]
        more = "; ".join(f"{f}: {p}" for f, p in problems[1:_MAX_LISTED])
        if more:
            problem += f"; also {more}"
        if len(problems) > _MAX_LISTED:
            problem += f" (and {len(problems) - _MAX_LISTED} more)"
        raise ModelFolderError(source, problem, field) from error


def read_metadata(folder: Path) -> dict[str, Any]:
    """The validated metadata of an exported model folder (the dict as stored).

    Raises:
        ModelFolderError: no ``metadata.json``, unreadable, not JSON, or not valid (see
            :func:`validate_metadata`).
    """
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise ModelFolderError(
            path,
            f"{folder} is not an exported model (no {METADATA_FILE}); train one with "
            "`credit-risk train` or `make train`",
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ModelFolderError(path, f"cannot be read ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise ModelFolderError(path, f"is not UTF-8 text (byte {error.start})") from error
    if not text.strip():
        raise ModelFolderError(path, "is empty")
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFolderError(
            path,
            f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            "truncated or edited?",
        ) from error
    validate_metadata(metadata, path)
    return dict(metadata)


def model_file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file of the folder's fitted pipeline (``model/``), by relative path.

    Raises:
        ModelFolderError: ``model/`` or its ``MLmodel`` is missing, or a file cannot be read.
    """
    model = Path(folder) / MODEL_SUBDIR
    if not (model / MLMODEL_FILE).is_file():
        raise ModelFolderError(
            model / MLMODEL_FILE, "missing: the folder holds no exported pipeline (model/)"
        )
    digests = {}
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as error:
            raise ModelFolderError(path, f"cannot be read ({error.strerror})") from error
        digests[path.relative_to(folder).as_posix()] = digest
    return digests


def _pipeline_file(folder: Path) -> Path:
    """The serialised pipeline named by ``model/MLmodel`` (``model.skops``), for messages."""
    model = Path(folder) / MODEL_SUBDIR
    try:
        for line in (model / MLMODEL_FILE).read_text().splitlines():
            key, _, value = line.strip().partition(":")
            if key == "pickled_model" and value.strip():
                return model / value.strip()
    except (OSError, UnicodeDecodeError):
        pass
    return model / MLMODEL_FILE


def load_pipeline(folder: Path) -> Any:
    """The fitted pipeline of an exported folder (MLflow's sklearn flavour, skops format).

    Raises:
        ModelFolderError: the pipeline cannot be loaded (e.g. a truncated ``model.skops``, or
            no MLflow installed, as in the slim serving image).
    """
    try:
        import mlflow.sklearn
    except ImportError as error:  # the slim serving image: only a verified cache can serve
        raise ModelFolderError(
            Path(folder) / "fastpath",
            f"no verified fast-path cache matches this model and code, and the pipeline cannot "
            f"be loaded without MLflow and scikit-learn ({error}); export the model with the "
            "full image (or `credit-risk train`) of this same version",
        ) from error
    try:
        return mlflow.sklearn.load_model(str(Path(folder) / MODEL_SUBDIR))
    except Exception as error:  # zip, skops, YAML and MLflow errors alike: name the file
        raise ModelFolderError(
            _pipeline_file(folder),
            f"the fitted pipeline cannot be loaded ({type(error).__name__}: {error}); "
            "truncated or edited? export the model again",
        ) from error
