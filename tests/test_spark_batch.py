"""`credit-risk predict --engine spark` on local[2]: parity with the local command, rejects.

One Spark session for the module (the command uses the active session). Its small
``maxPartitionBytes`` splits german.data (~80 kB) into four partitions, so that the order of the
part files and the lines of rejects in later blocks are exercised. Deselect with ``-m 'not spark'``;
skipped without a Java runtime (``make install-spark`` installs one, ``.ci/run`` too).
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from credit_risk import spark_batch
from credit_risk.cli import app
from credit_risk.data import not_allowed, read_applicants
from credit_risk.fastpath import TREES_FILE
from credit_risk.schema import BY_NAME
from credit_risk.scoring import Scorer
from credit_risk.spark_batch import (
    REJECT_COLUMNS,
    ModelNotVerified,
    ShippedModel,
    load_shipped,
    rejects_path,
    ship_model,
)
from tests.conftest import DATA

pytestmark = pytest.mark.spark

runner = CliRunner()


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A local[2] session, shared by the module (the command uses the active session)."""
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        pytest.skip("no Java runtime for Spark (make install-spark; .ci/run installs it)")
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        session = (
            SparkSession.builder.master("local[2]")
            .appName("test_spark_batch")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.files.maxPartitionBytes", "20000")
            .getOrCreate()
        )
    yield session
    session.stop()


def predict(model_dir: Path, source: Path, out: Path, *extra: str) -> Result:
    command = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(out)]
    return runner.invoke(app, [*command, *extra, "--no-progress"])


