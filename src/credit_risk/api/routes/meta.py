"""GET /schema, /model, /health, /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from credit_risk import schema
from credit_risk.api.deps import LoadedScorer, State
from credit_risk.api.models import ErrorResponse, Health, ModelInfo
from credit_risk.api.responses import FastJSONResponse

router = APIRouter(tags=["service"])


@router.get("/schema", summary="The attribute codebook (drives the web form)")
async def get_schema() -> dict[str, Any]:
    return schema.as_json()


@router.get(
    "/model",
    response_model=ModelInfo,
    summary="The model being served",
    responses={503: {"model": ErrorResponse}},
)
async def get_model(scorer: LoadedScorer) -> dict[str, Any]:
    meta = scorer.metadata
    return {
        "name": meta.get("model_name", "unknown"),
        "version": scorer.version,
        "run_id": meta.get("run_id"),
        "trained_at": meta.get("trained_at"),
        "objective": meta.get("objective"),
        "threshold": scorer.threshold,
        "test_metrics": meta.get("test_metrics", {}),
        "cv_metrics": meta.get("cv_metrics", {}),
        "fast_path": scorer.fast is not None,
        "source": meta.get("source") or "exported folder",
    }


@router.get(
    "/health",
    response_model=Health,
    summary="Ready once a model is loaded",
    responses={503: {"model": Health}},
)
async def health(state: State) -> FastJSONResponse:
    if state.scorer is not None:
        return FastJSONResponse({"status": "ready", "model_version": state.scorer.version})
    status = "loading" if state.loading else "failed"
    return FastJSONResponse({"status": status, "detail": state.load_error}, status_code=503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(state: State) -> Response:
    body, content_type = state.metrics.exposition()
    return Response(body, media_type=content_type)
