"""The life cycle on a small draw: months through the API, late outcomes, shift, retrain, gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.lifecycle import run_lifecycle

pytestmark = pytest.mark.xdist_group("prefect")


@pytest.mark.slow
def test_lifecycle_retrains_on_grown_data_and_the_gate_states_its_evidence(
    prefect_harness: None, tmp_path: Path
) -> None:
    reports = run_lifecycle(
        tmp_path,
        months=3,
        per_month=60,
        base_rows=500,
        shift=1.5,
        trials=1,
        n_estimators=30,
        search_n_estimators=30,
        cv_folds=3,
        # Half the labelled decisions held out of time, so that out-of-time rows decide.
        outcomes_holdout_fraction=0.5,
        gate_min_rows=25,
        gate_cv_repeats=1,
        n_jobs=1,
    )
    first = reports[0]
    # Month 1: the population has shifted, but no outcome has arrived: nothing new to learn.
    assert first.drift and first.outcomes_imported == 0 and first.retrained is None
    assert first.retrain_skipped and "no retraining" in first.retrain_skipped
    assert [r.outcomes_imported for r in reports] == [0, 60, 60]
    retrained = [r for r in reports if r.retrained]
    assert retrained, [r.lines() for r in reports]
    run = retrained[0].retrained
    assert run is not None
    tags = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run["run_id"]).data.tags
    # Trained on the base file plus the labelled decisions imported so far.
    assert int(tags["data_rows"]) > 500 and "decision_log:" in tags["data_sources"]
    evidence = run["gate"]
    comparison = evidence["comparison"]
    assert comparison["protocol"] == "out_of_time" and comparison["rows"] >= 25
    assert sum(comparison["overlap"].values()) == 0
    assert run["promote"] == (comparison["low"] > evidence["margin"])
    assert reports[-1].champion_version == (
        run["model_version"] if run["promote"] else reports[0].champion_version
    )
