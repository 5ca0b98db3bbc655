"""Scoring core shared by the API and ``credit-risk predict``: load, score, decide, explain.

A :class:`Scorer` holds the fitted pipeline (the one artifact), its metadata (threshold, version,
metrics) and the compiled fast path generated from it (:mod:`credit_risk.fastpath`). Scoring
uses the fast path; when a pipeline cannot be compiled, it falls back to scikit-learn with the
same decisions and reasons, only slower. An exported folder whose verified fast-path cache is
intact is loaded from the cache alone (no MLflow, no scikit-learn); the pipeline is then read
only if something asks for it. A points scorecard's fast path is its points table, read from
the metadata (:class:`credit_risk.scorecard.PointsLookup`): its reasons are the points lost
against each attribute's best bin. Whatever the source, the metadata is validated first
(:mod:`credit_risk.model_folder`): a model without a usable threshold is never loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.fastpath import (
    FASTPATH_DIR,
    FastPath,
    FastPathUnavailable,
    load_cached,
    load_or_build,
    reference_contributions,
)
from credit_risk.model_folder import (
    METADATA_FILE,
    load_pipeline,
    model_file_digests,
    read_metadata,
    validate_metadata,
)
from credit_risk.schema import ATTRIBUTES, BAD, CLASS_LABELS, FEATURE_NAMES, GOOD
from credit_risk.scorecard.lookup import PointsLookup, points_lookup

log = logging.getLogger(__name__)

MAX_REASONS = 4
APPROVE, REJECT = "approve", "reject"
REASON_COLUMNS: tuple[str, ...] = tuple(f"reason_{i}" for i in range(1, MAX_REASONS + 1))


@dataclass(frozen=True)
class Reason:
    """One attribute that pushed the applicant's risk up, in the codebook's words.

    Attributes:
        attribute: schema name of the attribute.
        description: what the attribute is (codebook).
        value: the applicant's value (UCI code or number).
        value_label: the value in plain language (codebook label, or number with unit).
        contribution: how much it raised the probability of bad (path contribution).
    """

    attribute: str
    description: str
    value: str | int
    value_label: str
    contribution: float

    @property
    def text(self) -> str:
        return f"{self.description}: {self.value_label}"


@dataclass(frozen=True)
class Decision:
    """The scored outcome for one applicant."""

    probability_bad: float
    risk_class: int
    risk_label: str
    decision: str
    reasons: list[Reason] = field(default_factory=list)


def top_reasons(contributions: np.ndarray, limit: int = MAX_REASONS) -> np.ndarray:
    """Indices of the attributes with the largest positive contributions, per row.

    Args:
        contributions: ``(n, 20)`` attribute contributions.
        limit: at most this many per row.

    Returns:
        ``(n, limit)`` attribute indices, largest first; -1 where fewer attributes pushed up.
    """
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :limit]
    pushed_up = np.take_along_axis(contributions, order, axis=1) > 0
    return np.where(pushed_up, order, -1)


class Scorer:
    """A loaded model with its threshold, metadata and compiled fast path.

    Args:
        pipeline: the fitted pipeline, or None to load it on first use with ``load_pipeline``.
        metadata: the model's metadata (threshold, version, metrics).
        fast: the compiled fast path, or None to score with scikit-learn.
        load_pipeline: reads the fitted pipeline when it was not loaded up front.
        source: where the metadata comes from, named in a validation error.

    Raises:
        ModelFolderError: the metadata is not valid (e.g. a threshold outside (0, 1)).
    """

    def __init__(
        self,
        pipeline: Any,
        metadata: dict[str, Any],
        fast: FastPath | PointsLookup | None = None,
        load_pipeline: Callable[[], Any] | None = None,
        source: Path | str = "model metadata",
    ) -> None:
        validate_metadata(metadata, source)
        self._pipeline = pipeline
        self._load_pipeline = load_pipeline
        self.metadata = metadata
        self.fast = fast

    @property
    def pipeline(self) -> Any:
        """The fitted pipeline (read from the model folder on first use after a light load)."""
        if self._pipeline is None and self._load_pipeline is not None:
            self._pipeline = self._load_pipeline()
        return self._pipeline

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def version(self) -> str:
        return str(self.metadata.get("model_version", "unknown"))

    @classmethod
    def from_pipeline(
        cls,
        pipeline: Any,
        metadata: dict[str, Any],
        cache_dir: Path | None = None,
        compile_fast: bool = True,
        files: dict[str, str] | None = None,
        source: Path | str = "model metadata",
    ) -> Scorer:
        """Wrap a fitted pipeline, compiling (or loading) its fast path.

        Args:
            pipeline: the fitted pipeline.
            metadata: its metadata (validated before anything is compiled).
            cache_dir: where the verified fast path is cached (None: not cached).
            compile_fast: use the compiled fast path (False: scikit-learn only).
            files: sha256 of an exported folder's pipeline files (part of the cache key).
            source: where the metadata comes from, named in a validation error.
        """
        validate_metadata(metadata, source)
        # A points scorecard's fast path is its table: a lookup, nothing to compile.
        fast: FastPath | PointsLookup | None = points_lookup(metadata, pipeline, source)
        if fast is None and compile_fast:
            try:
                fast = load_or_build(pipeline, metadata, cache_dir, files=files)
            except FastPathUnavailable as error:
                log.warning("fast path unavailable, scoring with scikit-learn: %s", error)
        return cls(pipeline=pipeline, metadata=metadata, fast=fast, source=source)

    @classmethod
    def from_folder(cls, folder: Path, compile_fast: bool = True, batch: bool = False) -> Scorer:
        """Load an exported model folder (see :func:`credit_risk.registry.export_model`).

        The folder is checked as a whole first: ``metadata.json`` against its schema, and the
        sha256 of every file of ``model/``. With a verified fast-path cache in
        ``folder/fastpath`` (written at export or by an earlier load) built from exactly this
        metadata and these files, only the cache is read: no MLflow, no scikit-learn, no
        pipeline. Else the pipeline is loaded, compiled, verified and the cache (re)written when
        the folder is writable.

        Args:
            folder: the exported model folder.
            compile_fast: use the compiled fast path (False: scikit-learn only).
            batch: scoring files only: skip preparing the per-request engine up front.

        Raises:
            ModelFolderError: the folder cannot be trusted; the message names the file and
                the field (a missing or invalid ``metadata.json``, a missing or unloadable
                pipeline).
        """
        folder = Path(folder)
        metadata = read_metadata(folder)
        source = folder / METADATA_FILE
        files = model_file_digests(folder) if compile_fast else None
        points = points_lookup(metadata, None, source)
        if points is not None:  # a points scorecard: served from the table in its metadata
            return cls(None, metadata, points, lambda: load_pipeline(folder), source)
        if compile_fast:
            fast = load_cached(folder / FASTPATH_DIR, metadata, files)
            if fast is not None:
                if not batch:
                    fast.prepare()  # now, not on the first request
                log.info("fast path loaded from the verified cache in %s", folder / FASTPATH_DIR)
                return cls(
                    None, metadata, fast, load_pipeline=lambda: load_pipeline(folder), source=source
                )
        pipeline = load_pipeline(folder)
        return cls.from_pipeline(
            pipeline, metadata, folder / FASTPATH_DIR, compile_fast, files, source
        )

    @classmethod
    def from_uri(cls, model_uri: str, tracking_uri: str) -> Scorer:
        """Load a registered model, e.g. ``models:/german-credit-risk@champion``."""
        from credit_risk.registry import load_registered

        pipeline, metadata = load_registered(model_uri, tracking_uri)
        return cls.from_pipeline(pipeline, metadata, source=model_uri)

    # -- probabilities and contributions ------------------------------------------------------

    def explain_frame(
        self, applicants: pd.DataFrame, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Probability of bad and attribute contributions (None if unexplainable).

        Args:
            applicants: validated applicants.
            engine: the fast path's engine (see :meth:`credit_risk.fastpath.FastPath.run_raw`).
        """
        if self.fast is not None:
            return self.fast.run_frame(applicants, engine)
        probability = self.pipeline.predict_proba(applicants)[:, 1]
        try:
            return probability, reference_contributions(self.pipeline, applicants)
        except FastPathUnavailable:
            return probability, None

    def explain_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`explain_frame` for validated dicts (the API's hot path: no DataFrame)."""
        if self.fast is not None:
            return self.fast.run_records(records)
        return self.explain_frame(pd.DataFrame(list(records), columns=list(FEATURE_NAMES)))

    # -- decisions ----------------------------------------------------------------------------

    def decide(self, probability: np.ndarray) -> pd.DataFrame:
        """Class (1 good / 2 bad) and decision (approve / reject) at the stored threshold."""
        rejected = probability >= self.threshold
        return pd.DataFrame(
            {
                "probability_bad": probability,
                "risk_class": np.where(rejected, BAD, GOOD),
                "risk_label": np.where(rejected, CLASS_LABELS[BAD], CLASS_LABELS[GOOD]),
                "decision": np.where(rejected, REJECT, APPROVE),
            }
        )

    def score(
        self, applicants: pd.DataFrame, reasons: bool = True, engine: str = "auto"
    ) -> pd.DataFrame:
        """Probability, class, decision and (optionally) reason columns for each applicant.

        The reason columns ``reason_1`` .. ``reason_4`` hold "description: value label" texts
        of the attributes that pushed the risk up most, empty where fewer did.
        """
        probability, contributions = self.explain_frame(applicants, engine)
        scored = self.decide(probability)
        if reasons:
            texts = reason_texts(applicants, contributions)
            for column, values in zip(REASON_COLUMNS, texts, strict=True):
                scored[column] = values
        return scored

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """Decisions with structured reasons for validated applicants (dicts of codes/ints)."""
        probability, contributions = self.explain_records(records)
        # Python lists, not numpy scalars: indexing arrays element by element in the loop
        # below cost more than the model call itself for a request's handful of rows.
        probabilities = probability.tolist()
        top = top_reasons(contributions).tolist() if contributions is not None else None
        shares = contributions.tolist() if contributions is not None else None
        threshold = self.threshold
        decisions = []
        for row, record in enumerate(records):
            p = probabilities[row]
            rejected = p >= threshold
            reasons = []
            if top is not None and shares is not None:
                for k in top[row]:
                    if k < 0:
                        break
                    attribute = ATTRIBUTES[k]
                    value = record[attribute.name]
                    reasons.append(
                        Reason(
                            attribute.name,
                            attribute.description,
                            value,
                            attribute.label(value),
                            shares[row][k],
                        )
                    )
            decisions.append(
                Decision(
                    probability_bad=p,
                    risk_class=BAD if rejected else GOOD,
                    risk_label=CLASS_LABELS[BAD if rejected else GOOD],
                    decision=REJECT if rejected else APPROVE,
                    reasons=reasons,
                )
            )
        return decisions


def reason_texts(
    applicants: pd.DataFrame, contributions: np.ndarray | None
) -> list[pd.Categorical]:
    """The ``reason_1`` .. ``reason_4`` text columns, vectorised per attribute.

    Each text is built once per distinct (attribute, value) chosen in the chunk; the columns
    are categoricals over those texts (written to CSV as Arrow dictionaries, no string per row).

    Returns:
        Four categoricals of "description: value label" (empty string where no reason).
    """
    top = top_reasons(contributions) if contributions is not None else None
    texts: dict[str, int] = {"": 0}
    chosen = np.zeros((len(applicants), MAX_REASONS), dtype=np.int64)
    for k, attribute in enumerate(ATTRIBUTES):
        if top is None:
            break
        rows, slots = np.nonzero(top == k)
        if not len(rows):
            continue
        # Codes or integers, factorised in C (Arrow's dictionary encoding for text columns).
        codes, distinct = pd.factorize(applicants[attribute.name])
        picked = codes[rows]
        used = np.unique(picked)
        lookup = np.zeros(len(distinct), dtype=np.int64)
        for code in used.tolist():
            text = f"{attribute.description}: {attribute.label(distinct[code])}"
            lookup[code] = texts.setdefault(text, len(texts))
        chosen[rows, slots] = lookup[picked]
    categories = pd.Index(list(texts), dtype=object)
    return [
        pd.Categorical.from_codes(chosen[:, slot], categories=categories)
        for slot in range(MAX_REASONS)
    ]


def _write_csv(sink: Any, scored: pd.DataFrame, header: bool) -> None:
    """Append scored rows as CSV to a binary sink (Arrow's writer, straight to the file)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(scored, preserve_index=False)
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=header, quoting_style="needed"))


def predict_file(
    scorer: Scorer,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Score a UCI or CSV file in chunks and write a CSV, in constant memory.

    The next chunk is read and validated in a background thread while the current one is
    scored (the batch engine releases the GIL), so reading and scoring overlap.

    Args:
        scorer: the loaded model.
        input_path: applicants (UCI format or CSV with the schema's column names).
        output_path: CSV with one row per applicant: probability, class, decision, reasons.
        chunk_rows: rows per chunk.
        progress: called with the number of rows of each finished chunk.

    Returns:
        Rows written.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from credit_risk.data import iter_applicants

    written = 0
    output_path.parent.mkdir(parents=True, exist_ok=True)
    chunks = iter_applicants(input_path, chunk_rows)
    with (
        pa.OSFile(str(output_path), "wb") as sink,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="read") as reader,
    ):
        pending = reader.submit(next, chunks, None)
        number = 0
        while (chunk := pending.result()) is not None:
            pending = reader.submit(next, chunks, None)
            scored = scorer.score(chunk.features, engine="trees")
            _write_csv(sink, scored, header=number == 0)
            written += len(scored)
            number += 1
            if progress is not None:
                progress(len(scored))
    return written
