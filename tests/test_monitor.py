"""Drift monitor: flags a deliberately shifted sample, passes an unshifted one, end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from credit_risk.config import Settings
from credit_risk.monitor import (
    SCORE,
    assess_drift,
    monitor,
    parse_since,
    psi_band,
    psi_categorical,
    psi_numeric,
)
from tests.conftest import DATA


def shifted(sample: pd.DataFrame) -> pd.DataFrame:
    """Longer, larger credits from applicants overdrawn on their checking account."""
    out = sample.copy()
    out["duration_months"] = np.minimum(out["duration_months"] * 2, 120).astype(
        out["duration_months"].dtype
    )
    out["credit_amount"] = (out["credit_amount"] * 1.8).astype(out["credit_amount"].dtype)
    out["checking_account_status"] = "A11"
    return out.astype(sample.dtypes.to_dict())


def test_psi_is_zero_for_identical_and_large_for_disjoint_samples() -> None:
    values = np.arange(1000.0)
    assert psi_numeric(values, values) == pytest.approx(0.0, abs=1e-9)
    assert psi_numeric(values, values + 2000) > 1.0
    codes = pd.Series(["A"] * 50 + ["B"] * 50)
    assert psi_categorical(codes, codes, ["A", "B", "C"]) == pytest.approx(0.0, abs=1e-9)
    assert [psi_band(v) for v in (0.05, 0.1, 0.3)] == ["stable", "watch", "act"]


def test_assess_drift_flags_a_shifted_sample(applicants: pd.DataFrame) -> None:
    current = shifted(applicants.sample(300, random_state=1))
    result = assess_drift(applicants, current, min_rows=50)
    assert result.drift
    drifted = set(result.table.loc[result.table["drifted"], "attribute"])
    assert {"duration_months", "credit_amount", "checking_account_status"} <= drifted
    assert "telephone" not in drifted


def test_assess_drift_passes_an_unshifted_sample(applicants: pd.DataFrame) -> None:
    for seed in range(5):
        current = applicants.sample(300, random_state=seed)
        result = assess_drift(applicants, current, min_rows=50)
        assert not result.drift, result.summary()
        assert (result.table["psi"] < 0.1).all(), result.table


def test_too_few_decisions_give_no_verdict(applicants: pd.DataFrame) -> None:
    result = assess_drift(applicants, shifted(applicants.head(10)), min_rows=50)
    assert not result.drift and not result.enough_data
    assert "not enough" in result.summary()


def test_parse_since_reads_durations_and_dates() -> None:
    now = datetime(2026, 1, 8, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-01-01", now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_since(None) is None


def _log_decisions(
    url: str, frame: pd.DataFrame, probability: np.ndarray, created_at: datetime
) -> None:
    import sqlalchemy as sa

    from credit_risk.decision_log import create_table, decision_row, decisions_table, make_engine

    engine = make_engine(url)
    create_table(engine)
    rows = [
        decision_row(
            f"{created_at.timestamp()}-{i}",
            created_at,
            "1",
            {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()},
            float(p),
            2 if p >= 0.3 else 1,
            "reject" if p >= 0.3 else "approve",
            0.3,
            [],
        )
        for i, (record, p) in enumerate(
            zip(frame.to_dict(orient="records"), probability, strict=True)
        )
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(decisions_table), rows)
    engine.dispose()


def test_monitor_command_reads_the_log_and_exits_on_drift(
    trained: tuple[Settings, Any],
    model_dir: Path,
    applicants: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from credit_risk.cli import app
    from credit_risk.registry import load_exported

    del trained  # only needed for model_dir to exist
    pipeline, _ = load_exported(model_dir)
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    old = datetime.now(UTC) - timedelta(days=30)
    recent = datetime.now(UTC) - timedelta(hours=1)
    calm = applicants.sample(300, random_state=3)
    drifted = shifted(applicants.sample(300, random_state=4))
    _log_decisions(url, calm, pipeline.predict_proba(calm)[:, 1], old)
    _log_decisions(url, drifted, pipeline.predict_proba(drifted)[:, 1], recent)
    for key, value in {
        "CREDIT_RISK_DATA_PATH": str(DATA),
        "CREDIT_RISK_DECISION_LOG_URL": url,
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    common = ["monitor", "--model", str(model_dir)]

    calm_report = tmp_path / "calm.html"
    outcome = runner.invoke(
        app,
        [*common, "--until", (old + timedelta(days=1)).isoformat(), "--report", str(calm_report)],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "no drift" in outcome.output

    drift_report = tmp_path / "drift.html"
    outcome = runner.invoke(app, [*common, "--since", "2d", "--report", str(drift_report)])
    assert outcome.exit_code == 1, outcome.output
    assert "DRIFT" in outcome.output and "duration_months" in outcome.output
    page = drift_report.read_text()
    assert "DRIFT" in page and "data:image/png;base64," in page and SCORE in page


def test_monitor_function_returns_a_flag_a_flow_can_use(
    trained: tuple[Settings, Any],
    model_dir: Path,
    applicants: pd.DataFrame,
    tmp_path: Path,
) -> None:
    settings, _ = trained
    from credit_risk.registry import load_exported

    pipeline, _ = load_exported(model_dir)
    current = shifted(applicants.sample(200, random_state=5))
    current[SCORE] = pipeline.predict_proba(current)[:, 1]
    result = monitor(settings, model_dir=model_dir, report=tmp_path / "r.html", decisions=current)
    assert result.drift and result.report_path == tmp_path / "r.html"
    score_row = result.table.set_index("attribute").loc[SCORE]
    assert score_row["psi"] > 0.1  # longer, larger, overdrawn applicants score riskier


def test_logged_labels_are_read_back_as_codes(applicants: pd.DataFrame) -> None:
    from credit_risk.monitor import decisions_to_frame

    record = applicants.iloc[0].to_dict()
    record["foreign_worker"] = "no"  # the label of A202
    frame = decisions_to_frame(
        [
            {
                "input": record,
                "probability_bad": 0.2,
                "request_id": "r",
                "created_at": None,
                "model_version": "1",
            }
        ]
    )
    assert frame.loc[0, "foreign_worker"] == "A202"
    assert frame.loc[0, SCORE] == 0.2
