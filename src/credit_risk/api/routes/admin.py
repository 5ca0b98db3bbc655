"""POST /admin/reload and GET /admin/models: which models serve, and picking up new ones.

Behind the API key when one is set (as ``/predict`` and ``/outcomes``). A reload loads the
champion and the challenger from where the settings point, in the background, and swaps each
in atomically (:mod:`credit_risk.api.reload`); requests go on being answered meanwhile.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from credit_risk.api.deps import State, check_api_key
from credit_risk.api.models import ErrorResponse
from credit_risk.api.reload import reload_models
from credit_risk.api.responses import FastJSONResponse

PREFIX = "/admin"


class ModelChangeOut(BaseModel):
    before: str | None = Field(description="Version served before the reload (None: none).")
    after: str | None = Field(description="Version served now (None: none).")
    error: str | None = Field(description="Why the new model was not loaded (the old one serves).")


class ReloadResponse(BaseModel):
    champion: ModelChangeOut
    challenger: ModelChangeOut
    seconds: float = Field(description="Time the reload took (requests were answered meanwhile).")


class ServedModels(BaseModel):
    champion: str | None = Field(description="Version answering requests (None: loading).")
    challenger: str | None = Field(description="Version scoring in shadow (None: no shadow).")
    shadow_pending: int = Field(description="Applicants waiting to be scored in shadow.")


def build_router(require_key: bool) -> APIRouter:
    """The admin routes (behind ``X-API-Key`` when the service has a key)."""
    errors: dict[int | str, dict[str, Any]] = {
        409: {
            "model": ReloadResponse,
            "description": "A model failed to load; the one before it still serves (the "
            "error says why).",
        },
    }
    if require_key:
        errors[401] = {"model": ErrorResponse, "description": "Missing or wrong X-API-Key."}
    router = APIRouter(
        prefix=PREFIX,
        tags=["admin"],
        responses=errors,
        dependencies=[Depends(check_api_key)] if require_key else [],
    )

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        summary="Load the champion and the challenger again, without downtime",
    )
    async def reload(state: State) -> FastJSONResponse:
        """Loads both models from the configured folders (or registry URIs) in the
        background and swaps each in once loaded; in-flight requests finish on the model they
        started with. 409 when either failed to load (the old one goes on serving)."""
        result = await reload_models(state)
        return FastJSONResponse(result.to_json(), status_code=200 if result.ok else 409)

    @router.get("/models", response_model=ServedModels, summary="The champion and challenger")
    async def models(state: State) -> dict[str, Any]:
        challenger = state.shadow.challenger
        return {
            "champion": state.scorer.version if state.scorer is not None else None,
            "challenger": challenger.version if challenger is not None else None,
            "shadow_pending": state.shadow.pending(),
        }

    return router
