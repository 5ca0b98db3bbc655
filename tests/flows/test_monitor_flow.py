"""The monitor-and-retrain flow retrains only when the drift check says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from credit_risk import flows
from credit_risk import monitor as monitoring
from tests.conftest import make_settings


@pytest.mark.parametrize("drift", [True, False])
def test_monitor_flow_retrains_only_on_drift(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drift: bool
) -> None:
    settings = make_settings(tmp_path)
    seen: dict[str, Any] = {}

    def fake_monitor(settings_: Any, since: Any = None, **_: Any) -> monitoring.DriftResult:
        seen["since"] = since
        return monitoring.DriftResult(
            table=pd.DataFrame({"attribute": ["score"], "psi": [0.4 if drift else 0.01]}),
            drift=drift,
            reasons=["score: PSI 0.40 >= 0.25"] if drift else [],
            reference_rows=200,
            current_rows=300,
            report_path=tmp_path / "drift.html",
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
    else:
        assert result["retrained"] is None and retrained == []
