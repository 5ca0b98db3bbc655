"""Batch scoring on Spark: ``credit-risk predict --engine spark``.

The driver loads the model folder as the local command does: ``metadata.json`` checked, the
pipeline files' sha256, and the verified fast-path cache (:func:`credit_risk.fastpath.load_cached`;
built, verified and cached first when absent). It broadcasts the cache's files with the metadata
and the digests: the model folder need only be readable by the driver. Each Python worker loads
the fast path from those bytes with the same :func:`~credit_risk.fastpath.load_cached` (manifest,
each file's sha256, the code fingerprint of the package installed on the executor, the probe
applicants' probabilities), once per worker process, so an executor whose ``credit_risk``
differs from the driver's refuses to score instead of scoring differently.

Partitions are scored with ``mapInArrow``, in chunks of ``chunk_rows``: rows are checked against
the schema (:func:`credit_risk.data.check_values`, as the local reader does) and scored by
:meth:`credit_risk.scoring.Scorer.score`, the call the local command makes, so the output has
the local command's columns. Inputs: the UCI format or a CSV with the schema's column names
(any path or glob Spark reads; the format is detected from the first line, as locally), or
Parquet with those columns. Output: Parquet, or CSV when the output path ends in ``.csv`` (a
folder of part files, each with a header). For one input file, the part files in name order hold
the rows in input order.

Rows that fail validation do not stop the job: they are left out of the output and written,
with their file, line (row number for Parquet), column, value and reason, to a rejects output
beside it (:func:`rejects_path`), in a second pass over the input that runs only when some row
was rejected; the command then exits with status 2 (see :class:`SparkRun`).
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from credit_risk.data import (
    TARGET_ALLOWED,
    UCI_COLUMNS,
    check_target,
    check_values,
    not_allowed,
)
from credit_risk.fastpath import (
    FASTPATH_DIR,
    GRAPH_FILE,
    META_FILE,
    TREES_FILE,
    FastPath,
    fingerprint,
    load_cached,
)
from credit_risk.fastpath.lineage import probe_applicants
from credit_risk.model_folder import METADATA_FILE, model_file_digests, read_metadata
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, TARGET
from credit_risk.scoring import Scorer

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import Column, DataFrame, SparkSession

# What ``make install-spark`` installs (pinned in requirements-dev.txt); named in the error.
PYSPARK_PACKAGE = "pyspark"
JAVA_PACKAGE = "openjdk-17-jre-headless"

# The columns of the rejects output before the input's own (raw text) columns.
REJECT_COLUMNS: tuple[str, ...] = ("source_file", "line", "column", "value", "reason")
# Index of the class column in a row's first problem (after the 20 attributes).
_TARGET_INDEX = len(ATTRIBUTES)
_UCI_HINT = "the UCI format has 20 attributes (optionally followed by the class 1/2) per line"


class SparkBatchError(ValueError):
    """Scoring on Spark cannot start or finish: the message says what is missing or wrong."""


class ModelNotVerified(RuntimeError):
    """The shipped fast path does not verify where it was loaded (driver or executor)."""


# -- the model, shipped to the executors ------------------------------------------------------


@dataclass(frozen=True)
class ShippedModel:
    """What executors need to load the verified fast path: no model folder, no pipeline.

    Attributes:
        metadata: the model's validated metadata (threshold included).
        files: sha256 of the pipeline's files (part of the cache's key).
        cache: the verified fast-path cache's files, by name.
        source: the model folder, named in errors.
    """

    metadata: dict[str, Any]
    files: dict[str, str]
    cache: dict[str, bytes]
    source: str

    @property
    def key(self) -> str:
        """The model's identity (the cache's key)."""
        return fingerprint(self.metadata, self.files)


def ship_model(folder: Path) -> ShippedModel:
    """Load and check a model folder on the driver; return what the executors load.

    The fast path must load from the folder's verified cache (built, verified and cached by
    :meth:`Scorer.from_folder` when absent): a Spark job never scores with scikit-learn.

    Raises:
        ModelFolderError: the folder cannot be trusted (as for the local command).
        SparkBatchError: no verified fast path can be cached in the folder.
    """
    folder = Path(folder)
    metadata = read_metadata(folder)
    files = model_file_digests(folder)
    cache_dir = folder / FASTPATH_DIR
    if load_cached(cache_dir, metadata, files) is None:
        # Loads the pipeline, compiles, verifies and caches the fast path (if the folder is
        # writable); the executors then load that cache.
        Scorer.from_folder(folder, batch=True)
        if load_cached(cache_dir, metadata, files) is None:
            raise SparkBatchError(
                f"{folder}: no verified fast-path cache in {cache_dir}, and none could be "
                "written (is the folder read-only, or does the pipeline not compile?); run "
                "`credit-risk predict` once on a writable copy of the folder, or export it again"
            )
    cache = {name: (cache_dir / name).read_bytes() for name in (GRAPH_FILE, TREES_FILE, META_FILE)}
    return ShippedModel(metadata, files, cache, str(folder))


def load_shipped(shipped: ShippedModel) -> Scorer:
    """The scorer, from shipped cache files, verified as a local load verifies it.

    Raises:
        ModelNotVerified: the cache does not verify with the code installed here.
    """
    with tempfile.TemporaryDirectory(prefix="credit-risk-fastpath-") as folder:
        for name, payload in shipped.cache.items():
            (Path(folder) / name).write_bytes(payload)
        fast = load_cached(Path(folder), shipped.metadata, shipped.files)
    if fast is None:
        raise ModelNotVerified(
            f"the fast path of {shipped.source} does not verify on {socket.gethostname()} "
            "(the executors' credit_risk or its dependencies differ from the driver's? the "
            "worker's log says which check failed)"
        )
    return Scorer(None, shipped.metadata, fast, source=f"{shipped.source}/{METADATA_FILE}")


# One verified scorer per Python worker and model: Spark reuses its Python workers across tasks.
_WORKER_SCORERS: dict[str, Scorer] = {}


def _worker_scorer(model: Broadcast[ShippedModel]) -> Scorer:
    from pyspark import TaskContext

    shipped = model.value
    scorer = _WORKER_SCORERS.get(shipped.key)
    if scorer is None:
        _WORKER_SCORERS.clear()
        scorer = _WORKER_SCORERS[shipped.key] = load_shipped(shipped)
    context = TaskContext.get()
    if isinstance(scorer.fast, FastPath) and context is not None:
        # The task's share of the executor's cores (spark.task.cpus), not all the host's.
        scorer.fast.threads = max(1, int(context.cpus()))
    return scorer


# -- checking rows ------------------------------------------------------------------------------


def first_problems(raw: pd.DataFrame) -> tuple[dict[str, pd.Series], np.ndarray]:
    """Each row's first value the schema does not allow, and the typed columns.

    Args:
        raw: the attributes as text (and the class, when the input has it; a missing class,
            null, is not checked).

    Returns:
        The typed attribute columns (as :func:`credit_risk.data.validate_frame` types them), and
        per row the index in :data:`ATTRIBUTES` of its first bad attribute, ``len(ATTRIBUTES)``
        for a bad class, -1 where the row is valid.
    """
    first = np.full(len(raw), -1, dtype=np.int64)
    columns: dict[str, pd.Series] = {}
    for index, attribute in enumerate(ATTRIBUTES):
        columns[attribute.name], bad = check_values(attribute, raw[attribute.name])
        first[bad & (first < 0)] = index
    if TARGET in raw.columns:
        present = raw[TARGET].notna().to_numpy()
        _, bad = check_target(raw[TARGET])
        first[bad & present & (first < 0)] = _TARGET_INDEX
    return columns, first


def problem_text(index: int, value: object) -> tuple[str, str]:
    """The column and the reason for problem ``index`` of :func:`first_problems`."""
    if index == _TARGET_INDEX:
        return TARGET, not_allowed(TARGET, value, TARGET_ALLOWED)
    attribute = ATTRIBUTES[index]
    return attribute.name, not_allowed(attribute.name, value, attribute.allowed())


# -- reading the input --------------------------------------------------------------------------

# What a worker finds in each input row before checking values.
RECORD, BLANK, MISSHAPEN = 0, -2, -3


@dataclass(frozen=True)
class RowFormat:
    """How a worker turns what Spark hands it into the attributes as text.

    UCI and CSV inputs reach the workers as lines (Spark's CSV reader, turning 20 text columns
    into Arrow, was 10x slower than handing over the lines) and are split there: a record is a
    line, as for the local readers; a quoted CSV field cannot span lines (no valid value has a
    line break). Parquet arrives as columns.

    Attributes:
        kind: ``uci``, ``csv`` or ``parquet``.
        names: the input's raw columns (the attributes, and the class when present).
        header: a CSV's column names (stripped), in file order, from the first line read.
        header_line: that line as written: lines equal to it (each file's header) are skipped.
    """

    kind: str
    names: tuple[str, ...]
    header: tuple[str, ...] = ()
    header_line: str = ""

    def rows(self, batch: pa.RecordBatch | pa.Table) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The raw columns, and per input row its state and number of values.

        Returns:
            The attributes (and class) as text, null where a row is misshapen (the class also
            where a UCI line has none); per row :data:`RECORD`, :data:`BLANK` (a blank line or a
            header: no record) or :data:`MISSHAPEN` (a wrong number of values); and the number
            of values on each line (0 for Parquet).
        """
        if self.kind == "parquet":
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            # A null attribute is checked as empty text; a null class means "no class".
            filled = {
                name: table.column(name).fill_null("") if name != TARGET else table.column(name)
                for name in self.names
            }
            rows = table.num_rows
            return pa.table(filled).to_pandas(), np.full(rows, RECORD), np.zeros(rows, np.int64)
        lines = batch.column("value")
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        # Large strings from here: pandas holds its text columns as such (no copy at the end).
        lines = lines.fill_null("").cast(pa.large_string())
        trimmed = pc.utf8_trim_whitespace(lines)
        skip = pc.equal(trimmed, "")
        if self.kind == "uci":
            fields = pc.utf8_split_whitespace(trimmed)
            positions = {name: index for index, name in enumerate(UCI_COLUMNS)}
        else:
            skip = pc.or_(skip, pc.equal(lines, self.header_line))
            fields = _split_csv(lines)
            positions = {name: self.header.index(name) for name in self.names}
        counts = pc.list_value_length(fields).to_numpy(zero_copy_only=False).astype(np.int64)
        if self.kind == "uci":
            fits = (counts == len(FEATURE_NAMES)) | (counts == len(UCI_COLUMNS))
        else:
            fits = counts == len(self.header)
        blank = skip.to_numpy(zero_copy_only=False)
        state = np.where(blank, BLANK, np.where(fits, RECORD, MISSHAPEN))
        flat = pc.list_flatten(fields)
        offsets = fields.offsets.to_numpy()
        starts = offsets[:-1] - offsets[0]
        columns: dict[str, pa.Array] = {}
        for name, position in positions.items():
            present = fits & (counts > position)
            where = pa.array(np.where(present, starts + position, 0), mask=~present)
            columns[name] = pc.take(flat, where)
        return pa.table(columns).to_pandas(), state, counts

    def misshapen(self, count: int) -> str:
        """Why a line with ``count`` values is not a record."""
        if self.kind == "uci":
            return f"{count} space-separated values; {_UCI_HINT}"
        return f"{count} comma-separated values; the header has {len(self.header)} columns"


def _split_csv(lines: pa.Array) -> pa.Array:
    """CSV lines split into fields: on commas in Arrow, or with Python's reader when quoted."""
    if not pc.any(pc.match_substring(lines, '"')).as_py():
        return pc.split_pattern(lines, ",")
    rows = csv.reader(lines.to_pylist())
    return pa.array(list(rows), type=pa.list_(pa.large_string()))


@dataclass(frozen=True)
class Source:
    """The input as Spark reads it.

    Attributes:
        path: the input path (any path or glob Spark reads).
        frame: Spark's reader on the path (its hidden ``_metadata`` column still selectable):
            lines for UCI and CSV, columns for Parquet.
        columns: what the workers receive: the line (``value``), or the raw columns as text.
        format: how the workers read them.
    """

    path: str
    frame: DataFrame
    columns: tuple[Column, ...]
    format: RowFormat


def first_line(spark: SparkSession, path: str) -> str | None:
    """The first line Spark reads from the path (None: no lines).

    Raises:
        SparkBatchError: the path does not exist.
    """
    with _spark_errors(path):
        head = spark.read.text(path).limit(1).collect()
    return str(head[0][0]) if head else None


def read_source(spark: SparkSession, path: str) -> Source:
    """Spark's reader for the input (the format detected as locally, or Parquet).

    Parquet by the path's suffix or the file's magic bytes; else CSV when the first line is a
    header with the schema's names, UCI otherwise (:func:`credit_risk.data.line_format`).

    Raises:
        SparkBatchError: the path does not exist, has no rows, or lacks attribute columns.
    """
    from pyspark.sql import functions as F

    from credit_risk.data import line_format

    parquet = path.rstrip("/").endswith((".parquet", ".pq"))
    first = None if parquet else first_line(spark, path)
    if not parquet and first is None:
        raise SparkBatchError(f"{path}: no rows")
    if parquet or (first is not None and first.startswith("PAR1")):
        with _spark_errors(path):
            frame = spark.read.parquet(path)
        wanted = _wanted(path, frame.columns)
        columns = tuple(F.col(f"`{name}`").cast("string").alias(name) for name in wanted)
        return Source(path, frame, columns, RowFormat("parquet", wanted))
    assert first is not None
    with _spark_errors(path):
        frame = spark.read.text(path)
    if line_format(first) == "uci":
        return Source(path, frame, (F.col("value"),), RowFormat("uci", UCI_COLUMNS))
    header = tuple(name.strip() for name in next(csv.reader([first])))
    form = RowFormat("csv", _wanted(path, header), header, first)
    return Source(path, frame, (F.col("value"),), form)


def _wanted(path: str, names: Sequence[str]) -> tuple[str, ...]:
    """The attributes (and the class when present) among an input's columns.

    Raises:
        SparkBatchError: an attribute is missing.
    """
    missing = [name for name in FEATURE_NAMES if name not in names]
    if missing:
        raise SparkBatchError(
            f"{path}: missing column(s) {', '.join(missing)}; expected columns "
            f"{', '.join(FEATURE_NAMES)} (and optionally {TARGET})"
        )
    return (*FEATURE_NAMES, *([TARGET] if TARGET in names else []))


# -- scoring partitions -------------------------------------------------------------------------


def output_schema(scorer: Scorer) -> pa.Schema:
    """The Arrow schema of the local command's columns (dictionaries as plain text)."""
    probe = scorer.score(probe_applicants(4, seed=0), engine="trees")
    return _plain(pa.Table.from_pandas(probe, preserve_index=False).schema)


def _plain(schema: pa.Schema) -> pa.Schema:
    fields = []
    for field in schema:
        kind = field.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        fields.append(pa.field(field.name, kind))
    return pa.schema(fields)


def _chunks(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of at least ``rows`` rows (the last may be shorter) from Spark's Arrow batches."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


@dataclass(frozen=True)
class ScoreTask:
    """The work of one partition, shipped with the task (the model by broadcast)."""

    model: Broadcast[ShippedModel]
    format: RowFormat
    schema: pa.Schema
    chunk_rows: int
    scored: Any  # pyspark Accumulator[int]
    rejected: Any  # pyspark Accumulator[int]

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = _worker_scorer(self.model)
        for table in _chunks(batches, self.chunk_rows):
            raw, state, _ = self.format.rows(table)
            columns, first = first_problems(raw)
            valid = (state == RECORD) & (first < 0)
            records = int(np.count_nonzero(state != BLANK))
            self.rejected.add(records - int(np.count_nonzero(valid)))
            if not valid.any():
                continue
            features = pd.DataFrame(columns)
            if not valid.all():
                features = features[valid].reset_index(drop=True)
            scored = scorer.score(features, engine="trees")
            self.scored.add(len(scored))
            out = pa.Table.from_pandas(scored, preserve_index=False).cast(self.schema)
            yield from out.to_batches()


@dataclass(frozen=True)
class RejectTask:
    """One partition's rejected rows, with the file, line, column, value and reason.

    Attributes:
        format: how the workers read the input.
        first_line: the file line of each block's first line, by (file, block start)
            (:func:`block_first_lines`); None for Parquet (its row index is exact).
    """

    format: RowFormat
    first_line: Mapping[tuple[str, int], int] | None

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        seen: dict[tuple[str, int], int] = {}
        names = self.format.names
        schema = reject_schema(names)
        for batch in batches:
            raw, state, counts = self.format.rows(batch)
            _, first = first_problems(raw)
            rejected = np.flatnonzero((state == MISSHAPEN) | ((state == RECORD) & (first >= 0)))
            files = batch.column("_file").to_numpy(zero_copy_only=False)
            places = batch.column("_place").to_numpy(zero_copy_only=False).astype(np.int64)
            lines = self._lines(files, places, seen)
            if not len(rejected):
                continue
            out: dict[str, list[Any]] = {name: [] for name in (*REJECT_COLUMNS, *names)}
            for row in rejected.tolist():
                column: str | None
                if state[row] == MISSHAPEN:
                    column = None
                    value = batch.column("value")[row].as_py()
                    reason = self.format.misshapen(int(counts[row]))
                else:
                    index = int(first[row])
                    value = raw[TARGET if index == _TARGET_INDEX else ATTRIBUTES[index].name]
                    value = value.iloc[row]
                    column, reason = problem_text(index, value)
                out["source_file"].append(str(files[row]))
                out["line"].append(int(lines[row]))
                out["column"].append(column)
                out["value"].append(None if _missing(value) else str(value))
                out["reason"].append(reason)
                for name in names:
                    cell = raw[name].iloc[row]
                    out[name].append(None if _missing(cell) else str(cell))
            yield pa.RecordBatch.from_pydict(out, schema=schema)

    def _lines(
        self, files: np.ndarray, places: np.ndarray, seen: dict[tuple[str, int], int]
    ) -> np.ndarray:
        """Each row's line (row number for Parquet), from its block's first line and position.

        ``places`` is each row's block start (text inputs) or row index in its file (Parquet).
        """
        if self.first_line is None:
            return places + 1
        lines = np.empty(len(files), dtype=np.int64)
        for file, block in dict.fromkeys(zip(files.tolist(), places.tolist(), strict=True)):
            rows = np.flatnonzero((files == file) & (places == block))
            done = seen.get((file, block), 0)
            lines[rows] = self.first_line[(file, block)] + done + np.arange(len(rows))
            seen[(file, block)] = done + len(rows)
        return lines


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def reject_schema(raw_names: tuple[str, ...]) -> pa.Schema:
    """The rejects output: where, which column, which value, why, then the row as read."""
    return pa.schema(
        [
            ("source_file", pa.string()),
            ("line", pa.int64()),
            ("column", pa.string()),
            ("value", pa.string()),
            ("reason", pa.string()),
            *((name, pa.string()) for name in raw_names),
        ]
    )


def block_first_lines(source: Source) -> dict[tuple[str, int], int]:
    """The file line of each Spark input block's first line, by (file, block start).

    One counting pass over the input (in the JVM): lines per block, summed in file order.
    """
    from pyspark.sql import functions as F

    counts = (
        source.frame.select(
            F.col("_metadata.file_path").alias("file"),
            F.col("_metadata.file_block_start").alias("block"),
        )
        .groupBy("file", "block")
        .count()
        .collect()
    )
    first: dict[tuple[str, int], int] = {}
    before: dict[str, int] = {}
    for row in sorted(counts, key=lambda row: (row["file"], row["block"])):
        done = before.get(row["file"], 0)
        first[(row["file"], int(row["block"]))] = done + 1
        before[row["file"]] = done + int(row["count"])
    return first


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
def _spark_errors(path: str) -> Iterator[None]:
    """Spark's errors about the input or output path, as :class:`SparkBatchError`."""
    from pyspark.errors import AnalysisException

    try:
        yield
    except AnalysisException as error:
        condition = error.getCondition() or ""
        if condition.startswith("PATH_NOT_FOUND"):
            raise SparkBatchError(f"{path}: file not found") from error
        if condition.startswith("PATH_ALREADY_EXISTS"):
            raise SparkBatchError(
                f"{path} already exists: Spark output is a folder and is never replaced; "
                "remove it or choose another path"
            ) from error
        if condition.startswith("UNABLE_TO_INFER_SCHEMA"):
            raise SparkBatchError(f"{path}: no rows") from error
        raise


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
    """spark-submit's entry: ``spark-submit [options] .../credit_risk/spark_batch.py --model DIR
    --input URL --output URL`` runs ``credit-risk predict --engine spark`` with those options."""
    from credit_risk.cli import app

    app(["predict", "--engine", "spark", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
