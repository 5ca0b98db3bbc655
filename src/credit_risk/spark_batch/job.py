"""The command: the Spark session, scoring and writing the output, the rejects pass,
``predict_with_spark`` and spark-submit's entry.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from credit_risk.spark_batch.partitions import (
    RejectTask,
    ScoreTask,
    block_first_lines,
    output_schema,
    reject_schema,
)
from credit_risk.spark_batch.shipping import (
    ModelNotVerified,
    ShippedModel,
    SparkBatchError,
    load_shipped,
    ship_model,
)
from credit_risk.spark_batch.validation import Source, _spark_errors, read_source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


# What ``make install-spark`` installs (pinned in requirements-dev.txt); named in the error.
PYSPARK_PACKAGE = "pyspark"
JAVA_PACKAGE = "openjdk-17-jre-headless"


# -- the command --------------------------------------------------------------------------------


def rejects_path(output: str) -> str:
    """Where rejected rows go: ``scores.parquet`` -> ``scores.rejects.parquet``, ``x`` ->
    ``x.rejects``."""
    base = output.rstrip("/")
    for suffix in (".parquet", ".csv"):
        if base.endswith(suffix):
            return base[: -len(suffix)] + ".rejects" + suffix
    return base + ".rejects"


@dataclass(frozen=True)
class SparkRun:
    """What a Spark scoring run wrote.

    Attributes:
        output: the scored rows (the valid ones).
        scored: rows scored.
        rejected: rows that failed validation (0: no rejects output).
        rejects: where they were written, with their reasons.
        first_reject: the first of them (by file and line), as a message.
    """

    output: str
    scored: int
    rejected: int = 0
    rejects: str | None = None
    first_reject: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when every row was scored; 2 when some failed validation (as locally)."""
        return 2 if self.rejected else 0

    def summary(self) -> str:
        return f"wrote {self.scored} rows to {self.output}"

    def problem(self) -> str | None:
        """The rejected rows, as an error line (None when every row was scored)."""
        if not self.rejected:
            return None
        return (
            f"error: {self.rejected} row(s) failed validation and were not scored; written "
            f"with their reasons to {self.rejects}; first: {self.first_reject}"
        )


def _require_spark() -> None:
    """Fail clearly when pyspark or a Java runtime is missing (before starting anything)."""
    try:
        import pyspark  # noqa: F401
    except ImportError as error:
        raise SparkBatchError(
            f"--engine spark needs the {PYSPARK_PACKAGE} package: `make install-spark` installs "
            f"the pinned {PYSPARK_PACKAGE} and a Java runtime (or `pip install {PYSPARK_PACKAGE}` "
            "matching your cluster's Spark version)"
        ) from error
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise SparkBatchError(
            "--engine spark needs a Java runtime (17 or 21) and none was found (no `java` on "
            f"PATH, no JAVA_HOME): `make install-spark`, or `apt-get install {JAVA_PACKAGE}`"
        )


@contextmanager
def spark_session(master: str | None, progress: bool) -> Iterator[SparkSession]:
    """The active session (a notebook, a test, spark-submit's), else a new one, stopped after.

    Args:
        master: the master URL; None: spark-submit's (``--master``), else ``local[*]``.
        progress: show Spark's console progress bar.
    """
    from pyspark.sql import SparkSession

    with warnings.catch_warnings():
        # Spark's pandas version check: every batch crosses as Arrow (pandas 3 is ours only).
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        active = SparkSession.getActiveSession()
        if active is not None:
            yield active
            return
        with _new_session(master, progress) as session:
            yield session


