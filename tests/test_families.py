"""The rule that picks the default family from the report's per-fold costs."""

import numpy as np
import pytest

from credit_risk.families import blend_probability, choose_default_family

FOLDS = 5


def _costs(mean: float, noise: np.ndarray, scale: float = 1.0) -> np.ndarray:
    return mean + scale * noise


NOISE = np.random.default_rng(0).normal(0, 0.03, 25)


def test_lowest_cost_wins_when_clearly_better_than_every_simpler_family() -> None:
    rng = np.random.default_rng(1)
    costs = {
        "scorecard": _costs(0.60, NOISE),
        "forest": _costs(0.50, NOISE + rng.normal(0, 0.001, 25)),
    }
    choice = choose_default_family(costs, FOLDS)
    assert choice.family == "forest"
    assert "excludes 0" in choice.reason


def test_a_tie_goes_to_the_simpler_family() -> None:
    rng = np.random.default_rng(2)
    costs = {
        "scorecard": _costs(0.52, rng.normal(0, 0.04, 25)),
        "forest": _costs(0.51, rng.normal(0, 0.04, 25)),
        "gbm": _costs(0.55, rng.normal(0, 0.04, 25)),
    }
    choice = choose_default_family(costs, FOLDS)
    assert choice.family == "scorecard"
    assert "forest has the lowest mean" in choice.reason and "contains 0" in choice.reason


def test_the_simplest_tied_family_wins_over_a_less_simple_tied_one() -> None:
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 0.04, 25)
    costs = {
        "forest": _costs(0.53, shared + rng.normal(0, 0.03, 25)),
        "scorecard": _costs(0.54, shared + rng.normal(0, 0.03, 25)),
        "blend": _costs(0.52, shared + rng.normal(0, 0.03, 25)),
    }
    assert choose_default_family(costs, FOLDS).family == "scorecard"


def test_a_simpler_family_that_is_clearly_worse_is_no_tie() -> None:
    costs = {
        "scorecard": _costs(0.70, NOISE),
        "forest": _costs(0.52, NOISE),
        "blend": _costs(0.515, NOISE + np.random.default_rng(4).normal(0, 0.03, 25)),
    }
    # blend lowest, tied with forest (not with the scorecard): forest.
    choice = choose_default_family(costs, FOLDS)
    assert choice.family == "forest"


def test_the_simplest_family_with_the_lowest_cost_wins_outright() -> None:
    costs = {"scorecard": _costs(0.50, NOISE), "gbm": _costs(0.60, NOISE)}
    assert choose_default_family(costs, FOLDS).family == "scorecard"


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="unknown family tree"):
        choose_default_family({"tree": [0.5, 0.6]}, FOLDS)
    with pytest.raises(ValueError, match="same folds"):
        choose_default_family({"scorecard": [0.5, 0.6], "forest": [0.5]}, FOLDS)
    with pytest.raises(ValueError, match="no candidate"):
        choose_default_family({}, FOLDS)


def test_blend_is_the_mean_of_its_members() -> None:
    assert blend_probability(np.array([0.1, 0.5]), np.array([0.3, 0.7])) == pytest.approx(
        [0.2, 0.6]
    )
