"""False-alarm and detection rates of the drift monitor (``make bench-drift``).

Protocol. A model is trained by the training run (fixed parameters, ``--seed``; or
``--model DIR`` reads an exported one) and exported with its stored drift reference. Its
held-out test split (200 applicants it never trained on, rebuilt from the seed and test size in
its metadata and checked against the scores stored in its reference) with its probabilities
stands in for the population of future applicants.

The monitor tests "recent applicants and the reference are samples of one population", so the
simulation makes that exactly true: each replication draws, with replacement from the held-out
rows, a reference of the stored reference's sizes (800 rows' attributes, 200 scores) and,
independently, one window per size. Drawing windows from 200 rows against the stored reference
instead would measure the held-out rows' own sampling noise: at n = 1000 it is larger than
the window's. Every window goes through the monitor's own ``assess_drift`` (20 attribute
tests and the score, Bonferroni at ``monitor_alarm_rate``), with ``stop_early`` (same alarm
decisions as the full simulation, coarser p-values).

- No drift: ``--windows`` replications (default 200) at n = 50, 200 and 1000; a false alarm
  is any alarm in a window. Goal: at most 5 % at every n.
- Shifted (``--shifted-windows`` replications, default 100, at n = 200 and 1000): credit
  amount x1.5 (rescored); applicants overdrawn on their checking account (A11) twice as
  likely to apply; applicants aged 40 or more twice as likely to apply; the served odds of
  bad doubled (log-odds + ln 2, inputs unchanged: a scoring fault). Goal: at least 90 %
  detected at n = 1000 for each.

Rates with exact (Clopper-Pearson) 95 % binomial intervals. The last column is how often the
PSI half of the rule the monitor used before (any PSI >= 0.25, which started retraining) fired
on the same windows.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from credit_risk.config import Family, FitRows, Settings, get_settings
from credit_risk.data import load_training_data, split_dataset
from credit_risk.monitor import (
    PSI_ACT,
    SCORE,
    Reference,
    Window,
    assess_drift,
    folder_reference,
    null_draws,
)
from credit_risk.registry import load_exported
from credit_risk.schema import FEATURE_NAMES

PARAMS = {"n_estimators": 100, "max_depth": 10, "min_samples_leaf": 3, "max_features": 0.4}
NO_DRIFT_SIZES = (50, 200, 1000)
SHIFTED_SIZES = (200, 1000)
AMOUNT_FACTOR = 1.5
# Sampling weight of the applicants a shift favours (others: 1).
FAVOURED_WEIGHT = 2.0
OLDER_FROM = 40
ODDS_FACTOR = 2.0


@dataclass(frozen=True)
class Pool:
    """The model's held-out rows: inputs, served scores, and scores with the amount shifted."""

    features: pd.DataFrame
    scores: np.ndarray
    amount_scores: np.ndarray
    attribute_rows: int
    score_rows: int


def held_out_pool(settings: Settings, folder: Path) -> Pool:
    """The exported model's held-out rows, rebuilt from its metadata and checked.

    Raises:
        ValueError: the rebuilt rows' scores are not the ones stored in the model's reference
            (another data file, seed or split).
    """
    pipeline, metadata = load_exported(folder)
    reference = folder_reference(settings, folder)
    _, x_test, _, _ = split_dataset(
        load_training_data(settings), float(metadata["test_size"]), int(metadata["seed"])
    )
    scores = pipeline.predict_proba(x_test)[:, 1]
    if not np.allclose(np.sort(scores), np.sort(reference.scores), atol=1e-9):
        raise ValueError(
            f"the held-out rows rebuilt from {settings.data_path} (seed {metadata['seed']}) are "
            f"not the ones {folder}'s reference scored"
        )
    amounts = x_test.assign(
        credit_amount=np.round(x_test["credit_amount"] * AMOUNT_FACTOR).astype("int64")
    )
    return Pool(
        features=x_test.reset_index(drop=True),
        scores=scores,
        amount_scores=pipeline.predict_proba(amounts)[:, 1],
        attribute_rows=reference.rows,
        score_rows=len(reference.scores),
    )