@contextmanager
def _new_session(master: str | None, progress: bool) -> Iterator[SparkSession]:
    """A session of this command's own (see :func:`spark_session`), stopped after."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("credit-risk predict").config(
        "spark.ui.showConsoleProgress", str(progress).lower()
    )
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # launched by spark-submit
    if master is None and not submitted:
        master = "local[*]"
    if master is not None:
        builder = builder.master(master)
    # Local workers run this interpreter (PySpark's default is whatever `python3` is on PATH);
    # the context reads PYSPARK_PYTHON once, when it starts.
    own_python = bool(master and master.startswith("local")) and "PYSPARK_PYTHON" not in os.environ
    if own_python:
        os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        session = builder.getOrCreate()
    finally:
        if own_python:
            del os.environ["PYSPARK_PYTHON"]
    try:
        yield session
    finally:
        session.stop()


def _exists(spark: SparkSession, path: str) -> bool:
    """Whether a path exists, on any file system Spark reaches (Hadoop's API, through py4j)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    config = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    return bool(hadoop_path.getFileSystem(config).exists(hadoop_path))


def _write(frame: DataFrame, path: str) -> None:
    """Parquet, or CSV with a header when the path ends in ``.csv``; never over a path.

    Raises:
        SparkBatchError: the path exists, or an executor's fast path did not verify.
    """
    from pyspark.errors import PythonException

    writer = frame.write.mode("errorifexists")
    try:
        with _spark_errors(path):
            if path.rstrip("/").endswith(".csv"):
                writer.options(header=True, escape='"').csv(path)
            else:
                writer.parquet(path)
    except PythonException as error:
        # The worker's own message, not a page of JVM and Python traceback.
        refused = f"{ModelNotVerified.__name__}: "
        last = [line for line in str(error).splitlines() if line.startswith(refused)]
        if not last:
            raise
        reason = last[-1][len(refused) :]
        raise SparkBatchError(f"an executor refused the model: {reason}") from error


def _map_in_arrow(frame: DataFrame, task: Callable[..., Any], schema: pa.Schema) -> DataFrame:
    from pyspark.sql.pandas.types import from_arrow_schema

    return frame.mapInArrow(task, from_arrow_schema(schema))


def score_source(
    spark: SparkSession, source: Source, shipped: ShippedModel, output: str, chunk_rows: int
) -> tuple[int, int]:
    """Score every valid row of the input into ``output``; return rows scored and rejected."""
    try:
        driver_scorer = load_shipped(shipped)
    except ModelNotVerified as error:
        raise SparkBatchError(str(error)) from error
    model = spark.sparkContext.broadcast(shipped)
    try:
        schema = output_schema(driver_scorer)
        context = spark.sparkContext
        task = ScoreTask(
            model, source.format, schema, chunk_rows, context.accumulator(0), context.accumulator(0)
        )
        scored = _map_in_arrow(source.frame.select(*source.columns), task, schema)
        _write(scored, output)
        return int(task.scored.value), int(task.rejected.value)
    finally:
        model.unpersist()


def write_rejects(spark: SparkSession, source: Source, path: str) -> tuple[int, str]:
    """Write the rejected rows with their reasons; return how many and the first, as a message.

    A second pass over the input, made only when the scoring pass rejected rows; text inputs
    also get a counting pass that turns Spark's blocks into file lines.
    """
    from pyspark.sql import functions as F

    if source.format.kind == "parquet":
        place = F.col("_metadata.row_index")
        first_line = None
    else:
        place = F.col("_metadata.file_block_start")
        first_line = block_first_lines(source)
    frame = source.frame.select(
        *source.columns,
        F.col("_metadata.file_path").alias("_file"),
        place.alias("_place"),
    )
    schema = reject_schema(source.format.names)
    rejects = _map_in_arrow(frame, RejectTask(source.format, first_line), schema)
    _write(rejects, path)
    written = _read_output(spark, path)
    first = written.orderBy("source_file", "line").first()
    message = "" if first is None else f"{first['source_file']}, line {first['line']}, "
    return written.count(), message + ("" if first is None else str(first["reason"]))


def _read_output(spark: SparkSession, path: str) -> DataFrame:
    """Read back what :func:`_write` wrote."""
    if path.rstrip("/").endswith(".csv"):
        return spark.read.options(header=True, escape='"', inferSchema=True).csv(path)
    return spark.read.parquet(path)


def predict_with_spark(
    model_folder: Path,
    input_path: str,
    output: str,
    master: str | None = None,
    chunk_rows: int = 50_000,
    progress: bool = True,
) -> SparkRun:
    """``credit-risk predict --engine spark``: score an input with Spark into Parquet or CSV.

    Args:
        model_folder: the exported model folder (read by the driver only).
        input_path: UCI, CSV or Parquet; any path or glob Spark reads.
        output: the output folder (CSV when it ends in ``.csv``, else Parquet).
        master: Spark master URL; None: spark-submit's, else ``local[*]``.
        chunk_rows: rows scored per call in a worker.
        progress: show Spark's progress bar.

    Returns:
        What was written (rows scored, rows rejected and where).

    Raises:
        SparkBatchError: pyspark or Java missing, the input missing, empty or without the
            attribute columns, or an output path already existing.
        ModelFolderError: the model folder cannot be trusted.
    """
    _require_spark()
    shipped = ship_model(model_folder)
    rejects = rejects_path(output)
    with spark_session(master, progress) as spark:
        for path in (output, rejects):
            if _exists(spark, path):
                raise SparkBatchError(
                    f"{path} already exists: Spark output is a folder and is never replaced; "
                    "remove it or choose another path"
                )
        source = read_source(spark, input_path)
        scored, rejected = score_source(spark, source, shipped, output, chunk_rows)
        if not rejected:
            return SparkRun(output, scored)
        count, first = write_rejects(spark, source, rejects)
        return SparkRun(output, scored, count, rejects, first)


def main(argv: list[str] | None = None) -> None:
    """spark-submit's entry: ``spark-submit [options] .../credit_risk/spark_batch/__init__.py
    --model DIR --input URL --output URL`` runs ``credit-risk predict --engine spark`` with those
    options."""
    from credit_risk.cli import app

    app(["predict", "--engine", "spark", *(sys.argv[1:] if argv is None else argv)])
