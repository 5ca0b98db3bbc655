"""The CLI against a hostile user: one clear line and exit code 2, never a traceback or a lost file.

One test per case of issue 11's CLI list. ``predict`` cases use the session's fixture model;
``train`` cases that fail do so while checking the data, before any tuning.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from credit_risk.cli import app
from credit_risk.schema import FEATURE_NAMES
from tests.conftest import DATA
from tests.tiny_training import TINY_TRAINING

LINES = DATA.read_text().splitlines()
runner = CliRunner()


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def predict(model_dir: Path, source: Path, output: Path, *extra: object) -> Result:
    return invoke(
        "predict",
        "--model",
        model_dir,
        "--input",
        source,
        "--output",
        output,
        "--no-progress",
        *extra,
    )


def assert_user_error(result: Result, *fragments: str) -> str:
    """Exit code 2 and one ``error:`` line naming each fragment; no traceback. The line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_text(lines: list[str], header: list[str]) -> list[str]:
    return [",".join(header)] + [",".join(line.split()) for line in lines]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings (MLflow store, artifacts, export) under a temporary folder, as a user's env."""
    folder = tmp_path / "store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    monkeypatch.setenv("CREDIT_RISK_ARTIFACT_LOCATION", str(folder / "mlruns"))
    monkeypatch.setenv("CREDIT_RISK_MODEL_DIR", str(folder / "champion"))
    return folder


# --- predict ------------------------------------------------------------------------------------


