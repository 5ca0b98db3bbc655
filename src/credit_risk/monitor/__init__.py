"""Drift monitoring: the decision log's recent inputs and scores against each model's reference.

Protocol (measured by ``benchmarks/drift_alarms.py``, README "Drift monitoring"):

- **Per model version.** The window's decisions are split by the model version that decided
  them. Each version is compared with its own reference, written at training time and stored
  with the model (``drift_reference.json`` in the exported folder, ``drift/`` in its MLflow
  run): the marginal distribution of every attribute over the model's training rows, and the
  model's probabilities on its own held-out test split. The attributes use the training rows
  because they are what the model learned from, and 4x the held-out rows, so the reference's
  own sampling noise is smaller; whether the model saw a row does not change its inputs. The
  scores must be held out: a forest's in-sample scores are more extreme than any it serves.
  The monitor refits and re-scores nothing (a folder exported before references were stored
  is the one, logged, exception: :func:`rebuild_reference`).
- **One test per attribute and for the score, valid at any window size.** Categorical
  attributes, and integer attributes whose codebook allows at most
  :data:`MAX_DISCRETE_LEVELS` values (bands and small counts), get Pearson's chi-square
  statistic of the 2 x k table (reference counts, window counts), with its permutation
  distribution given the pooled counts simulated at this window's size (multivariate
  hypergeometric draws): a Monte Carlo exact test, so rare categories in a 50-row window do
  not break it the way the chi-square approximation breaks. Continuous attributes and the
  score get the two-sample Kolmogorov-Smirnov distance, with its distribution-free null for a
  reference of N and a window of n values simulated from random rank orders (cached per
  (N, n)); tied values (ages in years) make it conservative. p = (1 + #null >= observed) /
  (draws + 1).
- **One correction for the whole run.** Bonferroni over every test of every version in the
  run: a test alarms when p <= ``monitor_alarm_rate`` / m, so the chance that a run with no
  drift alarms at all is at most ``monitor_alarm_rate`` (0.05). The threshold reported beside
  each statistic is the largest value that would not alarm at this n (alarm: statistic above
  it). Draws scale with m so that :data:`EXCEEDANCES` null values lie beyond the threshold.
- PSI (bands < 0.1 stable, 0.1-0.25 watch, >= 0.25 act) is reported as an effect size only:
  with no drift, a 50-row window's expected PSI is about (bins - 1) / n, near the 0.25 "act"
  band, so it cannot be an alarm by itself.

Why not Evidently: its latest release (0.7.23) fails to import with the pandas 3 that this
project pins (``ImportError: infer_dtype_from_object``).
"""

from __future__ import annotations

from credit_risk.model_folder import read_metadata
from credit_risk.monitor.decisions import parse_since, read_decisions
from credit_risk.monitor.drift import DriftResult, VersionDrift, Window, assess_drift
from credit_risk.monitor.reference import (
    Reference,
    ReferenceUnavailable,
    folder_reference,
    reference_provenance,
)
from credit_risk.monitor.report import render_report
from credit_risk.monitor.run import monitor
from credit_risk.monitor.statistics import PSI_ACT, SCORE, null_draws

__all__ = [
    "PSI_ACT",
    "SCORE",
    "DriftResult",
    "Reference",
    "ReferenceUnavailable",
    "VersionDrift",
    "Window",
    "assess_drift",
    "folder_reference",
    "monitor",
    "null_draws",
    "parse_since",
    "read_decisions",
    "read_metadata",
    "reference_provenance",
    "render_report",
]
