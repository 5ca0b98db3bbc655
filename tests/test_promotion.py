"""The challenger alias from a training run, and `credit-risk promote` moving the aliases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from credit_risk.cli import app
from credit_risk.config import Settings, challenger_folder
from credit_risk.registry import EXPORT_METADATA_ARTIFACT
from credit_risk.scoring import Scorer

runner = CliRunner()


def _folder_version(folder: Path) -> str:
    return str(json.loads((folder / "metadata.json").read_text())["model_version"])


def _aliases(settings: Settings) -> dict[str, str]:
    client = MlflowClient(settings.tracking_uri)
    model = client.get_registered_model(settings.registered_model_name)
    return {alias: str(version) for alias, version in model.aliases.items()}


@pytest.fixture
def store_env(
    champion_and_challenger: tuple[Settings, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The CLI pointed at the two-version store (settings come from the environment)."""
    settings = champion_and_challenger[0]
    monkeypatch.setenv("CREDIT_RISK_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("CREDIT_RISK_ARTIFACT_LOCATION", settings.artifact_location)
    monkeypatch.setenv("CREDIT_RISK_MODEL_DIR", str(settings.model_dir))
    return settings


def _promote(*args: str) -> Any:
    return runner.invoke(app, ["promote", *args])


def test_challenger_life_cycle(
    store_env: Settings, champion_and_challenger: tuple[Settings, Path, Path]
) -> None:
    settings = store_env
    challenger_dir = challenger_folder(settings)
    assert challenger_dir == settings.model_dir.with_name("challenger")
    # The fixture's second run tied with the champion: kept, it became the challenger.
    assert _aliases(settings) == {"champion": "1", "challenger": "2"}
    assert _folder_version(settings.model_dir) == "1"
    assert _folder_version(challenger_dir) == "2"
    client = MlflowClient(settings.tracking_uri)
    run_id = client.get_model_version(settings.registered_model_name, "2").run_id
    assert run_id is not None
    artifacts = {a.path for a in client.list_artifacts(run_id, "export")}
    assert EXPORT_METADATA_ARTIFACT in artifacts

    # The challenger is promoted: it serves, and no longer challenges.
    result = _promote("2", "--alias", "champion")
    assert result.exit_code == 0, result.output
    assert "german-credit-risk v2 is now the champion (was v1)" in result.output
    assert "the challenger alias is cleared" in result.output
    assert "gate evidence stored on v2:" in result.output
    assert "champion kept" in result.output or "gate_decision: kept" in result.output
    assert _aliases(settings) == {"champion": "2"}
    assert _folder_version(settings.model_dir) == "2"
    assert not challenger_dir.exists()

    # The old champion comes back as the challenger, exported as its run exported it.
    result = _promote("1", "--alias", "challenger")
    assert result.exit_code == 0, result.output
    assert "v1 is now the challenger (was nobody)" in result.output
    assert _aliases(settings) == {"champion": "2", "challenger": "1"}
    assert _folder_version(challenger_dir) == "1"
    exported = Scorer.from_folder(challenger_dir)
    original = json.loads((champion_and_challenger[1] / "metadata.json").read_text())
    assert exported.metadata["threshold"] == original["threshold"]
    assert exported.metadata["test_metrics"] == original["test_metrics"]
    assert (challenger_dir / "drift_reference.json").is_file()

    # Back as it was; --no-export moves the alias only.
    result = _promote("1", "--alias", "champion", "--no-export")
    assert result.exit_code == 0, result.output
    assert _aliases(settings) == {"champion": "1"}
    assert _folder_version(settings.model_dir) == "2"  # not exported
    assert _promote("1", "--alias", "champion").exit_code == 0
    assert _folder_version(settings.model_dir) == "1"


def test_promote_refuses_what_it_cannot_do(store_env: Settings) -> None:
    before = _aliases(store_env)
    champion = before["champion"]
    itself = _promote(champion, "--alias", "challenger")
    assert itself.exit_code == 2
    assert f"v{champion} is the champion; a version cannot challenge itself" in itself.output
    missing = _promote("9", "--alias", "champion")
    assert missing.exit_code == 2
    assert "version 9 of german-credit-risk does not exist (registered versions: 1, 2)" in (
        missing.output
    )
    assert _promote("two", "--alias", "champion").exit_code == 2
    unknown = _promote("1", "--alias", "boss")
    assert unknown.exit_code == 2
    assert "'boss' is not champion or challenger" in unknown.output
    assert _promote("1").exit_code == 2  # the alias is never implied
    assert _aliases(store_env) == before
