"""Fairness audit of accept/reject decisions by attribute 9, age band and foreign worker.

Conventions follow :mod:`credit_risk.evaluate`: ``y`` is 1 for a bad applicant, an applicant
is rejected when ``probability_bad >= threshold``. The *selection rate* reported here is the
approval rate (the favourable outcome), so the disparate-impact ratio (lowest group approval
rate over highest) reads like the "four-fifths rule" (>= 0.8). Recall of bad and the
false-positive rate (good applicants rejected) are per group; the equalized-odds difference is
the larger of the between-group gaps in those two rates (point estimates: fairlearn).

Attribute 9 is audited by what its codes say (Grömping 2019, see :data:`SEX_CAVEAT`). Each
summary metric carries a percentile bootstrap interval, resampled within each group so that
group sizes stay fixed (see :func:`resampled_metrics`). A gate limit is checked only on an
attribute whose every group has at least ``min_group_size`` applicants; otherwise it reports
"insufficient data".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from credit_risk.derivations import Bands
from credit_risk.schema import BY_NAME

SEX_CAVEAT = (
    "Attribute 9 is read as Grömping (2019, 'South German Credit Data: Correcting a Widely "
    "Used Data Set') corrected it: A91 male divorced/separated, A92 female non-single or male "
    "single, A93 male married/widowed, A94 female single (german.doc's labels are wrong). "
    "Code A92 does not tell sex, so the audit by sex compares 'male (A91, A93)' with 'female, "
    "or male single (A92, A94)', and the audit by personal status compares the four codes."
)

# Attribute 9's codes grouped by what they tell about sex.
MALE, FEMALE_OR_SINGLE_MALE = "male (A91, A93)", "female, or male single (A92, A94)"
SEX_GROUP_BY_CODE = {
    "A91": MALE,
    "A92": FEMALE_OR_SINGLE_MALE,
    "A93": MALE,
    "A94": FEMALE_OR_SINGLE_MALE,
}
# Age bands of the audit: 62 and over is the group ECOA/Regulation B protects from an
# age-based disadvantage.
AGE_GROUPS = Bands(
    "age_group", "age_years", (25, 40, 62), ("under_25", "25_39", "40_61", "62_plus")
)

# Audited attributes, in report order.
AUDITED = ("sex", "personal_status", "age_group", "foreign_worker")
DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
INSUFFICIENT = "insufficient data"

TABLE_COLUMNS = (
    "split",
    "attribute",
    "group",
    "count",
    "selection_rate",
    "recall_bad",
    "false_positive_rate",
)


def sensitive_features(applicants: pd.DataFrame) -> pd.DataFrame:
    """The audited groups of each applicant, as readable labels.

    Args:
        applicants: raw applicant attributes (schema column names).

    Returns:
        One column per audited attribute (:data:`AUDITED`).
    """
    status = applicants["personal_status_sex"].astype("str")
    personal = BY_NAME["personal_status_sex"]
    foreign = BY_NAME["foreign_worker"]
    return pd.DataFrame(
        {
            "sex": status.map(lambda code: SEX_GROUP_BY_CODE.get(code, f"{code} (unknown code)"))
            .astype("str")
            .to_numpy(),
            "personal_status": status.map(lambda code: f"{code} {personal.label(code)}")
            .astype("str")
            .to_numpy(),
            "age_group": np.asarray(AGE_GROUPS.column(applicants), dtype=str),
            "foreign_worker": applicants["foreign_worker"]
            .astype("str")
            .map(lambda code: f"foreign_worker_{foreign.label(code)}")
            .to_numpy(),
        },
        index=applicants.index,
    )


@dataclass(frozen=True)
class _Rates:
    """Per-group rates, one row per draw: approval, recall of bad, false-positive rate."""

    approval: np.ndarray
    recall: np.ndarray
    false_positive: np.ndarray


def _rates_of_draws(y: np.ndarray, rejected: np.ndarray, draws: list[np.ndarray]) -> _Rates:
    """Rates of each group in each draw (``draws[j]``: ``(draws, size)`` row indices of group j).

    A rate undefined in a draw (no bad, or no good, applicant in the group) is NaN.
    """
    shape = (draws[0].shape[0], len(draws))
    rates = _Rates(np.empty(shape), np.empty(shape), np.empty(shape))
    for j, drawn in enumerate(draws):
        bad, rejects = y[drawn] == 1, rejected[drawn] == 1
        rates.approval[:, j] = 1.0 - rejects.mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates.recall[:, j] = (rejects & bad).sum(axis=1) / bad.sum(axis=1)
            rates.false_positive[:, j] = (rejects & ~bad).sum(axis=1) / (~bad).sum(axis=1)
    return rates


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _widest_gap(rates: _Rates) -> tuple[np.ndarray, int, int] | None:
    """The sample's (rate, higher group, lower group) with the largest gap (first row)."""
    best: tuple[np.ndarray, int, int] | None = None
    width = -1.0
    for rate in (rates.recall, rates.false_positive):
        row = rate[0]
        if np.isnan(row).all():
            continue
        high, low = int(np.nanargmax(row)), int(np.nanargmin(row))
        if row[high] - row[low] > width:
            best, width = (rate, high, low), float(row[high] - row[low])
    return best


