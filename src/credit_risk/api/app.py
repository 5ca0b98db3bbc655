"""Build the FastAPI app: settings, model and decision log come in through the lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from credit_risk import __version__
from credit_risk.api.body import BodyRules, default_body_limit
from credit_risk.api.errors import http_error_handler, validation_error_handler
from credit_risk.api.guard import RequestGuard
from credit_risk.api.hotpath import BATCH_PATH, PATH, PredictHotPath
from credit_risk.api.metrics import MetricsMiddleware, ServiceMetrics
from credit_risk.api.models import batch_request_model
from credit_risk.api.reload import (
    install_reload_signal,
    load_challenger_into,
    remove_reload_signal,
)
from credit_risk.api.routes import admin, card, meta, outcomes, page, predict, reasons, recourse
from credit_risk.api.state import ServiceState, load_scorer
from credit_risk.config import Settings, get_settings
from credit_risk.decision_log import DecisionLog
from credit_risk.model_folder import ModelFolderError
from credit_risk.scoring import Scorer

log = logging.getLogger(__name__)


def _freeze_heap() -> None:
    """Move the loaded model and libraries out of the garbage collector's sight.

    Full collections otherwise walk millions of long-lived objects (model, MLflow, pandas)
    while requests wait: that showed up as ~100 ms p99 spikes under load.
    """
    gc.collect()
    gc.freeze()


async def _load_model(state: ServiceState) -> None:
    try:
        state.scorer = await asyncio.to_thread(load_scorer, state.settings)
        log.info("serving model version %s", state.scorer.version)
        _freeze_heap()
    except ModelFolderError as error:  # says which file and field: no traceback needed
        log.error("model loading failed: %s", error)
        state.load_error = f"model loading failed: {error}"
    except Exception as error:  # reported by /health; the service stays up to say so
        log.exception("model loading failed")
        state.load_error = f"model loading failed: {error}"
    finally:
        state.loading = False
    await load_challenger_into(state)  # after the champion: never delays it


def create_app(
    settings: Settings | None = None,
    scorer: Scorer | None = None,
    decision_log: DecisionLog | None = None,
    challenger: Scorer | None = None,
) -> FastAPI:
    """The scoring service.

    Args:
        settings: configuration; read from the environment when None.
        scorer: a loaded model (tests pass one); loaded in the background when None.
        decision_log: a decision log; one is opened at ``settings.decision_log_url`` when None.
        challenger: a loaded challenger to score in shadow (tests pass one); when None and
            ``scorer`` is None, the settings' challenger is loaded after the champion.
    """
    settings = settings or get_settings()
    metrics = ServiceMetrics()
    state = ServiceState(settings=settings, metrics=metrics, scorer=scorer, loading=scorer is None)
    state.shadow.challenger = challenger

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.decision_log = decision_log or DecisionLog(settings.decision_log_url)
        state.decision_log.start()
        state.shadow.start()
        loader = None if state.scorer is not None else asyncio.create_task(_load_model(state))
        hangup = install_reload_signal(state)
        try:
            yield
        finally:
            if hangup:
                remove_reload_signal()
            if loader is not None and not loader.done():
                loader.cancel()
            # In-flight requests have finished (uvicorn waits for them); the shadow scores
            # what is queued, then the log flushes what is queued.
            await asyncio.to_thread(state.shadow.close)
            await asyncio.to_thread(state.decision_log.close)

    app = FastAPI(
        title="Credit-risk scoring",
        version=__version__,
        description="Scores credit applicants (Statlog German Credit): probability of a bad "
        "risk, approve/reject at the model's cost-aware threshold, and a rejection's "
        "principal reasons as codes (GET /reasons) with their texts.",
        lifespan=lifespan,
    )
    app.state.service = state
    app.state.max_batch = settings.max_batch
    app.state.max_errors = settings.max_reported_errors
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    predict_router = predict.build_router(
        batch_request_model(settings.max_batch), require_key=bool(settings.api_key)
    )
    app.include_router(predict_router)
    recourse_router = recourse.build_router(require_key=bool(settings.api_key))
    app.include_router(recourse_router)
    app.include_router(meta.router)
    app.include_router(card.router)
    app.include_router(reasons.router)
    app.include_router(page.router)
    app.include_router(outcomes.build_router(state))
    app.include_router(admin.build_router(require_key=bool(settings.api_key)))
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    # Innermost of the middleware, the hot path then the guard in front of it: CORS and
    # metrics still apply to what they answer.
    routes = {
        path: r
        for r in predict_router.routes
        if (path := getattr(r, "path", "")) in (PATH, BATCH_PATH)
    }
    app.add_middleware(PredictHotPath, state=state, routes=routes)
    # /recourse takes one applicant as /predict does: the same guard reads its body.
    guarded = routes | {recourse.PATH: recourse_router.routes[0]}
    rules = {
        path: BodyRules(path == BATCH_PATH, settings.max_batch, settings.max_reported_errors)
        for path in guarded
    }
    max_bytes = settings.max_body_bytes or default_body_limit(settings.max_batch)
    app.add_middleware(RequestGuard, state=state, rules=rules, routes=guarded, max_bytes=max_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
