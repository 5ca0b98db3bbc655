"""POST /recourse: what a rejected applicant could change to be approved (verified suggestions).

The body is one applicant, as ``POST /predict`` takes it, read by the same request guard (API
key, size limit, bounded validation, the same 422). The answer repeats the decision and a
rejection's reasons, and adds up to three suggestions of :mod:`credit_risk.recourse`, each
re-scored with the served model. An approval gets 200 with no suggestions and an explanation
saying none is needed. Nothing is written to the decision log: a suggestion is a what-if, and
the decision itself is the one ``/predict`` gives and logs.
"""

# No `from __future__ import annotations`: FastAPI must see the request model at runtime.

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from credit_risk.api.deps import LoadedScorer, State, check_api_key
from credit_risk.api.models import Applicant, ReasonOut
from credit_risk.api.routes.predict import ERRORS, LanguageQuery
from credit_risk.recourse import MAX_SUGGESTIONS, RecourseResult, RecourseSearch
from credit_risk.schema import BY_NAME
from credit_risk.scoring import Scorer

PATH = "/recourse"


class ChangeOut(BaseModel):
    attribute: str = Field(description="Schema name of the attribute changed.")
    description: str = Field(description="What the attribute is (codebook).")
    before: str | int = Field(description="The applicant's value (UCI code or number).")
    after: str | int = Field(description="The suggested value.")
    before_text: str = Field(description="The codebook's text of the applicant's value.")
    after_text: str = Field(description="The codebook's text of the suggested value.")
    consequence: bool = Field(
        description="True when the change follows from another one rather than being an "
        "action: the installment-rate band, when the amount or the term changes."
    )


class SuggestionOut(BaseModel):
    changes: list[ChangeOut] = Field(description="The attributes acted on, then consequences.")
    probability_bad: float = Field(ge=0, le=1, description="Served probability with them.")
    decision: Literal["approve"]
    verified: Literal[True] = Field(
        description="Re-scored with the served model (the /predict path), which approves it."
    )
    cost: float = Field(
        description="Sum of the changes' normalised costs: bands moved over the ladder's "
        "length, or relative change of a number."
    )


class RecourseOut(BaseModel):
    model_version: str
    threshold: float = Field(description="Reject when probability_bad >= threshold.")
    probability_bad: float = Field(ge=0, le=1)
    decision: Literal["approve", "reject"]
    reasons: list[ReasonOut] = Field(max_length=4, description="A rejection's reasons.")
    suggestions: list[SuggestionOut] = Field(
        max_length=MAX_SUGGESTIONS,
        description="Up to three changes to attributes the applicant can act on that the "
        "served model approves: fewest attributes first, then lowest cost, each with a "
        "different set of attributes. Empty for an approval, or when none was found.",
    )
    explanation: str = Field(description="What the suggestions are, or why there are none.")
    candidates_scored: int = Field(description="Candidates the search scored.")


def searcher(request: Request, scorer: Scorer) -> RecourseSearch:
    """The served model's search, made once per loaded model (it reads the forest's splits)."""
    cached: RecourseSearch | None = getattr(request.app.state, "recourse", None)
    if cached is None or cached.scorer is not scorer:
        cached = RecourseSearch(scorer)
        request.app.state.recourse = cached
    return cached


def payload(result: RecourseResult, scorer: Scorer, language: str) -> dict[str, Any]:
    """The JSON answer of a search."""
    decision = result.decision
    return {
        "model_version": scorer.version,
        "threshold": scorer.threshold,
        "probability_bad": decision.probability_bad,
        "decision": decision.decision,
        "reasons": [r.answer(language) for r in decision.reasons],
        "suggestions": [
            {
                "changes": [
                    {
                        "attribute": c.attribute,
                        "description": BY_NAME[c.attribute].description,
                        "before": c.before,
                        "after": c.after,
                        "before_text": c.before_text,
                        "after_text": c.after_text,
                        "consequence": c.consequence,
                    }
                    for c in s.changes
                ],
                "probability_bad": s.probability_bad,
                "decision": s.decision,
                "verified": s.verified,
                "cost": s.cost,
            }
            for s in result.suggestions
        ],
        "explanation": result.explanation,
        "candidates_scored": result.scored,
    }


def build_router(require_key: bool) -> APIRouter:
    """The recourse route (``X-API-Key`` declared, and required, when the service has one)."""
    responses = ERRORS if require_key else {k: v for k, v in ERRORS.items() if k != 401}
    responses = {k: v for k, v in responses.items() if k != 503} | {
        503: {"model": ERRORS[503]["model"], "description": "No model loaded yet."}
    }
    router = APIRouter(
        tags=["predict"],
        responses=responses,
        dependencies=[Depends(check_api_key)] if require_key else [],
    )

    @router.post(
        PATH,
        response_model=RecourseOut,
        summary="What a rejected applicant could change to be approved",
    )
    async def recourse(
        applicant: Applicant,  # type: ignore[valid-type]
        request: Request,
        state: State,
        scorer: LoadedScorer,
        lang: LanguageQuery = None,
    ) -> dict[str, Any]:
        """The decision, a rejection's reasons, and up to three changes to attributes the
        applicant can act on (never a protected or past one) that turn the rejection into an
        approval, each re-scored with the served model. An approval: no suggestions."""
        search = searcher(request, scorer)
        record = applicant.model_dump()  # type: ignore[attr-defined]
        result = await run_in_threadpool(search.suggest, record)
        return payload(result, scorer, str(lang or state.settings.reason_language))

    return router
