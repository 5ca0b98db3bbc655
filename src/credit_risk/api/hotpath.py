"""The common case of ``POST /predict`` (and ``/predict/batch``), answered below FastAPI's routing.

A well-formed request for a loaded model is most of the traffic, and FastAPI spends more on
routing, dependency resolution and body decoding than the model spends on scoring it (about
half the CPU of a request, measured with py-spy at 16 connections). This pure ASGI layer takes
exactly that case: the request guard in front of it (:mod:`credit_risk.api.guard`) has already
authenticated it and validated its body with the generated models (one pass over the JSON
bytes) and left the applicants in the scope; it scores and logs them through the same
coalescer as the routes, and answers, with the reason texts in the language asked for
(``?lang=en`` or ``?lang=es`` exactly, else the ``reason_language`` setting). Everything else
goes on, unchanged, to the FastAPI routes, which stay the source of the API's contract
(OpenAPI, 503 while loading, a query they must parse, and the answer to a body that is not
JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from credit_risk.api.coalesce import DecisionLogUnavailable
from credit_risk.api.guard import APPLICANTS
from credit_risk.api.responses import FastJSONResponse
from credit_risk.api.state import ServiceState

PATH = "/predict"
BATCH_PATH = "/predict/batch"


_LANGUAGE_QUERIES = {b"lang=en": "en", b"lang=es": "es"}


def _language(query: bytes, default: str) -> str | None:
    """The reason language of a query string: the default for none, None for anything else
    than exactly ``lang=en`` or ``lang=es`` (left to the route to parse or refuse)."""
    if not query:
        return default
    return _LANGUAGE_QUERIES.get(query)


class PredictHotPath:
    """ASGI middleware answering valid ``POST /predict`` and ``/predict/batch`` directly.

    Args:
        app: the rest of the application (FastAPI's router and its handlers).
        state: the service state (model, decision log, coalescer, settings).
        routes: the FastAPI route of each path, recorded in the scope for the metrics' label.
    """

    def __init__(self, app: ASGIApp, state: ServiceState, routes: Mapping[str, Any]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scorer = self.state.scorer
        records = scope.get(APPLICANTS)
        if records is None or scorer is None or scope["path"] not in self.routes:
            await self.app(scope, receive, send)
            return
        default = str(self.state.settings.reason_language)
        language = _language(scope.get("query_string", b""), default)
        if language is None:  # an unknown lang, or a query to parse: the route answers
            await self.app(scope, receive, send)
            return
        scope["route"] = self.routes[scope["path"]]
        try:
            payloads = await self.state.coalescer.submit(
                scorer, records, self.state.decision_log, language
            )
        except DecisionLogUnavailable as error:
            response = FastJSONResponse({"detail": str(error)}, status_code=503)
        else:
            if scope["path"] == PATH:
                (payload,) = payloads
                response = FastJSONResponse(
                    payload, headers={"X-Request-ID": payload["request_id"]}
                )
            else:
                batch = {
                    "model_version": scorer.version,
                    "threshold": scorer.threshold,
                    "predictions": payloads,
                }
                response = FastJSONResponse(batch)
        await response(scope, receive, send)
