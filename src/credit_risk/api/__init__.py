"""The scoring service: FastAPI app, routes and the static web page.

``create_app()`` builds an app; nothing is loaded at import time. ``credit_risk.api.app`` is
built on first access, for ``uvicorn credit_risk.api:app``.
"""

from __future__ import annotations

from typing import Any

from credit_risk.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        return create_app()
    raise AttributeError(name)
