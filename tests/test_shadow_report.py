"""The shadow report: agreement, score differences and the realised comparison, from the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from credit_risk.cli import app
from credit_risk.decision_log import (
    SCHEMA_VERSION,
    decision_row,
    decisions_table,
    make_engine,
    outcomes_table,
    schema_table,
    schema_version,
    shadow_table,
    upgrade_schema,
)
from credit_risk.evaluate.metrics import CostMatrix
from credit_risk.schema import ATTRIBUTES
from credit_risk.shadow import paired_bootstrap, read_shadow_pairs, row_costs, shadow_report
from tests.conftest import make_settings
from tests.released_logs import V2_LOG, copied_log, start_and_stop_service_log

APPLICANT = {a.name: a.default for a in ATTRIBUTES}
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
THRESHOLD = 1 / 6
runner = CliRunner()

# (champion probability, challenger probability or None, outcome or None); champion v1.
ROWS = [
    (0.05, 0.10, 1),  # both approve, good: 0 / 0
    (0.10, 0.30, 2),  # challenger rejects a bad one: 5 / 0
    (0.12, 0.20, 1),  # challenger rejects a good one: 0 / 1
    (0.08, 0.06, 2),  # both approve a bad one: 5 / 5
    (0.40, 0.50, None),  # both reject
    (0.30, 0.10, None),  # champion rejects, challenger approves
    (0.02, 0.03, 1),  # both approve, good
    (0.15, 0.16, None),  # both approve
    (0.90, None, None),  # served while no challenger was loaded
    (0.01, None, 1),
]


def decide(p: float) -> str:
    return "reject" if p >= THRESHOLD else "approve"


def fill_log(engine: Engine) -> list[str]:
    """The decisions of ROWS (one a minute), their shadow decisions and outcomes."""
    upgrade_schema(engine)
    ids = [f"r{i:02d}" for i in range(len(ROWS))]
    decisions, shadows, outcomes = [], [], []
    for i, (request_id, (p, q, outcome)) in enumerate(zip(ids, ROWS, strict=True)):
        at = START + timedelta(minutes=i)
        decisions.append(
            decision_row(
                request_id,
                at,
                "1",
                APPLICANT,
                p,
                2 if p >= THRESHOLD else 1,
                decide(p),
                THRESHOLD,
                [],
            )
        )
        if q is not None:
            shadows.append(
                {
                    "request_id": request_id,
                    "scored_at": at + timedelta(seconds=1),
                    "model_version": "2",
                    "probability_bad": q,
                    "decision": decide(q),
                    "threshold": THRESHOLD,
                }
            )
        if outcome is not None:
            outcomes.append(
                {
                    "request_id": request_id,
                    "outcome": outcome,
                    "observed_at": at + timedelta(days=30),
                    "recorded_at": at + timedelta(days=31),
                    "source": "test",
                    "revision": 1,
                }
            )
    with engine.begin() as connection:
        connection.execute(sa.insert(decisions_table), decisions)
        connection.execute(sa.insert(shadow_table), shadows)
        connection.execute(sa.insert(outcomes_table), outcomes)
    return ids


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    engine = make_engine(url)
    fill_log(engine)
    engine.dispose()
    return url


def test_report_agreement_table_and_differences(tmp_path: Path, log_url: str) -> None:
    settings = make_settings(tmp_path, decision_log_url=log_url, performance_bootstrap_resamples=0)
    report = shadow_report(settings)
    (pair,) = report.pairs
    assert (pair.champion_version, pair.challenger_version) == ("1", "2")
    assert (pair.decisions, pair.shadowed) == (10, 8)
    assert pair.table == {
        "approve/approve": 4,
        "approve/reject": 2,
        "reject/approve": 1,
        "reject/reject": 1,
    }
    assert pair.agreement == pytest.approx(5 / 8)
    shadowed = [(p, q) for p, q, _ in ROWS if q is not None]
    differences = np.array([q - p for p, q in shadowed])
    assert pair.mean_difference == pytest.approx(differences.mean())
    assert pair.max_abs_difference == pytest.approx(0.20)
    assert pair.median_abs_difference == pytest.approx(np.median(np.abs(differences)))
    text = report.text()
    assert "champion v1 vs challenger v2: 8 of 10 decision(s) scored in shadow" in text
    assert "agreement 62.5%" in text


def test_realised_comparison_on_the_labelled_pairs(tmp_path: Path, log_url: str) -> None:
    settings = make_settings(
        tmp_path, decision_log_url=log_url, performance_bootstrap_resamples=2000
    )
    realised = shadow_report(settings).pairs[0].realised
    assert realised is not None
    # Labelled and shadowed: rows 0, 1, 2, 3, 6 (row 9 has an outcome but no shadow).
    assert (realised.labelled, realised.bad) == (5, 2)
    assert realised.champion_cost == pytest.approx((0 + 5 + 0 + 5 + 0) / 5)
    assert realised.challenger_cost == pytest.approx((0 + 0 + 1 + 5 + 0) / 5)
    assert realised.cost_difference.value == pytest.approx(-4 / 5)
    assert realised.cost_difference.low <= -4 / 5 <= realised.cost_difference.high
    brier = [((0.05 - 0) ** 2, (0.10 - 0) ** 2), ((0.10 - 1) ** 2, (0.30 - 1) ** 2)]
    brier += [((0.12 - 0) ** 2, (0.20 - 0) ** 2), ((0.08 - 1) ** 2, (0.06 - 1) ** 2)]
    brier += [((0.02 - 0) ** 2, (0.03 - 0) ** 2)]
    assert realised.champion_brier == pytest.approx(np.mean([b[0] for b in brier]))
    assert realised.challenger_brier == pytest.approx(np.mean([b[1] for b in brier]))
    again = shadow_report(settings).pairs[0].realised
    assert again == realised  # seeded: the same interval every time


def test_a_window_keeps_the_decisions_made_in_it(tmp_path: Path, log_url: str) -> None:
    engine = make_engine(log_url)
    pairs, served = read_shadow_pairs(engine, since=START + timedelta(minutes=4))
    engine.dispose()
    assert list(pairs["request_id"]) == ["r04", "r05", "r06", "r07"]
    assert served.to_dict() == {"1": 6}
    assert pairs["outcome"].isna().tolist() == [True, True, False, True]


def test_paired_bootstrap_interval() -> None:
    constant = paired_bootstrap(np.full(50, 0.25), 500, 0.95, seed=1)
    assert (constant.value, constant.low, constant.high) == (0.25, 0.25, 0.25)
    rng = np.random.default_rng(7)
    differences = rng.normal(0.1, 1.0, size=400)
    estimate = paired_bootstrap(differences, 2000, 0.95, seed=3)
    # The percentile interval of a mean: about +-1.96 standard errors around it.
    assert estimate.high - estimate.low == pytest.approx(2 * 1.96 / np.sqrt(400), rel=0.15)
    assert estimate.low < differences.mean() < estimate.high
    assert np.isnan(paired_bootstrap(differences, 0, 0.95, seed=3).low)


def test_row_costs_follow_the_cost_matrix() -> None:
    bad = np.array([True, True, False, False])
    decisions = np.array(["approve", "reject", "approve", "reject"])
    assert row_costs(bad, decisions, CostMatrix(5, 1)).tolist() == [5, 0, 0, 1]


def test_cli_prints_the_report(tmp_path: Path, log_url: str) -> None:
    result = runner.invoke(app, ["shadow", "report", "--log-url", log_url, "--resamples", "300"])
    assert result.exit_code == 0, result.output
    assert "agreement 62.5%" in result.output
    assert "realised, on 5 labelled pair(s) (2 bad)" in result.output
    assert "95% paired bootstrap interval, 300 resamples" in result.output
    assert "Selection bias" in result.output
    as_json = runner.invoke(
        app, ["shadow", "report", "--log-url", log_url, "--json", "--resamples", "0"]
    )
    document = json.loads(as_json.output, parse_constant=lambda name: pytest.fail(name))
    assert document["pairs"][0]["shadowed"] == 8
    assert document["pairs"][0]["realised"]["cost_difference"]["low"] is None  # no resamples
    since = runner.invoke(
        app, ["shadow", "report", "--log-url", log_url, "--since", "2025-03-01T09:08"]
    )
    assert "shadow decisions from 2025-03-01T09:08:00+00:00 to now: none" in since.output
    assert "champion v1: 2 decision(s), none scored in shadow" in since.output


def test_cli_refuses_a_missing_log_and_a_bad_window(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    result = runner.invoke(app, ["shadow", "report", "--log-url", missing])
    assert result.exit_code == 2
    assert "no database at" in result.output
    assert not (tmp_path / "nothing.db").exists()
    bad = runner.invoke(app, ["shadow", "report", "--log-url", missing, "--since", "soon"])
    assert bad.exit_code == 2
    assert "--since" in bad.output


def test_a_log_of_the_previous_release_gets_the_shadow_table(tmp_path: Path) -> None:
    """tests/data/decision_log_v2.db: the v1 log opened by the release with outcomes (schema 2),
    with one outcome recorded."""
    url = copied_log(V2_LOG, tmp_path)
    old = make_engine(url)
    assert schema_version(old) == 2
    assert not sa.inspect(old).has_table(shadow_table.name)
    old.dispose()
    settings = make_settings(tmp_path, decision_log_url=url)
    assert shadow_report(settings).pairs == []  # reading alone does not need the upgrade

    start_and_stop_service_log(url)
    engine = make_engine(url)
    assert schema_version(engine) == SCHEMA_VERSION == 3
    with engine.connect() as connection:
        versions = sorted(connection.execute(sa.select(schema_table.c.version)).scalars())
        assert versions == [1, 2, 3]
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(decisions_table)).scalar()
            == 3
        )
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(outcomes_table)).scalar() == 1
        )
    engine.dispose()
    report = shadow_report(settings)
    assert report.pairs == []
    assert sum(report.unshadowed.values()) == 3
    assert "none scored in shadow" in report.text()
