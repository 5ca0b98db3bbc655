"""Request and response models. The applicant model is generated from the codebook."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from credit_risk.schema import ATTRIBUTES, Attribute, Kind, label_to_code


def _to_code(attribute: Attribute) -> Any:
    def convert(value: str) -> str:
        code = label_to_code(attribute, value)
        assert code is not None  # the Literal already restricted the value
        return code

    return convert


def _whole_number(value: Any) -> Any:
    """Accept JSON integers, including ``12.0`` (an integer in JSON Schema); refuse the rest.

    Booleans and numeric strings are refused: pydantic's lax mode would take them.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("int_type", "Input should be a whole number")
        return int(value)
    return value


def _applicant_field(attribute: Attribute) -> tuple[Any, Any]:
    if attribute.kind is Kind.CATEGORICAL:
        choices = (*attribute.codes, *attribute.codes.values())
        kind: Any = Annotated[Literal[choices], AfterValidator(_to_code(attribute))]  # type: ignore[valid-type]
        description = (
            f"{attribute.description} (UCI attribute {attribute.uci_number}). "
            "A UCI code or its label: "
            + "; ".join(f"{code} = {label}" for code, label in attribute.codes.items())
        )
        return kind, Field(description=description, examples=[attribute.default])
    unit = f", in {attribute.unit}" if attribute.unit else ""
    description = (
        f"{attribute.description} (UCI attribute {attribute.uci_number}{unit}); "
        f"an integer from {attribute.minimum} to {attribute.maximum}."
    )
    kind = Annotated[int, BeforeValidator(_whole_number)]
    return kind, Field(
        ge=attribute.minimum,
        le=attribute.maximum,
        description=description,
        examples=[attribute.default],
    )


EXAMPLE_APPLICANT: dict[str, Any] = {a.name: a.default for a in ATTRIBUTES}


def applicant_model(
    name: str = "Applicant", extra: Literal["forbid", "ignore"] = "forbid"
) -> type[BaseModel]:
    """The applicant model generated from the codebook (``extra``: what unknown keys do)."""
    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __config__=ConfigDict(extra=extra, json_schema_extra={"examples": [EXAMPLE_APPLICANT]}),
        __doc__="One credit applicant: the 20 attributes of the Statlog German Credit codebook.",
        **{a.name: _applicant_field(a) for a in ATTRIBUTES},
    )


Applicant: type[BaseModel] = applicant_model()


def batch_request_model(
    max_batch: int,
    item: Any = None,
    name: str = "BatchRequest",
    extra: Literal["forbid", "ignore"] = "forbid",
    fail_fast: bool = False,
) -> type[BaseModel]:
    """The batch request, limited to ``max_batch`` applicants.

    Args:
        max_batch: the most applicants one request may hold.
        item: the model (or type) of one applicant; default :data:`Applicant`.
        name: the generated model's name.
        extra: what unknown keys beside ``applicants`` do.
        fail_fast: stop validating the list at its first invalid applicant.
    """
    constraints: dict[str, Any] = {"min_length": 1, "max_length": max_batch}
    if fail_fast:
        constraints["fail_fast"] = True
    applicants: Any = list[Applicant if item is None else item]  # type: ignore[misc]
    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __config__=ConfigDict(extra=extra),
        applicants=(
            applicants,
            Field(description=f"1 to {max_batch} applicants.", **constraints),
        ),
    )


class ReasonOut(BaseModel):
    """A principal reason for a rejection: a code of the model's table (``GET /reasons``)."""

    code: str = Field(description="Reason code, e.g. R01-A11 (see GET /reasons).")
    text: str = Field(description="The code's text, in the language asked for (lang).")
    attribute: str | None = Field(
        description="Schema name of the attribute cited; null only for code R00 (no factor "
        "that may be cited explains the rejection: a person must review it)."
    )
    value: str | int | None = Field(description="The applicant's value (UCI code or number).")
    contribution: float = Field(
        description="How much it raised the applicant's risk, in `unit`; positive. A forest "
        "(log_odds): the applicant's log-odds of bad above those of the approved training "
        "applicants, on the served (calibrated) scale. Gradient boosting (log_odds): how much "
        "the applicant's calibrated log-odds of bad fall when this attribute alone takes the "
        "approved training applicants' typical value. A points scorecard (points): the points "
        "the applicant lost on this attribute against its best bin."
    )
    unit: Literal["log_odds", "points"] = Field(
        description="What contribution is measured in: log_odds (a forest, gradient boosting) "
        "or points lost (a points scorecard)."
    )


class Prediction(BaseModel):
    request_id: str
    model_version: str
    probability_bad: float = Field(ge=0, le=1)
    risk_class: Literal[1, 2] = Field(description="1 = good, 2 = bad (UCI classes).")
    risk_label: Literal["good", "bad"]
    decision: Literal["approve", "reject"]
    threshold: float = Field(description="Reject when probability_bad >= threshold.")
    reasons: list[ReasonOut] = Field(
        max_length=4,
        description="A rejection's 1 to 4 principal reasons, largest first; empty for an "
        "approval. Protected attributes are never cited.",
    )


class ReasonCodeOut(BaseModel):
    code: str
    attribute: str | None = Field(description="Null for the fallback code R00.")
    condition: dict[str, Any] | None = Field(
        description="{'codes': [...]} for a categorical attribute, {'min', 'max'} for a band."
    )
    condition_text: str
    text: dict[str, str] = Field(description="The text in each language (en, es).")


class ReasonTable(BaseModel):
    reason_codes_version: str
    languages: list[str]
    protected_attributes_cited: Literal[False]
    codes: list[ReasonCodeOut]


class BatchPrediction(BaseModel):
    model_version: str
    threshold: float
    predictions: list[Prediction]


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. 'duration_months'.")
    value: Any = Field(None, description="The value received (null when missing).")
    allowed: str | None = Field(None, description="What is allowed there.")
    message: str
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[FieldError] = Field(
        description="The problems found, each field once, at most the service's error limit."
    )
    omitted_errors: int = Field(0, description="Further problems found but not listed.")


class ErrorResponse(BaseModel):
    detail: str


class ModelInfo(BaseModel):
    name: str
    version: str
    run_id: str | None
    trained_at: str | None
    objective: str | None
    threshold: float
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float]
    fast_path: bool = Field(
        description="Whether the compiled fast path (numba kernel or ONNX graph) serves requests."
    )
    source: str


class Health(BaseModel):
    status: Literal["ready", "loading", "failed"]
    model_version: str | None = None
    detail: str | None = None
