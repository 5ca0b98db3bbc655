"""``python -m credit_risk.cli``: the same command as ``credit-risk``."""

from credit_risk.cli import app

if __name__ == "__main__":
    app()
