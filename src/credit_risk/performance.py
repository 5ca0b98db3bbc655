"""Realised performance: how the served decisions turned out, window by window.

Reads the decision log joined with the realised outcomes (:mod:`credit_risk.outcomes`) and
gives, per calendar month (UTC) or per model version:

- decisions, approved and rejected, and the outcomes received for each;
- the realised bad rate among approved applicants that have an outcome;
- the realised cost per labelled decision, with the data's cost matrix (german.doc: a bad
  applicant approved costs 5, a good one rejected costs 1; :mod:`credit_risk.evaluate`);
- ROC AUC of the served ``probability_bad`` on the labelled decisions;
- calibration: the observed minus the predicted bad rate over the labelled decisions, and
  predicted against observed by probability band (:data:`BANDS`).

Every figure carries a percentile bootstrap interval: a window's labelled decisions are
resampled with replacement (``performance_bootstrap_resamples`` times, seeded by ``seed`` and
the window's name), and each resample gives every figure at once, ratios as ratios of the
resampled sums (a resample without an approved applicant has no bad rate and is left out of
that interval).

Selection bias (:data:`SELECTION_BIAS`): a rejected applicant gets no credit, so it rarely gets
an outcome. The labelled decisions are mostly approvals: the figures describe the approved
population, not everyone who applied.
"""

from __future__ import annotations

import itertools
import logging
import math
import textwrap
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from credit_risk.config import Settings
from credit_risk.evaluate.metrics import CostMatrix, costs_of
from credit_risk.schema import BAD
from credit_risk.scoring import APPROVE

log = logging.getLogger(__name__)


class By(StrEnum):
    """One window per calendar month (UTC) of the decision, or per model version."""

    MONTH = "month"
    VERSION = "version"


# Probability-of-bad bands of the calibration table (the last one includes 1).
BANDS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
# Resampled weight cells per step (resamples x labelled decisions): small steps (~10 ms of
# work each) let a refresh in the service's background thread give the interpreter lock back
# to the requests often (stalls measured by benchmarks/realised_gauges.py).
_CHUNK_CELLS = 200_000
SELECTION_BIAS = (
    "Selection bias: rejected applicants get no credit, so they rarely get an outcome. The "
    "labelled decisions are mostly approvals, so these figures describe approved applicants, "
    "not everyone who applied: the bad rate among approved applicants is measured directly, "
    "but ROC AUC and calibration on labelled rows are measured on a truncated population "
    "(usually a lower AUC than on all applicants), and the cost counts a rejected applicant "
    "only when an outcome came back. They do not estimate through-the-door performance "
    "(that needs reject inference or a random approval sample)."
)
STATISTICS = ("bad_rate_approved", "cost", "roc_auc", "calibration_gap")


@dataclass(frozen=True)
class Estimate:
    """A figure with its bootstrap interval (NaN where it cannot be computed).

    Attributes:
        value: the figure on the window's labelled decisions.
        low, high: the percentile bootstrap interval (NaN without resamples).
        n: the labelled decisions behind it.
    """

    value: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0

    def text(self) -> str:
        if math.isnan(self.value):
            return "n/a"
        if math.isnan(self.low):
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class CalibrationBand:
    """Predicted against observed bad rate of the labelled decisions in one probability band."""

    low: float
    high: float
    n: int
    predicted: float
    observed: Estimate


@dataclass
class WindowPerformance:
    """The realised figures of one window (a month, a model version, or all of them)."""

    window: str
    decisions: int
    approved: int
    rejected: int
    outcomes_approved: int
    outcomes_rejected: int
    bad_rate_approved: Estimate
    predicted_bad_rate_approved: float
    cost: Estimate
    roc_auc: Estimate
    calibration_gap: Estimate
    bands: list[CalibrationBand]
    first_decision: datetime | None = None
    last_decision: datetime | None = None

    @property
    def outcomes(self) -> int:
        return self.outcomes_approved + self.outcomes_rejected

    def coverage(self) -> tuple[float, float]:
        """Share of approved, and of rejected, decisions that have an outcome."""
        return (
            self.outcomes_approved / self.approved if self.approved else math.nan,
            self.outcomes_rejected / self.rejected if self.rejected else math.nan,
        )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )


