"""Decision logs written by earlier releases (``tests/data``), and opening one as the service
does (which upgrades its schema)."""

from __future__ import annotations

import shutil
from pathlib import Path

from credit_risk.decision_log import DecisionLog

# Written before outcomes existed (schema 1), and before the shadow table (schema 2).
V1_LOG = Path(__file__).resolve().parent / "data" / "decision_log_v1.db"
V2_LOG = V1_LOG.with_name("decision_log_v2.db")


def copied_log(source: Path, folder: Path) -> str:
    """A copy of a released log in ``folder`` (``decisions.db``), as a SQLite URL."""
    path = folder / "decisions.db"
    shutil.copy(source, path)
    return f"sqlite:///{path}"


def start_and_stop_service_log(url: str) -> None:
    """Open the log at ``url`` as the service does at startup, then close it."""
    log = DecisionLog(url)
    log.start()
    log.close()
