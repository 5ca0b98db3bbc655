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

from credit_risk.spark_batch.job import main, predict_with_spark, rejects_path
from credit_risk.spark_batch.shipping import (
    ModelNotVerified,
    ShippedModel,
    SparkBatchError,
    load_shipped,
    ship_model,
)
from credit_risk.spark_batch.validation import REJECT_COLUMNS

__all__ = [
    "REJECT_COLUMNS",
    "ModelNotVerified",
    "ShippedModel",
    "SparkBatchError",
    "load_shipped",
    "main",
    "predict_with_spark",
    "rejects_path",
    "ship_model",
]

# spark-submit runs this file (README "Scoring on Spark"): its path is the package's.
if __name__ == "__main__":
    main()
