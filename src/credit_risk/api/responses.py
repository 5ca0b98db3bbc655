"""A JSON response rendered by orjson (the hot path answers plain dicts, skipping re-validation)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


class FastJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