@dataclass(frozen=True)
class _Labelled:
    """A window's labelled decisions, sorted by probability, as the arrays the figures need.

    Each figure is a ratio of weighted sums (weights: how often a resample drew each decision;
    all ones for the figure itself), so one matrix product gives every sum of every resample.
    """

    bad: np.ndarray
    probability: np.ndarray
    approved: np.ndarray
    band: np.ndarray
    columns: np.ndarray  # decision x summed quantity (see _SUMS)
    tie_starts: np.ndarray  # first position of each distinct probability, for the AUC

    @classmethod
    def of(cls, frame: pd.DataFrame, costs: CostMatrix) -> _Labelled:
        probability = frame["probability_bad"].to_numpy(dtype="float64")
        order = np.argsort(probability, kind="stable")
        probability = probability[order]
        bad = (frame["outcome"].to_numpy(dtype="int64")[order] == BAD).astype(float)
        approved = (frame["decision"].to_numpy(dtype="str")[order] == APPROVE).astype(float)
        # The cost matrix applied decision by decision (as evaluate.metrics.expected_cost).
        row_cost = costs.bad_accepted * bad * approved + costs.good_rejected * (1 - bad) * (
            1 - approved
        )
        band = np.clip(np.searchsorted(BANDS, probability, side="right") - 1, 0, len(BANDS) - 2)
        inside = [(band == b).astype(float) for b in range(len(BANDS) - 1)]
        columns = np.column_stack(
            [
                np.ones_like(bad),
                approved,
                bad * approved,
                row_cost,
                bad - probability,
                *inside,
                *(bad * b for b in inside),
            ]
        )
        starts = np.flatnonzero(np.r_[True, np.diff(probability) != 0]) if len(bad) else order
        return cls(bad, probability, approved, band, columns, starts)

    def statistics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every figure under each row of ``weights`` (resample x decision counts)."""
        sums = weights @ self.columns
        total, approved, bad_approved, cost, gap = sums[:, :5].T
        bands = len(BANDS) - 1
        out = {
            "bad_rate_approved": _ratio(bad_approved, approved),
            "cost": _ratio(cost, total),
            "calibration_gap": _ratio(gap, total),
            "roc_auc": self._auc(weights),
        }
        for band in range(bands):
            out[f"band_{band}"] = _ratio(sums[:, 5 + bands + band], sums[:, 5 + band])
        return out

    def _auc(self, weights: np.ndarray) -> np.ndarray:
        """Weighted ROC AUC: P(a bad decision scores above a good one), ties counting half."""
        if not len(self.bad):
            return np.full(len(weights), np.nan)
        bad_by_score = np.add.reduceat(weights * self.bad, self.tie_starts, axis=1)
        good_by_score = np.add.reduceat(weights * (1 - self.bad), self.tie_starts, axis=1)
        good_below = np.cumsum(good_by_score, axis=1) - good_by_score
        pairs = (bad_by_score * (good_below + 0.5 * good_by_score)).sum(axis=1)
        return _ratio(pairs, bad_by_score.sum(axis=1) * good_by_score.sum(axis=1))


def _resampled(
    labelled: _Labelled, resamples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The figures of ``resamples`` bootstrap resamples (rows drawn with replacement)."""
    n = len(labelled.bad)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        weights = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n)
        parts.append(labelled.statistics(weights.astype(float)))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _estimate(point: float, samples: np.ndarray | None, confidence: float, n: int) -> Estimate:
    if math.isnan(point) or samples is None:
        return Estimate(point, n=n)
    kept = samples[~np.isnan(samples)]
    if not len(kept):
        return Estimate(point, n=n)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(kept, [tail, 100 - tail])
    return Estimate(point, float(low), float(high), n)


