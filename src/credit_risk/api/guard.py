"""The service's front door for request bodies: key, size, then the applicants, in bounded time.

A pure ASGI layer in front of the routes (and of the hot path). For ``POST /predict``,
``POST /predict/batch`` and ``POST /recourse`` (one applicant, as ``/predict``) it checks, in
this order, before anything reaches FastAPI:

1. the API key, when one is set: 401 before the body is even read;
2. the body's size: 413 when ``Content-Length`` says it is over the limit, or as soon as the
   bytes streamed in (chunked) pass it;
3. a JSON body is read by :func:`credit_risk.api.body.read_applicants` (bounded work, repeated
   keys refused, capped errors): a 422 from here, or the validated applicants are put in the
   scope (:data:`APPLICANTS`) for the hot path, and the body is handed on unchanged.

Any other request only gets the size limit. FastAPI never parses an unchecked predict body:
the work a request can cost is bounded here, whatever the route behind does.
"""

from __future__ import annotations

import email.message
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credit_risk.api.body import BodyRules, InvalidBody, read_applicants
from credit_risk.api.deps import CHALLENGE, UNAUTHORISED, key_matches
from credit_risk.api.errors import validation_response
from credit_risk.api.responses import FastJSONResponse
from credit_risk.api.state import ServiceState

# Scope key under which the validated applicants (``model_dump`` dicts) travel inward.
APPLICANTS = "credit_risk.applicants"


def json_content(headers: list[tuple[bytes, bytes]]) -> bool:
    """FastAPI's rule (strict content type, its default): the content type names JSON."""
    for name, value in headers:
        if name == b"content-type":
            if value == b"application/json":
                return True
            message = email.message.Message()
            message["content-type"] = value.decode("latin-1")
            subtype = message.get_content_subtype()
            return message.get_content_maintype() == "application" and (
                subtype == "json" or subtype.endswith("+json")
            )
    return False


def header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    for name, value in headers:
        if name == wanted:
            return value
    return None


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit} bytes")


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    value = header(headers, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None when the client went away.

    Raises:
        BodyTooLarge: more than ``limit`` bytes arrived (checked chunk by chunk).
    """
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _limited(receive: Receive, limit: int) -> Receive:
    """A ``receive`` that raises :class:`BodyTooLarge` (a 413) once ``limit`` bytes passed."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise BodyTooLarge(limit)
        return message

    return counted


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands ``body`` over again, then defers to the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class RequestGuard:
    """ASGI middleware: authentication, body size and bounded body reading (see the module).

    Args:
        app: the rest of the application.
        state: the service state (its settings hold the API key).
        rules: the guarded paths (``POST``) and what their body must be.
        routes: each guarded path's FastAPI route, put in the scope for the metrics' label.
        max_bytes: the body size limit, every request.
    """

    def __init__(
        self,
        app: ASGIApp,
        state: ServiceState,
        rules: Mapping[str, BodyRules],
        routes: Mapping[str, Any],
        max_bytes: int,
    ) -> None:
        self.app = app
        self.state = state
        self.rules = rules
        self.routes = routes
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        rules = self.rules.get(scope["path"]) if scope["method"] == "POST" else None
        if rules is not None:
            scope["route"] = self.routes.get(scope["path"])
            if not key_matches(self.state.settings.api_key, header(headers, b"x-api-key")):
                response = FastJSONResponse({"detail": UNAUTHORISED}, 401, headers=CHALLENGE)
                await response(scope, receive, send)
                return
        declared = _declared_length(headers)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        if rules is None:
            await self.app(scope, _limited(receive, self.max_bytes), send)
            return
        try:
            body = await read_body(receive, self.max_bytes)
        except BodyTooLarge:
            await self._too_large(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        if json_content(headers):
            try:
                scope[APPLICANTS] = read_applicants(body, rules)
            except InvalidBody as invalid:
                response = validation_response(
                    invalid.errors, rules.max_batch, rules.max_errors, invalid.omitted
                )
                await response(scope, receive, send)
                return
        await self.app(scope, replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = BodyTooLarge(self.max_bytes).detail
        await FastJSONResponse({"detail": detail}, 413)(scope, receive, send)
