"""End to end: tune -> train -> MLflow registry -> champion alias -> export."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from credit_risk.config import Settings, challenger_folder
from credit_risk.data import read_applicants
from credit_risk.gate import Comparison, decide
from credit_risk.registry import load_exported, read_metadata
from credit_risk.train import result_summary, train
from tests.conftest import DATA, FAST_PARAMS, make_settings

WORSE_PARAMS = {"n_estimators": 5, "max_depth": 2, "max_features": 0.1}


@pytest.mark.slow
def test_train_registers_a_champion_that_pyfunc_loads(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, trials=3)
    result = train(settings)
    assert result.gate.promote and result.gate.reason == "no champion yet"
    assert 0.0 < result.threshold < 1.0
    assert set(result.test_metrics) >= {
        "cost",
        "recall_bad",
        "precision_bad",
        "accuracy",
        "roc_auc",
        "brier",
    }

    client = MlflowClient(settings.tracking_uri)
    champion = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert str(champion.version) == result.version
    run = client.get_run(result.run_id)
    assert {"cv_cost_mean", "cv_cost_std", "test_roc_auc", "threshold"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {
        "plots/roc_curve.png",
        "plots/precision_recall.png",
        "plots/confusion_matrix.png",
        "plots/calibration.png",
        "plots/feature_importance.png",
    } <= artifacts

    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{settings.registered_model_name}@champion")
    applicants = read_applicants(DATA).features
    predictions = np.asarray(model.predict(applicants))
    assert predictions.shape[0] == 1000
    assert set(np.unique(predictions)) <= {0, 1}

    pipeline, metadata = load_exported(settings.model_dir)
    assert metadata["model_version"] == result.version
    assert metadata["threshold"] == pytest.approx(result.threshold)
    assert pipeline.predict_proba(applicants).shape == (1000, 2)


def test_worse_challenger_does_not_take_the_alias(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = train(settings, params=FAST_PARAMS)
    exported_before = (settings.model_dir / "metadata.json").read_text()
    worse = train(settings, params=WORSE_PARAMS)
    assert not worse.gate.promote
    assert "champion kept" in worse.gate.reason
    client = MlflowClient(settings.tracking_uri)
    champion = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert str(champion.version) == first.version != worse.version
    assert (settings.model_dir / "metadata.json").read_text() == exported_before
    # Kept on the comparison, it is the challenger, exported beside the champion.
    challenger = client.get_model_version_by_alias(settings.registered_model_name, "challenger")
    assert str(challenger.version) == worse.version
    _, metadata = load_exported(challenger_folder(settings))
    assert metadata["model_version"] == worse.version


def test_better_challenger_is_promoted_with_its_evidence(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gate_cv_repeats=1)
    # The champion was trained for the seed's objective (recall at threshold 0.5): under the
    # cost objective the same forest at the Bayes threshold 1/6 is the better recipe.
    first = train(make_settings(tmp_path, objective="recall"), params=FAST_PARAMS)
    assert first.gate.promote and first.threshold == 0.5
    better = train(settings, params=FAST_PARAMS)
    assert better.gate.promote, better.gate.reason
    evidence = better.gate.evidence
    assert evidence is not None and evidence["champion_version"] == first.version
    comparison = evidence["comparison"]
    # Every one of the 1000 rows scored out of fold by both recipes, none by a model fitted on it.
    assert comparison["protocol"] == "paired_cv" and comparison["rows"] == 1000
    assert comparison["overlap"] == {"folds": 0}
    assert comparison["low"] > settings.gate_margin
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version(settings.registered_model_name, better.version)
    assert version.tags["gate_decision"] == "promoted"
    assert version.tags["gate_interval"] == f"[{comparison['low']:+.4f}, {comparison['high']:+.4f}]"
    # Exported refitted on every row (fit_rows all, the default); the gate refits recipes.
    assert version.tags["data_rows"] == "1000" and version.tags["data_trained_rows"] == "1000"
    run = client.get_run(better.run_id).data
    assert run.params["gate_margin"] == "0.0" and run.params["gate_confidence"] == "0.95"
    assert run.metrics["gate_overlap_rows"] == 0 and run.metrics["gate_rows"] == 1000
    assert run.tags["promotion"] == better.gate.reason
    assert "evidence: 5-fold x 1 paired cross-validation" in result_summary(better)
    assert read_metadata(settings.model_dir)["gate"]["promote"] is True


def test_same_data_and_seed_give_the_same_metrics(tmp_path: Path) -> None:
    first = train(make_settings(tmp_path / "a"), params=FAST_PARAMS)
    second = train(make_settings(tmp_path / "b"), params=FAST_PARAMS)
    # Equal up to float summation order: the forest averages trees in parallel threads, and a
    # standard deviation across folds amplifies that last-bit noise (seen: 7e-9 relative on
    # brier_std). Another seed moves these metrics by about 1e-2, so 1e-6 still tells them apart.
    assert first.test_metrics == pytest.approx(second.test_metrics, rel=1e-6, abs=1e-12)
    assert first.cv_metrics == pytest.approx(second.cv_metrics, rel=1e-6, abs=1e-12)
    assert first.threshold == pytest.approx(second.threshold, rel=1e-9)


def test_output_folder_gets_this_runs_model_even_when_not_champion(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    train(settings, params=FAST_PARAMS)
    out = tmp_path / "challenger"
    worse = train(settings, params=WORSE_PARAMS, output=out)
    _, metadata = load_exported(out)
    assert metadata["model_version"] == worse.version


def comparison(improvement: float, low: float, high: float, metric: str = "cost") -> Comparison:
    return Comparison(
        "paired_cv",
        metric,
        1000,
        0.5,
        0.5 - improvement,
        improvement,
        low,
        high,
        {"folds": 0},
        "test",
    )


def test_gate_keeps_champion_on_a_tie(settings: Settings) -> None:
    promote, reason = decide(comparison(0.0, 0.0, 0.0), settings)
    assert not promote and "ties" in reason
    assert decide(comparison(0.05, 0.01, 0.09), settings)[0]
    # Better on average, but not with 95% confidence: noise does not promote.
    promote, reason = decide(comparison(0.02, -0.01, 0.05), settings)
    assert not promote and "not better with enough confidence" in reason
    # The margin is in the objective's units: a sure but small gain below it keeps the champion.
    wide = settings.model_copy(update={"gate_margin": 0.02})
    assert not decide(comparison(0.03, 0.01, 0.05), wide)[0]
    # Fairness limits bind both models on the compared rows.
    assert not decide(comparison(0.05, 0.01, 0.09), settings, [], ["gate di 0.7 < 0.8"])[0]
    assert decide(comparison(0.0, -0.02, 0.02), settings, ["gate di 0.7 < 0.8"], [])[0]
    assert not decide(comparison(-0.05, -0.09, -0.01), settings, ["gate di 0.7 < 0.8"], [])[0]


def test_model_that_cannot_give_reasons_is_never_promoted_or_served(tmp_path: Path) -> None:
    from credit_risk.model_folder import ModelFolderError
    from credit_risk.scoring import Scorer

    # Three stumps: every training applicant scores above the threshold (the lowest score is
    # 0.21 refitted on all rows, 0.24 on the training split), so no approved reference exists
    # and no rejection could be explained against it.
    settings = make_settings(tmp_path)
    out = tmp_path / "degenerate"
    result = train(
        settings, params={"n_estimators": 3, "max_depth": 1, "max_features": 0.1}, output=out
    )
    assert not result.gate.promote
    assert "no adverse-action reasons" in result.gate.reason
    assert "approves none of its training applicants" in result.gate.reason
    assert not (settings.model_dir / "metadata.json").exists()
    # Failing the gate's limits is not being kept on the comparison: no challenger either.
    assert not challenger_folder(settings).exists()
    _, metadata = load_exported(out)
    assert metadata["reason_reference"] is None
    with pytest.raises(ModelFolderError) as raised:
        Scorer.from_folder(out)
    assert raised.value.field == "reason_reference"
