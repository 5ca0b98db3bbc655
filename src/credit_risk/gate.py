"""The promotion gate: the challenger replaces the champion only on rows neither trained on.

Two protocols, each comparing the two models applicant by applicant on the same rows:

- **Out of time** (decides when there are ``Settings.gate_min_rows`` such rows): the two fitted
  models, at their own thresholds, on the labelled decisions (logged inputs with realised
  outcomes) decided after the newest labelled decision either model trained on.
- **Paired cross-validation of the recipes** (otherwise): every row of this run's data is scored
  out of fold by both recipes (the champion's and the challenger's parameters, inputs and
  threshold), each refitted on the same training folds, ``gate_cv_folds`` x
  ``gate_cv_repeats``; identical rows share a fold. No row is scored by a model fitted on it,
  and no row is locked away from training (1000 rows is little to set aside).

Before comparing, the gate checks by row hash (:mod:`credit_risk.fingerprint`) that no
evaluation row is among the rows either model (out of time) or either fold's refit (cross-
validation) trained on, and refuses to compare, saying why, when one is. It decides by a paired
bootstrap over applicants of the improvement in the objective (cost per applicant by default):
promotion only when the whole ``gate_confidence`` interval lies above ``gate_margin``. The
fairness limits of the settings bind both models on the same rows.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from credit_risk.config import Family, Objective, ProtectedPolicy, Settings
from credit_risk.evaluate import CostMatrix, costs_of, expected_cost
from credit_risk.fingerprint import (
    StoredFingerprint,
    load_fingerprint,
    overlap,
    quiet_downloads,
    redact_url,
    row_hashes,
)
from credit_risk.registry import FAMILY_TAG, THRESHOLD_TAG, champion_version
from credit_risk.schema import FEATURE_NAMES
from credit_risk.training_data import RunData, load_run_data, log_exists, read_labelled

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

RECIPE_FILE = "recipe.json"
EVIDENCE_FILE = "gate/evidence.json"
OUT_OF_TIME = "out_of_time"
PAIRED_CV = "paired_cv"

# The metric the gate compares, per objective, and whether higher is better.
GATE_METRIC: dict[Objective, tuple[str, bool]] = {
    Objective.COST: ("cost", False),
    Objective.RECALL: ("recall_bad", True),
    Objective.AUC: ("roc_auc", True),
}
# Run parameters that are not part of a recipe (runs logged before recipe.json existed).
_RUN_ONLY_PARAMS = frozenset(
    {
        "seed",
        "objective",
        "threshold_rule",
        "search_objective",
        "cv_folds",
        "test_size",
        "trials",
        "protected_policy",
        "cost_bad_accepted",
        "cost_good_rejected",
        "family",
        "train_with_outcomes",
    }
)
# Bootstrap draws held in memory at once: resamples x rows.
_DRAW_BLOCK = 2_000_000


class GateRefused(Exception):
    """The evaluation rows overlap rows a compared model trained on: no comparison is made."""


@dataclass(frozen=True)
class Recipe:
    """How a version was made, enough to refit it: family, parameters, inputs, threshold."""

    params: dict[str, Any]
    protected_policy: ProtectedPolicy
    threshold: float
    family: Family = Family.FOREST

    def same_as(self, other: Recipe) -> bool:
        return (
            self.family is other.family
            and self.params == other.params
            and self.protected_policy is other.protected_policy
            and math.isclose(self.threshold, other.threshold, rel_tol=0, abs_tol=1e-12)
        )

    def build(self, settings: Settings) -> Any:
        """An unfitted model of this recipe (the run's seed and cores)."""
        from credit_risk.model import build_model

        own = settings.model_copy(
            update={"family": self.family, "protected_policy": self.protected_policy}
        )
        return build_model(own, self.params)


@dataclass(frozen=True)
class Contender:
    """A registered version in the gate: its recipe and, when recorded, its data fingerprint."""

    version: str
    run_id: str | None
    recipe: Recipe
    fingerprint: StoredFingerprint | None


def recipe_record(params: dict[str, Any], settings: Settings, threshold: float) -> dict[str, Any]:
    """What a run logs as ``recipe.json``."""
    return {
        "family": settings.family.value,
        "params": params,
        "protected_policy": settings.protected_policy.value,
        "threshold": threshold,
    }


def _parse_param(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return {"True": True, "False": False, "None": None}.get(value, value)


def recipe_of(client: MlflowClient, version: ModelVersion) -> Recipe:
    """The version's recipe: its run's ``recipe.json``, else (older runs) its run parameters."""
    threshold = float(version.tags.get(THRESHOLD_TAG, 0.5))
    run_id = version.run_id
    if run_id and RECIPE_FILE in {a.path for a in client.list_artifacts(run_id)}:
        with tempfile.TemporaryDirectory() as folder, quiet_downloads():
            stored = json.loads(
                Path(client.download_artifacts(run_id, RECIPE_FILE, folder)).read_text()
            )
        return Recipe(
            params=dict(stored["params"]),
            protected_policy=ProtectedPolicy(stored["protected_policy"]),
            threshold=float(stored.get("threshold", threshold)),
            family=Family(stored.get("family", version.tags.get(FAMILY_TAG, Family.FOREST.value))),
        )
    logged = client.get_run(run_id).data.params if run_id else {}
    params = {k: _parse_param(v) for k, v in logged.items() if k not in _RUN_ONLY_PARAMS}
    # Runs from before the protected-attribute policy kept every attribute as an input.
    policy = ProtectedPolicy(logged.get("protected_policy", ProtectedPolicy.INCLUDE.value))
    family = Family(logged.get("family", version.tags.get(FAMILY_TAG, Family.FOREST.value)))
    return Recipe(params=params, protected_policy=policy, threshold=threshold, family=family)


def contender(client: MlflowClient, version: ModelVersion) -> Contender:
    return Contender(
        version=str(version.version),
        run_id=version.run_id,
        recipe=recipe_of(client, version),
        fingerprint=load_fingerprint(client, version.run_id),
    )


@dataclass(frozen=True)
class Comparison:
    """Both models scored on the same rows: the metric and the paired bootstrap interval.

    ``improvement`` is how much better the challenger is in the objective's metric (lower cost,
    higher recall or ROC AUC), positive when it is better; ``low``/``high`` bound it.
    """

    protocol: str
    metric: str
    rows: int
    champion: float
    challenger: float
    improvement: float
    low: float
    high: float
    # Evaluation rows found among each model's (or fold refit's) training rows.
    overlap: dict[str, int]
    design: str


# --- paired bootstrap ---------------------------------------------------------------------


def _draw_blocks(rows: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap row draws (resamples x rows), in blocks that bound the memory used."""
    rng = np.random.default_rng(seed)
    block = max(1, _DRAW_BLOCK // max(rows, 1))
    done = 0
    while done < resamples:
        size = min(block, resamples - done)
        yield rng.integers(0, rows, size=(size, rows))
        done += size


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def paired_ratio_bootstrap(
    numerator: np.ndarray, denominator: np.ndarray, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of ``sum(numerator) / sum(denominator)`` over resampled applicants.

    The paired differences of a mean (cost: numerator the per-applicant difference,
    denominator 1) or of a rate over a subgroup (recall: the difference among bad applicants).
    """
    values = []
    for draws in _draw_blocks(len(numerator), resamples, seed):
        denominators = denominator[draws].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values.append(numerator[draws].sum(axis=1) / denominators)
    stacked = np.concatenate(values)
    return _interval(stacked[np.isfinite(stacked)], confidence)


def paired_statistic_bootstrap(
    statistic: Callable[[np.ndarray], float],
    rows: int,
    resamples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """Percentile interval of any paired statistic of resampled applicants (e.g. ROC AUC)."""
    values = []
    for draws in _draw_blocks(rows, resamples, seed):
        for draw in draws:
            value = statistic(draw)
            if np.isfinite(value):
                values.append(value)
    return _interval(np.asarray(values), confidence)


def metric_value(
    metric: str, y: np.ndarray, probability: np.ndarray, threshold: float, costs: CostMatrix
) -> float:
    """The gate's metric of one set of predictions (NaN when it is undefined on these rows:
    recall without a bad applicant, ROC AUC with one class)."""
    rejected = probability >= threshold
    if metric == "cost":
        return expected_cost(y, rejected, costs)
    if metric == "recall_bad":
        return float(rejected[y == 1].mean()) if (y == 1).any() else float("nan")
    if y.min() == y.max():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, probability))


def compare_predictions(
    protocol: str,
    metric: str,
    y: np.ndarray,
    champion_probability: np.ndarray,
    challenger_probability: np.ndarray,
    thresholds: tuple[float, float],
    costs: CostMatrix,
    settings: Settings,
    overlaps: dict[str, int],
    design: str,
) -> Comparison:
    """Compare two models' predictions of the same applicants, paired.

    Args:
        y: 1 bad, 0 good, per applicant.
        champion_probability, challenger_probability: probabilities of bad, shape
            ``(repeats, applicants)`` (one row per cross-validation repeat; one row out of time).
        thresholds: the champion's and the challenger's.
    """
    y = np.asarray(y).astype(int)
    champ = np.atleast_2d(champion_probability)
    chall = np.atleast_2d(challenger_probability)
    champ_rejected = (champ >= thresholds[0]).mean(axis=0)
    chall_rejected = (chall >= thresholds[1]).mean(axis=0)
    resamples, confidence, seed = settings.gate_resamples, settings.gate_confidence, settings.seed

    def pooled(probability: np.ndarray, threshold: float) -> float:
        values = [metric_value(metric, y, p, threshold, costs) for p in probability]
        return float(np.mean(values))

    champion_value, challenger_value = pooled(champ, thresholds[0]), pooled(chall, thresholds[1])
    if metric == "cost":
        # Expected cost per applicant over the repeats: 5 for a bad one accepted, 1 for a good
        # one rejected (german.doc), so the improvement is the champion's minus the challenger's.
        def cost(rejected: np.ndarray) -> np.ndarray:
            return np.where(
                y == 1, costs.bad_accepted * (1 - rejected), costs.good_rejected * rejected
            )

        difference = cost(champ_rejected) - cost(chall_rejected)
        interval = paired_ratio_bootstrap(
            difference, np.ones_like(difference), resamples, confidence, seed
        )
    elif metric == "recall_bad":
        difference = (chall_rejected - champ_rejected) * y
        interval = paired_ratio_bootstrap(difference, y.astype(float), resamples, confidence, seed)
    else:
        from sklearn.metrics import roc_auc_score

        def auc_gain(draw: np.ndarray) -> float:
            if y[draw].min() == y[draw].max():
                return float("nan")
            gains = [
                roc_auc_score(y[draw], b[draw]) - roc_auc_score(y[draw], a[draw])
                for a, b in zip(champ, chall, strict=True)
            ]
            return float(np.mean(gains))

        interval = paired_statistic_bootstrap(auc_gain, len(y), resamples, confidence, seed)
    higher_is_better = metric != "cost"
    improvement = (
        challenger_value - champion_value if higher_is_better else champion_value - challenger_value
    )
    return Comparison(
        protocol=protocol,
        metric=metric,
        rows=len(y),
        champion=champion_value,
        challenger=challenger_value,
        improvement=float(improvement),
        low=interval[0],
        high=interval[1],
        overlap=overlaps,
        design=design,
    )


# --- the two protocols --------------------------------------------------------------------


def gate_folds(data: RunData, settings: Settings) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds of every row, ``gate_cv_repeats`` times; identical rows share a fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = data.is_bad.to_numpy()
    folds = []
    for repeat in range(settings.gate_cv_repeats):
        splitter = StratifiedGroupKFold(
            n_splits=settings.gate_cv_folds, shuffle=True, random_state=settings.seed + repeat
        )
        folds.extend(splitter.split(data.features, y, groups=data.hashes))
    return folds


def fold_overlap(data: RunData, folds: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """Scored rows that the same fold's refits trained on (by row hash), over all folds."""
    total = 0
    for train, test in folds:
        trained = frozenset(data.hashes[train])
        total += overlap(data.hashes[test], trained)
    return total


@dataclass(frozen=True)
class Scored:
    """A comparison and the two models' probabilities behind it (repeats x applicants)."""

    comparison: Comparison
    champion: np.ndarray
    challenger: np.ndarray

    def mean_probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """Each applicant's probability of bad averaged over the repeats, per model."""
        return self.champion.mean(axis=0), self.challenger.mean(axis=0)


def paired_cv(
    settings: Settings, data: RunData, champion: Contender, challenger: Contender
) -> Scored:
    """Both recipes refitted on the same folds; every row scored out of fold by each.

    Raises:
        GateRefused: a scored row is among its fold's training rows.
    """
    metric, _ = GATE_METRIC[settings.objective]
    folds = gate_folds(data, settings)
    overlapping = fold_overlap(data, folds)
    rows = len(data.hashes)
    design = (
        f"{settings.gate_cv_folds}-fold x {settings.gate_cv_repeats} paired cross-validation "
        f"of the two recipes on the run's {rows} rows"
    )
    if overlapping:
        raise GateRefused(
            f"refused to compare: {overlapping} scored rows were in their fold's training rows "
            f"({design})"
        )
    repeats = settings.gate_cv_repeats
    probability = {
        "champion": np.full((repeats, rows), np.nan),
        "challenger": np.full((repeats, rows), np.nan),
    }
    x, y = data.features, data.is_bad.to_numpy()
    recipes = {"champion": champion.recipe, "challenger": challenger.recipe}
    for index, (train, test) in enumerate(folds):
        repeat = index // settings.gate_cv_folds
        for role, recipe in recipes.items():
            pipeline = recipe.build(settings)
            pipeline.fit(x.iloc[train], y[train])
            probability[role][repeat, test] = pipeline.predict_proba(x.iloc[test])[:, 1]
    comparison = compare_predictions(
        PAIRED_CV,
        metric,
        y,
        probability["champion"],
        probability["challenger"],
        (champion.recipe.threshold, challenger.recipe.threshold),
        costs_of(settings),
        settings,
        {"folds": overlapping},
        design,
    )
    return Scored(comparison, probability["champion"], probability["challenger"])


@dataclass(frozen=True)
class OutOfTimeRows:
    """Labelled decisions newer than both models' training data, and why there may be none."""

    features: pd.DataFrame
    is_bad: np.ndarray
    after: str | None
    note: str


def _no_rows(note: str) -> OutOfTimeRows:
    return OutOfTimeRows(pd.DataFrame(columns=list(FEATURE_NAMES)), np.zeros(0, int), None, note)


def out_of_time_rows(
    settings: Settings, champion: Contender, challenger: Contender
) -> OutOfTimeRows:
    """The out-of-time rows, checked against both models' training rows.

    Returns:
        The rows (possibly none or too few) and a note saying what they are, or why there are
        none (no decision log, or a version without a fingerprint: its training rows unknown).

    Raises:
        GateRefused: some of them are among either model's training rows.
    """
    if champion.fingerprint is None or challenger.fingerprint is None:
        unknown = [f"v{c.version}" for c in (champion, challenger) if c.fingerprint is None]
        return _no_rows(
            f"{' and '.join(unknown)} recorded no data fingerprint (trained before "
            "fingerprints), so no row can be shown to be out of its sample"
        )
    if not log_exists(settings.decision_log_url):
        return _no_rows(f"no decision log at {redact_url(settings.decision_log_url)}")
    labelled = read_labelled(settings)
    untils = [
        f.summary.labelled_trained_until
        for f in (champion.fingerprint, challenger.fingerprint)
        if f.summary.labelled_trained_until
    ]
    after = max(untils, key=pd.Timestamp) if untils else None
    newer = (
        (labelled.decided_at > pd.Timestamp(after)).to_numpy()
        if after
        else np.ones(len(labelled.decided_at), dtype=bool)
    )
    hashes = row_hashes(labelled.features, labelled.is_bad)[newer]
    overlaps = {
        f"champion v{champion.version}": overlap(hashes, champion.fingerprint.rows.trained),
        f"challenger v{challenger.version}": overlap(hashes, challenger.fingerprint.rows.trained),
    }
    found = {who: count for who, count in overlaps.items() if count}
    if found:
        raise GateRefused(
            f"refused to compare: of the {len(hashes)} labelled decisions newer than both "
            "models' training data, "
            + " and ".join(
                f"{count} are among {who}'s training rows" for who, count in found.items()
            )
            + " (the same applicant with the same outcome): they are not out of sample"
        )
    since = f" decided after {after}" if after else ""
    return OutOfTimeRows(
        features=labelled.features[newer].reset_index(drop=True),
        is_bad=labelled.is_bad.to_numpy()[newer],
        after=after,
        note=f"{len(hashes)} labelled decisions{since}, in neither model's training rows",
    )


def out_of_time(
    settings: Settings, rows: OutOfTimeRows, champion: Contender, challenger: Contender
) -> Scored:
    """The two fitted models, at their own thresholds, on the out-of-time rows."""
    import mlflow.sklearn

    metric, _ = GATE_METRIC[settings.objective]
    name = settings.registered_model_name
    with quiet_downloads():
        models = [
            mlflow.sklearn.load_model(f"models:/{name}/{who.version}")
            for who in (champion, challenger)
        ]
    champ, chall = (model.predict_proba(rows.features)[:, 1].reshape(1, -1) for model in models)
    comparison = compare_predictions(
        OUT_OF_TIME,
        metric,
        rows.is_bad,
        champ,
        chall,
        (champion.recipe.threshold, challenger.recipe.threshold),
        costs_of(settings),
        settings,
        {f"champion v{champion.version}": 0, f"challenger v{challenger.version}": 0},
        f"the fitted models on {rows.note}",
    )
    return Scored(comparison, champ, chall)


# --- the decision -------------------------------------------------------------------------


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
