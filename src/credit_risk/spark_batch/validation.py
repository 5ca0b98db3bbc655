"""Checking rows and reading the input: each row's first problem, the row formats (UCI, CSV,
Parquet) detected from the first line, the source as Spark reads it, Spark's errors on a
path.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, TARGET
from credit_risk.spark_batch.shipping import SparkBatchError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


# The columns of the rejects output before the input's own (raw text) columns.
REJECT_COLUMNS: tuple[str, ...] = ("source_file", "line", "column", "value", "reason")
# Index of the class column in a row's first problem (after the 20 attributes).
_TARGET_INDEX = len(ATTRIBUTES)
_UCI_HINT = "the UCI format has 20 attributes (optionally followed by the class 1/2) per line"


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
