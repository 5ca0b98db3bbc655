"""The model card: logged to MLflow per run, rendered from the exported folder alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from credit_risk.card import (
    THRESHOLD_BASIS,
    Assessment,
    assessment_of,
    card_markdown,
    render_card_html,
    render_card_markdown,
)
from credit_risk.config import Settings
from credit_risk.fairness import SEX_CAVEAT
from credit_risk.registry import read_metadata

SECTIONS = (
    "Intended use and users",
    "Data and its caveats",
    "Metrics",
    "Threshold and cost matrix",
    "Calibration",
    "Fairness",
    "Global explanations",
    "Limitations",
    "How to reproduce",
)


def test_card_renders_every_section_from_the_exported_folder(model_dir: Path) -> None:
    metadata = read_metadata(model_dir)
    markdown = render_card_markdown(model_dir)
    for section in SECTIONS:
        assert f"## {section}" in markdown
    assert SEX_CAVEAT in markdown
    assert f"v{metadata['model_version']}" in markdown
    assert f"{metadata['threshold']:.4f}" in markdown
    assert THRESHOLD_BASIS[metadata["threshold_rule"]] in markdown
    # Which rows the exported model was fitted on, and whose test figures the table shows.
    assert "Rows: this model was fitted on all 1000 rows (`fit_rows` `all`)." in markdown
    assert "the same recipe (parameters and threshold) fitted on the 800 training-split" in markdown
    page = render_card_html(model_dir)
    assert page.startswith("<!doctype html>")
    assert "<table>" in page
    assert page.count("data:image/png;base64,") == 2  # reliability + SHAP, self-contained


def test_assessment_reads_back_from_metadata_json_unchanged(model_dir: Path) -> None:
    stored = read_metadata(model_dir)["responsible"]
    assessment = Assessment.from_json(stored)
    assert assessment.to_json() == stored
    assert assessment.limits_failed == stored["fairness"]["limits_failed"]
    assert [f.feature for f in assessment.shap_top] == [
        row["feature"] for row in stored["explanations"]["shap_top"]
    ]


def test_card_of_a_model_saved_without_an_assessment(model_dir: Path) -> None:
    metadata = {k: v for k, v in read_metadata(model_dir).items() if k != "responsible"}
    assert assessment_of(metadata) is None
    markdown = card_markdown(metadata)
    for section in SECTIONS:
        assert f"## {section}" in markdown
    assert "Promotion-gate fairness limits" not in markdown
    assert "](../plots/shap_summary.png)" in markdown  # no image to embed: linked instead


def test_run_logs_card_calibration_and_shap(trained: tuple[Settings, Any]) -> None:
    from mlflow.tracking import MlflowClient

    settings, result = trained
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["calibration"] == "sigmoid"
    assert run.data.metrics["test_brier_calibrated"] < run.data.metrics["test_brier_uncalibrated"]
    card = {a.path for a in client.list_artifacts(result.run_id, "card")}
    assert card == {"card/model_card.md", "card/model_card.html"}
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/reliability.png", "plots/shap_summary.png"} <= plots


@pytest.mark.slow
def test_fairness_limit_blocks_promotion(tmp_path: Path) -> None:
    from credit_risk.train import train
    from tests.conftest import FAST_PARAMS, make_settings

    settings = make_settings(tmp_path, fairness_min_disparate_impact=0.999)
    result = train(settings, params=FAST_PARAMS)
    assert not result.gate.promote
    assert "disparate impact" in result.gate.reason
    assert not (settings.model_dir / "metadata.json").exists()


def test_card_is_served_at_model_card(model_dir: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from credit_risk.api import create_app
    from credit_risk.scoring import Scorer
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path, model_dir=model_dir, decision_log_url=f"sqlite:///{tmp_path / 'decisions.db'}"
    )
    with TestClient(create_app(settings, scorer=Scorer.from_folder(model_dir))) as client:
        page = client.get("/model/card")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<h2>Fairness</h2>" in page.text and "Grömping" in page.text
        markdown = client.get("/model/card", params={"format": "markdown"})
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert markdown.text == render_card_markdown(model_dir)


def test_card_command_writes_html(model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from credit_risk.cli import app

    target = tmp_path / "card.html"
    outcome = CliRunner().invoke(app, ["card", "--model", str(model_dir), "--output", str(target)])
    assert outcome.exit_code == 0, outcome.output
    assert target.read_text() == render_card_html(model_dir)


def test_card_states_the_population_the_threshold_is_for(model_dir: Path) -> None:
    metadata = read_metadata(model_dir)
    assert metadata["population_bad_rate"] is None
    sample = metadata["sample_bad_rate"]
    assert f"assumes applicants arrive like the training rows (bad rate {sample:.1%})" in (
        card_markdown(metadata)
    )
    shifted = card_markdown({**metadata, "population_bad_rate": 0.1, "threshold": 0.435})
    assert "to the population's (10.0%, `population_bad_rate`; prior shift)" in shifted
    assert "**0.4350**" in shifted
