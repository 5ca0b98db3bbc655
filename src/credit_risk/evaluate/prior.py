"""The population's bad rate: prior shift of probabilities, thresholds and costs.

The Statlog sample over-represents bad credits (30 % bad; german.doc, Grömping 2019): a model
calibrated on it says what the probability of bad is for applicants drawn like the sample.
When the population's bad rate ``pi_pop`` differs from the sample's ``pi_sample`` and only the
class proportions differ (the applicants of each class look alike in both), Bayes' rule gives
the population probability by multiplying the odds of bad by a constant (Saerens, Latinne and
Decaestecker 2002; Elkan 2001, "The Foundations of Cost-Sensitive Learning"):

    odds_pop(x) = odds_sample(x) * (pi_pop / (1 - pi_pop)) / (pi_sample / (1 - pi_sample))

The map is monotone, so the Bayes decision on the population scale (reject when the
population probability is at least 1/6 under german.doc's costs) is a threshold on the sample
scale: :func:`sample_threshold`. The served probability stays on the sample scale; the stored
threshold carries the prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from credit_risk.evaluate.metrics import CostMatrix


def _check_rate(name: str, rate: float) -> None:
    if not 0.0 < rate < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {rate!r}")


@dataclass(frozen=True)
class Prior:
    """The population's and the sample's bad rates (fractions in (0, 1))."""

    population_bad_rate: float
    sample_bad_rate: float

    def __post_init__(self) -> None:
        _check_rate("population_bad_rate", self.population_bad_rate)
        _check_rate("sample_bad_rate", self.sample_bad_rate)

    @property
    def odds_ratio(self) -> float:
        """Population odds of bad over sample odds of bad (1 when the rates agree)."""
        population = self.population_bad_rate / (1.0 - self.population_bad_rate)
        sample = self.sample_bad_rate / (1.0 - self.sample_bad_rate)
        return population / sample

    def to_population(self, probability: np.ndarray | float) -> np.ndarray:
        """Sample-scale probabilities of bad as population-scale ones."""
        p = np.asarray(probability, dtype="float64")
        ratio = self.odds_ratio
        return ratio * p / (ratio * p + (1.0 - p))

    def to_sample(self, probability: np.ndarray | float) -> np.ndarray:
        """Population-scale probabilities of bad as sample-scale ones (the inverse map)."""
        p = np.asarray(probability, dtype="float64")
        ratio = 1.0 / self.odds_ratio
        return ratio * p / (ratio * p + (1.0 - p))

    def class_weights(self, y: np.ndarray) -> np.ndarray:
        """Per-row weights that make sample rows stand for the population.

        Bad rows weigh ``pi_pop / pi_sample``, good rows ``(1 - pi_pop) / (1 - pi_sample)``.
        """
        bad = np.asarray(y).astype(bool)
        return np.where(
            bad,
            self.population_bad_rate / self.sample_bad_rate,
            (1.0 - self.population_bad_rate) / (1.0 - self.sample_bad_rate),
        )


def prior_of(population_bad_rate: float | None, y: np.ndarray) -> Prior | None:
    """The prior shift from the sample ``y`` (1 = bad) to a population rate; None = no shift.

    None when ``population_bad_rate`` is None (the population is taken to be like the sample).
    """
    if population_bad_rate is None:
        return None
    labels = np.asarray(y).astype(bool)
    if labels.size == 0:
        raise ValueError("the sample's bad rate needs at least one labelled row")
    return Prior(population_bad_rate, float(labels.mean()))


def sample_threshold(population_threshold: float, prior: Prior | None) -> float:
    """The sample-scale threshold equivalent to ``population_threshold`` on the population scale.

    Rejecting when the population probability is at least ``t`` is the same decision as
    rejecting when the sample probability is at least ``sample_threshold(t)``.
    """
    if prior is None:
        return float(population_threshold)
    if population_threshold <= 0.0 or population_threshold >= 1.0:
        return float(population_threshold)
    return float(prior.to_sample(population_threshold))


def population_cost(
    y: np.ndarray, rejected: np.ndarray, costs: CostMatrix, population_bad_rate: float
) -> float:
    """Expected cost per applicant of these decisions in a population with this bad rate.

    The sample's rows reweighted by class (:meth:`Prior.class_weights`): the bad rows' cost per
    bad applicant times ``pi_pop`` plus the good rows' cost per good applicant times
    ``1 - pi_pop``. Equal to the plain average when the rates agree.

    Raises:
        ValueError: ``y`` lacks one of the two classes (the cost per applicant of that class is
            then unknown).
    """
    _check_rate("population_bad_rate", population_bad_rate)
    bad = np.asarray(y).astype(bool)
    reject = np.asarray(rejected).astype(bool)
    if bad.all() or not bad.any():
        raise ValueError("a population cost needs both bad and good rows")
    bad_accepted_rate = float(np.mean(~reject[bad]))
    good_rejected_rate = float(np.mean(reject[~bad]))
    return (
        population_bad_rate * costs.bad_accepted * bad_accepted_rate
        + (1.0 - population_bad_rate) * costs.good_rejected * good_rejected_rate
    )


def log_odds_shift(prior: Prior | None) -> float:
    """How far the prior moves the log-odds of bad (0 without a shift)."""
    return 0.0 if prior is None else math.log(prior.odds_ratio)
