"""An exported model folder, checked as a whole before anything is scored with it.

The folder holds ``metadata.json`` (threshold, version, metrics, family, a forest's approved
reference or a scorecard's points table), ``reason_codes.json`` (the reason-code table, see
:mod:`credit_risk.reasons`),
``model/`` (the fitted pipeline, an MLflow model), the drift monitor's reference
(``drift_reference.json``, named by the metadata key ``drift_reference``; see
:mod:`credit_risk.monitor`) and, once verified, ``fastpath/`` (see :mod:`credit_risk.fastpath`).
:func:`read_metadata` validates the metadata against :class:`ModelMetadata` (a threshold
strictly between 0 and 1, a reason reference below it, the keys the service and the CLI read,
their types, and per family: a points scorecard holds its points table and no reference, a
forest no table, gradient boosting its substitution values and no approved reference);
:func:`load_reason_codes` checks the table against the sha256 and version
the metadata lists and validates its content; and
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
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from credit_risk.config import Family, Objective
from credit_risk.reasons import (
    REASON_CODES_FILE,
    ReasonCodes,
    ReasonCodesError,
    builtin_bytes,
    table_sha256,
)
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, Kind
from credit_risk.scorecard.table import PointsTable

METADATA_FILE = "metadata.json"
MODEL_SUBDIR = "model"
MLMODEL_FILE = "MLmodel"
# The drift reference written at training time: in the MLflow run, and in the exported folder.
DRIFT_REFERENCE_FILE = "drift_reference.json"
DRIFT_REFERENCE_ARTIFACT = f"drift/{DRIFT_REFERENCE_FILE}"
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


class DataSource(BaseModel):
    """One source of a training run's rows (see :mod:`credit_risk.fingerprint`)."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["file", "decision_log"]
    location: str  # the file's path, or the log's URL without its password
    rows: int = Field(ge=0)
    sha256: str | None = None  # the file's sha256 (files)
    # Labelled decisions (decision log): decision times of the first and last row read, and
    # the time by which their outcomes had to be observed (ISO 8601, UTC).
    first_decided_at: str | None = None
    last_decided_at: str | None = None
    observed_until: str | None = None


class DataFingerprint(BaseModel):
    """What a registered version was trained on, checkably (:mod:`credit_risk.fingerprint`).

    Row hashes are the sha256 of a row's canonical line (the 20 attributes in codebook order as
    UCI codes and integers, then the class 1/2): the same data fingerprints the same in the UCI
    format and in a CSV. The lists of row hashes are MLflow artifacts of the version's run; here
    they are summarised by the sha256 of their sorted concatenation.
    """

    model_config = ConfigDict(extra="allow")

    rows: int = Field(ge=0)
    sha256: str  # sha256 of the canonical lines of all the run's rows, in order
    sources: list[DataSource]
    split_seed: int
    test_size: float
    trained_rows: int = Field(ge=0)  # rows the model was fitted and tuned on
    trained_rows_sha256: str
    held_out_rows: int = Field(ge=0)  # the run's test split (and out-of-time rows)
    held_out_rows_sha256: str
    # Newest decision time among the labelled decisions it trained on (None: none).
    labelled_trained_until: str | None = None


