"""The monitor-and-retrain flow retrains only when the drift check alarms, and a small quiet
window does not make it alarm."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from credit_risk import flows
from credit_risk import monitor as monitoring
from credit_risk.config import FitRows
from tests.conftest import FAST_PARAMS, make_settings


def _table(alarm: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "attribute": ["probability_bad"],
            "test": ["ks"],
            "rows": [300],
            "statistic": [0.4 if alarm else 0.05],
            "threshold": [0.2],
            "p_value": [0.0001 if alarm else 0.6],
            "alarm": [alarm],
            "psi": [0.4 if alarm else 0.01],
        }
    )


@pytest.mark.parametrize("drift", [True, False])
def test_monitor_flow_retrains_only_on_drift(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drift: bool
) -> None:
    settings = make_settings(tmp_path)
    seen: dict[str, Any] = {}

    def fake_monitor(settings_: Any, since: Any = None, **_: Any) -> monitoring.DriftResult:
        seen["since"] = since
        version = monitoring.VersionDrift("1", 300, None, _table(drift), enough_data=True)
        return monitoring.DriftResult(
            [version], 0.05, 50, 1, 0.05, 999, report_path=tmp_path / "drift.html"
        )

    retrained: list[Any] = []
    monkeypatch.setattr(monitoring, "monitor", fake_monitor)
    monkeypatch.setattr(
        flows, "training_flow", lambda s: retrained.append(s) or {"model_version": "2"}
    )

    result = flows.monitor_flow(settings, since="7d")

    assert result["drift"] is drift
    assert seen["since"] is not None  # "7d" was parsed into a start time
    if drift:
        assert result["retrained"] == {"model_version": "2"} and retrained == [settings]
        assert result["reasons"] and "probability_bad" in result["reasons"][0]
    else:
        assert result["retrained"] is None and retrained == []


def test_a_quiet_window_of_50_decisions_does_not_retrain(
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50 applicants the model never trained on, as the service logged them: no retraining.

    The PSI >= 0.25 rule that used to start retraining fires on this window: with no drift a
    50-row window's expected PSI is about (bins - 1) / n per attribute.
    """
    from benchmarks.drift_alarms import held_out_pool, no_shift
    from credit_risk.decision_log import create_table, decision_row, decisions_table, make_engine
    from credit_risk.train import train

    # A model with held-out applicants (the default refits on every row, leaving none).
    trained_settings = make_settings(tmp_path / "store", fit_rows=FitRows.SPLIT)
    train(trained_settings, params=FAST_PARAMS)
    model_dir = trained_settings.model_dir
    window = no_shift(held_out_pool(trained_settings, model_dir), 50, np.random.default_rng(8))
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    engine = make_engine(url)
    create_table(engine)
    now = datetime.now(UTC)
    version = str(monitoring.read_metadata(model_dir)["model_version"])
    inputs = window.drop(columns=[monitoring.SCORE]).to_dict(orient="records")
    with engine.begin() as connection:
        connection.execute(
            sa.insert(decisions_table),
            [
                decision_row(
                    f"quiet-{i}",
                    now,
                    version,
                    {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()},
                    float(score),
                    1,
                    "approve",
                    0.5,
                    [],
                )
                for i, (record, score) in enumerate(
                    zip(inputs, window[monitoring.SCORE], strict=True)
                )
            ],
        )
    engine.dispose()
    settings = trained_settings.model_copy(
        update={"decision_log_url": url, "monitor_report": tmp_path / "monitor.html"}
    )
    retrained: list[Any] = []
    monkeypatch.setattr(flows, "training_flow", lambda s: retrained.append(s) or {})

    result = flows.monitor_flow(settings, since="1d")

    assert result["enough_data"] and result["decisions"] == 50 and result["tests"] == 21
    assert not result["drift"] and result["retrained"] is None and retrained == []
    report = json.loads((tmp_path / "monitor.json").read_text())
    psi = [test["psi"] for test in report["versions"][0]["tests"]]
    assert max(psi) >= 0.25  # what the old rule retrained on
