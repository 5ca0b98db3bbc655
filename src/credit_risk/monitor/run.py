"""The monitor run: read the log, test each version's window, write the HTML and JSON
reports.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from credit_risk.monitor.decisions import read_decisions, windows_by_version
from credit_risk.monitor.drift import DriftResult, assess_drift
from credit_risk.monitor.reference import ReferenceUnavailable
from credit_risk.monitor.report import drift_plots, render_report

if TYPE_CHECKING:
    from credit_risk.config import Settings

log = logging.getLogger(__name__)


def monitor(
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
    model_dir: Path | None = None,
    report: Path | None = None,
    decisions: pd.DataFrame | None = None,
) -> DriftResult:
    """Read the decision log, test each model version's window, write the reports.

    A plain function, so a Prefect task can call it and retrain when ``result.drift``.

    Args:
        settings: decision-log URL, alarm rate, minimum window, report path, registry.
        since, until: time window of the decisions (default: the whole log).
        model_dir: exported model whose reference serves its own version's decisions (default:
            the champion); other versions' references come from the registry.
        report: where to write the HTML report (default ``settings.monitor_report``); the
            JSON report goes beside it (``.json``).
        decisions: logged decisions to use instead of reading the log (tests, batch files).

    Raises:
        ReferenceUnavailable: there are decisions to test but no version's reference was found.
        ModelFolderError: the folder's own reference is missing and cannot be rebuilt.
    """
    folder = Path(model_dir or settings.model_dir)
    current = (
        decisions
        if decisions is not None
        else read_decisions(settings.decision_log_url, since, until)
    )
    windows, skipped = windows_by_version(settings, current, folder)
    if skipped and not windows:
        raise ReferenceUnavailable("no decision could be tested: " + "; ".join(skipped.values()))
    result = assess_drift(
        windows, settings.monitor_alarm_rate, settings.monitor_min_rows, settings.seed
    )
    result.skipped = skipped
    result.window = (
        f"{since.isoformat() if since else 'start of log'} to "
        f"{until.isoformat() if until else 'now'}"
    )
    plots = {
        version.model_version: drift_plots(version, window.decisions)
        for version, window in zip(result.versions, windows, strict=True)
    }
    path = Path(report or settings.monitor_report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, plots))
    result.report_path = path
    result.json_path = path.with_suffix(".json")
    result.json_path.write_text(json.dumps(result.to_json(), indent=2, default=str))
    log.info("%s; report %s", result.summary(), path)
    return result
