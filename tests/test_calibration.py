"""Calibration inside the fitted artifact: better Brier on held-out data, one pipeline, loadable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import brier_score_loss

from credit_risk.config import Settings
from credit_risk.data import read_applicants, split_dataset
from credit_risk.model import build_pipeline, classifier_importances
from tests.conftest import DATA, FAST_PARAMS


@pytest.fixture(scope="module")
def split() -> tuple[Any, Any, Any, Any]:
    return split_dataset(read_applicants(DATA), test_size=0.3, seed=7)


def test_calibration_improves_brier_on_held_out_data(split: tuple[Any, Any, Any, Any]) -> None:
    x_train, x_test, y_train, y_test = split
    brier = {}
    for method in ("none", "sigmoid"):
        pipeline = build_pipeline({**FAST_PARAMS, "calibration": method}, seed=7, n_jobs=1)
        pipeline.fit(x_train, y_train.to_numpy())
        brier[method] = brier_score_loss(y_test, pipeline.predict_proba(x_test)[:, 1])
    assert brier["sigmoid"] < brier["none"] - 0.005, brier


def test_calibrated_probabilities_match_the_bad_rate(split: tuple[Any, Any, Any, Any]) -> None:
    # Undersampled forests centre their scores near 0.5; calibrated ones near the 30 % bad rate.
    x_train, x_test, y_train, _ = split
    raw = build_pipeline({**FAST_PARAMS, "calibration": "none"}, seed=7, n_jobs=1)
    calibrated = build_pipeline({**FAST_PARAMS, "calibration": "sigmoid"}, seed=7, n_jobs=1)
    for pipeline in (raw, calibrated):
        pipeline.fit(x_train, y_train.to_numpy())
    assert raw.predict_proba(x_test)[:, 1].mean() > 0.4
    assert abs(calibrated.predict_proba(x_test)[:, 1].mean() - y_train.mean()) < 0.05


def test_importances_average_over_calibrated_forests(split: tuple[Any, Any, Any, Any]) -> None:
    x_train, _, y_train, _ = split
    pipeline = build_pipeline({**FAST_PARAMS, "calibration": "isotonic"}, seed=7, n_jobs=1)
    pipeline.fit(x_train, y_train.to_numpy())
    importances = classifier_importances(pipeline.named_steps["classifier"])
    names = pipeline.named_steps["encode"].get_feature_names_out()
    assert importances.shape == (len(names),)
    assert np.isclose(importances.sum(), 1.0)


def test_unknown_calibration_method_is_refused() -> None:
    with pytest.raises(ValueError, match="calibration"):
        build_pipeline({"calibration": "platt"}, seed=1)


def test_exported_champion_is_calibrated_and_loads_with_skops(
    trained: tuple[Settings, Any], model_dir: Path
) -> None:
    from credit_risk.registry import load_exported

    pipeline, metadata = load_exported(model_dir)
    assert isinstance(pipeline.named_steps["classifier"], CalibratedClassifierCV)
    assert metadata["params"]["calibration"] == "sigmoid"  # Settings.calibration's default
    assert 0.0 < metadata["threshold"] < 1.0


@pytest.mark.parametrize("method", ["none", "sigmoid", "isotonic"])
def test_every_calibration_method_loads_with_the_trusted_types(
    split: tuple[Any, Any, Any, Any], method: str, tmp_path: Path
) -> None:
    import skops.io

    from credit_risk.model import SKOPS_TRUSTED_TYPES

    x_train, x_test, y_train, _ = split
    pipeline = build_pipeline({"n_estimators": 10, "calibration": method}, seed=1, n_jobs=1)
    pipeline.fit(x_train, y_train.to_numpy())
    path = tmp_path / "model.skops"
    skops.io.dump(pipeline, path)
    untrusted = set(skops.io.get_untrusted_types(file=path)) - set(SKOPS_TRUSTED_TYPES)
    assert not untrusted
    loaded = skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)
    np.testing.assert_allclose(loaded.predict_proba(x_test), pipeline.predict_proba(x_test))