class ReasonCodesRecord(BaseModel):
    """Which reason-code table the model was saved with (``reason_codes.json``)."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1)
    file: Literal["reason_codes.json"] = REASON_CODES_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ReasonReferenceRecord(BaseModel):
    """The approved reference the reasons are measured from (see :mod:`credit_risk.reasons`)."""

    model_config = ConfigDict(extra="forbid")

    basis: str
    rows: int = Field(ge=1)
    raw_probability: float = Field(ge=0, le=1, allow_inf_nan=False)
    probability_bad: float = Field(gt=0, lt=1, allow_inf_nan=False)
    contributions: dict[str, Annotated[float, Field(allow_inf_nan=False)]]

    @field_validator("contributions")
    @classmethod
    def _every_attribute(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != set(FEATURE_NAMES):
            missing = sorted(set(FEATURE_NAMES) - set(value))
            extra = sorted(set(value) - set(FEATURE_NAMES))
            raise ValueError(f"needs one value per attribute (missing {missing}, unknown {extra})")
        return value


class SubstitutionReferenceRecord(BaseModel):
    """Gradient boosting's reason reference: the approved applicants' typical value of each
    attribute (see :mod:`credit_risk.reasons.substitution`)."""

    model_config = ConfigDict(extra="forbid")

    basis: str
    rows: int = Field(ge=1)
    probability_bad: float = Field(gt=0, lt=1, allow_inf_nan=False)
    values: dict[str, StrictStr | StrictInt]

    @field_validator("values")
    @classmethod
    def _valid_values(cls, value: dict[str, str | int]) -> dict[str, str | int]:
        if set(value) != set(FEATURE_NAMES):
            missing = sorted(set(FEATURE_NAMES) - set(value))
            extra = sorted(set(value) - set(FEATURE_NAMES))
            raise ValueError(f"needs one value per attribute (missing {missing}, unknown {extra})")
        for attribute in ATTRIBUTES:
            found = value[attribute.name]
            if attribute.kind is Kind.CATEGORICAL:
                if found not in attribute.codes:
                    raise ValueError(
                        f"{attribute.name}: {found!r} is not one of {sorted(attribute.codes)}"
                    )
            elif not (
                isinstance(found, int)
                and (attribute.minimum is None or found >= attribute.minimum)
                and (attribute.maximum is None or found <= attribute.maximum)
            ):
                raise ValueError(
                    f"{attribute.name}: {found!r} is not an integer from {attribute.minimum} "
                    f"to {attribute.maximum}"
                )
        return value


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
    # File of the drift monitor's reference inside the folder; absent in folders exported
    # before references were stored with the model (the monitor then says so).
    drift_reference: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    # The kind of model (absent in folders exported before there were families: a forest).
    family: Family = Family.FOREST
    # A points scorecard's table (credit_risk.scorecard.table): its whole fitted state, what
    # serving looks up and what its reasons are measured against. Only a scorecard has one.
    scorecard: PointsTable | None = None
    # Adverse-action reasons: the code table saved with the model and the approved reference.
    reason_codes: ReasonCodesRecord
    # A forest's approved reference; null for a forest that cannot give reasons (never
    # promoted; refused by the scorer), and always null for a scorecard (its reasons are the
    # points lost against each attribute's best bin, read from its table).
    reason_reference: ReasonReferenceRecord | None
    # Gradient boosting's substitution reference (only that family has one; null for a model
    # that cannot give reasons, which the scorer refuses).
    reason_substitutes: SubstitutionReferenceRecord | None = None
    # Registered since the fair gate: the data it was trained on, and the gate's evidence.
    fingerprint: DataFingerprint | None = None
    gate: dict[str, Any] | None = None

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
            or out of range (the first few problems, the first one's field as ``field``), or a
            reason reference that is not below the threshold.
    """
    if not isinstance(metadata, Mapping):
        raise ModelFolderError(source, f"must be a JSON object, not {type(metadata).__name__}")
    try:
        validated = ModelMetadata.model_validate(dict(metadata))
    except ValidationError as error:
        problems = [_describe(e) for e in error.errors(include_url=False)]
        field, problem = problems[0]
        more = "; ".join(f"{f}: {p}" for f, p in problems[1:_MAX_LISTED])
        if more:
            problem += f"; also {more}"
        if len(problems) > _MAX_LISTED:
            problem += f" (and {len(problems) - _MAX_LISTED} more)"
        raise ModelFolderError(source, problem, field) from error
    _check_family(validated, source)
    # The reasons' guarantee needs the reference on the approved side of the threshold.
    for key, record in (
        ("reason_reference", validated.reason_reference),
        ("reason_substitutes", validated.reason_substitutes),
    ):
        reference = record.probability_bad if record else 0.0
        if not reference < validated.threshold:
            raise ModelFolderError(
                source,
                f"{reference} must be below the threshold {validated.threshold} (the reference "
                "is approved applicants)",
                f"{key}.probability_bad",
            )
    return validated


def _check_family(validated: ModelMetadata, source: Path | str) -> None:
    """What each family must (and must not) hold for its reasons."""
    if validated.family is Family.SCORECARD:
        if validated.scorecard is None:
            raise ModelFolderError(
                source, "required for a scorecard model but missing (its points table)", "scorecard"
            )
        if validated.reason_reference is not None:
            raise ModelFolderError(
                source,
                "must be null for a scorecard: its reasons are the points lost against each "
                "attribute's best bin (its table), not an approved reference",
                "reason_reference",
            )
    elif validated.scorecard is not None:
        raise ModelFolderError(
            source,
            f"only a scorecard model has a points table, and family is {validated.family.value}",
            "scorecard",
        )
    if validated.family is Family.GBM:
        if validated.reason_reference is not None:
            raise ModelFolderError(
                source,
                "must be null for a gradient-boosting model: its reasons substitute the "
                "approved applicants' typical values (reason_substitutes)",
                "reason_reference",
            )
    elif validated.reason_substitutes is not None:
        raise ModelFolderError(
            source,
            "only a gradient-boosting model has substitution values, and family is "
            f"{validated.family.value}",
            "reason_substitutes",
        )


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


def load_reason_codes(folder: Path, metadata: Mapping[str, Any]) -> ReasonCodes:
    """The reason-code table saved in a model folder, checked against its metadata.

    Raises:
        ModelFolderError: the file is missing, unreadable, not the one the metadata lists
            (sha256), not JSON, or not a valid table (naming the field).
    """
    record = validate_metadata(metadata, Path(folder) / METADATA_FILE).reason_codes
    path = Path(folder) / record.file
    try:
        payload = path.read_bytes()
    except FileNotFoundError as error:
        raise ModelFolderError(
            path, "missing: the model folder holds no reason-code table; export it again"
        ) from error
    except OSError as error:
        raise ModelFolderError(path, f"cannot be read ({error.strerror})") from error
    return parse_reason_codes(payload, record, path)


def parse_reason_codes(payload: bytes, record: ReasonCodesRecord, path: Path | str) -> ReasonCodes:
    """Validate a reason-code table's bytes against the metadata's record of it."""
    if table_sha256(payload) != record.sha256:
        raise ModelFolderError(
            path, "does not match the sha256 in metadata.json (edited?)", "reason_codes.sha256"
        )
    try:
        codes = ReasonCodes.from_json(json.loads(payload.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(path, f"is not valid UTF-8 JSON ({error})") from error
    except ReasonCodesError as error:
        raise ModelFolderError(path, error.problem, error.field) from error
    if codes.version != record.version:
        raise ModelFolderError(
            path,
            f"is version {codes.version}, metadata.json lists {record.version}",
            "reason_codes_version",
        )
    return codes


def builtin_reason_codes(metadata: Mapping[str, Any], source: Path | str) -> ReasonCodes:
    """This package's table, for a model saved with exactly it (a model loaded without folder).

    Raises:
        ModelFolderError: the model was saved with another table.
    """
    record = validate_metadata(metadata, source).reason_codes
    return parse_reason_codes(builtin_bytes(), record, source)
