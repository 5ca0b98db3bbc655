"""The gate's two protocols: out of time (labelled decisions after both models' training rows)
and paired cross-validation of the two recipes, each refusing rows a model trained on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from credit_risk.config import Settings
from credit_risk.evaluate import costs_of
from credit_risk.fingerprint import (
    overlap,
    quiet_downloads,
    redact_url,
    row_hashes,
)
from credit_risk.gate.recipe import (
    GATE_METRIC,
    OUT_OF_TIME,
    PAIRED_CV,
    Contender,
    GateRefused,
)
from credit_risk.gate.statistics import Comparison, compare_predictions
from credit_risk.schema import FEATURE_NAMES
from credit_risk.training_data import RunData, log_exists, read_labelled

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


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
