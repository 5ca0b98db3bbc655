"""Fairness audit: numbers on a tiny hand-made case, gate limits, and what a run logs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.fairness import SEX_CAVEAT, audit_predictions, combine


def _applicants() -> pd.DataFrame:
    # Four women (A92) then four men (A93); the first of each is under 25; all foreign workers.
    return pd.DataFrame(
        {
            "personal_status_sex": ["A92"] * 4 + ["A93"] * 4,
            "age_years": [22, 30, 40, 50, 23, 31, 41, 51],
            "foreign_worker": ["A201"] * 8,
        }
    )


Y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
# Rejected (>= 0.5): women 1,1,1,0 ; men 1,0,0,0.
PROBABILITY = np.array([0.9, 0.8, 0.7, 0.1, 0.9, 0.2, 0.2, 0.1])


def test_audit_matches_hand_computed_rates() -> None:
    audit = audit_predictions("test", _applicants(), Y, PROBABILITY, threshold=0.5)
    by_group = audit.table.set_index(["attribute", "group"])
    female, male = by_group.loc[("sex", "female")], by_group.loc[("sex", "male")]
    assert (female["count"], male["count"]) == (4, 4)
    assert female["selection_rate"] == pytest.approx(0.25)  # approval rate
    assert male["selection_rate"] == pytest.approx(0.75)
    assert female["recall_bad"] == pytest.approx(1.0)
    assert male["recall_bad"] == pytest.approx(0.5)
    assert female["false_positive_rate"] == pytest.approx(0.5)
    assert male["false_positive_rate"] == pytest.approx(0.0)
    assert audit.metrics["test_sex_disparate_impact"] == pytest.approx(1 / 3)
    assert audit.metrics["test_sex_equalized_odds_difference"] == pytest.approx(0.5)
    # Age: under 25 = rows 0 and 4, both bad and both rejected -> approval 0 vs 3/6.
    young = by_group.loc[("age_group", "under_25")]
    assert young["count"] == 2 and young["selection_rate"] == pytest.approx(0.0)
    assert audit.metrics["test_age_group_disparate_impact"] == pytest.approx(0.0)
    # One foreign-worker group only: no disparity can be measured, ratio is 1.
    assert audit.metrics["test_foreign_worker_disparate_impact"] == pytest.approx(1.0)


def test_gate_limits_report_each_breach() -> None:
    audit = audit_predictions("test", _applicants(), Y, PROBABILITY, threshold=0.5)
    failed = audit.limits_failed(min_disparate_impact=0.8, max_equalized_odds_difference=None)
    assert any("sex" in reason for reason in failed)
    assert any("age_group" in reason for reason in failed)
    assert not any("foreign_worker" in reason for reason in failed)
    assert audit.limits_failed(None, None) == []


def test_markdown_states_the_attribute_9_caveat() -> None:
    audit = combine(
        audit_predictions("test", _applicants(), Y, PROBABILITY, 0.5),
        audit_predictions("cv", _applicants(), Y, PROBABILITY, 0.5),
    )
    text = audit.markdown()
    assert SEX_CAVEAT in text
    assert "| cv | sex |" in text and "| test | sex |" in text


def test_training_run_logs_fairness_to_mlflow(trained: tuple[Any, Any]) -> None:
    from mlflow.tracking import MlflowClient

    settings, result = trained
    client = MlflowClient(settings.tracking_uri)
    metrics = client.get_run(result.run_id).data.metrics
    for split in ("test", "cv"):
        for attribute in ("sex", "age_group", "foreign_worker"):
            assert f"fairness_{split}_{attribute}_disparate_impact" in metrics
            assert f"fairness_{split}_{attribute}_equalized_odds_difference" in metrics
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "fairness")}
    assert {"fairness/fairness_table.json", "fairness/fairness.md"} <= artifacts
