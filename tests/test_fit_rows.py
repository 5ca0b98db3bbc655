"""Which rows the exported model is fitted on (``Settings.fit_rows``): every row, or the split."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from credit_risk.card import card_markdown
from credit_risk.config import FitRows, Settings
from credit_risk.fingerprint import load_fingerprint, row_hashes, rows_sha256
from credit_risk.model import build_model
from credit_risk.registry import load_exported, read_metadata
from credit_risk.train import (
    Split,
    exported_rows,
    final_params,
    fit_exported,
    result_summary,
    run_data,
    train,
)
from credit_risk.training_data import load_run_data, pin_outcomes
from tests.conftest import FAST_PARAMS, make_settings
from tests.labelled_log import log_shipped, write_base_file

START = datetime(2025, 1, 1, tzinfo=UTC)


def fitted_on_split(settings: Settings, split: Split) -> Any:
    pipeline = build_model(settings, final_params(settings, FAST_PARAMS))
    pipeline.fit(split.x_train, split.y_train.to_numpy())
    return pipeline


def test_all_refits_the_recipe_on_every_row_and_split_exports_the_split_model(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, fit_rows="all")
    data = run_data(settings)
    split = Split(*data.split())
    on_split = fitted_on_split(settings, split)
    params = final_params(settings, FAST_PARAMS)

    everything = fit_exported(settings, params, data, on_split)
    assert sorted(everything.rows.train) == list(range(1000)) and len(everything.rows.test) == 0
    fingerprint = everything.fingerprint()
    assert (fingerprint.trained_rows, fingerprint.held_out_rows) == (1000, 0)
    assert fingerprint.trained_rows_sha256 == rows_sha256(data.hashes)
    assert fingerprint.model_extra == {
        "fit_rows": "all",
        "evaluated_on": {"trained_rows": 800, "test_rows": 200},
    }
    assert everything.tags()["data_trained_rows"] == "1000"
    assert everything.description() == "all 1000 rows"
    # Not the split's model: the same recipe refitted, so the test split moves its scores.
    exported = everything.pipeline.predict_proba(split.x_test)[:, 1]
    assert everything.pipeline is not on_split
    assert np.abs(exported - on_split.predict_proba(split.x_test)[:, 1]).max() > 0.01
    # The recipe fitted on every row (in the order the run hands them over: the forest's
    # bootstrap draws depend on it), nothing else.
    order = everything.rows.train
    refit = build_model(settings, params).fit(
        data.features.iloc[order], data.is_bad.iloc[order].to_numpy()
    )
    assert exported == pytest.approx(refit.predict_proba(split.x_test)[:, 1], rel=1e-6)

    split_only = fit_exported(
        settings.model_copy(update={"fit_rows": FitRows.SPLIT}), params, data, on_split
    )
    assert split_only.pipeline is on_split and split_only.fit_rows is FitRows.SPLIT
    assert np.array_equal(split_only.rows.train, data.train)
    assert split_only.fingerprint().trained_rows == 800
    assert split_only.description() == "the 800 training-split rows of 1000"


def test_all_keeps_the_out_of_time_decisions_out_for_the_gate(tmp_path: Path) -> None:
    base = write_base_file(tmp_path / "base.csv", slice(0, 600))
    url = log_shipped(tmp_path, slice(600, 800), START)
    settings = make_settings(
        tmp_path, data_path=base, decision_log_url=url, train_with_outcomes=True
    )
    data = load_run_data(pin_outcomes(settings))
    rows = exported_rows(settings, data)
    # The base file's 120 test rows join the training rows; the newest 50 decisions do not.
    assert len(rows.train) == 480 + 120 + 150 and sorted(rows.test) == list(range(750, 800))
    assert rows.fingerprint().labelled_trained_until == data.fingerprint().labelled_trained_until
    split = exported_rows(settings.model_copy(update={"fit_rows": FitRows.SPLIT}), data)
    assert split is data


def test_train_exports_and_registers_the_all_rows_model(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fit_rows="all")
    result = train(settings, params=FAST_PARAMS)
    metadata = read_metadata(settings.model_dir)
    assert metadata["fit_rows"] == "all" and metadata["fitted_rows"] == 1000
    assert metadata["fingerprint"]["trained_rows"] == 1000
    assert metadata["test_evaluation"]["trained_rows"] == 800
    # The reasons' approved reference is the exported model's, over the rows it was fitted on.
    approved = metadata["reason_reference"]["rows"]
    pipeline, _ = load_exported(settings.model_dir)
    data = run_data(settings)
    probability = pipeline.predict_proba(data.features)[:, 1]
    assert approved == int((probability < metadata["threshold"]).sum())

    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version(settings.registered_model_name, result.version)
    assert version.tags["data_trained_rows"] == "1000" and version.tags["data_fit_rows"] == "all"
    stored = load_fingerprint(client, result.run_id)
    assert stored is not None
    assert stored.rows.trained == frozenset(row_hashes(data.features, data.is_bad))
    run = client.get_run(result.run_id).data
    assert run.params["fit_rows"] == "all"
    assert "fitted on the 800 training-split rows" in run.tags["test_metrics_model"]
    reference = json.loads((settings.model_dir / "drift_reference.json").read_text())
    assert reference["attribute_rows"] == 1000 and reference["score_rows"] == 200

    card = card_markdown(metadata)
    assert "this model was fitted on all 1000 rows (`fit_rows` `all`)" in card
    assert "fitted on the 800 training-split rows, scored on the 200 test-split rows" in card
    assert "CREDIT_RISK_FIT_ROWS=all" in card
    assert "model: fitted on all 1000 rows" in result_summary(result)


def test_card_of_a_split_model_and_of_one_exported_before_fit_rows() -> None:
    split = {
        "fit_rows": "split",
        "fitted_on": "the 800 training-split rows of 1000",
        "test_evaluation": {
            "of": "this model (fitted on the 800 training-split rows), scored on the 200 "
            "test-split rows it never saw"
        },
    }
    card = card_markdown(split)
    assert "this model was fitted on the 800 training-split rows of 1000 (`fit_rows` `split`)" in (
        card
    )
    assert "scored on the 200 test-split rows it never saw" in card
    assert "fitted on the training split (its metadata predates `fit_rows`)" in card_markdown({})


def test_an_unknown_fit_rows_value_is_refused_naming_the_allowed_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert make_settings(Path("unused")).fit_rows is FitRows.ALL  # the measured default
    monkeypatch.setenv("CREDIT_RISK_FIT_ROWS", "most")
    with pytest.raises(ValueError, match="fit_rows") as raised:
        make_settings(Path("unused"))
    assert "'all' or 'split'" in str(raised.value)
    monkeypatch.setenv("CREDIT_RISK_FIT_ROWS", "split")
    assert make_settings(Path("unused")).fit_rows is FitRows.SPLIT
