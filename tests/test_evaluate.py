import numpy as np
import pytest

from credit_risk.evaluate import (
    CostMatrix,
    bayes_threshold,
    classification_metrics,
    confusion,
    cost_optimal_threshold,
    expected_cost,
)

COSTS = CostMatrix(bad_accepted=5, good_rejected=1)


def test_expected_cost_counts_each_error_with_its_cost() -> None:
    y = np.array([1, 1, 0, 0, 0])
    rejected = np.array([0, 1, 1, 0, 0])  # one bad accepted (5), one good rejected (1)
    assert expected_cost(y, rejected, COSTS) == pytest.approx(6 / 5)


def test_everyone_rejected_costs_the_share_of_good() -> None:
    y = np.array([1] * 3 + [0] * 7)
    assert expected_cost(y, np.ones(10), COSTS) == pytest.approx(0.7)


def test_threshold_hand_computed_case() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    # Rejecting p >= 0.225 catches both bads at the cost of one good: 1/4.
    threshold, cost = cost_optimal_threshold(y, p, COSTS)
    assert threshold == pytest.approx(0.225)
    assert cost == pytest.approx(0.25)


def test_threshold_can_accept_everyone_when_that_is_cheapest() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.1])
    expensive_costs = CostMatrix(bad_accepted=1, good_rejected=5)
    threshold, cost = cost_optimal_threshold(y, p, expensive_costs)
    assert threshold > 0.9
    assert cost == pytest.approx(1 / 7)


def test_threshold_matches_brute_force_on_random_cases() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        p = np.round(rng.random(40), 2)
        threshold, cost = cost_optimal_threshold(y, p, COSTS)
        brute = min(expected_cost(y, p >= t, COSTS) for t in np.linspace(0, 1.01, 1011))
        assert cost == pytest.approx(brute)
        assert expected_cost(y, p >= threshold, COSTS) == pytest.approx(cost)


def test_metrics_and_confusion_agree() -> None:
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.6, 0.1, 0.3])
    metrics = classification_metrics(y, p, 0.5, COSTS)
    assert metrics["recall_bad"] == pytest.approx(0.5)
    assert metrics["precision_bad"] == pytest.approx(0.5)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["cost"] == pytest.approx(6 / 5)
    assert confusion(y, p, 0.5) == {
        "good_accepted": 2,
        "good_rejected": 1,
        "bad_accepted": 1,
        "bad_rejected": 1,
    }


def test_bayes_threshold_is_one_sixth_for_the_german_matrix() -> None:
    assert bayes_threshold(COSTS) == pytest.approx(1 / 6)
    assert bayes_threshold(CostMatrix(bad_accepted=1, good_rejected=1)) == pytest.approx(0.5)


def test_bayes_threshold_minimises_cost_when_probabilities_are_calibrated() -> None:
    # Labels drawn from their own probabilities: 1/6 costs what the in-sample optimum costs.
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    at_bayes = expected_cost(y, p >= bayes_threshold(COSTS), COSTS)
    threshold, best = cost_optimal_threshold(y, p, COSTS)
    assert threshold == pytest.approx(1 / 6, abs=0.02)  # the cost curve is flat there
    assert at_bayes == pytest.approx(best, abs=1e-3)


def test_bayes_threshold_needs_a_positive_cost() -> None:
    with pytest.raises(ValueError, match="positive"):
        bayes_threshold(CostMatrix(bad_accepted=0, good_rejected=0))


def test_resampled_interval_uses_the_hold_out_ratio() -> None:
    from credit_risk.evaluate.intervals import corrected_interval, resampled_interval

    scores = np.array([0.50, 0.55, 0.48, 0.60, 0.52, 0.57, 0.49, 0.51, 0.58, 0.53])
    # 20% held out: ratio 0.25, the same correction as 5-fold CV.
    assert resampled_interval(scores, 0.25) == corrected_interval(scores, 5)
    wider = resampled_interval(scores, 0.5)
    assert wider.std_error == pytest.approx(np.sqrt((0.1 + 0.5) * scores.var(ddof=1)))
    with pytest.raises(ValueError, match="test_train_ratio"):
        resampled_interval(scores, 0.0)
