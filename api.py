"""Root entry point for ``uvicorn api:app``: the scoring service (see credit_risk.api)."""

from credit_risk.api import create_app

app = create_app()
