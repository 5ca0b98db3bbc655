"""The compiled artifact: :class:`FastPath` (encoder, forest arrays, graph, calibrators).

Owns compiling a fitted pipeline (:func:`compile_pipeline`), running the result with either
engine, checking it against the pipeline (:func:`verify`), and the scikit-learn reference of
the contributions (:func:`reference_contributions`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.fastpath.encoding import RowEncoder, read_layout
from credit_risk.fastpath.errors import FastPathUnavailable
from credit_risk.fastpath.forests import calibrate, components, leaf_attributions
from credit_risk.fastpath.graph import build_graph
from credit_risk.fastpath.kernel import ForestArrays, kernel_is_compiled
from credit_risk.fastpath.lineage import attribute_lineage

# Largest |Δ probability| allowed against the pipeline (and |bias + contributions - raw|). Both
# engines sum in float64 as scikit-learn does; only the order of the additions differs: ~1e-15,
# ~1e-12 through the steepest segment of the tests' isotonic map.
PARITY_TOLERANCE = 1e-9


@dataclass
class FastPath:
    """The compiled model: encoder, forest arrays and ONNX graph. ``run`` gives probability and
    reasons.

    Attributes:
        encoder: validated applicants -> encoded matrix.
        forest: the arrays the numba kernel walks (files, and requests when numba compiles).
        bias: mean root probability of "bad" (contributions add up to the raw probability).
        calibrators: each forest's calibration map (None for a bare forest).
        graph: the serialised ONNX graph (requests without numba); its session is made on
            first use.
        pipeline: the fitted pipeline it was compiled from, when loaded (None from the cache).
        threads: threads of the batch engine (None: one per core; a Spark task sets its
            share of the executor's cores).
    """

    encoder: RowEncoder
    forest: ForestArrays
    bias: float
    calibrators: list[dict[str, Any] | None]
    graph: bytes
    pipeline: Any = None
    threads: int | None = None
    _session: Any = field(default=None, repr=False)

    # Rows from which ``auto`` uses the batch engine whatever small_engine is (files).
    BATCH_ROWS = 4096
    # Bytes of the ONNX graph's per-tree targets (rows x trees x targets float64) per call:
    # larger inputs are run in slices of rows.
    ONNX_SLICE_BYTES = 32 << 20

    @functools.cached_property
    def small_engine(self) -> str:
        """The engine ``auto`` picks below :attr:`BATCH_ROWS` rows (requests).

        The numba kernel, which costs less than an ONNX Runtime call on a request's few rows
        (the README has the figures); ONNX Runtime when numba cannot compile the kernel (the
        numpy fallback is made for big batches).
        """
        return "trees" if kernel_is_compiled() else "onnx"

    def prepare(self) -> None:
        """Make the per-request engine ready now (kernel loaded, or session created)."""
        if self.small_engine == "onnx":
            self.session  # noqa: B018

    @property
    def session(self) -> Any:
        """The ONNX Runtime session of :attr:`graph` (created on first use)."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            # One request is microseconds of work: thread hand-offs would cost more than they
            # save, and the server scales with worker processes instead.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(
                self.graph, options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def run_raw(
        self, encoded: np.ndarray, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated probability ``(n,)``, raw forest probability ``(n,)``, contributions.

        Args:
            encoded: the encoded applicants.
            engine: ``onnx`` (ONNX Runtime), ``trees`` (:class:`ForestArrays`) or ``auto``
                (``trees`` from :attr:`BATCH_ROWS` rows, :attr:`small_engine` below).
        """
        if engine == "auto":
            engine = "trees" if len(encoded) >= self.BATCH_ROWS else self.small_engine
        if engine == "trees":
            out = self.forest.run(encoded, self.threads or os.cpu_count() or 1)
        else:
            out = self._run_graph(encoded)
        k = len(self.calibrators)
        raw = out[:, :k]
        if k == 1:
            probability = calibrate(raw[:, 0], self.calibrators[0])
        else:
            probability = np.mean(
                [calibrate(raw[:, i], c) for i, c in enumerate(self.calibrators)], axis=0
            )
        return probability, raw.mean(axis=1), out[:, k:]

    def _run_graph(self, encoded: np.ndarray) -> np.ndarray:
        """The graph's ``(n, n_targets)`` float64 sums, in slices of :attr:`ONNX_SLICE_BYTES`."""
        encoded = np.ascontiguousarray(encoded, dtype=np.float32)
        per_row = 8 * len(self.forest.roots) * self.forest.n_targets
        step = max(1, self.ONNX_SLICE_BYTES // per_row)
        if len(encoded) <= step:
            return np.asarray(self.session.run(None, {"X": encoded})[0])
        return np.concatenate(
            [
                self.session.run(None, {"X": encoded[low : low + step]})[0]
                for low in range(0, len(encoded), step)
            ]
        )

    def run_encoded(
        self, encoded: np.ndarray, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probability of "bad" ``(n,)`` and attribute contributions ``(n, 20)``.

        Contributions explain the forests' raw probability (they add up to it with the bias);
        calibration is monotone, so they rank the attributes the same way.
        """
        probability, _, contributions = self.run_raw(encoded, engine)
        return probability, contributions

    def run_records(self, records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        return self.run_encoded(self.encoder.encode_records(records))

    def run_frame(
        self, applicants: pd.DataFrame, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.run_encoded(self.encoder.encode_frame(applicants), engine)


def verify(
    pipeline: Any, fast: FastPath, applicants: pd.DataFrame, expected: np.ndarray | None = None
) -> float:
    """Check the fast path against the fitted pipeline; return the largest |Δ probability|.

    Args:
        pipeline: the fitted pipeline.
        fast: its compiled fast path.
        applicants: the rows to compare on.
        expected: the pipeline's probabilities on them, when already computed.

    Raises:
        FastPathUnavailable: encodings differ, either engine's probabilities differ by more
            than :data:`PARITY_TOLERANCE`, or contributions do not add up to the probability.
    """
    reference = np.asarray(pipeline[:-1].transform(applicants), dtype=np.float32)
    encoded = fast.encoder.encode_frame(applicants)
    records = applicants.to_dict("records")
    one_by_one = np.vstack([fast.encoder.encode_records([r]) for r in records])
    for candidate in (encoded, one_by_one):
        if not np.allclose(reference, candidate, rtol=1e-6, atol=0):
            raise FastPathUnavailable("the compiled encoder disagrees with the fitted feature step")
    if expected is None:
        expected = pipeline.predict_proba(applicants)[:, 1]
    gap = 0.0
    for engine in ("onnx", "trees"):
        probability, raw, contributions = fast.run_raw(encoded, engine)
        gap = max(gap, float(np.max(np.abs(probability - expected))))
        if gap > PARITY_TOLERANCE:
            raise FastPathUnavailable(f"{engine} probabilities differ by {gap:.2e}")
        closure = np.max(np.abs(fast.bias + contributions.sum(axis=1) - raw))
        if closure > PARITY_TOLERANCE:
            raise FastPathUnavailable(f"{engine} contributions do not add up ({closure:.2e})")
    return gap


def compile_pipeline(pipeline: Any) -> FastPath:
    """Generate the fast path (graph, forest arrays, encoder, calibrators) from a pipeline."""
    layout = read_layout(pipeline)
    lineage = attribute_lineage(pipeline, layout)
    found = components(pipeline)
    forests = [forest for forest, _ in found]
    graph, bias = build_graph(forests, lineage)
    return FastPath(
        encoder=RowEncoder(layout),
        forest=ForestArrays.from_forests(forests, lineage),
        bias=bias,
        calibrators=[calibrator for _, calibrator in found],
        graph=graph,
    )


def reference_contributions(pipeline: Any, applicants: pd.DataFrame) -> np.ndarray:
    """The same path contributions computed with scikit-learn (no ONNX): the slow reference.

    Used by the tests, and by :class:`credit_risk.scoring.Scorer` when a pipeline cannot be
    compiled but its classifier is still a forest.

    Returns:
        ``(n, 20)`` contributions per codebook attribute.
    """
    forests = [forest for forest, _ in components(pipeline)]
    lineage = attribute_lineage(pipeline, read_layout(pipeline))
    encoded = np.asarray(pipeline[:-1].transform(applicants), dtype=np.float32)
    total = np.zeros((len(applicants), lineage.shape[1]), dtype=np.float64)
    for forest in forests:
        for estimator in forest.estimators_:
            _, contributions, _ = leaf_attributions(estimator.tree_, lineage)
            total += contributions[estimator.tree_.apply(encoded)] / len(forest.estimators_)
    return total / len(forests)
