"""Fairness audit of accept/reject decisions by sex, age group and foreign worker (fairlearn).

Conventions follow :mod:`credit_risk.evaluate`: ``y`` is 1 for a bad applicant, an applicant
is rejected when ``probability_bad >= threshold``. The *selection rate* reported here is the
approval rate (the favourable outcome), so the disparate-impact ratio (lowest group approval
rate over highest) reads like the "four-fifths rule" (>= 0.8). Recall of bad and the
false-positive rate (good applicants rejected) are per group; the equalized-odds difference is
the larger of the between-group gaps in those two rates.

The sex breakdown comes from attribute 9, whose coding Grömping (2019) showed to be unreliable:
see :data:`SEX_CAVEAT`, which every report that shows it repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from credit_risk.features import AGE_BAND_EDGES, SEX_BY_CODE
from credit_risk.schema import BY_NAME

SEX_CAVEAT = (
    "Caveat: sex is derived from attribute 9 (personal status and sex), whose coding in "
    "german.doc Grömping (2019, 'South German Credit Data: Correcting a Widely Used Data Set') "
    "showed to be unreliable; the sex breakdown is indicative only."
)

# Audited attributes, in report order. Age is split at 25, the youngest band boundary used by
# features.AGE_BAND_EDGES: finer bands leave groups of a handful of applicants on a test split.
AUDITED = ("sex", "age_group", "foreign_worker")
YOUNG_AGE = AGE_BAND_EDGES[0]

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
        One column per audited attribute (``sex``, ``age_group``, ``foreign_worker``).
    """
    age = applicants["age_years"].to_numpy()
    foreign = BY_NAME["foreign_worker"]
    return pd.DataFrame(
        {
            "sex": applicants["personal_status_sex"].astype("str").map(SEX_BY_CODE).to_numpy(),
            "age_group": np.where(age < YOUNG_AGE, f"under_{YOUNG_AGE}", f"{YOUNG_AGE}_plus"),
            "foreign_worker": applicants["foreign_worker"]
            .astype("str")
            .map(lambda code: f"foreign_worker_{foreign.label(code)}")
            .to_numpy(),
        },
        index=applicants.index,
    )


@dataclass
class FairnessAudit:
    """Per-group table and per-attribute summary metrics of one or more prediction sets."""

    table: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)

    def limits_failed(
        self,
        min_disparate_impact: float | None,
        max_equalized_odds_difference: float | None,
        split: str = "test",
    ) -> list[str]:
        """Which promotion-gate limits this audit breaks on ``split`` (empty: all pass)."""
        failed: list[str] = []
        for attribute in AUDITED:
            ratio = self.metrics.get(f"{split}_{attribute}_disparate_impact")
            gap = self.metrics.get(f"{split}_{attribute}_equalized_odds_difference")
            if (
                min_disparate_impact is not None
                and ratio is not None
                and ratio < min_disparate_impact
            ):
                failed.append(
                    f"{split} disparate impact by {attribute} {ratio:.3f} < {min_disparate_impact}"
                )
            if (
                max_equalized_odds_difference is not None
                and gap is not None
                and gap > max_equalized_odds_difference
            ):
                failed.append(
                    f"{split} equalized-odds difference by {attribute} {gap:.3f} "
                    f"> {max_equalized_odds_difference}"
                )
        return failed

    def markdown(self) -> str:
        """The table and summary as Markdown, with the attribute-9 caveat."""
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
        lines += [
            "",
            "| split | attribute | disparate impact | equalized-odds difference |",
            "|---|---|---:|---:|",
        ]
        for split in self.table["split"].unique():
            for attribute in AUDITED:
                ratio = self.metrics.get(f"{split}_{attribute}_disparate_impact")
                gap = self.metrics.get(f"{split}_{attribute}_equalized_odds_difference")
                if f"{split}_{attribute}_disparate_impact" in self.metrics:
                    lines.append(f"| {split} | {attribute} | {_fmt(ratio)} | {_fmt(gap)} |")
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
) -> FairnessAudit:
    """Audit one set of predictions.

    Args:
        split: name of the prediction set (``test``, ``cv``...), used as a metric prefix.
        applicants: raw attributes of the scored applicants (for the groups).
        y: 1 for bad, 0 for good.
        probability_bad: predicted probability of bad.
        threshold: reject when ``probability_bad >= threshold``.

    Returns:
        Table rows per (attribute, group); metrics ``<split>_<attribute>_disparate_impact``
        and ``<split>_<attribute>_equalized_odds_difference``.
    """
    y = np.asarray(y).astype(int)
    rejected = (np.asarray(probability_bad) >= threshold).astype(int)
    approved = 1 - rejected
    groups = sensitive_features(applicants)
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
        metrics[f"{split}_{attribute}_disparate_impact"] = float(
            demographic_parity_ratio(y, approved, sensitive_features=sensitive)
        )
        metrics[f"{split}_{attribute}_equalized_odds_difference"] = float(
            equalized_odds_difference(y, rejected, sensitive_features=sensitive)
        )
    return FairnessAudit(table=pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), metrics=metrics)


def combine(*audits: FairnessAudit) -> FairnessAudit:
    """One audit holding the rows and metrics of several prediction sets."""
    table = pd.concat([audit.table for audit in audits], ignore_index=True)
    metrics = {name: value for audit in audits for name, value in audit.metrics.items()}
    return FairnessAudit(table=table, metrics=metrics)


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
