"""POST /outcomes: record what became of decided applicants (see :mod:`credit_risk.outcomes`).

The body is read here, bounded like a predict body: at most ``max_batch`` outcomes, and at most
:func:`outcomes_body_limit` bytes (twice the largest valid body, plus 64 KiB; the service's
``max_body_bytes`` when that is lower), refused with 413 as soon as more arrive. Validation
names each problem's field and what is allowed (422), an unknown request id is a 422 that names
it, and a conflict with a stored outcome is a 409; in every refusal nothing is recorded.

The router also puts the realised-performance gauges on ``/metrics``
(:mod:`credit_risk.api.realised`).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from credit_risk.api.deps import State, check_api_key
from credit_risk.api.errors import bounded
from credit_risk.api.guard import header, json_content, read_body
from credit_risk.api.models import ErrorResponse, ValidationErrorResponse
from credit_risk.api.realised import RealisedPerformanceCollector
from credit_risk.api.responses import FastJSONResponse
from credit_risk.api.state import ServiceState
from credit_risk.outcomes import (
    ConflictingOutcomes,
    InvalidOutcomes,
    OutcomeError,
    UnknownRequests,
    parse_outcomes,
    record_outcomes,
)
from credit_risk.outcomes.parse import (
    ALLOWED,
    OUTCOME_FIELDS,
    REQUEST_ID_LENGTH,
    REQUEST_ID_PATTERN,
    Problem,
)

if TYPE_CHECKING:
    from credit_risk.performance import WindowPerformance

PATH = "/outcomes"
BODY_KEYS = ("outcomes", "replace")


# One outcome, as the OpenAPI document describes it (what the route accepts, exactly).
OUTCOME_SCHEMA: dict[str, Any] = {
    "title": "OutcomeIn",
    "description": "The realised outcome of one logged decision.",
    "type": "object",
    "required": list(OUTCOME_FIELDS),
    "additionalProperties": False,
    "properties": {
        "request_id": {
            "type": "string",
            "pattern": REQUEST_ID_PATTERN,
            "description": ALLOWED["request_id"],
        },
        "outcome": {"enum": ["good", "bad", 1, 2], "description": ALLOWED["outcome"]},
        "observed_at": {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ],
            "description": ALLOWED["observed_at"],
            "examples": ["2025-03-31", "2025-03-31T14:00:00Z"],
        },
    },
}


def request_schema(max_outcomes: int) -> dict[str, Any]:
    """The request body's JSON schema, inline (for the OpenAPI document: the route validates
    the body itself, so that every problem is named with what is allowed)."""
    return {
        "title": "OutcomesRequest",
        "type": "object",
        "required": ["outcomes"],
        "additionalProperties": False,
        "properties": {
            "outcomes": {
                "type": "array",
                "items": OUTCOME_SCHEMA,
                "minItems": 1,
                "maxItems": max_outcomes,
                "description": f"1 to {max_outcomes} outcomes, recorded all together or not "
                "at all.",
            },
            "replace": {
                "type": "boolean",
                "default": False,
                "description": "Overwrite a different stored outcome instead of refusing with 409.",
            },
        },
    }


class OutcomeStatus(BaseModel):
    request_id: str
    status: Literal["recorded", "replaced", "unchanged"] = Field(
        description="recorded: new; replaced: a different outcome overwritten on request; "
        "unchanged: already stored exactly so (or repeated in this request)."
    )


class OutcomesResponse(BaseModel):
    recorded: int
    replaced: int
    unchanged: int
    outcomes: list[OutcomeStatus]


def largest_outcome_bytes() -> int:
    """Size of the largest valid outcome object, pretty-printed (``"`` escapes to 2 bytes)."""
    longest = {
        "request_id": '"' * REQUEST_ID_LENGTH,
        "outcome": "good",
        "observed_at": "2025-12-31T23:59:59.999999+23:59",
    }
    return len(json.dumps(longest, indent=4).encode())


def outcomes_body_limit(max_outcomes: int) -> int:
    """Twice the largest valid body of ``max_outcomes`` outcomes, plus 64 KiB of headroom
    (the rule of :func:`credit_risk.api.body.default_body_limit`)."""
    return 2 * max_outcomes * largest_outcome_bytes() + 65536


def _problem_json(problem: Problem) -> dict[str, Any]:
    """A problem in the shape of the service's 422 items (``FieldError``)."""
    loc: list[str | int] = ["body"]
    if problem.where.startswith("outcomes["):
        loc += ["outcomes", int(problem.where[len("outcomes[") : -1])]
        name = problem.where + (f".{problem.field}" if problem.field else "")
    else:
        name = problem.field or "body"
    if problem.field:
        loc.append(problem.field)
    message = problem.message
    if problem.allowed and problem.kind != "missing":
        message = f"{message}; expected {problem.allowed}"
    return {
        "field": name,
        "value": bounded(problem.value),
        "allowed": problem.allowed,
        "message": message,
        "loc": loc,
        "msg": problem.message,
        "type": problem.kind,
    }


def _refusal(error: OutcomeError) -> FastJSONResponse:
    status = 422
    if isinstance(error, UnknownRequests):
        status = 404
    elif isinstance(error, ConflictingOutcomes):
        status = 409
    problems = error.problems or [Problem("body", "", error.summary, kind="value_error")]
    return FastJSONResponse(
        {
            "detail": [_problem_json(p) for p in problems],
            "omitted_errors": error.omitted,
            "summary": error.summary,
        },
        status_code=status,
    )


def _body_problem(message: str, allowed: str, kind: str, value: Any = None) -> InvalidOutcomes:
    return InvalidOutcomes(message, [Problem("body", "", message, value, allowed, kind)])


_BODY_SHAPE = (
    '{"outcomes": [{"request_id": ..., "outcome": ..., "observed_at": ...}], "replace": false}'
)


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:60]


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a repeated key is refused (the last one would silently win)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return obj


