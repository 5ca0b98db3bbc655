"""POST /predict and /predict/batch: score, log the decision, then answer."""

# No `from __future__ import annotations`: FastAPI must see the batch model built at runtime.

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from credit_risk.api.coalesce import DecisionLogUnavailable
from credit_risk.api.deps import LoadedScorer, State, check_api_key
from credit_risk.api.models import (
    Applicant,
    BatchPrediction,
    ErrorResponse,
    Prediction,
    ValidationErrorResponse,
)
from credit_risk.api.responses import FastJSONResponse
from credit_risk.api.state import ServiceState
from credit_risk.config import Language
from credit_risk.scoring import Scorer

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong X-API-Key."},
    413: {"model": ErrorResponse, "description": "The request body is over the size limit."},
    422: {
        "model": ValidationErrorResponse,
        "description": "Invalid input: the field, the value received and what is allowed "
        "(each problem once, at most the service's error limit; the rest counted).",
    },
    503: {
        "model": ErrorResponse,
        "description": "No model loaded yet, or the decision log cannot be written.",
    },
}


LanguageQuery = Annotated[
    Language | None,
    Query(
        description="Language of the reason texts: en (English) or es (Spanish); default: "
        "the service's REASON_LANGUAGE setting (en)."
    ),
]


async def score_and_log(
    state: ServiceState,
    scorer: Scorer,
    records: Sequence[dict[str, Any]],
    language: Language | None = None,
) -> list[dict[str, Any]]:
    """Score validated applicants, commit their decisions to the log, return the payloads.

    Concurrent requests are scored and logged together (see :mod:`credit_risk.api.coalesce`).
    """
    chosen = str(language or state.settings.reason_language)
    try:
        return await state.coalescer.submit(scorer, records, state.decision_log, chosen)
    except DecisionLogUnavailable as error:
        # A decision that cannot be recorded is not given.
        raise HTTPException(status_code=503, detail=str(error)) from error


def build_router(batch_model: type[BaseModel], require_key: bool) -> APIRouter:
    """The predict routes; the batch body model carries the configured size limit.

    Args:
        batch_model: the batch request model (see :func:`batch_request_model`).
        require_key: guard the routes with ``X-API-Key`` (declared in the OpenAPI spec only
            then, so the spec matches what the service enforces).
    """
    responses = ERRORS if require_key else {k: v for k, v in ERRORS.items() if k != 401}
    router = APIRouter(
        tags=["predict"],
        responses=responses,
        dependencies=[Depends(check_api_key)] if require_key else [],
    )

    @router.post("/predict", response_model=Prediction, summary="Score one applicant")
    async def predict(
        applicant: Applicant,  # type: ignore[valid-type]
        state: State,
        scorer: LoadedScorer,
        lang: LanguageQuery = None,
    ) -> FastJSONResponse:
        """Probability of bad, class, decision at the model's threshold, and for a rejection
        its principal reasons (codes and texts)."""
        (payload,) = await score_and_log(state, scorer, [applicant.model_dump()], lang)  # type: ignore[attr-defined]
        return FastJSONResponse(payload, headers={"X-Request-ID": payload["request_id"]})

    @router.post(
        "/predict/batch",
        response_model=BatchPrediction,
        summary="Score several applicants in one call",
    )
    async def predict_batch(
        batch: batch_model,  # type: ignore[valid-type]
        state: State,
        scorer: LoadedScorer,
        lang: LanguageQuery = None,
    ) -> FastJSONResponse:
        """Up to ``max_batch`` applicants; every decision is logged before the answer."""
        records = [a.model_dump() for a in batch.applicants]  # type: ignore[attr-defined]
        payloads = await score_and_log(state, scorer, records, lang)
        return FastJSONResponse(
            {
                "model_version": scorer.version,
                "threshold": scorer.threshold,
                "predictions": payloads,
            }
        )

    return router