def draw_reference(pool: Pool, rng: np.random.Generator) -> Reference:
    """A reference of the stored one's sizes, drawn with replacement from the pool."""
    rows = rng.integers(0, len(pool.features), pool.attribute_rows)
    scores = pool.scores[rng.integers(0, len(pool.scores), pool.score_rows)]
    return Reference.from_rows(pool.features.iloc[rows], scores)


def _window(pool: Pool, rows: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    window = pool.features.iloc[rows].reset_index(drop=True)
    window[SCORE] = scores
    return window


def _weighted(pool: Pool, favoured: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.where(favoured, FAVOURED_WEIGHT, 1.0)
    return rng.choice(len(pool.features), size=n, p=weights / weights.sum())


def no_shift(pool: Pool, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n applicants of the same population (with replacement), with their scores."""
    rows = rng.integers(0, len(pool.features), n)
    return _window(pool, rows, pool.scores[rows])


def amount_shift(pool: Pool, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Credit amounts x1.5, scored by the model."""
    rows = rng.integers(0, len(pool.features), n)
    window = _window(pool, rows, pool.amount_scores[rows])
    window["credit_amount"] = np.round(window["credit_amount"] * AMOUNT_FACTOR).astype("int64")
    return window


def checking_shift(pool: Pool, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Applicants overdrawn on their checking account (A11) twice as likely to apply."""
    rows = _weighted(pool, (pool.features["checking_account_status"] == "A11").to_numpy(), n, rng)
    return _window(pool, rows, pool.scores[rows])


def age_shift(pool: Pool, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Applicants aged 40 or more twice as likely to apply."""
    rows = _weighted(pool, (pool.features["age_years"] >= OLDER_FROM).to_numpy(), n, rng)
    return _window(pool, rows, pool.scores[rows])


def score_shift(pool: Pool, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """The same applicants, served odds of bad x2 (a scoring fault; inputs unchanged)."""
    rows = rng.integers(0, len(pool.features), n)
    logit = np.log(pool.scores[rows]) - np.log1p(-pool.scores[rows]) + math.log(ODDS_FACTOR)
    return _window(pool, rows, 1 / (1 + np.exp(-logit)))


Shift = Callable[[Pool, int, np.random.Generator], pd.DataFrame]
SHIFTS: dict[str, Shift] = {
    f"credit amount x{AMOUNT_FACTOR}": amount_shift,
    f"checking A11 x{FAVOURED_WEIGHT:g} as likely": checking_shift,
    f"age >= {OLDER_FROM} x{FAVOURED_WEIGHT:g} as likely": age_shift,
    f"odds of bad x{ODDS_FACTOR:g} (score only)": score_shift,
}


@dataclass
class Tally:
    """Windows assessed and windows that alarmed, with which tests alarmed how often."""

    windows: int = 0
    alarmed: int = 0
    by_test: Counter[str] | None = None
    # Windows where some PSI reached 0.25: the rule the monitor used to alarm (and retrain) on.
    psi_rule: int = 0

    def add(self, alarms: list[str], psi_rule: bool) -> None:
        self.windows += 1
        self.alarmed += bool(alarms)
        self.psi_rule += psi_rule
        self.by_test = (self.by_test or Counter()) + Counter(alarms)

    def interval(self) -> tuple[float, float]:
        ci = binomtest(self.alarmed, self.windows).proportion_ci(0.95, method="exact")
        return float(ci.low), float(ci.high)

    @property
    def rate(self) -> float:
        return self.alarmed / self.windows if self.windows else math.nan


def simulate(
    pool: Pool,
    replications: int,
    shifted_replications: int,
    alarm_rate: float,
    seed: int,
    no_drift_sizes: tuple[int, ...] = NO_DRIFT_SIZES,
    shifted_sizes: tuple[int, ...] = SHIFTED_SIZES,
    shifts: dict[str, Shift] | None = None,
) -> dict[tuple[str, int], Tally]:
    """Run the protocol: per replication a fresh reference, then its windows.

    Returns:
        A tally per (shift name, or "no drift", window size).
    """
    shifts = SHIFTS if shifts is None else shifts
    tallies: dict[tuple[str, int], Tally] = {}
    for replication in range(max(replications, shifted_replications)):
        rng = np.random.default_rng([seed, replication])
        reference = draw_reference(pool, rng)
        plan: list[tuple[str, int, Shift]] = []
        if replication < replications:
            plan += [("no drift", n, no_shift) for n in no_drift_sizes]
        if replication < shifted_replications:
            plan += [(name, n, shift) for name, shift in shifts.items() for n in shifted_sizes]
        for name, n, shift in plan:
            window = Window("bench", shift(pool, n, rng), reference)
            result = assess_drift(
                [window],
                alarm_rate=alarm_rate,
                min_rows=1,
                seed=seed * 1_000_003 + replication,
                stop_early=True,
            )
            alarms = list(result.table.loc[result.table["alarm"], "attribute"])
            psi_rule = bool((result.table["psi"] >= PSI_ACT).any())
            tallies.setdefault((name, n), Tally()).add(alarms, psi_rule)
    return tallies


def format_tables(tallies: dict[tuple[str, int], Tally]) -> str:
    """Markdown tables: false alarms without drift, detection under each shift."""

    def percent(value: float) -> str:
        return f"{100 * value:.1f} %"

    def row(name: str, n: int, tally: Tally) -> str:
        low, high = tally.interval()
        top = ", ".join(f"{t} {c}" for t, c in (tally.by_test or Counter()).most_common(2))
        return (
            f"| {name} | {n} | {tally.windows} | {tally.alarmed} | {percent(tally.rate)} | "
            f"{percent(low)} - {percent(high)} | {top or '-'} | "
            f"{percent(tally.psi_rule / tally.windows)} |"
        )

    head = (
        "| window | n | windows | alarmed | rate | 95 % interval | tests alarming most "
        "| old rule: a PSI >= 0.25 |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---|---:|"
    lines = ["No drift (false alarms; goal <= 5 % at every n):", "", head, rule]
    lines += [row(name, n, t) for (name, n), t in tallies.items() if name == "no drift"]
    lines += ["", "Shifted (detected; goal >= 90 % at n = 1000):", "", head, rule]
    lines += [row(name, n, t) for (name, n), t in tallies.items() if name != "no drift"]
    return "\n".join(lines)


def trained_model(folder: Path, seed: int) -> tuple[Settings, Path]:
    """Train and export a model with fixed parameters in a fresh store under ``folder``."""
    from credit_risk.train import train

    settings = get_settings(
        family=Family.FOREST,  # measured on the forest (the default family is the scorecard)
        seed=seed,
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifact_location=str(folder / "mlruns"),
        model_dir=folder / "model",
        fairness_bootstrap_resamples=0,
        cv_folds=2,  # the threshold's cross-validation plays no part in drift
        # The simulation's population is the held-out rows the exported model never saw.
        fit_rows=FitRows.SPLIT,
    )
    train(settings, params=PARAMS)
    return settings, settings.model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=200, help="no-drift windows per n")
    parser.add_argument("--shifted-windows", type=int, default=100, help="per shift and n")
    parser.add_argument("--seed", type=int, default=42, help="training split and simulation")
    parser.add_argument("--model", type=Path, help="exported model folder (default: train one)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        if args.model is None:
            settings, folder = trained_model(Path(scratch), args.seed)
        else:
            settings, folder = get_settings(), args.model
        pool = held_out_pool(settings, folder)
        trained = time.perf_counter() - started
        tallies = simulate(
            pool, args.windows, args.shifted_windows, settings.monitor_alarm_rate, args.seed
        )
    tests = len(FEATURE_NAMES) + 1
    level = settings.monitor_alarm_rate / tests
    details: dict[str, Any] = {
        "held-out rows": len(pool.features),
        "reference": f"{pool.attribute_rows} attribute rows, {pool.score_rows} scores",
        "tests per window": tests,
        "alarm rate": settings.monitor_alarm_rate,
        "per-test level": f"{level:.2g}",
        "null draws per test": null_draws(level),
    }
    print(format_tables(tallies))
    print()
    print("; ".join(f"{k}: {v}" for k, v in details.items()))
    print(
        f"model {'trained' if args.model is None else args.model} ({trained:.0f} s); "
        f"elapsed {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
