"""Prior shift to the population's bad rate (credit_risk.evaluate.prior)."""

from pathlib import Path

import numpy as np
import pytest

from credit_risk.config import Objective, ThresholdRule
from credit_risk.evaluate import CostMatrix, bayes_threshold, cost_optimal_threshold, expected_cost
from credit_risk.evaluate.prior import (
    Prior,
    population_cost,
    prior_of,
    sample_threshold,
)
from credit_risk.evaluate.threshold import choose_threshold, fixed_threshold
from tests.conftest import FAST_PARAMS, make_settings

COSTS = CostMatrix(bad_accepted=5, good_rejected=1)


def test_shift_multiplies_the_odds_by_the_ratio_of_prior_odds() -> None:
    prior = Prior(population_bad_rate=0.1, sample_bad_rate=0.3)
    p = np.array([0.05, 0.3, 0.6, 0.95])
    shifted = prior.to_population(p)
    ratio = (0.1 / 0.9) / (0.3 / 0.7)
    assert shifted / (1 - shifted) == pytest.approx(ratio * p / (1 - p))
    assert prior.to_sample(shifted) == pytest.approx(p)
    # The sample's own rate maps to the population's.
    assert prior.to_population(0.3) == pytest.approx(0.1)


def test_shift_recovers_population_probabilities_by_bayes_rule() -> None:
    # Two classes with fixed class-conditional score densities; resampling the classes moves
    # the posterior exactly as the shift says.
    rng = np.random.default_rng(1)
    x_bad, x_good = rng.normal(1, 1, 300_000), rng.normal(0, 1, 900_000)
    bins = np.linspace(-1, 2, 7)

    def posterior(n_bad: int, n_good: int) -> np.ndarray:
        bad = np.histogram(x_bad[:n_bad], bins)[0]
        good = np.histogram(x_good[:n_good], bins)[0]
        return bad / (bad + good)

    sample, population = posterior(300_000, 700_000), posterior(100_000, 900_000)
    prior = Prior(population_bad_rate=0.1, sample_bad_rate=0.3)
    assert prior.to_population(sample) == pytest.approx(population, abs=0.01)


def test_sample_threshold_is_the_bayes_decision_on_the_population_scale() -> None:
    prior = Prior(0.1, 0.3)
    cut = sample_threshold(bayes_threshold(COSTS), prior)
    assert cut > bayes_threshold(COSTS)  # fewer bad in the population: reject less
    p = np.linspace(0.001, 0.999, 999)
    assert np.array_equal(p >= cut, prior.to_population(p) >= 1 / 6 - 1e-12)


def test_no_population_rate_changes_nothing() -> None:
    y = np.array([1, 0, 0, 1, 0])
    assert prior_of(None, y) is None
    assert sample_threshold(1 / 6, None) == pytest.approx(1 / 6)
    assert fixed_threshold(Objective.COST, ThresholdRule.BAYES, COSTS, None) == pytest.approx(1 / 6)
    # The sample's own rate is no shift either.
    same = prior_of(0.4, y)
    assert same is not None and same.odds_ratio == pytest.approx(1.0)
    assert sample_threshold(1 / 6, same) == pytest.approx(1 / 6)


def test_recall_objective_keeps_the_seed_threshold_under_a_prior() -> None:
    prior = Prior(0.1, 0.3)
    assert fixed_threshold(Objective.RECALL, ThresholdRule.BAYES, COSTS, prior) == 0.5


def test_population_cost_reweights_rows_by_class() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    rejected = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    # Sample rate 0.3: the plain average.
    assert population_cost(y, rejected, COSTS, 0.3) == pytest.approx(
        expected_cost(y, rejected, COSTS)
    )
    # 10% bad: 0.1 * 5 * (2/3 accepted) + 0.9 * 1 * (1/7 rejected).
    assert population_cost(y, rejected, COSTS, 0.1) == pytest.approx(0.1 * 5 * 2 / 3 + 0.9 / 7)
    weights = Prior(0.1, 0.3).class_weights(y)
    assert weights.sum() == pytest.approx(len(y))


def test_weighted_cost_optimal_threshold_minimises_the_population_cost() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60)
    p = np.round(rng.random(60), 2)
    prior = prior_of(0.1, y)
    assert prior is not None
    threshold, cost = cost_optimal_threshold(y, p, COSTS, prior)
    brute = min(population_cost(y, p >= t, COSTS, 0.1) for t in np.linspace(0, 1.01, 1011))
    assert cost == pytest.approx(brute)
    assert population_cost(y, p >= threshold, COSTS, 0.1) == pytest.approx(cost)
    assert choose_threshold(
        Objective.COST, y, p, COSTS, ThresholdRule.CROSS_VALIDATED, prior
    ) == pytest.approx(threshold)


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5])
def test_rates_outside_zero_one_are_refused_by_name(rate: float) -> None:
    with pytest.raises(ValueError, match="population_bad_rate"):
        Prior(rate, 0.3)


def test_training_run_stores_the_sample_scale_threshold_of_the_population_rate(
    tmp_path: Path,
) -> None:
    from credit_risk.train import fit_evaluate, fit_exported, run_data, split_training_data
    from credit_risk.train.recording import model_metadata

    settings = make_settings(
        tmp_path, population_bad_rate=0.1, calibration_folds=2, fit_rows="split"
    )
    split = split_training_data(settings)
    evaluation = fit_evaluate(settings, {**FAST_PARAMS, "n_estimators": 20}, split)
    sample_rate = float(split.y_train.mean())
    expected = Prior(0.1, sample_rate).to_sample(bayes_threshold(COSTS))
    assert evaluation.threshold == pytest.approx(float(expected))
    exported = fit_exported(settings, evaluation.params, run_data(settings), evaluation.pipeline)
    metadata = model_metadata(settings, "run", "1", evaluation, exported)
    assert metadata["population_bad_rate"] == 0.1
    assert metadata["sample_bad_rate"] == pytest.approx(sample_rate)
    assert metadata["threshold"] == pytest.approx(float(expected))
