"""`credit-risk train --family scorecard` registers a scorecard that predict and the API serve."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from credit_risk.api import create_app
from credit_risk.cli import app
from credit_risk.config import Settings
from credit_risk.reasons import REASON_CODES_FILE, ReasonCodes, builtin_bytes, reason_codes_record
from credit_risk.registry import load_exported
from credit_risk.schema import PROTECTED
from credit_risk.scorecard import PointsLookup, PointsTable
from credit_risk.scorecard.model import PointsScorecard
from credit_risk.scoring import REASON_CODE_COLUMNS, REASON_COLUMNS, REASON_TEXT_COLUMNS, Scorer
from tests.api.conftest import APPLICANT, service_settings
from tests.conftest import DATA, make_settings
from tests.model_metadata import model_metadata

runner = CliRunner()


@pytest.fixture(scope="module")
def scorecard_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path, str]]:
    """One ``credit-risk train --family scorecard --output DIR`` run in a temporary store."""
    folder = tmp_path_factory.mktemp("scorecard-train")
    settings = make_settings(folder)
    output = folder / "scorecard"
    environment = {
        "CREDIT_RISK_DATA_PATH": str(DATA),
        "CREDIT_RISK_TRACKING_URI": settings.tracking_uri,
        "CREDIT_RISK_ARTIFACT_LOCATION": settings.artifact_location,
        "CREDIT_RISK_MODEL_DIR": str(settings.model_dir),
        # Fewer refits, to keep the run short: 3 folds, 2 calibration folds, no bootstrap.
        "CREDIT_RISK_FAIRNESS_BOOTSTRAP_RESAMPLES": "0",
        "CREDIT_RISK_CV_FOLDS": "3",
        "CREDIT_RISK_CALIBRATION_FOLDS": "2",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        result = runner.invoke(
            app, ["train", "--family", "scorecard", "--output", str(output), "--quiet"]
        )
        assert result.exit_code == 0, result.output
        yield settings, output, result.output


def test_train_registers_the_scorecard_as_its_own_family(
    scorecard_run: tuple[Settings, Path, str],
) -> None:
    settings, output, printed = scorecard_run
    assert "threshold 0.1667" in printed  # the Bayes rule on calibrated probabilities
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert version.tags["family"] == "scorecard"
    run = client.get_run(version.run_id)
    assert run.data.params["family"] == "scorecard" and run.data.params["pdo"] == "20.0"
    assert run.data.tags["family"] == "scorecard"
    logged = {a.path for a in client.list_artifacts(version.run_id, "scorecard")}
    assert logged == {
        "scorecard/points.csv",
        "scorecard/score.sql",
        "scorecard/iv_report.txt",
    }
    # The registered model loads as the forest's does (sklearn flavour, skops).
    mlflow.set_tracking_uri(settings.tracking_uri)
    registered = mlflow.sklearn.load_model(f"models:/{settings.registered_model_name}@champion")
    assert isinstance(registered, PointsScorecard)
    pipeline, metadata = load_exported(output)
    assert metadata["family"] == "scorecard"
    assert metadata["scorecard"] == pipeline.table_ == registered.table_
    # The same reason-code table as a forest's, and no approved reference (points lost are
    # measured against the table's best bins).
    assert metadata["reason_codes"] == reason_codes_record()
    assert (output / REASON_CODES_FILE).read_bytes() == builtin_bytes()
    assert metadata["reason_reference"] is None
    assert metadata["responsible"]["calibration"]["method"] == "sigmoid"


def test_predict_with_the_scorecard_matches_the_model_and_gives_reasons_for_rejections(
    scorecard_run: tuple[Settings, Path, str], tmp_path: Path
) -> None:
    _, output, _ = scorecard_run
    scored_path = tmp_path / "scored.csv"
    result = runner.invoke(
        app,
        ["predict", "--model", str(output), "--input", str(DATA), "--output", str(scored_path)],
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(scored_path, keep_default_na=False)
    pipeline, _ = load_exported(output)
    from credit_risk.data import read_applicants

    applicants = read_applicants(DATA).features
    np.testing.assert_allclose(
        scored["probability_bad"], pipeline.predict_proba(applicants)[:, 1], rtol=1e-12
    )
    rejected = scored["decision"] == "reject"
    assert rejected.any() and (~rejected).any()
    assert ((scored[REASON_COLUMNS[0]] != "") == rejected).all()
    assert scored.loc[~rejected, list(REASON_COLUMNS)].eq("").all().all()
    # The forest's columns: codes of the shared table, with their texts.
    texts = {code.code: code.text["en"] for code in ReasonCodes.builtin().codes}
    for code_column, text_column in zip(REASON_CODE_COLUMNS, REASON_TEXT_COLUMNS, strict=True):
        cited = scored[scored[code_column] != ""]
        assert cited[code_column].isin(list(texts)).all()
        assert (cited[text_column] == cited[code_column].map(texts)).all()


def test_scorer_uses_the_points_lookup_from_folder_and_registry(
    scorecard_run: tuple[Settings, Path, str],
) -> None:
    settings, output, _ = scorecard_run
    from_folder = Scorer.from_folder(output)
    assert isinstance(from_folder.fast, PointsLookup)
    from_registry = Scorer.from_uri(
        f"models:/{settings.registered_model_name}@champion", settings.tracking_uri
    )
    assert isinstance(from_registry.fast, PointsLookup)
    assert from_registry.fast.table == from_folder.fast.table
    (decision,) = from_folder.score_records([APPLICANT])
    assert decision.decision == "reject" and decision.reasons
    assert not {r.attribute for r in decision.reasons} & set(PROTECTED)


def test_api_serves_the_scorecard(
    scorecard_run: tuple[Settings, Path, str], tmp_path: Path
) -> None:
    _, output, _ = scorecard_run
    with TestClient(create_app(service_settings(output, tmp_path))) as client:
        while client.get("/health").json()["status"] == "loading":
            pass
        body = client.post("/predict", json=APPLICANT).json()
        spanish = client.post("/predict?lang=es", json=APPLICANT).json()
        table = client.get("/reasons").json()
    assert body["decision"] == "reject"
    lost = [reason["contribution"] for reason in body["reasons"]]
    assert lost and lost == sorted(lost, reverse=True) and all(v >= 1 for v in lost)
    assert body["probability_bad"] == pytest.approx(
        Scorer.from_folder(output).score_records([APPLICANT])[0].probability_bad
    )
    # A forest's shape: code, text, attribute, value, contribution, and its unit (points lost).
    texts = {row["code"]: row["text"] for row in table["codes"]}
    assert table == json.loads((output / REASON_CODES_FILE).read_text())
    for english, reason in zip(body["reasons"], spanish["reasons"], strict=True):
        assert set(english) == {"code", "text", "attribute", "value", "contribution", "unit"}
        assert english["unit"] == "points" and english["attribute"] not in PROTECTED
        assert english["value"] == APPLICANT[english["attribute"]]
        assert english["text"] == texts[english["code"]]["en"]
        assert reason["text"] == texts[english["code"]]["es"]


def test_reasons_and_info_commands_read_a_scorecard_folder(
    scorecard_run: tuple[Settings, Path, str],
) -> None:
    _, output, _ = scorecard_run
    result = runner.invoke(app, ["reasons", "--model", str(output)])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert "a scorecard model" in header and "points lost" in header
    assert [row.split()[0] for row in rows] == [c.code for c in ReasonCodes.builtin().codes]
    info = runner.invoke(app, ["info", "--model", str(output)])
    assert info.exit_code == 0, info.output
    shown = json.loads(info.output[: info.output.rindex("}") + 1])
    assert shown["family"] == "scorecard"


def test_table_command_writes_the_exported_points(
    scorecard_run: tuple[Settings, Path, str],
) -> None:
    _, output, _ = scorecard_run
    result = runner.invoke(app, ["scorecard", "table", "--model", str(output)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.output))
    _, metadata = load_exported(output)
    table = PointsTable.model_validate(metadata["scorecard"])
    scored = frame[frame["selected"]]
    expected = [b.points for row in table.selected for b in row.bins]
    assert scored["points"].astype(int).tolist() == expected


def test_scorecard_commands_refuse_a_forest_folder(tmp_path: Path) -> None:
    metadata = model_metadata("german-credit-risk", 0.2, family="forest", reason_reference=None)
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    for command in ("sql", "table"):
        result = runner.invoke(app, ["scorecard", command, "--model", str(tmp_path)])
        assert result.exit_code == 2
        assert "holds a forest model, not a scorecard" in result.output


def test_the_default_family_is_the_scorecard_and_scores_no_protected_attribute(
    scorecard_run: tuple[Settings, Path, str],
) -> None:
    from credit_risk.config import Family, ProtectedPolicy

    defaults = Settings()
    assert defaults.family is Family.SCORECARD
    assert defaults.protected_policy is ProtectedPolicy.EXCLUDE
    _, output, _ = scorecard_run
    pipeline, metadata = load_exported(output)
    assert metadata["protected_policy"] == "exclude"
    scored = {row.attribute for row in pipeline.points_table.attributes if row.selected}
    assert scored and not scored & set(PROTECTED)