def read_output(folder: Path) -> pd.DataFrame:
    """Spark's part files in name order (CSV or Parquet), as one frame."""
    parts = sorted(folder.glob("part-*"))
    assert parts, f"no part files in {folder}"
    if folder.suffix == ".csv":
        frames = [pd.read_csv(part, keep_default_na=False) for part in parts]
    else:
        frames = [pd.read_parquet(part) for part in parts]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def local_scores(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """``credit-risk predict`` (the local engine) on the 1000 shipped rows."""
    out = tmp_path_factory.mktemp("local") / "scored.csv"
    result = predict(model_dir, DATA, out)
    assert result.exit_code == 0, result.output
    return pd.read_csv(out, keep_default_na=False)


def assert_same_scores(spark_scores: pd.DataFrame, local: pd.DataFrame) -> None:
    """Same columns in the same order, same rows in the same order: decisions and texts equal,
    probabilities within 1e-6."""
    assert list(spark_scores.columns) == list(local.columns)
    assert len(spark_scores) == len(local)
    gap = np.abs(spark_scores["probability_bad"].to_numpy() - local["probability_bad"].to_numpy())
    assert gap.max() <= 1e-6
    assert (spark_scores["decision"].to_numpy() == local["decision"].to_numpy()).all()
    rest = [c for c in local.columns if c != "probability_bad"]
    pd.testing.assert_frame_equal(
        spark_scores[rest].astype(str).reset_index(drop=True),
        local[rest].astype(str).reset_index(drop=True),
    )


def test_spark_scores_uci_and_csv_as_the_local_command(
    spark: Any, model_dir: Path, local_scores: pd.DataFrame, tmp_path: Path
) -> None:
    csv_in = tmp_path / "applicants.csv"
    read_applicants(DATA).features.to_csv(csv_in, index=False)
    for source, out in ((DATA, tmp_path / "uci.parquet"), (csv_in, tmp_path / "from-csv.csv")):
        result = predict(model_dir, source, out, "--engine", "spark", "--chunk-rows", "300")
        assert result.exit_code == 0, result.output
        assert "wrote 1000 rows" in result.output
        assert len(list(out.glob("part-*"))) > 1  # several partitions, in input order
        assert_same_scores(read_output(out), local_scores)
    assert not Path(rejects_path(str(tmp_path / "uci.parquet"))).exists()


def test_spark_scores_parquet_input(
    spark: Any, model_dir: Path, local_scores: pd.DataFrame, tmp_path: Path
) -> None:
    applicants = tmp_path / "applicants.parquet"
    read_applicants(DATA).features.to_parquet(applicants)  # numbers as int64, codes as text
    out = tmp_path / "scored"
    result = predict(model_dir, applicants, out, "--engine", "spark")
    assert result.exit_code == 0, result.output
    assert_same_scores(read_output(out), local_scores)


def write_bad_uci(path: Path) -> dict[int, tuple[str | None, str]]:
    """german.data with bad rows; returns the bad lines' (column, value) by file line."""
    lines = DATA.read_text().splitlines()
    bad: dict[int, tuple[str | None, str]] = {}

    def replace(line: int, position: int, value: str, column: str) -> None:
        fields = lines[line - 1].split()
        fields[position] = value
        lines[line - 1] = " ".join(fields)
        bad[line] = (column, value)

    replace(3, 3, "A499", "purpose")
    replace(620, 12, "17", "age_years")  # a later block; under the codebook's minimum
    replace(777, 20, "3", "risk_class")
    lines[899] = "A11 6 A34"  # line 900: too few values
    bad[900] = (None, "A11 6 A34")
    lines.insert(500, "")  # a blank line (line 501) is no record, and still counts as a line
    bad = {(line + 1 if line > 500 else line): problem for line, problem in bad.items()}
    path.write_text("\n".join(lines) + "\n")
    return bad


def test_spark_writes_rejected_rows_with_file_line_column_and_reason(
    spark: Any, model_dir: Path, local_scores: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "bad.data"
    bad = write_bad_uci(source)
    out = tmp_path / "scored.parquet"
    result = predict(model_dir, source, out, "--engine", "spark")

    assert result.exit_code == 2
    rejects = Path(rejects_path(str(out)))
    assert rejects == tmp_path / "scored.rejects.parquet"
    assert f"wrote 996 rows to {out}" in result.output
    assert (
        f"4 row(s) failed validation and were not scored; written with their reasons to {rejects}"
        in result.output
    )
    assert "line 3, column 'purpose': value 'A499' is not allowed" in result.output

    # The valid rows, scored as the local command scores them, in input order.
    data_lines = [line for line in range(1, 1002) if line != 501]  # line of each shipped row
    valid = [row for row, line in enumerate(data_lines) if line not in bad]
    assert_same_scores(read_output(out), local_scores.iloc[valid])

    found = read_output(rejects).sort_values("line").reset_index(drop=True)
    assert list(found.columns[: len(REJECT_COLUMNS)]) == list(REJECT_COLUMNS)
    assert found["line"].tolist() == sorted(bad)
    assert found["source_file"].str.endswith(str(source)).all()
    for _, row in found.iterrows():
        column, value = bad[row["line"]]
        assert row["value"] == value
        if column is None:
            assert pd.isna(row["column"])
            assert row["reason"].startswith("3 space-separated values; the UCI format has 20")
        elif column == "risk_class":
            assert row["column"] == column
            assert row["reason"] == not_allowed(column, value, "1 (good) or 2 (bad)")
        else:
            assert row["column"] == column
            assert row["reason"] == not_allowed(column, value, BY_NAME[column].allowed())
            assert row[column] == value  # the row as read follows
    # The local command stops at the first of them, with the same words.
    head = tmp_path / "head.data"
    head.write_text("".join(source.read_text().splitlines(keepends=True)[:5]))
    local = predict(model_dir, head, tmp_path / "local.csv")
    assert local.exit_code == 2
    assert f"line 3, {found.loc[0, 'reason']}" in local.output


def test_spark_reads_quoted_csv_and_rejects_with_file_lines(
    spark: Any, model_dir: Path, local_scores: pd.DataFrame, tmp_path: Path
) -> None:
    applicants = read_applicants(DATA).features
    applicants["duration_months"] = applicants["duration_months"].astype(str)
    applicants.loc[699, "duration_months"] = "six"  # file line 701: after the header
    source = tmp_path / "applicants.csv"
    applicants.to_csv(source, index=False, quoting=csv.QUOTE_NONNUMERIC)  # every text quoted
    with source.open("a") as handle:
        handle.write("A11,6\n")  # line 1002: two values
    out = tmp_path / "scored.csv"
    result = predict(model_dir, source, out, "--engine", "spark")

    assert result.exit_code == 2
    found = read_output(Path(rejects_path(str(out)))).sort_values("line")
    assert found[["line", "value"]].values.tolist() == [[701, "six"], [1002, "A11,6"]]
    assert found["column"].tolist() == ["duration_months", ""]  # no column: the line's shape
    assert found["reason"].tolist()[1] == "2 comma-separated values; the header has 20 columns"
    assert_same_scores(read_output(out), local_scores.drop(index=699))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "file not found"),
        ("no-purpose", "missing column(s) purpose"),
        ("exists", "already exists: Spark output is a folder and is never replaced"),
    ],
)
def test_spark_refuses_with_a_clear_error(
    spark: Any, model_dir: Path, tmp_path: Path, case: str, message: str
) -> None:
    source, out = DATA, tmp_path / "scored.parquet"
    if case == "missing":
        source = tmp_path / "nowhere.data"
    elif case == "no-purpose":
        source = tmp_path / "applicants.csv"
        read_applicants(DATA).features.drop(columns="purpose").to_csv(source, index=False)
    else:
        out.mkdir()
    result = predict(model_dir, source, out, "--engine", "spark")
    assert result.exit_code == 2
    assert message in result.output


