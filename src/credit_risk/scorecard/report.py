"""Reports of a scorecard: the points table as CSV, the information-value report, and its
cross-validated cost and ROC AUC.

``credit-risk scorecard report`` prints :func:`format_iv_report` of a scorecard fitted on every
row of the data file, then :func:`format_evaluation` of :func:`cross_validate_scorecard`:
repeated stratified k-fold, the whole scorecard (binning, regression, points, calibration)
refitted on each training part, decisions at the Bayes threshold of the cost matrix (1/6 for
german.doc's 5:1), and a 95 % interval corrected for the overlap of the training parts
(Nadeau and Bengio 2003), not the fold standard deviation over the square root of the folds.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from credit_risk.config import Settings
from credit_risk.schema import BY_NAME
from credit_risk.scorecard.family import build_scorecard
from credit_risk.scorecard.table import PointsTable

CSV_COLUMNS = (
    "attribute",
    "description",
    "treatment",
    "trend",
    "iv",
    "selected",
    "coefficient",
    "bin",
    "codes",
    "lower",
    "upper",
    "good",
    "bad",
    "bad_rate",
    "woe",
    "points",
    "note",
)


def points_frame(table: PointsTable) -> pd.DataFrame:
    """One row per bin of every attribute (one row for an attribute left unbinned)."""
    rows = []
    for attribute in table.attributes:
        common = {
            "attribute": attribute.attribute,
            "description": BY_NAME[attribute.attribute].description,
            "treatment": attribute.treatment.value,
            "trend": attribute.trend.value,
            "iv": attribute.iv,
            "selected": attribute.selected,
            "coefficient": attribute.coefficient,
            "note": attribute.note,
        }
        if not attribute.bins:
            rows.append(common)
        for b in attribute.bins:
            total = b.good + b.bad
            rows.append(
                common
                | {
                    "bin": b.label,
                    "codes": " ".join(b.codes),
                    "lower": b.lower,
                    "upper": b.upper,
                    "good": b.good,
                    "bad": b.bad,
                    "bad_rate": b.bad / total if total else None,
                    "woe": b.woe,
                    "points": b.points if attribute.selected else None,
                }
            )
    frame = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    return frame.astype({"good": "Int64", "bad": "Int64", "points": "Int64"})


def points_csv(table: PointsTable) -> str:
    """The points table as CSV (:func:`points_frame`)."""
    buffer = io.StringIO()
    points_frame(table).to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue()


def iv_summary(table: PointsTable) -> pd.DataFrame:
    """One row per binned attribute: IV, bins, trend, points range; highest IV first."""
    rows = [
        {
            "attribute": a.attribute,
            "iv": a.iv,
            "bins": len(a.bins),
            "trend": a.trend.value,
            "points": f"{min(b.points for b in a.bins)}..{a.best_points}"
            if a.selected
            else "not scored",
        }
        for a in table.attributes
        if a.bins
    ]
    return pd.DataFrame(rows).sort_values("iv", ascending=False, kind="stable")


def format_iv_report(table: PointsTable, rows: int) -> str:
    """The IV summary, why attributes are not scored, then each scored attribute's bins."""
    scaling = table.scaling
    lines = [
        f"Points scorecard on {rows} rows: {scaling.base_points:g} points at odds "
        f"{scaling.base_odds:g}:1 (good:bad), {scaling.pdo:g} points double the odds; "
        f"scores {table.min_points}..{table.max_points}; calibration {table.calibration.method}",
        "",
        "Information value per attribute (highest first):",
        iv_summary(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"),
    ]
    notes: dict[str, list[str]] = {}
    for attribute in table.attributes:
        if not attribute.selected:
            notes.setdefault(attribute.note, []).append(attribute.attribute)
    lines += [f"Not scored ({note}): {', '.join(names)}" for note, names in notes.items()]
    frame = points_frame(table)
    for attribute in table.selected:
        bins = frame[frame["attribute"] == attribute.attribute][
            ["bin", "good", "bad", "bad_rate", "woe", "points"]
        ]
        lines += [
            "",
            f"{attribute.attribute}  IV {attribute.iv:.3f}  trend {attribute.trend.value}  "
            f"coefficient {attribute.coefficient:.3f}",
            bins.to_string(index=False, float_format=lambda v: f"{v:.3f}", max_colwidth=60),
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Interval:
    """Mean of per-fold values with a corrected 95 % interval."""

    mean: float
    low: float
    high: float


def corrected_interval(values: np.ndarray, test_share: float, confidence: float = 0.95) -> Interval:
    """Nadeau-Bengio corrected t interval of the mean of repeated k-fold scores.

    The variance of the mean of ``J`` fold scores is ``(1 / J + n_test / n_train) * s^2``,
    not ``s^2 / J``: the training parts overlap, so the folds' scores are correlated.

    Args:
        values: one score per fold (all repeats).
        test_share: ``n_test / n_train`` (``1 / (k - 1)`` for k folds).
        confidence: the interval's coverage.
    """
    from scipy import stats

    values = np.asarray(values, dtype="float64")
    count = len(values)
    mean = float(values.mean())
    if count < 2:
        return Interval(mean, math.nan, math.nan)
    spread = math.sqrt((1 / count + test_share) * float(values.var(ddof=1)))
    half = float(stats.t.ppf(0.5 + confidence / 2, count - 1)) * spread
    return Interval(mean, mean - half, mean + half)


@dataclass(frozen=True)
class Evaluation:
    """Per-fold metrics of a repeated k-fold evaluation."""

    repeats: int
    folds: int
    rows: int
    threshold: float
    per_fold: pd.DataFrame  # one row per fold, one column per metric


def format_evaluation(evaluation: Evaluation) -> str:
    """Each metric's mean with its corrected 95 % interval."""
    share = 1 / (evaluation.folds - 1)
    lines = [
        f"Cross-validated ({evaluation.repeats} x {evaluation.folds}-fold stratified, "
        f"{evaluation.rows} rows; the scorecard refitted on each training part; decisions at "
        f"the Bayes threshold {evaluation.threshold:.4f}; Nadeau-Bengio corrected 95 % "
        "intervals):"
    ]
    for name in evaluation.per_fold.columns:
        interval = corrected_interval(evaluation.per_fold[name].to_numpy(), share)
        lines.append(f"  {name:<14}{interval.mean:.3f}  [{interval.low:.3f}, {interval.high:.3f}]")
    return "\n".join(lines)


def cross_validate_scorecard(settings: Settings, repeats: int, folds: int) -> Evaluation:
    """Repeated stratified k-fold of the scorecard on every row of ``settings.data_path``.

    Each fold refits the whole scorecard on its training part (nothing is tuned, so nothing
    needs nesting) and scores the held-out part at the Bayes threshold of the cost matrix.
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    from credit_risk.data import load_training_data
    from credit_risk.evaluate import bayes_threshold, classification_metrics, costs_of

    dataset = load_training_data(settings)
    if dataset.target is None:
        raise ValueError(f"{settings.data_path} has no class column: nothing to evaluate")
    x, y = dataset.features, dataset.target.to_numpy()
    costs = costs_of(settings)
    threshold = bayes_threshold(costs)
    splitter = RepeatedStratifiedKFold(
        n_splits=folds, n_repeats=repeats, random_state=settings.seed
    )
    per_fold = []
    for train, test in splitter.split(x, y):
        model = build_scorecard(settings).fit(x.iloc[train], y[train])
        probability = model.predict_proba(x.iloc[test])[:, 1]
        per_fold.append(classification_metrics(y[test], probability, threshold, costs))
    return Evaluation(repeats, folds, len(y), threshold, pd.DataFrame(per_fold))
