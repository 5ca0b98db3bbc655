"""A JSON response rendered by orjson (the hot path answers plain dicts, skipping re-validation)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.responses import Response


class FastJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            # e.g. an echoed integer beyond 64 bits in a 422: the standard library copes.
            return json.dumps(content, default=str).encode()