def _group_rows(sensitive: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(sensitive == label) for label in np.unique(sensitive)]


def group_metrics(y: np.ndarray, rejected: np.ndarray, sensitive: np.ndarray) -> dict[str, float]:
    """Disparate impact and equalized-odds difference, computed as the bootstrap does.

    Disparate impact is the lowest over the highest group approval rate; the equalized-odds
    difference is the larger of the widest gaps in recall of bad and in false-positive rate.
    """
    draws = [rows[np.newaxis, :] for rows in _group_rows(sensitive)]
    rates = _rates_of_draws(np.asarray(y), np.asarray(rejected), draws)
    widest = _widest_gap(rates)
    approval = rates.approval[0]
    return {
        "disparate_impact": float(_ratio(approval.min(), approval.max())),
        "equalized_odds_difference": float("nan")
        if widest is None
        else float(widest[0][0, widest[1]] - widest[0][0, widest[2]]),
    }


def resampled_metrics(
    y: np.ndarray,
    rejected: np.ndarray,
    sensitive: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Disparate impact and equalized-odds difference on bootstrap resamples.

    Each group's rows are resampled with replacement, keeping the group's size. Each
    resample compares the groups the sample's estimate compares (lowest and highest approval;
    the widest gap's rate and groups), signed: a ratio above 1 or a gap below 0 means the
    direction reversed. Re-choosing the extreme groups in every resample instead would bias
    the ratio down and the gap up (a maximum of noisy gaps), so that the interval could miss
    the estimate and could never contain parity.

    Args:
        y: 1 for bad, 0 for good.
        rejected: 1 for a rejected applicant.
        sensitive: each applicant's group.
        resamples: number of bootstrap resamples.
        rng: the random generator (seeded by the caller).

    Returns:
        ``disparate_impact`` and ``equalized_odds_difference``, one value per resample (NaN
        where undefined).
    """
    y, rejected = np.asarray(y), np.asarray(rejected)
    rows = _group_rows(sensitive)
    sample = _rates_of_draws(y, rejected, [r[np.newaxis, :] for r in rows])
    draws = [r[rng.integers(0, len(r), size=(resamples, len(r)))] for r in rows]
    rates = _rates_of_draws(y, rejected, draws)
    lowest, highest = int(np.argmin(sample.approval[0])), int(np.argmax(sample.approval[0]))
    widest = _widest_gap(sample)
    if widest is None:
        gap = np.full(resamples, np.nan)
    else:
        which = rates.recall if widest[0] is sample.recall else rates.false_positive
        gap = which[:, widest[1]] - which[:, widest[2]]
    return {
        "disparate_impact": _ratio(rates.approval[:, lowest], rates.approval[:, highest]),
        "equalized_odds_difference": gap,
    }


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


class LimitVerdict(NamedTuple):
    """The promotion-gate limits an audit breaks, and those it cannot judge (groups too small)."""

    failed: list[str]
    insufficient: list[str]


def _set_limits(
    min_disparate_impact: float | None, max_equalized_odds_difference: float | None
) -> list[tuple[str, str, float]]:
    """``(metric key, readable name, limit)`` of each limit that is set."""
    limits = []
    if min_disparate_impact is not None:
        limits.append(("disparate_impact", "disparate impact", min_disparate_impact))
    if max_equalized_odds_difference is not None:
        limits.append(
            (
                "equalized_odds_difference",
                "equalized-odds difference",
                max_equalized_odds_difference,
            )
        )
    return limits


@dataclass
class FairnessAudit:
    """Per-group table and per-attribute summary metrics of one or more prediction sets.

    ``metrics`` holds, per ``<split>_<attribute>``: ``_disparate_impact`` and
    ``_equalized_odds_difference`` with their ``_ci_low``/``_ci_high`` bootstrap bounds, and
    ``_smallest_group`` (the size of the attribute's smallest group).
    """

    table: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    min_group_size: int = 0  # a gate limit needs every group at least this large
    resamples: int = 0  # bootstrap resamples behind the intervals (0: no intervals)
    confidence: float = DEFAULT_CONFIDENCE

    def _too_small(self, split: str, attribute: str, min_group_size: int | None) -> int | None:
        """The smallest group's size when it is below the minimum, else None."""
        wanted = self.min_group_size if min_group_size is None else min_group_size
        smallest = self.metrics.get(f"{split}_{attribute}_smallest_group")
        if smallest is None or smallest >= wanted:
            return None
        return int(smallest)

    def judge_limits(
        self,
        min_disparate_impact: float | None,
        max_equalized_odds_difference: float | None,
        split: str = "test",
        min_group_size: int | None = None,
    ) -> LimitVerdict:
        """The set limits this audit breaks on ``split``, and those it leaves unjudged.

        An attribute whose smallest group is below ``min_group_size`` (default: the audit's)
        is not judged: each of its set limits is listed as :data:`INSUFFICIENT` instead.
        """
        wanted = self.min_group_size if min_group_size is None else min_group_size
        limits = _set_limits(min_disparate_impact, max_equalized_odds_difference)
        failed: list[str] = []
        unjudged: list[str] = []
        for attribute in AUDITED:
            smallest = self._too_small(split, attribute, min_group_size)
            audited = f"{split}_{attribute}_disparate_impact" in self.metrics
            for key, name, limit in limits:
                value = self.metrics.get(f"{split}_{attribute}_{key}")
                if smallest is not None and audited:
                    unjudged.append(
                        f"{split} {name} by {attribute}: {INSUFFICIENT} "
                        f"(smallest group {smallest} < {wanted})"
                    )
                elif smallest is not None or value is None or np.isnan(value):
                    continue
                elif key == "disparate_impact" and value < limit:
                    failed.append(f"{split} {name} by {attribute} {value:.3f} < {limit}")
                elif key == "equalized_odds_difference" and value > limit:
                    failed.append(f"{split} {name} by {attribute} {value:.3f} > {limit}")
        return LimitVerdict(failed, unjudged)

    def limits_failed(self, *args: Any, **kwargs: Any) -> list[str]:
        """Which limits this audit breaks (empty: all pass); arguments of :meth:`judge_limits`."""
        return self.judge_limits(*args, **kwargs).failed

    def limits_insufficient(self, *args: Any, **kwargs: Any) -> list[str]:
        """The set limits left unjudged because a group is too small (see :meth:`judge_limits`)."""
        return self.judge_limits(*args, **kwargs).insufficient

    def interval_text(self, name: str) -> str:
        """``value [low, high]`` for a summary metric, as in the Markdown summary."""
        value = _fmt(self.metrics.get(name))
        low, high = self.metrics.get(f"{name}_ci_low"), self.metrics.get(f"{name}_ci_high")
        if low is None or high is None:
            return value
        return f"{value} [{_fmt(low)}, {_fmt(high)}]"

    def markdown(self) -> str:
        """The table and summary as Markdown, with intervals and the attribute-9 note."""
        lines = [
            "| split | attribute | group | n | approval rate | recall of bad | FPR |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for row in self.table.itertuples(index=False):
            lines.append(
                f"| {row.split} | {row.attribute} | {row.group} | {row.count} | "
                f"{_fmt(row.selection_rate)} | {_fmt(row.recall_bad)} | "
                f"{_fmt(row.false_positive_rate)} |"
            )
        level = f"{self.confidence:.0%} CI"
        lines += [
            "",
            f"| split | attribute | smallest group | disparate impact [{level}] | "
            f"equalized-odds difference [{level}] |",
            "|---|---|---:|---:|---:|",
        ]
        for split in self.table["split"].unique():
            for attribute in AUDITED:
                prefix = f"{split}_{attribute}"
                if f"{prefix}_disparate_impact" not in self.metrics:
                    continue
                smallest = self.metrics.get(f"{prefix}_smallest_group")
                size = "?" if smallest is None else str(int(smallest))
                if self._too_small(split, attribute, None) is not None:
                    size += f" ({INSUFFICIENT}: < {self.min_group_size})"
                lines.append(
                    f"| {split} | {attribute} | {size} | "
                    f"{self.interval_text(f'{prefix}_disparate_impact')} | "
                    f"{self.interval_text(f'{prefix}_equalized_odds_difference')} |"
                )
        lines.append("")
        if self.resamples:
            lines.append(
                f"Intervals: {level}, percentile bootstrap, {self.resamples} resamples within "
                "each group (group sizes fixed), of the disparity between the two groups the "
                "estimate compares, signed: an interval that reaches 1 (disparate impact) or 0 "
                "(equalized-odds difference) does not show a disparity. They do not allow for "
                "having picked the two most distant of several groups."
            )
        if self.min_group_size:
            lines.append(
                f"Gate limits are judged only where every group has at least "
                f"{self.min_group_size} applicants; elsewhere they report '{INSUFFICIENT}'."
            )
        lines += ["", SEX_CAVEAT]
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


def audit_predictions(
    split: str,
    applicants: pd.DataFrame,
    y: np.ndarray,
    probability_bad: np.ndarray,
    threshold: float,
    *,
    min_group_size: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> FairnessAudit:
    """Audit one set of predictions.

    Args:
        split: name of the prediction set (``test``, ``cv``...), used as a metric prefix.
        applicants: raw attributes of the scored applicants (for the groups).
        y: 1 for bad, 0 for good.
        probability_bad: predicted probability of bad.
        threshold: reject when ``probability_bad >= threshold``.
        min_group_size: smallest group on which a gate limit is judged.
        resamples: bootstrap resamples for the intervals (0: none).
        confidence: level of the intervals.
        seed: seed of the bootstrap.

    Returns:
        Table rows per (attribute, group); metrics per ``<split>_<attribute>``: see
        :class:`FairnessAudit`.
    """
    # Here, not at module level: the model card (SEX_CAVEAT) renders in the serving image,
    # which has no fairlearn.
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    y = np.asarray(y).astype(int)
    rejected = (np.asarray(probability_bad) >= threshold).astype(int)
    approved = 1 - rejected
    groups = sensitive_features(applicants)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    metrics: dict[str, float] = {}
    for attribute in AUDITED:
        sensitive = groups[attribute].to_numpy()
        frame = MetricFrame(
            metrics={
                "count": count,
                "recall_bad": true_positive_rate,
                "false_positive_rate": false_positive_rate,
            },
            y_true=y,
            y_pred=rejected,
            sensitive_features=sensitive,
        )
        approval = MetricFrame(
            metrics=selection_rate, y_true=y, y_pred=approved, sensitive_features=sensitive
        )
        for group, values in frame.by_group.iterrows():
            rows.append(
                {
                    "split": split,
                    "attribute": attribute,
                    "group": str(group),
                    "count": int(values["count"]),
                    "selection_rate": float(approval.by_group[group]),
                    "recall_bad": float(values["recall_bad"]),
                    "false_positive_rate": float(values["false_positive_rate"]),
                }
            )
        prefix = f"{split}_{attribute}"
        metrics[f"{prefix}_disparate_impact"] = float(
            demographic_parity_ratio(y, approved, sensitive_features=sensitive)
        )
        metrics[f"{prefix}_equalized_odds_difference"] = float(
            equalized_odds_difference(y, rejected, sensitive_features=sensitive)
        )
        metrics[f"{prefix}_smallest_group"] = float(frame.by_group["count"].min())
        if resamples:
            for name, values in resampled_metrics(y, rejected, sensitive, resamples, rng).items():
                low, high = _percentile_interval(values, confidence)
                metrics[f"{prefix}_{name}_ci_low"] = low
                metrics[f"{prefix}_{name}_ci_high"] = high
    return FairnessAudit(
        table=pd.DataFrame(rows, columns=list(TABLE_COLUMNS)),
        metrics=metrics,
        min_group_size=min_group_size,
        resamples=resamples,
        confidence=confidence,
    )


def combine(*audits: FairnessAudit) -> FairnessAudit:
    """One audit holding the rows and metrics of several prediction sets."""
    table = pd.concat([audit.table for audit in audits], ignore_index=True)
    metrics = {name: value for audit in audits for name, value in audit.metrics.items()}
    return FairnessAudit(
        table=table,
        metrics=metrics,
        min_group_size=max(audit.min_group_size for audit in audits),
        resamples=max(audit.resamples for audit in audits),
        confidence=audits[0].confidence,
    )


def log_audit(audit: FairnessAudit, prefix: str = "fairness") -> None:
    """Log the audit to the active MLflow run: metrics, a table and a Markdown summary."""
    import mlflow

    mlflow.log_metrics(
        {
            f"{prefix}_{name}": value
            for name, value in audit.metrics.items()
            if value is not None and not np.isnan(value)
        }
    )
    mlflow.log_table(audit.table, f"{prefix}/fairness_table.json")
    mlflow.log_text(audit.markdown(), f"{prefix}/fairness.md")
