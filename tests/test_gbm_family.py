"""`credit-risk train --family gbm`: gradient boosting trains, registers, exports and serves, and
its rejections carry reasons found by substitution (each raised that applicant's risk)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from credit_risk.api import create_app
from credit_risk.cli import app
from credit_risk.config import Family, ProtectedPolicy, Settings
from credit_risk.data import read_applicants
from credit_risk.families import GBM_PARAMS
from credit_risk.features import FeatureEngineer
from credit_risk.gate.recipe import Recipe
from credit_risk.model_folder import ModelFolderError, read_metadata, validate_metadata
from credit_risk.reasons import (
    FALLBACK,
    FALLBACK_CODE,
    NO_REASON,
    SUBSTITUTES_ARTIFACT,
    SUBSTITUTES_KEY,
    SubstitutionExplainer,
    SubstitutionReference,
    logit,
)
from credit_risk.registry import load_registered
from credit_risk.schema import FEATURE_NAMES, PROTECTED
from credit_risk.scoring import REASON_CODE_COLUMNS, Scorer
from credit_risk.train import gbm_params, train
from tests.api.conftest import APPLICANT, service_settings
from tests.conftest import DATA, make_settings

runner = CliRunner()
POSITION = {name: k for k, name in enumerate(FEATURE_NAMES)}


def gbm_settings(folder: Path, **overrides: Any) -> Settings:
    """Gradient-boosting settings with fewer refits: 3 folds, 2 calibration folds."""
    values: dict[str, Any] = {
        "family": Family.GBM,
        "fairness_bootstrap_resamples": 0,
        "cv_folds": 3,
        "calibration_folds": 2,
    }
    return make_settings(folder, **{**values, **overrides})


@pytest.fixture(scope="module")
def gbm_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path, str]]:
    """One training run of the gbm family, exported to a folder; and its version."""
    folder = tmp_path_factory.mktemp("gbm-train")
    settings = gbm_settings(folder)
    output = folder / "gbm"
    result = train(settings, output=output)
    yield settings, output, result.version


@pytest.fixture(scope="module")
def gbm_scorer(gbm_run: tuple[Settings, Path, str]) -> Scorer:
    return Scorer.from_folder(gbm_run[1])


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    return read_applicants(DATA).features


def test_train_registers_and_exports_a_gbm(gbm_run: tuple[Settings, Path, str]) -> None:
    settings, output, version_number = gbm_run
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version(settings.registered_model_name, version_number)
    assert version.tags["family"] == "gbm"
    run = client.get_run(version.run_id)
    assert run.data.params["family"] == "gbm" and run.data.params["trials"] == "0"
    assert run.data.params["max_leaf_nodes"] == str(GBM_PARAMS["max_leaf_nodes"])
    assert "study_best_value" not in run.data.metrics  # fixed parameters: nothing searched
    logged = {a.path for a in client.list_artifacts(version.run_id, "reasons")}
    assert SUBSTITUTES_ARTIFACT in logged
    plots = {a.path for a in client.list_artifacts(version.run_id, "plots")}
    assert "plots/roc_curve.png" in plots and "plots/feature_importance.png" not in plots
    # The registered model loads through MLflow's skops flavour with our trusted types.
    mlflow.set_tracking_uri(settings.tracking_uri)
    registered = mlflow.sklearn.load_model(f"models:/{settings.registered_model_name}/1")
    calibrated = registered.named_steps["classifier"]
    assert isinstance(calibrated, CalibratedClassifierCV)
    assert isinstance(calibrated.estimator, HistGradientBoostingClassifier)
    metadata = read_metadata(output)
    assert metadata["family"] == "gbm"
    assert metadata["threshold"] == pytest.approx(1 / 6)  # Bayes on calibrated probabilities
    assert metadata["reason_reference"] is None
    reference = SubstitutionReference.from_json(metadata[SUBSTITUTES_KEY])
    assert reference.probability_bad < metadata["threshold"] and reference.rows > 0


def test_protected_attributes_are_not_inputs(gbm_scorer: Scorer) -> None:
    features = gbm_scorer.pipeline.named_steps["features"]
    assert isinstance(features, FeatureEngineer) and features.drop_protected
    encoded = {str(n) for n in gbm_scorer.pipeline.named_steps["encode"].get_feature_names_out()}
    assert not any(name.startswith(p) for name in encoded for p in PROTECTED)


def test_scorer_has_no_fast_path(gbm_scorer: Scorer) -> None:
    assert gbm_scorer.fast is None
    assert gbm_scorer.explainer.unit == "log_odds"


def _reasons_of(scored: pd.DataFrame, row: int) -> list[str]:
    return [c for c in scored.loc[row, list(REASON_CODE_COLUMNS)].astype(str) if c]


def test_every_rejection_has_reasons_that_raised_its_risk(
    gbm_scorer: Scorer, shipped: pd.DataFrame
) -> None:
    scored = gbm_scorer.score(shipped)
    assert len(scored) == len(shipped) == 1000
    reference = gbm_scorer.explainer.reference
    rejected = scored["decision"] == "reject"
    assert 0 < rejected.sum() < len(scored)
    codes = gbm_scorer.codes
    cited: list[tuple[int, int]] = []  # (row, attribute) of each reason that names one
    for row in range(len(scored)):
        reasons = _reasons_of(scored, row)
        if not rejected[row]:
            assert reasons == []
            continue
        assert 1 <= len(reasons) <= 4
        if reasons == [FALLBACK_CODE]:
            continue
        for code in reasons:
            entry = next(c for c in codes.codes if c.code == code)
            assert entry.attribute not in PROTECTED
            k = POSITION[entry.attribute]
            # The code is that of the applicant's own value of the attribute.
            assert codes.codes[codes.code_index(k, shipped.at[row, entry.attribute])].code == code
            cited.append((row, k))
    assert cited
    # Re-score: each cited attribute set to the approved reference's value alone lowers that
    # applicant's calibrated log-odds of bad.
    rows = shipped.iloc[[r for r, _ in cited]].reset_index(drop=True)
    modified = rows.copy()
    for i, (_, k) in enumerate(cited):
        modified.iat[i, modified.columns.get_loc(FEATURE_NAMES[k])] = reference.values[k]
    before = gbm_scorer.pipeline.predict_proba(rows)[:, 1]
    after = gbm_scorer.pipeline.predict_proba(modified)[:, 1]
    assert np.all(logit(after) < logit(before))
    assert np.allclose(before, scored["probability_bad"].to_numpy()[[r for r, _ in cited]])


def test_request_path_gives_the_batch_reasons(gbm_scorer: Scorer, shipped: pd.DataFrame) -> None:
    head = shipped.head(40)
    scored = gbm_scorer.score(head)
    decisions = gbm_scorer.score_records(head.to_dict("records"))
    for row, decision in enumerate(decisions):
        assert decision.decision == scored.at[row, "decision"]
        assert [r.code for r in decision.reasons] == _reasons_of(scored, row)
        amounts = [r.contribution for r in decision.reasons]
        assert all(a > 0 for a in amounts) and amounts == sorted(amounts, reverse=True)


def test_api_predicts_with_the_gbm(
    gbm_run: tuple[Settings, Path, str], gbm_scorer: Scorer, tmp_path: Path
) -> None:
    settings = service_settings(gbm_run[1], tmp_path)
    with TestClient(create_app(settings, scorer=gbm_scorer)) as client:
        response = client.post("/predict", json=APPLICANT)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["decision"] == "reject"  # the fixtures' risky applicant
        assert 1 <= len(body["reasons"]) <= 4
        assert all(r["unit"] == "log_odds" and r["contribution"] > 0 for r in body["reasons"])
        assert all(r["attribute"] not in PROTECTED for r in body["reasons"])
        recourse = client.post("/recourse", json=APPLICANT)
        assert recourse.status_code == 200, recourse.text


def test_predict_and_info_cli(gbm_run: tuple[Settings, Path, str], tmp_path: Path) -> None:
    output = gbm_run[1]
    out = tmp_path / "scored.csv"
    command = ["predict", "--model", str(output), "--input", str(DATA), "--output", str(out)]
    result = runner.invoke(app, [*command, "--no-progress"])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out, keep_default_na=False)
    expected = Scorer.from_folder(output).score(read_applicants(DATA).features)
    assert len(scored) == 1000
    assert (scored["decision"] == expected["decision"]).all()
    assert (scored["reason_code_1"].astype(str) == expected["reason_code_1"].astype(str)).all()
    info = runner.invoke(app, ["info", "--model", str(output)])
    assert info.exit_code == 0, info.output
    shown = json.loads(info.output[: info.output.rindex("}") + 1])
    assert shown["family"] == "gbm"
    reasons = runner.invoke(app, ["reasons", "--model", str(output)])
    assert reasons.exit_code == 0, reasons.output
    header = reasons.output.splitlines()[0]
    assert "a gbm model" in header and "typical value" in header


def test_train_help_lists_gbm() -> None:
    result = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "gbm" in result.output


def test_registered_version_loads_with_its_reasons(gbm_run: tuple[Settings, Path, str]) -> None:
    settings, _, version = gbm_run
    uri = f"models:/{settings.registered_model_name}/{version}"
    scorer = Scorer.from_uri(uri, settings.tracking_uri)
    assert scorer.fast is None
    decisions = scorer.score_records([APPLICANT])
    assert decisions[0].decision == "reject" and decisions[0].reasons
    _, metadata, _ = load_registered(uri, settings.tracking_uri)
    assert metadata[SUBSTITUTES_KEY] is not None


def test_gate_recipe_builds_a_gbm(tmp_path: Path) -> None:
    settings = gbm_settings(tmp_path, family=Family.FOREST)
    recipe = Recipe(
        params=gbm_params(settings),
        protected_policy=ProtectedPolicy.INCLUDE,
        threshold=1 / 6,
        family=Family.GBM,
    )
    built = recipe.build(settings)
    assert isinstance(built.named_steps["classifier"].estimator, HistGradientBoostingClassifier)
    assert not built.named_steps["features"].drop_protected


# --- metadata validation per family ----------------------------------------------------------


def _metadata(output: Path) -> dict[str, Any]:
    return json.loads((output / "metadata.json").read_text())


def test_gbm_metadata_refuses_an_approved_reference(gbm_run: tuple[Settings, Path, str]) -> None:
    metadata = _metadata(gbm_run[1])
    contributions = {name: 0.0 for name in FEATURE_NAMES}
    metadata["reason_reference"] = {
        "basis": "x",
        "rows": 1,
        "raw_probability": 0.1,
        "probability_bad": 0.1,
        "contributions": contributions,
    }
    with pytest.raises(ModelFolderError) as error:
        validate_metadata(metadata, "m")
    assert error.value.field == "reason_reference"


def test_forest_metadata_refuses_substitutes(gbm_run: tuple[Settings, Path, str]) -> None:
    metadata = {**_metadata(gbm_run[1]), "family": "forest"}
    with pytest.raises(ModelFolderError) as error:
        validate_metadata(metadata, "m")
    assert error.value.field == SUBSTITUTES_KEY


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("purpose", "A499"), ("duration_months", 0), ("duration_months", "12")],
)
def test_gbm_metadata_refuses_an_invalid_substitute(
    gbm_run: tuple[Settings, Path, str], attribute: str, value: Any
) -> None:
    metadata = _metadata(gbm_run[1])
    metadata[SUBSTITUTES_KEY]["values"][attribute] = value
    with pytest.raises(ModelFolderError, match=attribute) as error:
        validate_metadata(metadata, "m")
    assert str(error.value.field).startswith(SUBSTITUTES_KEY)


def test_gbm_substitutes_must_be_approved(gbm_run: tuple[Settings, Path, str]) -> None:
    metadata = _metadata(gbm_run[1])
    metadata[SUBSTITUTES_KEY]["probability_bad"] = 0.5
    with pytest.raises(ModelFolderError) as error:
        validate_metadata(metadata, "m")
    assert error.value.field == f"{SUBSTITUTES_KEY}.probability_bad"


def test_scorer_refuses_a_gbm_without_substitutes(gbm_run: tuple[Settings, Path, str]) -> None:
    metadata = {**_metadata(gbm_run[1]), SUBSTITUTES_KEY: None}
    with pytest.raises(ModelFolderError) as error:
        Scorer(None, metadata)
    assert error.value.field == SUBSTITUTES_KEY


def test_explainer_falls_back_when_only_protected_attributes_raised_the_risk(
    gbm_scorer: Scorer,
) -> None:
    explainer = gbm_scorer.explainer
    assert isinstance(explainer, SubstitutionExplainer)
    drops = np.full((3, len(FEATURE_NAMES)), -0.1)
    drops[0, POSITION["age_years"]] = 2.0  # protected: never cited
    drops[1, POSITION["duration_months"]] = 0.3
    drops[1, POSITION["purpose"]] = 0.5
    drops[2, POSITION["purpose"]] = 0.5  # an approval: no reasons whatever the drops
    probability = np.array([0.6, 0.6, explainer.threshold / 2])
    top, served = explainer.rank(probability, drops)
    reference_logit = logit(np.array([explainer.reference.probability_bad]))[0]
    assert top[0].tolist() == [FALLBACK, NO_REASON, NO_REASON, NO_REASON]
    assert served[0, 0] == pytest.approx(logit(np.array([0.6]))[0] - reference_logit)
    assert served[0, 0] > 0
    assert top[1].tolist() == [
        POSITION["purpose"],
        POSITION["duration_months"],
        NO_REASON,
        NO_REASON,
    ]
    assert top[2].tolist() == [NO_REASON] * 4
    ranked = explainer.rank_records(probability.tolist(), drops)
    assert ranked[0] == [(FALLBACK, pytest.approx(served[0, 0]))]
    assert ranked[1] == [(POSITION["purpose"], 0.5), (POSITION["duration_months"], 0.3)]
    assert ranked[2] == []


@pytest.mark.slow
def test_gate_compares_two_gbm_versions(gbm_run: tuple[Settings, Path, str]) -> None:
    """A second gbm recipe in the same store: the gate refits both recipes on rows neither
    trained on (Recipe.build for the gbm family) and records its comparison."""
    settings, _, first = gbm_run
    second = train(settings, params={"max_iter": 60})
    assert second.version != first and second.params["max_iter"] == 60
    evidence = second.gate.evidence
    assert evidence["comparison"] is not None, evidence["reason"]
    assert evidence["champion_version"] == first
