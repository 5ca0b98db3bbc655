"""Fairness audit: numbers on a tiny hand-made case, intervals, gate limits, what a run logs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.fairness import (
    AUDITED,
    FEMALE_OR_SINGLE_MALE,
    INSUFFICIENT,
    MALE,
    SEX_CAVEAT,
    audit_predictions,
    combine,
    group_metrics,
    resampled_metrics,
    sensitive_features,
)


def _applicants() -> pd.DataFrame:
    # Four A92 (female non-single or male single) then four A93 (male married/widowed); the
    # first of each is under 25; all foreign workers.
    return pd.DataFrame(
        {
            "personal_status_sex": ["A92"] * 4 + ["A93"] * 4,
            "age_years": [22, 30, 40, 50, 23, 31, 41, 51],
            "foreign_worker": ["A201"] * 8,
        }
    )


Y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
# Rejected (>= 0.5): A92 1,1,1,0 ; A93 1,0,0,0.
PROBABILITY = np.array([0.9, 0.8, 0.7, 0.1, 0.9, 0.2, 0.2, 0.1])


def test_audit_matches_hand_computed_rates() -> None:
    audit = audit_predictions("test", _applicants(), Y, PROBABILITY, threshold=0.5)
    by_group = audit.table.set_index(["attribute", "group"])
    mixed, male = by_group.loc[("sex", FEMALE_OR_SINGLE_MALE)], by_group.loc[("sex", MALE)]
    assert (mixed["count"], male["count"]) == (4, 4)
    assert mixed["selection_rate"] == pytest.approx(0.25)  # approval rate
    assert male["selection_rate"] == pytest.approx(0.75)
    assert mixed["recall_bad"] == pytest.approx(1.0)
    assert male["recall_bad"] == pytest.approx(0.5)
    assert mixed["false_positive_rate"] == pytest.approx(0.5)
    assert male["false_positive_rate"] == pytest.approx(0.0)
    assert audit.metrics["test_sex_disparate_impact"] == pytest.approx(1 / 3)
    assert audit.metrics["test_sex_equalized_odds_difference"] == pytest.approx(0.5)
    # Age: under 25 = rows 0 and 4, both bad and both rejected -> approval 0, ratio 0.
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


@pytest.fixture(scope="module")
def shipped() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The 1000 shipped applicants, bad indicator, and a rule-based score with disparities."""
    from credit_risk.data import read_applicants
    from tests.conftest import DATA

    dataset = read_applicants(DATA)
    assert dataset.target is not None
    x, y = dataset.features, dataset.target.to_numpy()
    assert set(y) == {0, 1}  # 1 = bad
    noise = np.random.default_rng(0).normal(0, 0.1, len(x))
    score = 0.3 + 0.3 * (x["checking_account_status"] == "A11") + 0.01 * (x["duration_months"] - 20)
    return x, y, np.clip(score.to_numpy() + noise, 0, 1)


def test_age_bands_include_62_and_over() -> None:
    applicants = pd.DataFrame(
        {
            "personal_status_sex": ["A93"] * 7,
            "age_years": [18, 24, 25, 39, 40, 61, 62],
            "foreign_worker": ["A201"] * 7,
        }
    )
    groups = sensitive_features(applicants)["age_group"].tolist()
    assert groups == ["under_25", "under_25", "25_39", "25_39", "40_61", "40_61", "62_plus"]