def read_outcomes_body(body: bytes, max_outcomes: int) -> tuple[list[tuple[str, Any]], bool]:
    """The items of a request body and its ``replace`` flag.

    Raises:
        InvalidOutcomes: not JSON, not the body's shape, or too many outcomes.
    """
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_no_repeated_keys)
    except _RepeatedKey as repeated:
        raise _body_problem(
            f"the key {repeated.key!r} is given more than once in the same object",
            "each key once per object",
            "duplicate_key",
        ) from None
    except UnicodeDecodeError as error:
        raise _body_problem(
            f"not UTF-8 text (byte {error.start})", "a JSON document", "json_invalid"
        ) from None
    except json.JSONDecodeError as error:
        raise _body_problem(
            f"malformed JSON at character {error.pos} ({error.msg})", _BODY_SHAPE, "json_invalid"
        ) from None
    except (RecursionError, ValueError):
        raise _body_problem("malformed JSON", _BODY_SHAPE, "json_invalid") from None
    if not isinstance(document, dict):
        raise _body_problem("the body is not a JSON object", _BODY_SHAPE, "model_attributes_type")
    problems = [
        Problem(
            "body",
            str(key)[:60],
            f"unexpected field {str(key)[:60]!r}",
            document[key],
            "only outcomes and replace",
            "extra_forbidden",
        )
        for key in document
        if key not in BODY_KEYS
    ]
    replace = document.get("replace", False)
    if not isinstance(replace, bool):
        problems.append(
            Problem(
                "body",
                "replace",
                f"{replace!r} is not true or false"[:120],
                replace,
                "true or false",
                "bool_type",
            )
        )
    items = document.get("outcomes")
    if not isinstance(items, list) or not 1 <= len(items) <= max_outcomes:
        what = (
            "missing"
            if items is None
            else (f"{len(items)} items" if isinstance(items, list) else "not a list")
        )
        problems.append(
            Problem(
                "body",
                "outcomes",
                what,
                None if isinstance(items, list) else items,
                f"a list of 1 to {max_outcomes} outcomes",
                "missing" if items is None else "list_type",
            )
        )
    if problems or not isinstance(items, list):
        raise InvalidOutcomes(f"{len(problems)} invalid value(s); nothing was recorded", problems)
    where = [(f"outcomes[{i}]", item) for i, item in enumerate(items)]
    not_objects = [
        Problem(
            w,
            "",
            "not an object",
            item,
            "an object with " + ", ".join(OUTCOME_FIELDS),
            "model_attributes_type",
        )
        for w, item in where
        if not isinstance(item, dict)
    ]
    if not_objects:
        raise InvalidOutcomes(
            f"{len(not_objects)} invalid value(s); nothing was recorded", not_objects
        )
    return where, replace


