"""One run's tests: windows per model version, the table of tests, the Bonferroni-corrected
result.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.monitor.reference import Reference
from credit_risk.monitor.statistics import (
    CHI_SQUARE,
    NUMERIC_BINS,
    SCORE,
    SCORE_BINS,
    _psi_from_counts,
    chi_square_test,
    choose_test,
    ks_distance,
    ks_null,
    monte_carlo_outcome,
    null_draws,
    psi_band,
    psi_numeric,
    value_key,
)
from credit_risk.schema import BY_NAME, CATEGORICAL, FEATURE_NAMES


@dataclass(frozen=True, eq=False)
class Window:
    """The decisions of one model version, with that version's reference."""

    model_version: str
    decisions: pd.DataFrame
    reference: Reference | None


def window_counts(name: str, values: pd.Series) -> dict[str, int]:
    """Counts per value (:func:`value_key` text) of an attribute's non-missing window values."""
    if name in CATEGORICAL:
        return {str(k): int(c) for k, c in values.astype(str).value_counts(sort=False).items()}
    numbers, counts = np.unique(values.to_numpy(dtype="float64"), return_counts=True)
    return {value_key(v): int(c) for v, c in zip(numbers, counts, strict=True)}


def planned_tests(window: Window) -> list[str]:
    """The attributes (and the score) a window is tested on."""
    scored = SCORE in window.decisions and window.reference is not None
    return list(FEATURE_NAMES) + ([SCORE] if scored else [])


def _test_row(
    name: str,
    reference: Reference,
    decisions: pd.DataFrame,
    level: float,
    draws: int,
    seed: int,
    stop_early: bool,
) -> dict[str, Any]:
    kind = choose_test(name)
    column = decisions[name]
    present = column.dropna() if column.hasnans else column
    row: dict[str, Any] = {
        "attribute": name,
        "uci_number": 0 if name == SCORE else BY_NAME[name].uci_number,
        "kind": "score" if name == SCORE else BY_NAME[name].kind.value,
        "test": kind,
        "reference_rows": len(reference.scores) if name == SCORE else reference.rows,
        "rows": len(present),
    }
    if present.empty:
        return {**row, "statistic": math.nan, "threshold": math.nan, "p_value": 1.0, "psi": 0.0}
    if kind == CHI_SQUARE:
        counts = reference.attributes[name]
        current = window_counts(name, present)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        statistic, p_value, threshold = chi_square_test(
            counts, current, draws, level, rng, stop_early
        )
        levels = sorted(set(counts) | set(current))
        psi = _psi_from_counts(
            np.array([counts.get(v, 0) for v in levels], dtype=float),
            np.array([current.get(v, 0) for v in levels], dtype=float),
        )
    else:
        ref = reference.values(name)
        win = np.sort(present.to_numpy(dtype="float64"))
        scale = len(ref) * len(win)
        distance = ks_distance(ref, win)
        p_value, threshold = monte_carlo_outcome(
            distance, ks_null(len(ref), len(win), draws), level
        )
        statistic, threshold = distance / scale, threshold / scale
        psi = psi_numeric(ref, win, SCORE_BINS if name == SCORE else NUMERIC_BINS)
    return {**row, "statistic": statistic, "threshold": threshold, "p_value": p_value, "psi": psi}


@dataclass
class VersionDrift:
    """One model version's window: a row per test (empty when the window is too small)."""

    model_version: str
    rows: int
    reference: Reference | None
    table: pd.DataFrame
    enough_data: bool

    @property
    def alarms(self) -> pd.DataFrame:
        """The tests that alarmed."""
        if self.table.empty:
            return self.table
        return self.table[self.table["alarm"]]

    @property
    def drift(self) -> bool:
        """Whether any of this version's tests alarmed."""
        return self.enough_data and not self.alarms.empty


