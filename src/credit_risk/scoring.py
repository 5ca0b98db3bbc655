"""Scoring core shared by the API and ``credit-risk predict``: load, score, decide, explain.

A :class:`Scorer` holds the fitted pipeline (the one artifact), its metadata (threshold, version,
metrics) and the compiled fast path generated from it (:mod:`credit_risk.fastpath`). Scoring
uses the fast path; when a pipeline cannot be compiled, it falls back to scikit-learn with the
same decisions and reasons, only slower. An exported folder whose verified fast-path cache is
intact is loaded from the cache alone (no MLflow, no scikit-learn); the pipeline is then read
only if something asks for it. A points scorecard's fast path is its points table, read from
the metadata (:class:`credit_risk.scorecard.PointsLookup`). Whatever the source, the metadata is
validated first (:mod:`credit_risk.model_folder`): a model without a usable threshold, or
without what its rejections' reasons need (the reason-code table, and a forest's approved
reference or a scorecard's points table), is never loaded. A rejection's reasons are ranked by
:class:`credit_risk.reasons.Explainer` (a forest: calibrated log-odds above the approved
reference), :class:`credit_risk.reasons.PointsExplainer` (a scorecard: points lost against
each attribute's best bin) or :class:`credit_risk.reasons.SubstitutionExplainer` (gradient
boosting, scored by scikit-learn: the drop in calibrated log-odds when one attribute takes the
approved applicants' typical value), with codes of the same table; approvals get none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.config import Family
from credit_risk.fastpath import (
    FASTPATH_DIR,
    FastPath,
    FastPathUnavailable,
    components,
    load_cached,
    load_or_build,
    reference_contributions,
)
from credit_risk.model_folder import (
    METADATA_FILE,
    ModelFolderError,
    builtin_reason_codes,
    load_pipeline,
    load_reason_codes,
    model_file_digests,
    read_metadata,
    validate_metadata,
)
from credit_risk.reasons import (
    DEFAULT_LANGUAGE,
    FALLBACK,
    MAX_REASONS,
    SUBSTITUTES_KEY,
    Explainer,
    PointsExplainer,
    ReasonCodes,
    ReasonReference,
    SubstitutionExplainer,
    SubstitutionReference,
    substitution_drops,
)
from credit_risk.schema import ATTRIBUTES, BAD, CLASS_LABELS, FEATURE_NAMES, GOOD
from credit_risk.scorecard.lookup import TABLE_KEY, PointsLookup

log = logging.getLogger(__name__)

APPROVE, REJECT = "approve", "reject"
REASON_CODE_COLUMNS: tuple[str, ...] = tuple(f"reason_code_{i}" for i in range(1, MAX_REASONS + 1))
REASON_TEXT_COLUMNS: tuple[str, ...] = tuple(f"reason_text_{i}" for i in range(1, MAX_REASONS + 1))
# As written to a scored file: code and text of each reason, in rank order.
REASON_COLUMNS: tuple[str, ...] = tuple(
    column for pair in zip(REASON_CODE_COLUMNS, REASON_TEXT_COLUMNS, strict=True) for column in pair
)


@dataclass(frozen=True)
class Reason:
    """One principal reason for a rejection: a code of the model's reason-code table.

    Attributes:
        code: the reason code (e.g. ``R01-A11``).
        attribute: schema name of the attribute cited (None for the fallback code, which
            says no attribute that may be cited explains the rejection).
        value: the applicant's value of it (UCI code or number).
        contribution: how much it raised the applicant's risk, in ``unit``: for a forest
            (``log_odds``) the applicant's log-odds of bad above those of the approved
            reference, on the served (calibrated) scale; for a points scorecard (``points``)
            the points the applicant lost on the attribute against its best bin.
        unit: ``log_odds`` or ``points`` (see :data:`credit_risk.reasons.UNIT_POINTS`).
        texts: the code's text in each language of the table.
    """

    code: str
    attribute: str | None
    value: str | int | None
    contribution: float
    unit: str
    texts: Mapping[str, str] = field(repr=False)

    @property
    def text(self) -> str:
        return self.texts[DEFAULT_LANGUAGE]

    def answer(self, language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
        """The reason as the API answers (and the decision log records) it, in ``language``."""
        return {
            "code": self.code,
            "text": self.texts[language],
            "attribute": self.attribute,
            "value": self.value,
            "contribution": self.contribution,
            "unit": self.unit,
        }


@dataclass(frozen=True)
class Decision:
    """The scored outcome for one applicant; only a rejection has reasons."""

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
        fast: the compiled fast path, or None to score with scikit-learn (a points
            scorecard's is its points lookup, built from the metadata's table when None).
        load_pipeline: reads the fitted pipeline when it was not loaded up front.
        source: where the metadata comes from, named in a validation error.
        codes: the model's reason-code table (None: this package's, which must then be the
            one the metadata lists).

    Raises:
        ModelFolderError: the metadata is not valid (e.g. a threshold outside (0, 1)), it
            lists another reason-code table, a forest has no approved reference, a scorecard
            rejects even its best score, or the pipeline cannot give the contributions reasons
            are ranked by.
    """

    def __init__(
        self,
        pipeline: Any,
        metadata: dict[str, Any],
        fast: FastPath | PointsLookup | None = None,
        load_pipeline: Callable[[], Any] | None = None,
        source: Path | str = "model metadata",
        codes: ReasonCodes | None = None,
    ) -> None:
        validated = validate_metadata(metadata, source)
        self._pipeline = pipeline
        self._load_pipeline = load_pipeline
        self.metadata = metadata
        self.fast = fast
        # A model loaded without its folder must have been saved with this package's table.
        self.codes = codes if codes is not None else builtin_reason_codes(metadata, source)
        self.explainer: Explainer | PointsExplainer | SubstitutionExplainer
        if validated.scorecard is not None:  # a points scorecard (the family says so)
            unavailable = validated.scorecard.reasons_unavailable(self.threshold)
            if unavailable is not None:
                raise ModelFolderError(
                    source,
                    f"{unavailable}, so it cannot give reasons for its rejections and is not "
                    "served",
                    TABLE_KEY,
                )
            # Its fast path is its table: a lookup, nothing to compile or verify.
            if not isinstance(fast, PointsLookup):
                self.fast = PointsLookup(validated.scorecard)
            self.explainer = PointsExplainer(self.codes, self.threshold)
            return
        if validated.family is Family.GBM:
            # Explained by substitution through scikit-learn: nothing to compile.
            if validated.reason_substitutes is None:
                raise ModelFolderError(
                    source,
                    "null or missing: the model has no substitution reference (it approves "
                    "none of its training applicants, or their typical values are rejected), "
                    "so it cannot give reasons for its rejections and is not served",
                    SUBSTITUTES_KEY,
                )
            self.fast = None
            self.explainer = SubstitutionExplainer(
                SubstitutionReference.from_json(metadata[SUBSTITUTES_KEY]),
                self.codes,
                self.threshold,
            )
            return
        if metadata["reason_reference"] is None:
            raise ModelFolderError(
                source,
                "null: the model has no approved reference (it approves none of its training "
                "applicants, or its calibrator is not monotone), so it cannot give reasons for "
                "its rejections and is not served",
                "reason_reference",
            )
        self.explainer = Explainer(
            ReasonReference.from_json(metadata["reason_reference"]), self.codes, self.threshold
        )
        if fast is None and pipeline is not None:
            try:
                components(pipeline)
            except FastPathUnavailable as error:
                raise ModelFolderError(
                    source, f"the model cannot give reasons for its decisions: {error}"
                ) from error

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
        codes: ReasonCodes | None = None,
    ) -> Scorer:
        """Wrap a fitted pipeline, compiling (or loading) its fast path.

        Args:
            pipeline: the fitted pipeline.
            metadata: its metadata (validated before anything is compiled).
            cache_dir: where the verified fast path is cached (None: not cached).
            compile_fast: use the compiled fast path (False: scikit-learn only).
            files: sha256 of an exported folder's pipeline files (part of the cache key).
            source: where the metadata comes from, named in a validation error.
            codes: the model's reason-code table (None: this package's, which must be the
                one the metadata lists).
        """
        validated = validate_metadata(metadata, source)
        if validated.scorecard is not None or validated.family is Family.GBM:
            # A points scorecard: the scorer builds its lookup; gradient boosting is scored by
            # scikit-learn. Nothing to compile.
            return cls(pipeline, metadata, source=source, codes=codes)
        fast = None
        if compile_fast:
            try:
                fast = load_or_build(pipeline, metadata, cache_dir, files=files)
            except FastPathUnavailable as error:
                log.warning("fast path unavailable, scoring with scikit-learn: %s", error)
        return cls(pipeline=pipeline, metadata=metadata, fast=fast, source=source, codes=codes)

    @classmethod
    def from_folder(cls, folder: Path, compile_fast: bool = True, batch: bool = False) -> Scorer:
        """Load an exported model folder (see :func:`credit_risk.registry.export_model`).

        The folder is checked as a whole first: ``metadata.json`` against its schema, the
        reason-code table it lists (``reason_codes.json``, by sha256 and content), and the
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
        codes = load_reason_codes(folder, metadata)
        files = model_file_digests(folder) if compile_fast else None
        if metadata.get("family") == Family.SCORECARD:  # served from the table in its metadata
            return cls(
                None,
                metadata,
                load_pipeline=lambda: load_pipeline(folder),
                source=source,
                codes=codes,
            )
        if metadata.get("family") == Family.GBM:  # scored by scikit-learn: no fast path
            return cls(load_pipeline(folder), metadata, source=source, codes=codes)
        if compile_fast:
            fast = load_cached(folder / FASTPATH_DIR, metadata, files)
            if fast is not None:
                if not batch:
                    fast.prepare()  # now, not on the first request
                log.info("fast path loaded from the verified cache in %s", folder / FASTPATH_DIR)
                return cls(
                    None,
                    metadata,
                    fast,
                    load_pipeline=lambda: load_pipeline(folder),
                    source=source,
                    codes=codes,
                )
        pipeline = load_pipeline(folder)
        return cls.from_pipeline(
            pipeline, metadata, folder / FASTPATH_DIR, compile_fast, files, source, codes
        )

    @classmethod
    def from_uri(cls, model_uri: str, tracking_uri: str) -> Scorer:
        """Load a registered model, e.g. ``models:/german-credit-risk@champion``."""
        from credit_risk.registry import load_registered

        pipeline, metadata, codes = load_registered(model_uri, tracking_uri)
        return cls.from_pipeline(pipeline, metadata, source=model_uri, codes=codes)

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
        if isinstance(self.explainer, SubstitutionExplainer):
            return substitution_drops(self.pipeline, applicants, self.explainer.reference)
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
        self,
        applicants: pd.DataFrame,
        reasons: bool = True,
        engine: str = "auto",
        language: str = DEFAULT_LANGUAGE,
    ) -> pd.DataFrame:
        """Probability, class, decision and (optionally) reason columns for each applicant.

        The reason columns ``reason_code_1``, ``reason_text_1`` .. ``reason_text_4`` hold the
        codes of a rejection's principal reasons, largest first, and their texts in
        ``language``; empty for approvals and unused slots.
        """
        probability, contributions = self.explain_frame(applicants, engine)
        scored = self.decide(probability)
        if reasons:
            top, _ = self.explainer.rank(probability, self._explained(contributions))
            scored = pd.concat(
                [scored, reason_columns(applicants, top, self.codes, language)], axis=1
            )
        return scored

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """Decisions, with a rejection's principal reasons, for validated applicants."""
        if not records:  # nothing to score (the scikit-learn fallback refuses an empty frame)
            return []
        probability, contributions = self.explain_records(records)
        # Python lists, not numpy scalars: indexing arrays element by element in the loop
        # below cost more than the model call itself for a request's handful of rows.
        probabilities = probability.tolist()
        ranked = self.explainer.rank_records(probabilities, self._explained(contributions))
        threshold = self.threshold
        codes = self.codes.codes
        code_row = self.explainer.code_row
        unit = self.explainer.unit
        decisions = []
        for row, record in enumerate(records):
            p = probabilities[row]
            rejected = p >= threshold
            reasons = []
            for k, amount in ranked[row]:
                code = codes[code_row(k, record)]
                value = None if k == FALLBACK else record[ATTRIBUTES[k].name]
                reasons.append(Reason(code.code, code.attribute, value, amount, unit, code.text))
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

    @staticmethod
    def _explained(contributions: np.ndarray | None) -> np.ndarray:
        if contributions is None:  # checked when the scorer was made: cannot happen
            raise FastPathUnavailable("the model gives no contributions")
        return contributions


