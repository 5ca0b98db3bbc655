"""The gate's decision: promote only when the whole interval lies above the margin and the
fairness limits hold; the evidence recorded with the version and the run."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from credit_risk.config import Settings
from credit_risk.gate.protocols import Scored, out_of_time, out_of_time_rows, paired_cv
from credit_risk.gate.recipe import EVIDENCE_FILE, Contender, GateRefused, contender
from credit_risk.gate.statistics import Comparison
from credit_risk.registry import champion_version
from credit_risk.training_data import load_run_data

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)


def _units(metric: str) -> str:
    return {"cost": "cost per applicant", "recall_bad": "recall of bad", "roc_auc": "ROC AUC"}[
        metric
    ]


def evidence_text(comparison: Comparison, settings: Settings) -> str:
    """One line a validator can read: protocol, rows, values, interval, margin."""
    level = f"{settings.gate_confidence:.0%}"
    overlaps = ", ".join(f"{k} {v}" for k, v in comparison.overlap.items())
    return (
        f"{comparison.design}: champion {comparison.metric}={comparison.champion:.4f}, "
        f"challenger {comparison.metric}={comparison.challenger:.4f}; improvement "
        f"{comparison.improvement:+.4f}, {level} paired bootstrap interval "
        f"[{comparison.low:+.4f}, {comparison.high:+.4f}] over {comparison.rows} applicants "
        f"({settings.gate_resamples} resamples), margin {settings.gate_margin:.4f}; "
        f"rows overlapping training rows: {overlaps}"
    )


def decide(
    comparison: Comparison,
    settings: Settings,
    champion_fails: list[str] | None = None,
    challenger_fails: list[str] | None = None,
) -> tuple[bool, str]:
    """Promote only when the interval of the improvement lies wholly above the margin.

    Fairness limits bind both models on the compared rows: a challenger that breaks one stays
    out; a champion that breaks one the challenger meets is replaced unless the challenger is
    worse (its interval wholly below zero).
    """
    units = _units(comparison.metric)
    level = f"{settings.gate_confidence:.0%}"
    if challenger_fails:
        return (
            False,
            "champion kept: the challenger breaks fairness limits on the compared rows: "
            + "; ".join(challenger_fails),
        )
    if champion_fails:
        if comparison.high < 0:
            return False, (
                "champion kept although it breaks fairness limits on the compared rows ("
                + "; ".join(champion_fails)
                + f"): the challenger, which meets them, is worse in {units}"
            )
        return True, (
            "promoted: the champion breaks fairness limits on the compared rows ("
            + "; ".join(champion_fails)
            + f"), the challenger meets them and is not worse in {units}"
        )
    if comparison.low > settings.gate_margin:
        return True, (
            f"promoted: the challenger is better in {units} by {comparison.improvement:+.4f}, "
            f"{level} interval [{comparison.low:+.4f}, {comparison.high:+.4f}] above the margin "
            f"{settings.gate_margin:.4f}"
        )
    if comparison.low == comparison.high == comparison.improvement == 0:
        relation = "ties with the champion"
    elif comparison.improvement > 0:
        relation = "is not better with enough confidence"
    else:
        relation = "is worse or not better"
    return False, (
        f"champion kept: the challenger {relation} in {units} (improvement "
        f"{comparison.improvement:+.4f}, {level} interval [{comparison.low:+.4f}, "
        f"{comparison.high:+.4f}], margin {settings.gate_margin:.4f})"
    )


def fairness_fails(
    settings: Settings, x: pd.DataFrame, y: np.ndarray, probability: np.ndarray, threshold: float
) -> list[str]:
    """The settings' fairness limits these predictions break (the gate's rows, ``gate``)."""
    if (
        settings.fairness_min_disparate_impact is None
        and settings.fairness_max_equalized_odds_difference is None
    ):
        return []
    from credit_risk.fairness import audit_predictions

    audit = audit_predictions(
        "gate",
        x,
        y,
        probability,
        threshold,
        min_group_size=settings.fairness_min_group_size,
        resamples=0,
    )
    return audit.judge_limits(
        settings.fairness_min_disparate_impact,
        settings.fairness_max_equalized_odds_difference,
        split="gate",
        min_group_size=settings.fairness_min_group_size,
    ).failed


@dataclass
class GateReport:
    """What the gate did: the decision, the comparison behind it and notes on the way."""

    promote: bool
    reason: str
    champion_version: str | None
    comparison: Comparison | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def evidence(self, settings: Settings) -> dict[str, Any]:
        """The evidence as plain JSON (MLflow artifact, ``metadata.json`` under ``gate``)."""
        return {
            "promote": self.promote,
            "reason": self.reason,
            "champion_version": self.champion_version,
            "comparison": asdict(self.comparison) if self.comparison else None,
            "confidence": settings.gate_confidence,
            "margin": settings.gate_margin,
            "resamples": settings.gate_resamples,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
            "summary": evidence_text(self.comparison, settings) if self.comparison else None,
        }


def _decide_scored(
    settings: Settings,
    scored: Scored,
    rows: tuple[pd.DataFrame, np.ndarray],
    champion: Contender,
    challenger: Contender,
) -> tuple[bool, str]:
    """The decision on a comparison, with the fairness limits judged for both models."""
    x, y = rows
    champ, chall = scored.mean_probabilities()
    return decide(
        scored.comparison,
        settings,
        champion_fails=fairness_fails(settings, x, y, champ, champion.recipe.threshold),
        challenger_fails=fairness_fails(settings, x, y, chall, challenger.recipe.threshold),
    )


def run_gate(
    settings: Settings,
    client: MlflowClient,
    challenger_version: str,
    limits_failed: list[str] | None = None,
) -> GateReport:
    """Compare the registered challenger with the champion and decide (the alias is not moved).

    Args:
        settings: the run's settings (pinned ``outcomes_until``), objective, gate settings.
        client: the MLflow client of the registry.
        challenger_version: the version just registered.
        limits_failed: limits the challenger's own run broke (its fairness audit).
    """
    started = time.perf_counter()
    name = settings.registered_model_name
    current = champion_version(client, name, settings.champion_alias)
    champion_number = str(current.version) if current is not None else None

    def report(promote: bool, reason: str, **extra: Any) -> GateReport:
        done = GateReport(promote, reason, champion_number, **extra)
        done.seconds = time.perf_counter() - started
        return done

    if limits_failed:
        return report(False, "challenger fails gate limits: " + "; ".join(limits_failed))
    if current is None:
        return report(True, "no champion yet")
    champion = contender(client, current)
    challenger = contender(client, client.get_model_version(name, challenger_version))
    notes: list[str] = []
    try:
        rows = out_of_time_rows(settings, champion, challenger)
    except GateRefused as refused:
        return report(False, f"champion kept: {refused}")
    if len(rows.is_bad) < settings.gate_min_rows:
        fewer = f", fewer than {settings.gate_min_rows}" if len(rows.is_bad) else ""
        notes.append(f"out of time: {rows.note}{fewer}; the paired cross-validation decides")
    else:
        scored = out_of_time(settings, rows, champion, challenger)
        promote, reason = _decide_scored(
            settings, scored, (rows.features, rows.is_bad), champion, challenger
        )
        return report(promote, reason, comparison=scored.comparison, notes=notes)
    if champion.recipe.same_as(challenger.recipe):
        return report(
            False,
            "champion kept: the challenger's recipe is the champion's (same parameters, inputs "
            "and threshold), so refitted on the same folds it ties with the champion",
            notes=notes,
        )
    data = load_run_data(settings)
    try:
        scored = paired_cv(settings, data, champion, challenger)
    except GateRefused as refused:
        return report(False, f"champion kept: {refused}", notes=notes)
    promote, reason = _decide_scored(
        settings, scored, (data.features, data.is_bad.to_numpy()), champion, challenger
    )
    return report(promote, reason, comparison=scored.comparison, notes=notes)


def evidence_tags(report: GateReport, settings: Settings) -> dict[str, str]:
    """The gate's evidence as registry version tags (and run tags)."""
    tags = {
        "gate_decision": "promoted" if report.promote else "kept",
        "gate_reason": report.reason,
        "gate_champion_version": report.champion_version or "none",
        "gate_margin": f"{settings.gate_margin:g}",
        "gate_confidence": f"{settings.gate_confidence:g}",
    }
    comparison = report.comparison
    if comparison is not None:
        overlapping = sum(comparison.overlap.values())
        tags.update(
            {
                "gate_protocol": comparison.protocol,
                "gate_rows": str(comparison.rows),
                "gate_metric": comparison.metric,
                "gate_improvement": f"{comparison.improvement:+.4f}",
                "gate_interval": f"[{comparison.low:+.4f}, {comparison.high:+.4f}]",
                "gate_overlap_check": (
                    f"{overlapping} of {comparison.rows} compared rows among training rows "
                    f"({', '.join(f'{k} {v}' for k, v in comparison.overlap.items())})"
                ),
            }
        )
    return tags


