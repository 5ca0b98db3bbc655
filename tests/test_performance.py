"""Realised performance: the figures agree with their definitions, intervals behave, the CLI
prints the table and writes the report."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from credit_risk.cli import app
from credit_risk.decision_log import decision_row, decisions_table, make_engine, upgrade_schema
from credit_risk.evaluate.metrics import CostMatrix, expected_cost
from credit_risk.outcomes import Outcome, read_decisions_with_outcomes, record_outcomes
from credit_risk.performance import (
    SELECTION_BIAS,
    By,
    assess_window,
    latest_window,
    performance,
    realised_performance,
)
from credit_risk.schema import ATTRIBUTES
from tests.conftest import make_settings

APPLICANT = {a.name: a.default for a in ATTRIBUTES}
COSTS = CostMatrix(5.0, 1.0)
runner = CliRunner()


def synthetic(n: int, seed: int = 0, start: datetime | None = None) -> pd.DataFrame:
    """Decisions over three months (two model versions): calibrated scores, outcomes for 90% of
    approvals and 5% of rejections (as a lender sees them)."""
    rng = np.random.default_rng(seed)
    probability = np.round(rng.beta(2, 6, n), 3)
    bad = rng.random(n) < probability
    rejected = probability >= 1 / 6
    labelled = np.where(rejected, rng.random(n) < 0.05, rng.random(n) < 0.9)
    start = start or datetime(2025, 1, 1, tzinfo=UTC)
    decided = [start + timedelta(days=90 * i / n) for i in range(n)]
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "decided_at": pd.to_datetime(decided, utc=True),
            "model_version": np.where(np.arange(n) < n // 2, "1", "2"),
            "probability_bad": probability,
            "decision": pd.Series(np.where(rejected, "reject", "approve"), dtype="str"),
            "outcome": pd.array(np.where(labelled, np.where(bad, 2, 1), None), dtype="Int64"),
        }
    )


def write_log(url: str, frame: pd.DataFrame) -> None:
    """The frame's decisions and outcomes, written as the service and an import would."""
    engine = make_engine(url)
    upgrade_schema(engine)
    rows = [
        decision_row(
            r.request_id,
            r.decided_at.to_pydatetime(),
            r.model_version,
            APPLICANT,
            float(r.probability_bad),
            2 if r.decision == "reject" else 1,
            r.decision,
            1 / 6,
            [],
        )
        for r in frame.itertuples()
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(decisions_table), rows)
    labelled = frame[frame["outcome"].notna()]
    record_outcomes(
        engine,
        [
            Outcome(r.request_id, int(r.outcome), r.decided_at.to_pydatetime() + timedelta(days=1))
            for r in labelled.itertuples()
        ],
    )
    engine.dispose()


def test_assess_window_figures_match_their_definitions() -> None:
    frame = synthetic(2000)
    window = assess_window(frame, "all", COSTS, resamples=300, seed=1)
    labelled = frame[frame["outcome"].notna()]
    y = (labelled["outcome"] == 2).to_numpy()
    p = labelled["probability_bad"].to_numpy()
    rejected = (labelled["decision"] == "reject").to_numpy()
    assert window.decisions == 2000
    assert window.outcomes == len(labelled)
    assert window.outcomes_rejected == int(rejected.sum())
    assert window.roc_auc.value == pytest.approx(roc_auc_score(y, p))
    assert window.cost.value == pytest.approx(expected_cost(y, rejected, COSTS))
    assert window.bad_rate_approved.value == pytest.approx(y[~rejected].mean())
    assert window.calibration_gap.value == pytest.approx(y.mean() - p.mean())
    for estimate in (window.roc_auc, window.cost, window.bad_rate_approved, window.calibration_gap):
        assert estimate.low < estimate.value < estimate.high
    bands = [b for b in window.bands if b.n]
    assert sum(b.n for b in window.bands) == len(labelled)
    inside = (p >= 0.1) & (p < 0.2)
    (band,) = [b for b in bands if b.low == 0.1]
    assert band.n == inside.sum()
    assert band.observed.value == pytest.approx(y[inside].mean())
    assert band.predicted == pytest.approx(p[inside].mean())