def _latest(state: ServiceState) -> WindowPerformance | None:
    # Imported here: the figures need scikit-learn, which the serving image does not carry
    # (there the gauges' refresh logs the missing package and the gauges stay empty).
    from credit_risk.performance import latest_window

    log = state.decision_log
    if log is None:
        return None
    return latest_window(log.engine, state.settings)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong X-API-Key."},
    404: {
        "model": ValidationErrorResponse,
        "description": "Request ids that are not logged decisions (each named; any other "
        "problem of the body listed after them); nothing was recorded.",
    },
    409: {
        "model": ValidationErrorResponse,
        "description": "A decision already has a different outcome; nothing was recorded "
        '(send "replace": true to overwrite).',
    },
    413: {"model": ErrorResponse, "description": "The request body is over the size limit."},
    422: {
        "model": ValidationErrorResponse,
        "description": "Invalid input (each problem named, with what is allowed); nothing was "
        "recorded.",
    },
    503: {"model": ErrorResponse, "description": "The decision log cannot be written."},
}


def build_router(state: ServiceState) -> APIRouter:
    """``POST /outcomes`` (behind the API key when one is set); registers the gauges.

    Args:
        state: the service state (settings, decision log, metrics).
    """
    settings = state.settings
    require_key = bool(settings.api_key)
    state.metrics.add_collector(
        RealisedPerformanceCollector(
            lambda: _latest(state),
            settings.performance_refresh_seconds,
            settings.performance_window_days,
        )
    )
    max_outcomes = settings.max_batch
    limit = outcomes_body_limit(max_outcomes)
    if settings.max_body_bytes is not None:
        limit = min(limit, settings.max_body_bytes)
    schema = request_schema(max_outcomes)
    router = APIRouter(
        tags=["outcomes"],
        responses=ERRORS if require_key else {k: v for k, v in ERRORS.items() if k != 401},
        dependencies=[Depends(check_api_key)] if require_key else [],
    )

    @router.post(
        PATH,
        response_model=OutcomesResponse,
        summary="Record realised outcomes of logged decisions",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
        },
    )
    async def post_outcomes(request: Request, state: State) -> FastJSONResponse:
        """Good or bad, observed after the decision; all recorded, or none.

        The same outcome sent again is ``unchanged``; a different one for a decision that has
        one is refused (409) unless ``replace`` is true.
        """
        declared = header(request.scope["headers"], b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"request body larger than the limit of {limit} bytes")
        body = await read_body(request.receive, limit)
        if body is None:  # the client went away
            raise HTTPException(400, "the request body did not arrive")
        try:
            if not json_content(request.scope["headers"]):
                raise _body_problem(
                    "the body is not JSON", "Content-Type: application/json", "content_type"
                )
            items, replace = read_outcomes_body(body, max_outcomes)
            outcomes = parse_outcomes(items, datetime.now(UTC))
            log = state.decision_log
            if log is None:
                raise HTTPException(503, "the decision log is not open")
            result = await asyncio.to_thread(record_outcomes, log.engine, outcomes, replace, "api")
        except OutcomeError as error:
            return _refusal(error)
        except sa.exc.SQLAlchemyError as error:
            raise HTTPException(
                503, f"the decision log cannot be written: {type(error).__name__}"
            ) from error
        counts = result.counts()
        return FastJSONResponse(
            {
                **counts,
                "outcomes": [{"request_id": r, "status": s} for r, s in result.statuses],
            }
        )

    return router