def record_evidence(
    client: MlflowClient, settings: Settings, run_id: str, version: str, report: GateReport
) -> None:
    """The evidence to the challenger's MLflow run (params, metrics, tags, ``gate/evidence.json``)
    and to its registry version's tags."""
    name = settings.registered_model_name
    tags = evidence_tags(report, settings)
    client.set_tag(run_id, "promotion", report.reason)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(name, version, key, value)
    evidence = report.evidence(settings)
    client.log_text(run_id, json.dumps(evidence, indent=2), EVIDENCE_FILE)
    client.log_metric(run_id, "gate_seconds", report.seconds)
    comparison = report.comparison
    if comparison is None:
        return
    client.log_param(run_id, "gate_protocol", comparison.protocol)
    client.log_param(run_id, "gate_margin", settings.gate_margin)
    client.log_param(run_id, "gate_confidence", settings.gate_confidence)
    client.log_param(run_id, "gate_resamples", settings.gate_resamples)
    for metric, number in {
        "gate_rows": comparison.rows,
        "gate_improvement": comparison.improvement,
        "gate_interval_low": comparison.low,
        "gate_interval_high": comparison.high,
        f"gate_champion_{comparison.metric}": comparison.champion,
        f"gate_challenger_{comparison.metric}": comparison.challenger,
        "gate_overlap_rows": sum(comparison.overlap.values()),
    }.items():
        client.log_metric(run_id, metric, float(number))
