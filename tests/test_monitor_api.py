"""The monitor reads what the API actually logs (same table, same input encoding)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient

from credit_risk.data import read_applicants
from credit_risk.monitor import SCORE, read_decisions
from tests.conftest import DATA, make_settings


def test_monitor_reads_decisions_logged_by_the_api(model_dir: Path, tmp_path: Path) -> None:
    from credit_risk.api import create_app
    from credit_risk.scoring import Scorer

    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    settings = make_settings(tmp_path, model_dir=model_dir, decision_log_url=url)
    applicants = read_applicants(DATA).features.head(20)
    records = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in applicants.to_dict(orient="records")
    ]
    with TestClient(create_app(settings, scorer=Scorer.from_folder(model_dir))) as client:
        response = client.post("/predict/batch", json={"applicants": records})
        assert response.status_code == 200, response.text
        served = [item["probability_bad"] for item in response.json()["predictions"]]
    logged = read_decisions(url)
    assert len(logged) == 20
    pd.testing.assert_frame_equal(
        logged[list(applicants.columns)].reset_index(drop=True).astype(applicants.dtypes),
        applicants.reset_index(drop=True),
        check_dtype=False,
    )
    assert sorted(logged[SCORE].round(6)) == sorted(pd.Series(served).round(6))
