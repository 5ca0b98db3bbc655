"""Threshold rules: Bayes on calibrated probabilities, cross-validated otherwise."""

import numpy as np
import pytest

from credit_risk.config import Objective, ThresholdRule, get_settings
from credit_risk.evaluate import (
    SEED_RULE,
    SEED_THRESHOLD,
    CostMatrix,
    choose_threshold,
    cost_optimal_threshold,
    threshold_basis,
    threshold_rule,
)
from credit_risk.tune import search_objective

COSTS = CostMatrix(bad_accepted=5, good_rejected=1)
Y = np.array([0, 0, 1, 1, 0, 1])
PROBABILITY = np.array([0.05, 0.3, 0.35, 0.8, 0.6, 0.1])


def test_threshold_rule_bayes_applies_to_calibrated_pipelines() -> None:
    settings = get_settings(threshold_rule="bayes")
    assert threshold_rule(settings, {"calibration": "sigmoid"}) is ThresholdRule.BAYES


def test_threshold_rule_uncalibrated_scores_fall_back_to_cross_validated() -> None:
    # Balanced trees overstate the bad rate, so 1/6 on raw forest scores would reject too many.
    settings = get_settings(threshold_rule="bayes")
    assert threshold_rule(settings, {"calibration": "none"}) is ThresholdRule.CROSS_VALIDATED
    assert threshold_rule(settings, {}) is ThresholdRule.CROSS_VALIDATED


def test_threshold_rule_cross_validated_setting_wins() -> None:
    settings = get_settings(threshold_rule="cross_validated")
    assert threshold_rule(settings, {"calibration": "sigmoid"}) is ThresholdRule.CROSS_VALIDATED


def test_threshold_basis_records_the_seed_threshold_for_recall() -> None:
    calibrated = {"calibration": "sigmoid"}
    assert threshold_basis(get_settings(objective="recall"), calibrated) == SEED_RULE
    assert threshold_basis(get_settings(objective="cost"), calibrated) == "bayes"
    assert threshold_basis(get_settings(objective="auc"), {}) == "cross_validated"


def test_choose_threshold_bayes_ignores_the_sample() -> None:
    threshold = choose_threshold(Objective.COST, Y, PROBABILITY, COSTS, ThresholdRule.BAYES)
    assert threshold == pytest.approx(1 / 6)
    flipped = choose_threshold(Objective.COST, 1 - Y, PROBABILITY, COSTS, ThresholdRule.BAYES)
    assert flipped == threshold


def test_choose_threshold_cross_validated_minimises_the_sample_cost() -> None:
    threshold = choose_threshold(
        Objective.COST, Y, PROBABILITY, COSTS, ThresholdRule.CROSS_VALIDATED
    )
    assert threshold == cost_optimal_threshold(Y, PROBABILITY, COSTS)[0]


@pytest.mark.parametrize("rule", list(ThresholdRule))
def test_choose_threshold_recall_keeps_the_seed_threshold(rule: ThresholdRule) -> None:
    threshold = choose_threshold(Objective.RECALL, Y, PROBABILITY, COSTS, rule)
    assert threshold == SEED_THRESHOLD


def test_search_objective_cost_under_bayes_searches_by_auc() -> None:
    # The threshold comes from the cost matrix, so the trials only need to rank applicants.
    assert search_objective(get_settings(objective="cost")) is Objective.AUC


def test_search_objective_cross_validated_threshold_searches_by_cost() -> None:
    settings = get_settings(objective="cost", threshold_rule="cross_validated")
    assert search_objective(settings) is Objective.COST
    assert search_objective(get_settings(objective="cost", calibration="none")) is Objective.COST


def test_search_objective_explicit_setting_and_recall_win() -> None:
    assert search_objective(get_settings(search_objective="cost")) is Objective.COST
    assert search_objective(get_settings(objective="recall")) is Objective.RECALL
