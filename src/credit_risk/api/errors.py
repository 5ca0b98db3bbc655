"""422 answers that say which field, which value, and what is allowed, in bounded size.

Each problem is listed once; echoed values and keys are cut to :data:`ECHO_CHARS`; an
attribute's allowed values are spelled out the first time it fails and referred to
``GET /schema`` after that (a batch of empty objects would otherwise repeat the codebook
for every row); at most ``max_errors`` problems are listed and the rest counted in
``omitted_errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from credit_risk.api.responses import FastJSONResponse
from credit_risk.schema import BY_NAME

ECHO_CHARS = 100
# Containers are echoed only when this small (else "N items" / "N keys").
_ECHO_ITEMS = 5
_INT64 = 2**63


def _cut(text: str, limit: int = ECHO_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def bounded(value: Any) -> Any:
    """``value`` as JSON that stays small: strings cut, big containers and numbers summarised."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else _cut(str(value), 30)
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, bytes | bytearray):
        return _cut(bytes(value[: ECHO_CHARS * 4]).decode("utf-8", "replace"))
    if isinstance(value, list | tuple):
        if len(value) <= _ECHO_ITEMS and all(_scalar(v) for v in value):
            return [bounded(v) for v in value]
        return f"{len(value)} items"
    if isinstance(value, dict):
        if len(value) <= _ECHO_ITEMS and all(_scalar(v) for v in value.values()):
            return {_cut(str(k), 40): bounded(v) for k, v in value.items()}
        return f"{len(value)} keys"
    return _cut(repr(value))


def _loc(loc: Sequence[Any]) -> list[str | int]:
    return [part if isinstance(part, int) else _cut(str(part), 60) for part in loc]


def _field_name(loc: Sequence[str | int]) -> str:
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _allowed(kind: str, loc: Sequence[Any], max_batch: int) -> tuple[str | None, str | None]:
    """What is allowed at ``loc``, and the attribute it belongs to (if any)."""
    if kind == "duplicate_key":
        return "each key once per object", None
    names = [p for p in loc if isinstance(p, str) and p in BY_NAME]
    if names:
        return BY_NAME[names[-1]].allowed(), names[-1]
    if kind in ("too_long", "too_short") and "applicants" in loc:
        return f"a list of 1 to {max_batch} applicants", None
    if kind == "json_invalid":
        return "a well-formed JSON document", None
    if kind == "extra_forbidden":
        return "only the codebook's attribute names (GET /schema)", None
    if kind == "body_too_complex":
        return 'one applicant object, or {"applicants": [...]} (GET /schema)', None
    return None, None


def describe_errors(
    errors: Sequence[dict[str, Any]], max_batch: int, max_errors: int
) -> tuple[list[dict[str, Any]], int]:
    """Pydantic/FastAPI errors as ``{field, value, allowed, message, ...}`` items, bounded.

    Args:
        errors: the errors, pydantic's shape (``type``, ``loc``, ``msg``, ``input``).
        max_batch: the batch size limit, for the list-length message.
        max_errors: list at most this many.

    Returns:
        The items, and how many errors were left out.
    """
    described = []
    spelled_out: set[str] = set()
    for error in errors[:max_errors]:
        loc = tuple(error.get("loc", ()))
        kind = str(error.get("type", "value_error"))
        allowed, attribute = _allowed(kind, loc, max_batch)
        repeated = attribute is not None and attribute in spelled_out
        if repeated:
            allowed = f"see GET /schema ({attribute})"
        elif attribute is not None:
            spelled_out.add(attribute)
        value = None if kind == "missing" else error.get("input")
        if isinstance(value, list | dict) and kind in ("too_long", "too_short"):
            value = f"{len(value)} items"
        msg = _cut(str(error.get("msg", "")), 300)
        message = msg or "invalid value"
        if kind == "literal_error":
            # pydantic's text repeats every code and label
            message = msg = "not an allowed value"
        if kind == "json_invalid":
            detail = (error.get("ctx") or {}).get("error")
            message = f"malformed JSON at character {loc[-1]}" if len(loc) > 1 else "malformed JSON"
            if detail:
                message += f" ({_cut(str(detail), 100)})"
            loc = ("body",)
        if allowed and kind != "missing" and not repeated:
            message = f"{message}; expected {allowed}"
        shown = _loc(loc)
        described.append(
            {
                "field": _field_name(shown),
                "value": bounded(value),
                "allowed": allowed,
                "message": message,
                "loc": shown,
                "msg": msg,
                "type": kind,
            }
        )
    return described, max(0, len(errors) - max_errors)


def validation_response(
    errors: Sequence[dict[str, Any]], max_batch: int, max_errors: int, omitted: int = 0
) -> FastJSONResponse:
    """The 422 for these errors (``omitted``: further errors already left out upstream)."""
    detail, left_out = describe_errors(errors, max_batch, max_errors)
    return FastJSONResponse(
        status_code=422, content={"detail": detail, "omitted_errors": left_out + omitted}
    )


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI answers an undecodable body (e.g. not UTF-8) with 400; make it a 422 too."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and "parsing the body" in str(exc.detail):
        error = {
            "type": "json_invalid",
            "loc": ("body",),
            "msg": str(exc.detail),
            "input": None,
            "ctx": {"error": "the body is not valid JSON text (UTF-8)"},
        }
        limits = request.app.state
        return validation_response([error], limits.max_batch, limits.max_errors)
    return await http_exception_handler(request, exc)


async def validation_error_handler(request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, RequestValidationError)
    limits = request.app.state
    return validation_response(list(exc.errors()), limits.max_batch, limits.max_errors)
