"""What the gate compares: a registered version's recipe (family, parameters, inputs,
threshold), enough to refit it, and the gate's constants."""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_risk.config import Family, Objective, ProtectedPolicy, Settings
from credit_risk.fingerprint import (
    StoredFingerprint,
    load_fingerprint,
    quiet_downloads,
)
from credit_risk.registry import FAMILY_TAG, THRESHOLD_TAG

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