def assess_window(
    frame: pd.DataFrame,
    window: str,
    costs: CostMatrix,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> WindowPerformance:
    """The realised figures of the decisions in ``frame`` (one window).

    Args:
        frame: decisions with their outcomes (``outcome`` missing where none came back), as
            :func:`credit_risk.outcomes.read_decisions_with_outcomes` reads them.
        window: the window's name (also seeds its resamples, with ``seed``).
        costs: the cost matrix.
        resamples: bootstrap resamples of the labelled decisions (0: no intervals).
        confidence: the intervals' level.
        seed: the bootstrap's seed.
    """
    approved_all = frame["decision"].to_numpy(dtype="str") == APPROVE
    has_outcome = frame["outcome"].notna().to_numpy()
    labelled = _Labelled.of(frame[has_outcome], costs)
    n = len(labelled.bad)
    point = {
        name: float(values[0]) for name, values in labelled.statistics(np.ones((1, n))).items()
    }
    samples: dict[str, np.ndarray] | None = None
    if resamples and n:
        rng = np.random.default_rng([seed, zlib.crc32(window.encode())])
        samples = _resampled(labelled, resamples, rng)

    def estimate(name: str, rows: int) -> Estimate:
        return _estimate(point[name], samples[name] if samples else None, confidence, rows)

    approved_labelled = int(labelled.approved.sum())
    bands = []
    for index, (low, high) in enumerate(itertools.pairwise(BANDS)):
        inside = labelled.band == index
        bands.append(
            CalibrationBand(
                low,
                high,
                int(inside.sum()),
                float(labelled.probability[inside].mean()) if inside.any() else math.nan,
                estimate(f"band_{index}", int(inside.sum())),
            )
        )
    predicted_approved = labelled.probability[labelled.approved > 0]
    decided = frame["decided_at"]
    return WindowPerformance(
        window=window,
        decisions=len(frame),
        approved=int(approved_all.sum()),
        rejected=int((~approved_all).sum()),
        outcomes_approved=approved_labelled,
        outcomes_rejected=n - approved_labelled,
        bad_rate_approved=estimate("bad_rate_approved", approved_labelled),
        predicted_bad_rate_approved=(
            float(predicted_approved.mean()) if len(predicted_approved) else math.nan
        ),
        cost=estimate("cost", n),
        roc_auc=estimate("roc_auc", n),
        calibration_gap=estimate("calibration_gap", n),
        bands=bands,
        first_decision=decided.min().to_pydatetime() if len(frame) else None,
        last_decision=decided.max().to_pydatetime() if len(frame) else None,
    )


def window_names(frame: pd.DataFrame, by: By) -> pd.Series:
    """Each decision's window: its calendar month in UTC (``2025-03``), or its model version."""
    if By(by) is By.MONTH:
        return frame["decided_at"].dt.strftime("%Y-%m")
    return frame["model_version"].astype("str")


def realised_performance(
    frame: pd.DataFrame,
    by: By,
    costs: CostMatrix,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> list[WindowPerformance]:
    """The figures of each window, in time order (versions by their first decision)."""
    names = window_names(frame, by)
    first = frame.groupby(names, sort=False)["decided_at"].min().sort_values(kind="stable")
    order = sorted(first.index) if By(by) is By.MONTH else list(first.index)
    return [
        assess_window(frame[names == name], str(name), costs, resamples, confidence, seed)
        for name in order
    ]


@dataclass
class PerformanceReport:
    """Realised performance over a period, by window, and in total."""

    windows: list[WindowPerformance]
    total: WindowPerformance
    by: By
    since: datetime | None
    until: datetime | None
    resamples: int
    confidence: float
    seed: int
    costs: CostMatrix
    source: str = ""
    report_path: Path | None = None

    def period(self) -> str:
        start = self.since.isoformat(timespec="seconds") if self.since else "start of log"
        end = self.until.isoformat(timespec="seconds") if self.until else "now"
        return f"{start} to {end}"

    def protocol(self) -> str:
        level = f"{self.confidence:.0%}"
        intervals = (
            f"Intervals: {level} percentile bootstrap, {self.resamples} resamples of each "
            f"window's labelled decisions (seed {self.seed})."
            if self.resamples
            else "No intervals (0 bootstrap resamples)."
        )
        return (
            f"{intervals} Cost per labelled decision: a bad applicant approved costs "
            f"{self.costs.bad_accepted:g}, a good applicant rejected "
            f"{self.costs.good_rejected:g}. Calibration gap: observed minus predicted bad rate "
            "of the labelled decisions."
        )

    def table(self) -> str:
        """The figures as a text table, with the protocol and the selection-bias caveat."""
        header = (
            f"{'window':<10} {'decisions':>9} {'approved':>8} {'outcomes (appr/rej)':>19}  "
            f"{'bad rate approved':<26} {'cost per labelled':<22} {'ROC AUC':<22} "
            "observed - predicted"
        )
        lines = [
            f"Realised performance by {By(self.by).value}, decisions from {self.period()}",
            header,
        ]
        rows = self.windows + ([self.total] if len(self.windows) > 1 else [])
        for w in rows:
            outcomes = f"{w.outcomes} ({w.outcomes_approved}/{w.outcomes_rejected})"
            bad_rate = f"{w.bad_rate_approved.text()} n={w.outcomes_approved}"
            lines.append(
                f"{w.window:<10} {w.decisions:>9} {w.approved:>8} {outcomes:>19}  "
                f"{bad_rate:<26} {w.cost.text():<22} {w.roc_auc.text():<22} "
                f"{w.calibration_gap.text()}"
            )
        if not self.windows:
            lines.append("(no decisions in this period)")
        lines.append("")
        lines += [textwrap.fill(text, 100) for text in (self.protocol(), SELECTION_BIAS)]
        return "\n".join(lines)


def assess_period(
    frame: pd.DataFrame,
    by: By,
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
) -> PerformanceReport:
    """The report's figures for decisions already read (see :func:`performance`)."""
    costs = costs_of(settings)
    resamples = settings.performance_bootstrap_resamples
    confidence = settings.performance_confidence
    by = By(by)
    windows = realised_performance(frame, by, costs, resamples, confidence, settings.seed)
    total = assess_window(frame, "all", costs, resamples, confidence, settings.seed)
    return PerformanceReport(
        windows, total, by, since, until, resamples, confidence, settings.seed, costs
    )


def latest_window(
    engine: Engine, settings: Settings, now: datetime | None = None
) -> WindowPerformance:
    """The figures of the last ``performance_window_days`` of decisions (the service's gauges).

    ``credit-risk performance --since <days>d`` prints the same figures (window ``all``).
    """
    from credit_risk.outcomes import read_decisions_with_outcomes

    now = now or datetime.now(UTC)
    since = now - timedelta(days=settings.performance_window_days)
    frame = read_decisions_with_outcomes(engine, since, now, attributes=False)
    return assess_window(
        frame,
        "all",
        costs_of(settings),
        settings.performance_bootstrap_resamples,
        settings.performance_confidence,
        settings.seed,
    )


def performance_plots(report: PerformanceReport) -> dict[str, str]:
    """PNG (base64) plots: figures by window with their intervals, outcome coverage, and the
    calibration of the whole period."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from credit_risk.monitor.report import _figure_base64

    plots: dict[str, str] = {}
    windows = report.windows
    if not windows:
        return plots
    x = np.arange(len(windows))
    names = [w.window for w in windows]

    def with_interval(ax: Any, estimates: list[Estimate], label: str, offset: float = 0.0) -> None:
        values = np.array([e.value for e in estimates])
        low = np.array([e.low for e in estimates])
        high = np.array([e.high for e in estimates])
        errors = np.nan_to_num(np.vstack([values - low, high - values]), nan=0.0)
        ax.errorbar(x + offset, values, yerr=errors, fmt="o-", capsize=3, label=label)

    panels = (
        ("bad_rate_approved", "Bad rate among approved applicants", "bad rate"),
        ("cost", "Realised cost per labelled decision", "cost"),
        ("roc_auc", "ROC AUC on labelled decisions", "ROC AUC"),
    )
    for name, title, ylabel in panels:
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        with_interval(ax, [getattr(w, name) for w in windows], "realised")
        if name == "bad_rate_approved":
            expected = [w.predicted_bad_rate_approved for w in windows]
            ax.plot(x + 0.1, expected, "s--", label="predicted (mean probability)")
        ax.set_xticks(x, names, fontsize=8, rotation=30)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        plots[name] = _figure_base64(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    approved, rejected = zip(*(w.coverage() for w in windows), strict=True)
    ax.bar(x - 0.2, approved, 0.4, label="approved")
    ax.bar(x + 0.2, rejected, 0.4, label="rejected")
    ax.set_xticks(x, names, fontsize=8, rotation=30)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share with an outcome")
    ax.set_title("Outcomes received (selection bias: rejected rarely get one)", fontsize=10)
    ax.legend(fontsize=8)
    plots["coverage"] = _figure_base64(fig)

    bands = [b for b in report.total.bands if b.n]
    if bands:
        fig, ax = plt.subplots(figsize=(4.5, 4.2))
        predicted = np.array([b.predicted for b in bands])
        observed = np.array([b.observed.value for b in bands])
        low = np.array([b.observed.low for b in bands])
        high = np.array([b.observed.high for b in bands])
        errors = np.nan_to_num(np.vstack([observed - low, high - observed]), nan=0.0)
        ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
        ax.errorbar(
            predicted, observed, yerr=errors, fmt="o", capsize=3, label="labelled decisions"
        )
        ax.set_xlabel("predicted bad rate (mean probability in band)")
        ax.set_ylabel("observed bad rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title("Calibration, whole period", fontsize=10)
        ax.legend(fontsize=8)
        plots["calibration"] = _figure_base64(fig)
    return plots


def render_report(report: PerformanceReport, plots: dict[str, str]) -> str:
    """The realised-performance report as a self-contained HTML page."""
    from importlib.resources import files

    from jinja2 import Environment, select_autoescape

    template = files("credit_risk").joinpath("templates/performance_report.html.j2").read_text()
    environment = Environment(autoescape=select_autoescape(default=True))
    rows = report.windows + ([report.total] if len(report.windows) > 1 else [])
    return environment.from_string(template).render(
        report=report,
        rows=rows,
        plots=plots,
        caveat=SELECTION_BIAS,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def performance(
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
    by: By = By.MONTH,
    report: Path | None = None,
) -> PerformanceReport:
    """Read the decision log with its outcomes, compute the figures, write the HTML report.

    Args:
        settings: the decision-log URL, cost matrix, bootstrap settings, report path.
        since, until: window of decision times (``since`` included, ``until`` excluded).
        by: one window per calendar month (UTC) or per model version.
        report: the HTML report to write (default ``settings.performance_report``).
    """
    from sqlalchemy.engine import make_url

    from credit_risk.decision_log import make_engine
    from credit_risk.outcomes import read_decisions_with_outcomes

    engine = make_engine(settings.decision_log_url)
    try:
        frame = read_decisions_with_outcomes(engine, since, until, attributes=False)
    finally:
        engine.dispose()
    result = assess_period(frame, by, settings, since, until)
    result.source = make_url(settings.decision_log_url).render_as_string(hide_password=True)
    path = Path(report or settings.performance_report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, performance_plots(result)))
    result.report_path = path
    return result
