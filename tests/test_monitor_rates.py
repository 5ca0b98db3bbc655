"""The monitor's false-alarm and detection rates, on a smaller draw of the benchmark's protocol.

``benchmarks/drift_alarms.py`` (README, "Drift monitoring") measures them on 200 windows per
size; here 40 per case, with bounds from binomial tails, on a model fitted with FAST_PARAMS.
"""

from __future__ import annotations

import pytest
from scipy.stats import binom

from benchmarks.drift_alarms import SHIFTS, Pool, held_out_pool, simulate
from credit_risk.config import FitRows
from tests.conftest import FAST_PARAMS, make_settings

WINDOWS = 40
ALARM_RATE = 0.05
# A monitor whose false-alarm rate is at most 5 % raises more than 6 alarms in 40 quiet windows
# with probability 0.34 % (binomial tail); the PSI >= 0.25 rule alarmed on most 50-row windows.
MOST_FALSE_ALARMS = 6
# A shift caught 97 % of the time (the benchmark measures 100 % at n = 1000) is caught in fewer
# than 35 of 40 windows with probability 0.12 %.
FEWEST_DETECTIONS = 35


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """The held-out applicants of a model fitted on its training split (the default refits on
    every row, leaving none), as the benchmark trains it."""
    from credit_risk.train import train

    settings = make_settings(tmp_path_factory.mktemp("split_model"), fit_rows=FitRows.SPLIT)
    train(settings, params=FAST_PARAMS)
    return held_out_pool(settings, settings.model_dir)


def test_bounds_are_binomial_tails() -> None:
    assert binom.sf(MOST_FALSE_ALARMS, WINDOWS, ALARM_RATE) < 0.0035
    assert binom.cdf(FEWEST_DETECTIONS - 1, WINDOWS, 0.97) < 0.0012


def test_quiet_windows_alarm_no_more_often_than_the_configured_rate(pool: Pool) -> None:
    tallies = simulate(pool, WINDOWS, 0, ALARM_RATE, seed=2, no_drift_sizes=(50, 1000))
    for n in (50, 1000):
        tally = tallies[("no drift", n)]
        assert tally.windows == WINDOWS
        assert tally.alarmed <= MOST_FALSE_ALARMS, (n, tally)


def test_each_shift_is_caught_at_1000_decisions(pool: Pool) -> None:
    tallies = simulate(pool, 0, WINDOWS, ALARM_RATE, seed=3, shifted_sizes=(1000,))
    for name in SHIFTS:
        tally = tallies[(name, 1000)]
        assert tally.windows == WINDOWS
        assert tally.alarmed >= FEWEST_DETECTIONS, (name, tally)
