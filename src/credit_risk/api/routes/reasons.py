"""GET /reasons: the served model's reason-code table (codes, conditions, texts in en and es)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from credit_risk.api.deps import LoadedScorer
from credit_risk.api.models import ErrorResponse, ReasonTable

router = APIRouter(tags=["service"])


@router.get(
    "/reasons",
    response_model=ReasonTable,
    summary="The reason codes a rejection can cite (the served model's table)",
    responses={503: {"model": ErrorResponse}},
)
async def reason_codes(scorer: LoadedScorer) -> dict[str, Any]:
    return scorer.codes.to_json()
