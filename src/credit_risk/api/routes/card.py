"""GET /model/card: the served model's card (fairness, calibration, explanations)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from credit_risk.api.deps import LoadedScorer
from credit_risk.api.models import ErrorResponse

router = APIRouter(tags=["service"])


@router.get(
    "/model/card",
    summary="The served model's card",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}, "text/markdown": {}}},
        503: {"model": ErrorResponse},
    },
)
async def model_card(
    scorer: LoadedScorer, format: Literal["html", "markdown"] = "html"
) -> Response:
    from credit_risk.card import card_html, card_markdown

    if format == "markdown":
        return Response(card_markdown(scorer.metadata), media_type="text/markdown")
    return HTMLResponse(card_html(scorer.metadata))