def reason_columns(
    applicants: pd.DataFrame, top: np.ndarray, codes: ReasonCodes, language: str
) -> pd.DataFrame:
    """The reason code and text columns of ranked reasons, vectorised per attribute.

    Each code is looked up once per distinct value of a cited attribute in the chunk; the
    columns are categoricals over the table's codes and texts (written to CSV as Arrow
    dictionaries, no string per row).

    Args:
        applicants: the scored applicants (their values pick the code of each reason).
        top: ``(n, 4)`` ranked attributes from :meth:`credit_risk.reasons.Explainer.rank`.
        codes: the model's reason-code table.
        language: the texts' language (one of the table's).
    """
    if language not in codes.languages:
        raise ValueError(f"language must be one of {list(codes.languages)}, not {language!r}")
    # Category 0 is "no reason"; category i + 1 is the table's row i.
    chosen = np.zeros(top.shape, dtype=np.int64)
    chosen[top == FALLBACK] = codes.fallback + 1
    for k, attribute in enumerate(ATTRIBUTES):
        rows, slots = np.nonzero(top == k)
        if len(rows):
            values = applicants[attribute.name].to_numpy()[rows]
            chosen[rows, slots] = codes.code_indices(k, values) + 1
    code_names = pd.Index(["", *(c.code for c in codes.codes)], dtype=object)
    texts = pd.Index(["", *codes.texts[language]], dtype=object)
    columns: dict[str, pd.Categorical] = {}
    for slot in range(top.shape[1]):
        columns[REASON_CODE_COLUMNS[slot]] = pd.Categorical.from_codes(
            chosen[:, slot], categories=code_names
        )
        columns[REASON_TEXT_COLUMNS[slot]] = pd.Categorical.from_codes(
            chosen[:, slot], categories=texts
        )
    return pd.DataFrame(columns, index=pd.RangeIndex(len(top)))


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
    language: str = DEFAULT_LANGUAGE,
) -> int:
    """Score a UCI or CSV file in chunks and write a CSV, in constant memory.

    The next chunk is read and validated in a background thread while the current one is
    scored (the batch engine releases the GIL), so reading and scoring overlap. The CSV is
    written to a temporary file beside ``output_path`` and renamed over it only when complete:
    a failed run leaves an existing output as it was. An input without rows (a header only)
    gives a CSV with the header only.

    Args:
        scorer: the loaded model.
        input_path: applicants (UCI format or CSV with the schema's column names).
        output_path: CSV with one row per applicant: probability, class, decision, and a
            rejection's reason codes and texts.
        chunk_rows: rows per chunk.
        progress: called with the number of rows of each finished chunk.
        language: language of the reason texts (``en`` or ``es``).

    Returns:
        Rows written.

    Raises:
        UserError: the output is the input (also through a link), or the input is not a
            readable applicant file (:class:`~credit_risk.data.DataValidationError`).
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from credit_risk.data import check_readable, iter_applicants
    from credit_risk.files import atomic_output, refuse_same_file

    refuse_same_file(input_path, output_path)
    check_readable(input_path)
    written = 0
    chunks = iter_applicants(input_path, chunk_rows)
    with (
        atomic_output(output_path) as temporary,
        pa.OSFile(str(temporary), "wb") as sink,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="read") as reader,
    ):
        pending = reader.submit(next, chunks, None)
        number = 0
        while (chunk := pending.result()) is not None:
            pending = reader.submit(next, chunks, None)
            scored = scorer.score(chunk.features, engine="trees", language=language)
            _write_csv(sink, scored, header=number == 0)
            written += len(scored)
            number += 1
            if progress is not None:
                progress(len(scored))
        if number == 0:
            _write_csv(sink, _no_rows(scorer), header=True)
    return written


def _no_rows(scorer: Scorer) -> pd.DataFrame:
    """A scored frame without rows: the output's columns, for a header-only CSV."""
    scored = scorer.decide(np.empty(0))
    for column in REASON_COLUMNS:
        scored[column] = pd.Series([], dtype="str")
    return scored
