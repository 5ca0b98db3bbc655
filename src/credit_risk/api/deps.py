"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from credit_risk.api.state import ServiceState
from credit_risk.scoring import Scorer

UNAUTHORISED = "missing or wrong X-API-Key"
CHALLENGE = {"WWW-Authenticate": "APIKey"}

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Required when the service has an API key set."
)


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


async def get_scorer(state: State) -> Scorer:
    if state.scorer is None:
        detail = state.load_error or "the model is still loading"
        raise HTTPException(status_code=503, detail=detail)
    return state.scorer


LoadedScorer = Annotated[Scorer, Depends(get_scorer)]


def key_matches(expected: str | None, given: bytes | None) -> bool:
    """Whether ``given`` is the configured API key (any request passes when none is set)."""
    if not expected:
        return True
    return given is not None and secrets.compare_digest(given, expected.encode())


async def check_api_key(state: State, key: Annotated[str | None, Security(api_key_header)]) -> None:
    if not key_matches(state.settings.api_key, key.encode() if key is not None else None):
        raise HTTPException(status_code=401, detail=UNAUTHORISED, headers=CHALLENGE)