@dataclass
class DriftResult:
    """A monitor run: per model version, each test's statistic, threshold at its n, p-value."""

    versions: list[VersionDrift]
    alarm_rate: float
    min_rows: int
    tests: int
    level: float
    draws: int
    skipped: dict[str, str] = field(default_factory=dict)
    window: str = ""
    report_path: Path | None = None
    json_path: Path | None = None

    @property
    def drift(self) -> bool:
        """Whether any test of the run alarmed."""
        return any(version.drift for version in self.versions)

    @property
    def enough_data(self) -> bool:
        """Whether at least one version's window was large enough to be tested."""
        return any(version.enough_data for version in self.versions)

    @property
    def current_rows(self) -> int:
        """Decisions in the window (all versions, assessed or not)."""
        return sum(version.rows for version in self.versions)

    @property
    def table(self) -> pd.DataFrame:
        """Every test of the run, one row each, with its model version."""
        tables = [v.table.assign(model_version=v.model_version) for v in self.versions]
        tables = [t for t in tables if not t.empty]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    @property
    def reasons(self) -> list[str]:
        """One line per alarm."""
        return [
            f"version {version.model_version}: {row.attribute}: {row.test} {row.statistic:.4g} "
            f"> {row.threshold:.4g} at n={row.rows} (p={row.p_value:.2g} <= {self.level:.2g})"
            for version in self.versions
            for row in version.alarms.itertuples()
        ]

    def summary(self) -> str:
        """Readable outcome, for the CLI and logs."""
        lines: list[str] = []
        if not self.enough_data:
            lines.append(
                f"not enough decisions to judge drift: {self.current_rows} rows "
                f"(need {self.min_rows} for a model version)"
            )
        else:
            head = "DRIFT" if self.drift else "no drift"
            alarms = sum(len(v.alarms) for v in self.versions)
            lines.append(
                f"{head}: {alarms} of {self.tests} tests alarm (false-alarm rate of the run "
                f"{self.alarm_rate} over {self.tests} tests, Bonferroni: each at p <= "
                f"{self.level:.2g})"
            )
        for version in self.versions:
            if not version.enough_data:
                lines.append(
                    f"version {version.model_version}: {version.rows} decisions, fewer than "
                    f"{self.min_rows}: not tested"
                )
                continue
            against = (
                f" vs {version.reference.rows} training rows and "
                f"{len(version.reference.scores)} held-out scores"
                if version.reference is not None
                else ""
            )
            lines.append(f"version {version.model_version}: {version.rows} decisions{against}")
            closest = version.table.sort_values("p_value").head(max(3, len(version.alarms)))
            for row in closest.itertuples():
                lines.append(
                    f"  {'ALARM ' if row.alarm else '      '}{row.attribute:<24} {row.test:<10} "
                    f"{row.statistic:9.4g} threshold {row.threshold:9.4g} at n={row.rows:<5} "
                    f"p={row.p_value:.2g}  PSI {row.psi:.3f}"
                )
        lines += [f"version {v}: not tested: {why}" for v, why in self.skipped.items()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The run as JSON (written beside the HTML report)."""
        return {
            "drift": self.drift,
            "enough_data": self.enough_data,
            "window": self.window,
            "alarm_rate": self.alarm_rate,
            "tests": self.tests,
            "level": self.level,
            "draws": self.draws,
            "min_rows": self.min_rows,
            "reasons": self.reasons,
            "skipped": self.skipped,
            "versions": [
                {
                    "model_version": v.model_version,
                    "rows": v.rows,
                    "enough_data": v.enough_data,
                    "reference": None
                    if v.reference is None
                    else {
                        "source": v.reference.source,
                        "attribute_rows": v.reference.rows,
                        "score_rows": len(v.reference.scores),
                        **v.reference.provenance,
                    },
                    "tests": json.loads(v.table.to_json(orient="records")),
                }
                for v in self.versions
            ],
        }


def assess_drift(
    windows: Sequence[Window],
    alarm_rate: float = 0.05,
    min_rows: int = 50,
    seed: int = 0,
    stop_early: bool = False,
) -> DriftResult:
    """Test each model version's window against its reference; one correction for the run.

    Args:
        windows: per model version, its decisions (schema columns, ``probability_bad``) and its
            reference (None only for a window too small to test).
        alarm_rate: family-wise false-alarm rate of the run (Bonferroni over all its tests).
        min_rows: a version with fewer decisions is not tested (no verdict for it).
        seed: seeds the simulated null distributions (same inputs, same report).
        stop_early: chi-square simulations stop once their decision is known (same alarms,
            coarser p-values, no thresholds: see :func:`chi_square_test`); for benchmarks.

    Returns:
        Per version, one row per test: statistic, threshold at this n, p-value, alarm, PSI.
    """
    if not 0 < alarm_rate < 1:
        raise ValueError(f"alarm_rate must be strictly between 0 and 1, got {alarm_rate}")
    tested = [w for w in windows if len(w.decisions) >= min_rows and w.reference is not None]
    tests = sum(len(planned_tests(w)) for w in tested)
    tested_ids = {id(w) for w in tested}
    level = alarm_rate / max(tests, 1)
    draws = null_draws(level)
    versions: list[VersionDrift] = []
    for window in windows:
        if id(window) not in tested_ids:
            versions.append(
                VersionDrift(
                    window.model_version,
                    len(window.decisions),
                    window.reference,
                    pd.DataFrame(),
                    enough_data=False,
                )
            )
            continue
        assert window.reference is not None
        version_seed = zlib.crc32(f"{seed}/{window.model_version}".encode())
        rows = [
            _test_row(
                name, window.reference, window.decisions, level, draws, version_seed, stop_early
            )
            for name in planned_tests(window)
        ]
        table = pd.DataFrame(rows)
        table["alarm"] = table["p_value"] <= level
        table["band"] = table["psi"].map(psi_band)
        versions.append(
            VersionDrift(window.model_version, len(window.decisions), window.reference, table, True)
        )
    return DriftResult(versions, alarm_rate, min_rows, tests, level, draws)
