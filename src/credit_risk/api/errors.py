"""422 answers that say which field, which value, and what is allowed."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from credit_risk.api.responses import FastJSONResponse
from credit_risk.schema import BY_NAME


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _safe(value: Any) -> Any:
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return repr(value)


def describe_errors(errors: list[dict[str, Any]], max_batch: int) -> list[dict[str, Any]]:
    """Turn pydantic/FastAPI errors into ``{field, value, allowed, message, ...}`` items."""
    described = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        kind = str(error.get("type", "value_error"))
        names = [p for p in loc if isinstance(p, str) and p in BY_NAME]
        allowed = None
        if names:
            allowed = BY_NAME[names[-1]].allowed()
        elif kind in ("too_long", "too_short") and "applicants" in loc:
            allowed = f"a list of 1 to {max_batch} applicants"
        elif kind == "json_invalid":
            allowed = "a well-formed JSON document"
        elif kind == "extra_forbidden":
            allowed = "only the codebook's attribute names"
        value = None if kind == "missing" else error.get("input")
        if isinstance(value, list | dict) and kind in ("too_long", "too_short"):
            value = f"{len(value)} items"
        value = _safe(value)
        message = str(error.get("msg", "invalid value"))
        if kind == "literal_error":
            message = "not an allowed value"  # pydantic's text repeats every code and label
        if kind == "json_invalid":
            message = f"malformed JSON at character {loc[-1]}" if loc else "malformed JSON"
            loc = ("body",)
        if allowed and kind != "missing":
            message = f"{message}; expected {allowed}"
        described.append(
            {
                "field": _field_name(loc),
                "value": value,
                "allowed": allowed,
                "message": message,
                "loc": [p if isinstance(p, int) else str(p) for p in loc],
                "msg": str(error.get("msg", "")),
                "type": kind,
            }
        )
    return described


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI answers an undecodable body (e.g. not UTF-8) with 400; make it a 422 too."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and "parsing the body" in str(exc.detail):
        detail = [
            {
                "field": "body",
                "value": None,
                "allowed": "a well-formed JSON document",
                "message": "the body is not valid JSON text (UTF-8)",
                "loc": ["body"],
                "msg": str(exc.detail),
                "type": "json_invalid",
            }
        ]
        return FastJSONResponse(status_code=422, content={"detail": detail})
    return await http_exception_handler(request, exc)


async def validation_error_handler(request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, RequestValidationError)
    max_batch = getattr(request.app.state, "max_batch", 0)
    return FastJSONResponse(
        status_code=422, content={"detail": describe_errors(list(exc.errors()), max_batch)}
    )