def test_predict_binary_input(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "scan.data"
    source.write_bytes(bytes(range(256)) * 8)
    result = predict(model_dir, source, tmp_path / "out.csv")
    assert_user_error(result, str(source), "binary file")
    assert not (tmp_path / "out.csv").exists()


def test_predict_gzip_input(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "german.data.gz"
    source.write_bytes(gzip.compress(DATA.read_bytes()))
    assert_user_error(predict(model_dir, source, tmp_path / "out.csv"), str(source), "gunzip")


def test_predict_directory_as_input(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    result = predict(model_dir, folder, tmp_path / "out.csv")
    assert_user_error(result, str(folder), "is a directory")


def test_predict_model_folder_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "champion"
    result = predict(missing, DATA, tmp_path / "out.csv")
    assert_user_error(result, str(missing), "not an exported model", "credit-risk train")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("kind", ["uci", "csv"])
def test_predict_row_with_the_wrong_number_of_columns_is_reported_at_its_line(
    model_dir: Path, tmp_path: Path, kind: str
) -> None:
    lines = [" ".join(line.split()[:20]) for line in LINES]
    lines[700] = " ".join(lines[700].split()[:19])  # data row 701: a value missing
    if kind == "uci":
        source, line = write(tmp_path / "applicants.data", lines), 701
    else:
        source, line = write(tmp_path / "applicants.csv", csv_text(lines, list(FEATURE_NAMES))), 702
    result = predict(model_dir, source, tmp_path / "out.csv", "--chunk-rows", 100)
    assert_user_error(result, f"{source}, line {line}: 19 values where 20 are expected")


def test_predict_header_only_csv_writes_a_header_only_csv(model_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "none.csv", [",".join(FEATURE_NAMES)])
    output = tmp_path / "out.csv"
    result = predict(model_dir, source, output)
    assert result.exit_code == 0, result.output
    written = output.read_text().splitlines()
    assert len(written) == 1
    assert written[0].replace('"', "").split(",")[:4] == [
        "probability_bad",
        "risk_class",
        "risk_label",
        "decision",
    ]
    full = tmp_path / "full.csv"
    assert predict(model_dir, DATA, full).exit_code == 0
    assert written[0] == full.read_text().splitlines()[0]


def test_predict_csv_with_a_byte_order_mark(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    text = "\n".join(csv_text(LINES[:50], [*FEATURE_NAMES, "risk_class"])) + "\n"
    source.write_text(text, encoding="utf-8-sig")
    plain = tmp_path / "plain.csv"
    plain.write_text(text)
    outputs = [tmp_path / "bom.out.csv", tmp_path / "plain.out.csv"]
    for src, out in zip((source, plain), outputs, strict=True):
        result = predict(model_dir, src, out)
        assert result.exit_code == 0, result.output
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert len(pd.read_csv(outputs[0])) == 50


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_predict_output_that_is_the_input_leaves_it_byte_identical(
    model_dir: Path, tmp_path: Path, how: str
) -> None:
    source = write(tmp_path / "applicants.data", LINES[:40])
    before = source.read_bytes()
    output = tmp_path / "scores.csv"
    if how == "same path":
        output = source
    elif how == "symlink":
        output.symlink_to(source)
    else:
        os.link(source, output)
    result = predict(model_dir, source, output)
    assert_user_error(result, str(output), "is the input file", "choose another output")
    assert source.read_bytes() == before


def test_predict_failing_run_leaves_an_existing_output_untouched(
    model_dir: Path, tmp_path: Path
) -> None:
    lines = list(LINES)
    fields = lines[899].split()
    fields[3] = "A499"  # line 900: no such purpose; chunks before it were already scored
    lines[899] = " ".join(fields)
    source = write(tmp_path / "applicants.data", lines)
    output = tmp_path / "scores.csv"
    output.write_text("yesterday's scores\n")
    result = predict(model_dir, source, output, "--chunk-rows", 100)
    assert_user_error(result, "line 900", "column 'purpose'", "'A499'")
    assert output.read_text() == "yesterday's scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["applicants.data", "scores.csv"]


def test_verbose_adds_the_traceback(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "german.data.gz"
    source.write_bytes(gzip.compress(DATA.read_bytes()))
    args = ["--model", model_dir, "--input", source, "--output", tmp_path / "o.csv"]
    result = invoke("--verbose", "predict", *args)
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "DataValidationError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: ")


# --- train --------------------------------------------------------------------------------------


def test_train_one_class_only(store: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "good.data", [line for line in LINES if line.endswith(" 1")])
    result = invoke("train", "--data", source, "--quiet")
    assert_user_error(
        result, str(source), "at least 8 rows of each class", "700 good (class 1) and 0 bad"
    )
    assert not store.exists()  # refused before MLflow was touched


def test_train_ten_rows(store: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "ten.data", LINES[:10])
    result = invoke("train", "--data", source, "--quiet")
    assert_user_error(
        result,
        "at least 8 rows of each class",
        "test_size=0.2, cv_folds=5, calibration_folds=3",
        "7 good (class 1) and 3 bad (class 2)",
    )


def test_train_duplicated_column_name(store: Path, tmp_path: Path) -> None:
    header = [*FEATURE_NAMES, "age_years", "risk_class"]
    lines = [" ".join([*line.split()[:20], line.split()[12], line.split()[20]]) for line in LINES]
    source = write(tmp_path / "dup.csv", csv_text(lines, header))
    result = invoke("train", "--data", source, "--quiet")
    assert_user_error(result, f"{source}, line 1", "'age_years' appears twice", "21")


def test_train_missing_data_file(store: Path, tmp_path: Path) -> None:
    missing = tmp_path / "german.data"
    result = invoke("train", "--data", missing, "--quiet")
    assert_user_error(result, str(missing), "file not found")


def test_train_malformed_row_in_the_middle(store: Path, tmp_path: Path) -> None:
    lines = list(LINES)
    lines[500] += " A201"
    source = write(tmp_path / "german.data", lines)
    result = invoke("train", "--data", source, "--quiet")
    assert_user_error(result, f"{source}, line 501: 22 values where 21 are expected")


def test_invalid_setting_is_one_line(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_RISK_CV_FOLDS", "1")
    result = invoke("train", "--quiet")
    assert_user_error(result, "setting cv_folds", "CREDIT_RISK_CV_FOLDS", "greater than or equal")


@pytest.mark.slow
def test_train_extra_column_is_named_as_ignored(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in TINY_TRAINING.items():
        monkeypatch.setenv(name, value)
    header = [*FEATURE_NAMES, "branch_note", "risk_class"]
    lines = [" ".join([*line.split()[:20], "walk-in", line.split()[20]]) for line in LINES]
    source = write(tmp_path / "extra.csv", csv_text(lines, header))
    result = invoke("train", "--data", source, "--quiet")
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    # Once, though every step of the run reads the file again.
    assert len(warned) == 1 and "'branch_note'" in warned[0] and str(source) in warned[0]


# --- decision log -------------------------------------------------------------------------------


def test_monitor_decision_log_that_does_not_exist(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "decisions.db"
    result = invoke("monitor", "--log-url", f"sqlite:///{log}", "--model", model_dir)
    assert_user_error(result, f"no database at {log}", "--log-url")
    assert not log.exists()  # no empty database left behind
    assert not (tmp_path / "reports").exists()


def test_serve_with_a_decision_log_folder_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(a))
    folder = tmp_path / "logs"
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG_URL", f"sqlite:///{folder / 'decisions.db'}")
    result = invoke("serve", "--model", tmp_path)
    assert_user_error(result, f"the folder {folder} does not exist")
    assert started == [] and not folder.exists()


# --- concurrent training ------------------------------------------------------------------------


@pytest.mark.slow
def test_two_trainings_started_together_on_a_fresh_store_both_succeed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {
        **os.environ,
        **TINY_TRAINING,
        "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "CREDIT_RISK_ARTIFACT_LOCATION": str(store / "mlruns"),
        "CREDIT_RISK_MODEL_DIR": str(store / "champion"),
    }
    command = [sys.executable, "-m", "credit_risk.cli", "train", "--data", str(DATA)]
    runs = [
        subprocess.Popen(
            [*command, "--seed", str(seed)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    started = time.perf_counter()
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
        assert "Traceback" not in output
    versions = sorted(
        line.split(" v")[1].split()[0]
        for out in outputs
        for line in out.splitlines()
        if line.startswith("run ") and "model german-credit-risk v" in line
    )
    assert versions == ["1", "2"], (versions, time.perf_counter() - started)
    assert (store / "champion" / "metadata.json").is_file()