def test_missing_pyspark_names_the_package(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError
    result = predict(model_dir, DATA, tmp_path / "out", "--engine", "spark")
    assert result.exit_code == 2
    assert "needs the pyspark package" in result.output
    assert "make install-spark" in result.output


def test_missing_java_names_the_package(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = predict(model_dir, DATA, tmp_path / "out", "--engine", "spark")
    assert result.exit_code == 2
    assert "needs a Java runtime" in result.output
    assert "openjdk-17-jre-headless" in result.output


def test_spark_master_needs_the_spark_engine(model_dir: Path, tmp_path: Path) -> None:
    result = predict(model_dir, DATA, tmp_path / "out.csv", "--spark-master", "local[2]")
    assert result.exit_code == 2
    assert "--spark-master" in result.output


def test_the_shipped_cache_loads_verified_and_a_tampered_one_is_refused(
    spark: Any, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = ship_model(model_dir)
    applicants = read_applicants(DATA).features.head(50)
    local = Scorer.from_folder(model_dir, batch=True).score(applicants, engine="trees")
    pd.testing.assert_frame_equal(load_shipped(shipped).score(applicants, engine="trees"), local)

    payload = bytearray(shipped.cache[TREES_FILE])
    payload[-100] ^= 1
    tampered = ShippedModel(
        shipped.metadata, shipped.files, {**shipped.cache, TREES_FILE: bytes(payload)}, "x"
    )
    with pytest.raises(ModelNotVerified, match="does not verify"):
        load_shipped(tampered)
    # The command checks what it broadcasts the way an executor does, and stops before scoring.
    monkeypatch.setattr(spark_batch.job, "ship_model", lambda folder: tampered)
    out = tmp_path / "scored.parquet"
    result = predict(model_dir, DATA, out, "--engine", "spark")
    assert result.exit_code == 2
    assert "error: the fast path of x does not verify" in result.output
    assert not out.exists()


def test_rejects_path_sits_beside_the_output() -> None:
    assert rejects_path("s3a://bank/scores.parquet") == "s3a://bank/scores.rejects.parquet"
    assert rejects_path("/data/scores.csv/") == "/data/scores.rejects.csv"
    assert rejects_path("hdfs:///out/scores") == "hdfs:///out/scores.rejects"