def test_groups_say_only_what_attribute_9_tells(
    shipped: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    x, y, probability = shipped
    table = audit_predictions("cv", x, y, probability, 0.4, resamples=0).table
    sex = table[table["attribute"] == "sex"].set_index("group")["count"].to_dict()
    assert sex == {MALE: 50 + 548, FEMALE_OR_SINGLE_MALE: 310 + 92}
    status = table[table["attribute"] == "personal_status"]["group"].tolist()
    assert status == [
        "A91 male: divorced/separated",
        "A92 female: non-single, or male: single",
        "A93 male: married/widowed",
        "A94 female: single",
    ]
    assert not set(table["group"]) & {"female", "male"}


def test_bootstrap_matches_fairlearn_on_the_sample(
    shipped: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    # The resampling code computes the metrics itself; on the sample it must agree with
    # fairlearn's point estimates.
    x, y, probability = shipped
    rejected = (probability >= 0.4).astype(int)
    audit = audit_predictions("cv", x, y, probability, 0.4, resamples=0)
    groups = sensitive_features(x)
    for attribute in AUDITED:
        mine = group_metrics(y, rejected, groups[attribute].to_numpy())
        for name in ("disparate_impact", "equalized_odds_difference"):
            assert mine[name] == pytest.approx(audit.metrics[f"cv_{attribute}_{name}"]), (
                attribute,
                name,
            )


def test_bootstrap_intervals_bracket_the_estimates_and_are_seeded(
    shipped: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    x, y, probability = shipped
    first = audit_predictions("cv", x, y, probability, 0.4, resamples=1000, seed=7)
    again = audit_predictions("cv", x, y, probability, 0.4, resamples=1000, seed=7)
    other = audit_predictions("cv", x, y, probability, 0.4, resamples=1000, seed=8)
    assert first.metrics == again.metrics
    assert first.metrics != other.metrics
    for attribute in AUDITED:
        for name in ("disparate_impact", "equalized_odds_difference"):
            key = f"cv_{attribute}_{name}"
            low, high = first.metrics[f"{key}_ci_low"], first.metrics[f"{key}_ci_high"]
            assert low <= first.metrics[key] <= high, key
            assert low < high, key
    # Larger groups, narrower intervals: sex (402 vs 598) against foreign worker (37 vs 963).
    width = {
        a: first.metrics[f"cv_{a}_disparate_impact_ci_high"]
        - first.metrics[f"cv_{a}_disparate_impact_ci_low"]
        for a in ("sex", "foreign_worker")
    }
    assert width["sex"] < width["foreign_worker"]


def test_intervals_reach_parity_when_groups_do_not_differ(
    shipped: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    # Two groups drawn at random: no true disparity, so the (signed) intervals must reach
    # parity. Re-picking the worse group in every resample would keep them below 1 / above 0.
    _, y, probability = shipped
    rejected = (probability >= 0.4).astype(int)
    sensitive = np.random.default_rng(3).choice(["a", "b"], len(y))
    draws = resampled_metrics(y, rejected, sensitive, 1000, np.random.default_rng(4))
    ratio = np.nanpercentile(draws["disparate_impact"], [2.5, 97.5])
    gap = np.nanpercentile(draws["equalized_odds_difference"], [2.5, 97.5])
    assert ratio[0] < 1 < ratio[1]
    assert gap[0] < 0 < gap[1]


def test_small_groups_report_insufficient_data_instead_of_passing_or_failing() -> None:
    # Groups of 2 to 8 applicants: with a minimum of 50 no limit is judged, however bad.
    audit = audit_predictions("test", _applicants(), Y, PROBABILITY, 0.5, min_group_size=50)
    assert audit.limits_failed(0.8, 0.1) == []
    unjudged = audit.limits_insufficient(0.8, 0.1)
    assert len(unjudged) == 2 * len(AUDITED)
    assert all(INSUFFICIENT in reason for reason in unjudged)
    assert any("disparate impact by sex" in r and "smallest group 4 < 50" in r for r in unjudged)
    # No limit set: nothing to judge, nothing insufficient.
    assert audit.limits_insufficient(None, None) == []
    # A minimum the groups meet: the limits are judged again.
    assert audit.limits_failed(0.8, None, min_group_size=2)
    assert audit.limits_insufficient(0.8, None, min_group_size=2) == []


def test_markdown_shows_intervals_and_insufficient_data(
    shipped: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    x, y, probability = shipped
    text = audit_predictions("cv", x, y, probability, 0.4, min_group_size=50, seed=1).markdown()
    assert "disparate impact [95% CI]" in text
    assert re.search(r"\| cv \| sex \| 402 \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", text)
    # 37 non-foreign workers and 38 applicants aged 62+ are under the minimum of 50.
    assert "| cv | foreign_worker | 37 (insufficient data: < 50) |" in text
    assert "| cv | age_group | 38 (insufficient data: < 50) |" in text
    assert "1000 resamples" in text


def test_assessment_never_fails_a_limit_on_insufficient_data(
    shipped: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    from credit_risk.card import Assessment, CalibrationCheck, fairness_limits_failed
    from credit_risk.card.assess import fairness_limits_insufficient
    from credit_risk.config import Settings

    x, y, probability = shipped
    audit = audit_predictions("cv", x, y, probability, 0.4, min_group_size=50, seed=1)
    strict = Settings(fairness_min_disparate_impact=0.999, fairness_min_group_size=2000)
    assert fairness_limits_failed(strict, audit) == []
    unjudged = fairness_limits_insufficient(strict, audit)
    assert len(unjudged) == len(AUDITED)
    assessment = Assessment(
        audit=audit,
        limits_failed=[],
        calibration=CalibrationCheck("sigmoid", 3, 0.2, 0.18),
        shap_top=[],
        images={},
        limits_insufficient=unjudged,
    )
    stored = assessment.to_json()
    back = Assessment.from_json(stored)
    assert back.limits_failed == [] and back.limits_insufficient == unjudged
    assert back.audit.min_group_size == 50 and back.audit.resamples == 1000
    assert back.to_json() == stored
    # The same audit with the settings' default minimum (50): sex and personal status judged.
    judged = fairness_limits_failed(Settings(fairness_min_disparate_impact=0.999), audit)
    assert {r.split(" by ")[1].split()[0] for r in judged} == {"sex", "personal_status"}


def test_card_shows_intervals_and_insufficient_data(model_dir: Path) -> None:
    from credit_risk.card import render_card_markdown

    markdown = render_card_markdown(model_dir)
    assert "disparate impact [95% CI]" in markdown
    assert "insufficient data: < 50" in markdown  # foreign worker = no: about 30 of 800
    assert "62_plus" in markdown


@pytest.mark.slow
def test_insufficient_data_does_not_block_promotion(tmp_path: Path) -> None:
    from credit_risk.train import train
    from tests.conftest import FAST_PARAMS, make_settings

    settings = make_settings(
        tmp_path, fairness_min_disparate_impact=0.999, fairness_min_group_size=10_000
    )
    result = train(settings, params=FAST_PARAMS)
    assert result.gate.promote, result.gate.reason
    markdown = (settings.model_dir / "metadata.json").read_text()
    assert "insufficient data" in markdown
