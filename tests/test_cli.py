"""`credit-risk predict` on UCI and CSV files gives the model's probabilities."""

from pathlib import Path

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
