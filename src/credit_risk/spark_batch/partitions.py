"""Scoring partitions with ``mapInArrow``: the output schema, the scoring task in chunks, the
rejects task and its schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from credit_risk.data import arrow_tables
from credit_risk.fastpath.lineage import probe_applicants
from credit_risk.schema import ATTRIBUTES, TARGET
from credit_risk.scoring import Scorer
from credit_risk.spark_batch.shipping import ShippedModel, _worker_scorer
from credit_risk.spark_batch.validation import (
    _TARGET_INDEX,
    BLANK,
    MISSHAPEN,
    RECORD,
    REJECT_COLUMNS,
    RowFormat,
    Source,
    first_problems,
    problem_text,
)

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast


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
        for table in arrow_tables(batches, self.chunk_rows):
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
