"""`credit-risk predict` on UCI and CSV files gives the model's probabilities."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from typer.testing import CliRunner, Result

from credit_risk.cli import app
from credit_risk.data import read_applicants
from credit_risk.registry import load_exported
from tests.conftest import DATA

runner = CliRunner()


def predict(model_dir: Path, source: Path, out: Path, *extra: str) -> Result:
    """``credit-risk predict`` on ``source`` into ``out``, without the progress bar."""
    command = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(out)]
    return runner.invoke(app, [*command, *extra, "--no-progress"])


def test_predict_uci_and_csv_match_the_model(model_dir: Path, tmp_path: Path) -> None:
    pipeline, metadata = load_exported(model_dir)
    applicants = read_applicants(DATA).features
    expected = pipeline.predict_proba(applicants)[:, 1]

    csv_in = tmp_path / "applicants.csv"
    applicants.to_csv(csv_in, index=False)
    outputs = {}
    for name, source in (("uci", DATA), ("csv", csv_in)):
        out = tmp_path / f"{name}.out.csv"
        result = predict(model_dir, source, out, "--chunk-rows", "300")
        assert result.exit_code == 0, result.output
        outputs[name] = pd.read_csv(out)

    for frame in outputs.values():
        assert len(frame) == 1000
        np.testing.assert_allclose(frame["probability_bad"], expected, atol=1e-6)
        rejected = expected >= metadata["threshold"]
        assert (frame["risk_class"].to_numpy() == np.where(rejected, 2, 1)).all()
        assert set(frame["decision"]) <= {"approve", "reject"}
    pd.testing.assert_frame_equal(outputs["uci"], outputs["csv"])


def test_predict_bad_file_exits_with_a_clear_error(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.data"
    fields = DATA.read_text().splitlines()[0].split()
    fields[3] = "A499"
    bad.write_text(" ".join(fields) + "\n")
    out = tmp_path / "out.csv"
    result = predict(model_dir, bad, out)
    assert result.exit_code == 2
    assert "column 'purpose'" in result.output and "A499" in result.output


def test_reasons_prints_the_model_folders_codes(model_dir: Path, tmp_path: Path) -> None:
    import json

    from credit_risk.reasons import REASON_CODES_FILE, builtin_table

    result = runner.invoke(app, ["reasons", "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "version 1" in lines[0] and "a forest model" in lines[0] and "log-odds" in lines[0]
    codes = [row["code"] for row in builtin_table()["codes"]]
    assert [line.split()[0] for line in lines[1:]] == codes
    assert any(
        line.startswith("R01-A11") and line.endswith("Status of existing checking account: < 0 DM")
        for line in lines
    )
    spanish = runner.invoke(app, ["reasons", "--model", str(model_dir), "--lang", "es"])
    assert "Estado de la cuenta corriente: < 0 DM" in spanish.output
    as_json = runner.invoke(app, ["reasons", "--model", str(model_dir), "--json"])
    saved = json.loads((model_dir / REASON_CODES_FILE).read_text())
    assert json.loads(as_json.output) == saved
    assert runner.invoke(app, ["reasons", "--model", str(model_dir), "--lang", "fr"]).exit_code == 2
    missing = runner.invoke(app, ["reasons", "--model", str(tmp_path)])
    assert missing.exit_code == 2 and "metadata.json" in missing.output


def test_predict_writes_reason_codes_and_spanish_texts(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "es.csv"
    result = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(model_dir),
            "--input",
            str(DATA),
            "--output",
            str(out),
            "--lang",
            "es",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, keep_default_na=False)
    rejected = frame["decision"] == "reject"
    assert (frame.loc[rejected, "reason_code_1"] != "").all()
    assert (frame.loc[~rejected, "reason_code_1"] == "").all()
    checking = frame["reason_code_1"] == "R01-A11"
    assert checking.any()
    assert (frame.loc[checking, "reason_text_1"] == "Estado de la cuenta corriente: < 0 DM").all()


def test_info_shows_the_family_also_of_folders_exported_before_families(
    model_dir: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    result = runner.invoke(app, ["info", "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[: result.output.rindex("}") + 1])["family"] == "forest"
    older = tmp_path / "older"
    shutil.copytree(model_dir, older)
    metadata = json.loads((older / "metadata.json").read_text())
    del metadata["family"]
    (older / "metadata.json").write_text(json.dumps(metadata))
    result = runner.invoke(app, ["info", "--model", str(older)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[: result.output.rindex("}") + 1])["family"] == "forest"


def test_train_fit_rows_flag_reaches_the_settings(monkeypatch: Any, tmp_path: Path) -> None:
    seen: list[Any] = []

    def fake_train(settings: Any, output: Any = None) -> Any:
        seen.append(settings)
        raise SystemExit(0)

    monkeypatch.setattr("credit_risk.train.train", fake_train)
    result = runner.invoke(app, ["train", "--fit-rows", "split", "--data", str(DATA)])
    assert result.exit_code == 0, result.output
    assert seen[0].fit_rows.value == "split"
    refused = runner.invoke(app, ["train", "--fit-rows", "most"])
    assert refused.exit_code == 2
    assert "'all'" in refused.output and "'split'" in refused.output


def test_evaluate_defaults_to_the_report_families() -> None:
    # The CLI keeps the literal (importing the report at start-up would load Optuna).
    import inspect

    from credit_risk.cli.training import evaluate
    from credit_risk.evaluate.report import DEFAULT_RECIPES

    assert inspect.signature(evaluate).parameters["recipes"].default == DEFAULT_RECIPES