def test_bootstrap_is_seeded_and_as_wide_as_the_binomial_interval() -> None:
    frame = synthetic(4000, seed=3)
    first = assess_window(frame, "w", COSTS, resamples=2000, seed=7)
    assert assess_window(frame, "w", COSTS, resamples=2000, seed=7) == first
    other = assess_window(frame, "w", COSTS, resamples=2000, seed=8)
    assert other.roc_auc.low != first.roc_auc.low
    rate = first.bad_rate_approved
    half_width = 1.96 * math.sqrt(rate.value * (1 - rate.value) / rate.n)
    assert (rate.high - rate.low) / 2 == pytest.approx(half_width, rel=0.15)


def test_window_without_outcomes_or_with_one_class_says_na() -> None:
    frame = synthetic(200)
    frame["outcome"] = pd.array([None] * len(frame), dtype="Int64")
    empty = assess_window(frame, "w", COSTS)
    assert empty.outcomes == 0
    assert math.isnan(empty.roc_auc.value) and empty.roc_auc.text() == "n/a"
    frame.loc[:10, "outcome"] = 1
    one_class = assess_window(frame, "w", COSTS)
    assert one_class.bad_rate_approved.value == 0.0
    assert math.isnan(one_class.roc_auc.value)


def test_windows_by_month_and_by_version() -> None:
    frame = synthetic(900)
    months = realised_performance(frame, By.MONTH, COSTS, resamples=0)
    assert [w.window for w in months] == ["2025-01", "2025-02", "2025-03"]
    assert sum(w.decisions for w in months) == 900
    assert math.isnan(months[0].cost.low)  # no resamples, no interval
    versions = realised_performance(frame, By.VERSION, COSTS, resamples=0)
    assert [(w.window, w.decisions) for w in versions] == [("1", 450), ("2", 450)]


def test_performance_command_prints_the_table_and_writes_the_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    frame = synthetic(600)
    write_log(url, frame)
    report = tmp_path / "performance.html"
    result = runner.invoke(
        app,
        [
            "performance",
            "--log-url",
            url,
            "--since",
            "2025-02-01",
            "--by",
            "month",
            "--report",
            str(report),
            "--resamples",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Realised performance by month, decisions from 2025-02-01")
    february = next(line for line in lines if line.startswith("2025-02"))
    expected = frame[frame["decided_at"].dt.strftime("%Y-%m") == "2025-02"]
    assert february.split()[1] == str(len(expected))
    assert not any(line.startswith("2025-01") for line in lines)
    assert "95% percentile bootstrap, 200 resamples" in result.output
    assert "Selection bias" in result.output
    html = report.read_text()
    assert html.count("<img") == 5
    assert "rarely get an outcome" in html
    assert "2025-03" in html


def test_performance_of_the_stored_log_equals_the_frame_figures(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    frame = synthetic(500)
    write_log(url, frame)
    settings = make_settings(
        tmp_path, decision_log_url=url, performance_bootstrap_resamples=100, seed=5
    )
    result = performance(settings, by=By.VERSION, report=tmp_path / "r.html")
    direct = realised_performance(frame, By.VERSION, COSTS, 100, 0.95, 5)
    assert repr(result.windows) == repr(direct)
    assert " ".join(result.table().split()).endswith(SELECTION_BIAS)


def test_latest_window_is_what_since_days_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    now = datetime(2025, 3, 20, tzinfo=UTC)
    write_log(url, synthetic(400))
    settings = make_settings(
        tmp_path,
        decision_log_url=url,
        performance_window_days=30,
        performance_bootstrap_resamples=100,
    )
    engine = make_engine(url)
    latest = latest_window(engine, settings, now)
    frame = read_decisions_with_outcomes(engine, now - timedelta(days=30), now)
    engine.dispose()
    assert latest.decisions == len(frame) > 0
    assert latest.first_decision is not None and latest.first_decision >= now - timedelta(days=30)
    report = performance(
        settings, since=now - timedelta(days=30), until=now, report=tmp_path / "r.html"
    )
    assert repr(report.total) == repr(latest)  # repr: NaN (an empty band) equals itself


def test_performance_command_refuses_a_bad_window(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["performance", "--log-url", f"sqlite:///{tmp_path / 'd.db'}", "--since", "last week"]
    )
    assert result.exit_code == 2
    assert "is not a duration" in result.output
    result = runner.invoke(app, ["performance", "--by", "week"])
    assert result.exit_code == 2
    assert "month or version" in result.output
