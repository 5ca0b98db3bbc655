"""The fair promotion gate: rows neither model trained on, a paired interval, refusal on overlap."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from credit_risk.config import ProtectedPolicy, Settings
from credit_risk.evaluate import CostMatrix
from credit_risk.gate import (
    Contender,
    GateRefused,
    Recipe,
    compare_predictions,
    fold_overlap,
    gate_folds,
    paired_cv,
    paired_ratio_bootstrap,
)
from credit_risk.gate import protocols as gate_protocols
from credit_risk.registry import read_metadata
from credit_risk.train import result_summary, train
from credit_risk.training_data import RunData, check_new_data, load_run_data
from tests.conftest import FAST_PARAMS, make_settings
from tests.labelled_log import log_labelled, log_shipped, write_base_file

OTHER_PARAMS = {**FAST_PARAMS, "max_depth": 6}
# Decisions an hour apart from here; outcomes observed 30 days after each.
START = datetime.now(UTC) - timedelta(days=400)


def test_identical_predictions_tie_exactly(settings: Settings) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    probability = rng.random((2, 300))
    result = compare_predictions(
        "paired_cv", "cost", y, probability, probability, (1 / 6, 1 / 6), CostMatrix(),
        settings, {"folds": 0}, "test",
    )  # fmt: skip
    assert (result.improvement, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.champion == result.challenger


def test_paired_bootstrap_interval_has_its_stated_width() -> None:
    rng = np.random.default_rng(1)
    difference = rng.normal(0.1, 1.0, 4000)
    low, high = paired_ratio_bootstrap(difference, np.ones(4000), 2000, 0.95, seed=2)
    mean, half = difference.mean(), 1.96 * difference.std() / np.sqrt(4000)
    assert low < mean < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert low == pytest.approx(mean - half, abs=0.01)


def test_cv_folds_keep_identical_rows_together_and_never_score_a_trained_row(
    tmp_path: Path,
) -> None:
    # 50 rows of the base file arrive again as labelled decisions: identical rows.
    url = log_shipped(tmp_path, slice(0, 50), START)
    settings = make_settings(tmp_path, decision_log_url=url, train_with_outcomes=True)
    data = load_run_data(settings)
    folds = gate_folds(data, settings)
    assert len(folds) == settings.gate_cv_folds * settings.gate_cv_repeats
    assert fold_overlap(data, folds) == 0
    for _, test in folds:
        scored = set(test)
        assert all((i in scored) == (1000 + i in scored) for i in range(50))


def test_gate_refuses_folds_that_score_a_row_their_refit_trained_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    data = load_run_data(settings)
    real = gate_protocols.gate_folds

    def leaky(data_: RunData, settings_: Settings) -> list[tuple[np.ndarray, np.ndarray]]:
        train, test = real(data_, settings_)[0]
        return [(np.concatenate([train, test[:3]]), test)]

    monkeypatch.setattr(gate_protocols, "gate_folds", leaky)
    recipe = Recipe(FAST_PARAMS, ProtectedPolicy.EXCLUDE, 1 / 6)
    other = Recipe(OTHER_PARAMS, ProtectedPolicy.EXCLUDE, 1 / 6)
    with pytest.raises(GateRefused, match="3 scored rows were in their fold's training rows"):
        paired_cv(
            settings, data, Contender("1", None, recipe, None), Contender("2", None, other, None)
        )


def test_gate_refuses_labelled_decisions_a_model_trained_on(tmp_path: Path) -> None:
    # german.data's first 300 applicants replayed through the service, their outcomes imported:
    # the champion trained on most of them, so they are not out of sample.
    url = log_shipped(tmp_path, slice(0, 300), START)
    settings = make_settings(tmp_path, decision_log_url=url, n_jobs=1)
    first = train(settings, params=FAST_PARAMS)
    second = train(settings, params=OTHER_PARAMS)
    assert first.gate.promote and not second.gate.promote
    assert "refused to compare" in second.gate.reason
    assert "among champion v1's training rows" in second.gate.reason
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version(settings.registered_model_name, second.version)
    assert version.tags["gate_decision"] == "kept"
    assert "refused to compare" in version.tags["gate_reason"]
    champion = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert str(champion.version) == first.version


@pytest.mark.slow
def test_out_of_time_decisions_decide_and_the_evidence_is_recorded(
    tmp_path: Path, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    features, is_bad = shipped
    base = write_base_file(tmp_path / "base.csv", slice(0, 550))
    url = log_shipped(tmp_path, slice(550, 950), START)
    settings = make_settings(tmp_path, data_path=base, decision_log_url=url, n_jobs=1)
    grown = settings.model_copy(update={"train_with_outcomes": True})
    first = train(settings, params=FAST_PARAMS)
    # Training on the same file again would learn nothing new; the log's decisions would.
    assert not check_new_data(settings).retrain
    assert "training with outcomes is off" in check_new_data(settings).reason
    before = check_new_data(grown)
    assert before.retrain and before.new_labelled_rows == 400

    second = train(grown, params=FAST_PARAMS, output=tmp_path / "challenger")
    evidence = second.gate.evidence
    assert evidence is not None
    comparison = evidence["comparison"]
    # The newest 100 labelled decisions were held out of v2's training; v1 trained on none.
    assert comparison["protocol"] == "out_of_time" and comparison["rows"] == 100
    assert comparison["overlap"] == {"champion v1": 0, "challenger v2": 0}
    assert second.gate.promote == (comparison["low"] > settings.gate_margin)
    assert comparison["low"] <= comparison["improvement"] <= comparison["high"]

    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version(settings.registered_model_name, second.version)
    assert version.tags["gate_protocol"] == "out_of_time" and version.tags["gate_rows"] == "100"
    assert version.tags["data_rows"] == "950"
    # Exported after a refit on every row of the base file (fit_rows all) and the 300 older
    # labelled decisions: the 100 out-of-time ones stay out.
    assert version.tags["data_trained_rows"] == str(550 + 300)
    assert "decision_log:sqlite" in version.tags["data_sources"]
    run = client.get_run(second.run_id)
    assert run.data.params["gate_protocol"] == "out_of_time"
    assert run.data.metrics["gate_rows"] == 100
    assert run.data.metrics["gate_interval_low"] == pytest.approx(comparison["low"])
    assert run.data.tags["gate_overlap_check"].startswith("0 of 100 compared rows")
    metadata = read_metadata(tmp_path / "challenger")
    assert metadata["fingerprint"]["rows"] == 950
    assert metadata["gate"]["comparison"]["protocol"] == "out_of_time"
    assert "out of time" not in " ".join(metadata["gate"]["notes"])
    summary = result_summary(second)
    assert "evidence: the fitted models on 100 labelled decisions decided after" in summary
    assert json.loads(json.dumps(evidence)) == evidence

    # Every labelled decision is now in the champion's rows or in the challenger's, which
    # tried them: nothing new to retrain on, until new outcomes arrive.
    assert not check_new_data(grown).retrain
    log_labelled(url, features.iloc[950:], is_bad[950:], START + timedelta(days=20), "new")
    after = check_new_data(grown)
    # New to the champion: the 50 newer decisions, and the 400 older ones if v1 was kept.
    assert after.retrain and after.new_labelled_rows == (50 if second.gate.promote else 450)
    assert first.version == "1"


def test_paired_cv_refits_each_recipe_in_its_own_family(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from credit_risk import model
    from credit_risk.config import Family
    from credit_risk.scorecard.family import scorecard_params

    settings = make_settings(tmp_path, gate_cv_folds=3, gate_cv_repeats=1, n_jobs=1)
    built: list[tuple[Family, ProtectedPolicy]] = []
    real = model.build_model

    def spy(settings_: Settings, params: dict[str, object]) -> object:
        built.append((settings_.family, settings_.protected_policy))
        return real(settings_, params)

    monkeypatch.setattr(model, "build_model", spy)
    scorecard = Recipe(
        scorecard_params(settings), ProtectedPolicy.EXCLUDE, 1 / 6, family=Family.SCORECARD
    )
    forest = Recipe(
        {**FAST_PARAMS, "calibration": "sigmoid", "calibration_folds": 3},
        ProtectedPolicy.INCLUDE,
        1 / 6,
    )
    scored = paired_cv(
        settings,
        load_run_data(settings),
        Contender("1", None, scorecard, None),
        Contender("2", None, forest, None),
    )
    assert (
        built
        == [
            (Family.SCORECARD, ProtectedPolicy.EXCLUDE),
            (Family.FOREST, ProtectedPolicy.INCLUDE),
        ]
        * 3
    )
    assert scored.comparison.rows == 1000 and not np.isnan(scored.champion).any()
    assert not np.allclose(scored.champion, scored.challenger)
