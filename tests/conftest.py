"""Shared fixtures: settings pointing at temporary stores, and one small trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.config import Family, Settings, get_settings
from credit_risk.data import read_applicants
from credit_risk.scoring import Scorer

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "raw" / "german.data"

# Small, fixed hyperparameters so fixtures train in seconds (no search).
FAST_PARAMS: dict[str, Any] = {
    "n_estimators": 60,
    "max_depth": 8,
    "min_samples_leaf": 3,
    "max_features": 0.4,
}


def make_settings(folder: Path, **overrides: Any) -> Settings:
    """Settings whose MLflow store, artifacts and export live under ``folder``."""
    values: dict[str, Any] = {
        "data_path": DATA,
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "artifact_location": str(folder / "mlruns"),
        "model_dir": folder / "models" / "champion",
        # The gate reads the decision log for out-of-time rows: never the working folder's.
        "decision_log_url": f"sqlite:///{folder / 'decisions.db'}",
        "trials": 3,
        # The shared fixtures are forests (FAST_PARAMS); scorecard tests ask for their family.
        "family": Family.FOREST,
    }
    values.update(overrides)
    return get_settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Any]:
    """One model trained with FAST_PARAMS into a session-wide temporary MLflow store.

    Returns ``(settings, TrainingResult)``; the champion is exported to ``settings.model_dir``.
    """
    from credit_risk.train import train

    folder = tmp_path_factory.mktemp("trained")
    settings = make_settings(folder)
    result = train(settings, params=FAST_PARAMS)
    return settings, result


@pytest.fixture(scope="session")
def model_dir(trained: tuple[Settings, Any]) -> Path:
    """Folder of the exported champion trained by the ``trained`` fixture."""
    return trained[0].model_dir


@pytest.fixture(scope="session")
def scorer(model_dir: Path) -> Scorer:
    """The scorer every test shares: the fixture model, loaded as the service loads it."""
    return Scorer.from_folder(model_dir)


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    """The 1000 shipped applicants (a fresh frame per module: tests may not share edits)."""
    return read_applicants(DATA).features


@pytest.fixture(scope="session")
def shipped() -> tuple[pd.DataFrame, np.ndarray]:
    """The 1000 shipped applicants and their labels (1 = bad), shared: copy before editing."""
    dataset = read_applicants(DATA)
    assert dataset.target is not None
    return dataset.features, dataset.target.to_numpy()


@pytest.fixture(scope="session")
def champion_and_challenger(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Settings, Path, Path]:
    """Two training runs into one store of their own: v1 is promoted (no champion yet); v2,
    the same recipe, ties and is kept by the gate, so it takes the challenger alias and is
    exported beside the champion. Each run also exports a copy tests may take and change.

    Returns ``(settings, copy of v1, copy of v2)``.
    """
    from credit_risk.train import train

    folder = tmp_path_factory.mktemp("two-versions")
    settings = make_settings(folder)
    first = train(settings, params=FAST_PARAMS, output=folder / "copies" / "v1")
    second = train(settings, params=FAST_PARAMS, output=folder / "copies" / "v2")
    assert (first.version, first.gate.promote) == ("1", True)
    assert (second.version, second.gate.promote) == ("2", False), second.gate.reason
    return settings, folder / "copies" / "v1", folder / "copies" / "v2"
