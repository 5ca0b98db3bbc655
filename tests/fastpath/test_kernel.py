"""The batch engine (forest arrays walked by the numba kernel, or its numpy fallback)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit_risk.fastpath import kernel
from credit_risk.scoring import Scorer


def test_batch_engine_matches_pipeline_and_onnx(scorer: Scorer, applicants: pd.DataFrame) -> None:
    assert scorer.fast is not None
    encoded = scorer.fast.encoder.encode_frame(applicants)
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    trees, _, by_trees = scorer.fast.run_raw(encoded, engine="trees")
    _, _, by_onnx = scorer.fast.run_raw(encoded, engine="onnx")
    assert np.max(np.abs(trees - expected)) <= 1e-9
    assert np.array_equal(trees >= scorer.threshold, expected >= scorer.threshold)
    assert np.max(np.abs(by_trees - by_onnx)) <= 1e-9


def test_batch_engine_numpy_fallback_gives_the_same_sums(
    scorer: Scorer, applicants: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scorer.fast is not None
    encoded = scorer.fast.encoder.encode_frame(applicants)
    compiled = scorer.fast.forest.run(encoded, threads=2)
    monkeypatch.setattr(kernel, "_kernel", lambda: kernel._accumulate_numpy)
    assert np.array_equal(scorer.fast.forest.run(encoded, threads=1), compiled)


def test_onnx_engine_gives_the_same_sums_in_slices(
    scorer: Scorer, applicants: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scorer.fast is not None
    encoded = scorer.fast.encoder.encode_frame(applicants)
    whole = scorer.fast._run_graph(encoded)
    assert whole.dtype == np.float64 and whole.shape == (len(encoded), scorer.fast.forest.n_targets)
    row_bytes = 8 * len(scorer.fast.forest.roots) * scorer.fast.forest.n_targets
    monkeypatch.setattr(type(scorer.fast), "ONNX_SLICE_BYTES", 37 * row_bytes)
    assert np.array_equal(scorer.fast._run_graph(encoded), whole)
