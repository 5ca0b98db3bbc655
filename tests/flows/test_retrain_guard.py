"""The monitor-and-retrain flow retrains only on rows the champion has not seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk import flows
from credit_risk import monitor as monitoring
from credit_risk.data import read_applicants
from credit_risk.train import train
from tests.conftest import DATA, FAST_PARAMS, make_settings
from tests.labelled_log import log_labelled, write_base_file

pytestmark = pytest.mark.xdist_group("prefect")


def test_drift_retrains_only_when_labelled_data_is_new_to_the_champion(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = read_applicants(DATA)
    assert data.target is not None
    base = write_base_file(tmp_path / "base.csv", slice(0, 700))
    settings = make_settings(tmp_path, data_path=base, train_with_outcomes=True, n_jobs=1)
    train(settings, params=FAST_PARAMS)  # the champion: no labelled decisions exist yet

    def drifted(settings_: Any, since: Any = None, **_: Any) -> monitoring.DriftResult:
        return monitoring.DriftResult(
            table=pd.DataFrame({"attribute": ["score"], "psi": [0.4]}),
            drift=True,
            reasons=["score: PSI 0.40 >= 0.25"],
            reference_rows=200,
            current_rows=300,
            report_path=tmp_path / "drift.html",
        )

    retrained: list[Any] = []
    monkeypatch.setattr(monitoring, "monitor", drifted)
    monkeypatch.setattr(flows, "training_flow", lambda s: retrained.append(s) or {"v": "2"})

    # Drift, but nothing the champion has not seen: retraining would learn nothing.
    result = flows.monitor_flow(settings, since="7d")
    assert retrained == [] and result["retrained"] is None
    assert "no retraining: all 700 rows" in result["retrain_skipped"]

    # Outcomes of 50 new decisions arrive: now there is something to learn from.
    start = datetime.now(UTC) - timedelta(days=90)
    x, y = data.features.iloc[700:750], np.asarray(data.target)[700:750]
    log_labelled(settings.decision_log_url, x, y, start)
    result = flows.monitor_flow(settings, since="7d")
    assert result["retrained"] == {"v": "2"} and len(retrained) == 1
