"""The compiled encoder: the fitted feature step's encoding, from the same derivation table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk import features
from credit_risk.derivations import DERIVATIONS
from credit_risk.fastpath import FastPathUnavailable, encoding, load_or_build, probe_applicants
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, Kind
from credit_risk.scoring import Scorer


def test_skewed_encoder_disables_fast_path(
    model_dir: Path, applicants: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = encoding._derived_row

    def skewed(record: Any, derivation: Any) -> dict[str, Any]:
        return {**original(record, derivation), "monthly_installment": 0.0}

    monkeypatch.setattr(encoding, "_derived_row", skewed)
    from credit_risk.registry import load_exported

    pipeline, metadata = load_exported(model_dir)
    with pytest.raises(FastPathUnavailable, match="encoder"):
        load_or_build(pipeline, metadata, None)
    # The scorer falls back to scikit-learn: same decisions and reasons, only slower.
    slow = Scorer.from_pipeline(pipeline, metadata)
    assert slow.fast is None
    fast = Scorer.from_folder(model_dir, compile_fast=True)
    monkeypatch.setattr(encoding, "_derived_row", original)
    rows = applicants.head(20)
    assert np.allclose(
        slow.score(rows)["probability_bad"], fast.score(rows)["probability_bad"], atol=1e-9
    )
    assert slow.score(rows)["reason_code_1"].tolist() == fast.score(rows)["reason_code_1"].tolist()


@pytest.fixture(scope="module")
def every_row(applicants: pd.DataFrame) -> pd.DataFrame:
    """The shipped applicants, then random codebook applicants (every code, wide numbers)."""
    return pd.concat([applicants, probe_applicants(1000, seed=11)], ignore_index=True)


def test_fast_path_derives_with_the_feature_steps_own_table(scorer: Scorer) -> None:
    assert scorer.fast is not None
    layout = scorer.fast.encoder.layout
    # The very table the transformer runs, not a copy that a change could miss.
    assert layout.derivations is DERIVATIONS
    assert features.DERIVATIONS is DERIVATIONS
    sources = {*layout.numeric, *(column for column, _ in layout.categorical)}
    assert sources - set(FEATURE_NAMES) <= {derivation.name for derivation in DERIVATIONS}


def test_every_derivation_agrees_on_every_row(every_row: pd.DataFrame) -> None:
    transformed = features.add_derived_features(every_row)
    by_columns = encoding._derived_columns(
        {name: every_row[name] for name in FEATURE_NAMES}, DERIVATIONS
    )
    by_records = [encoding._derived_row(r, DERIVATIONS) for r in every_row.to_dict("records")]
    for derivation in DERIVATIONS:
        expected = transformed[derivation.name].to_numpy()
        columns = np.asarray(by_columns[derivation.name])
        records = np.asarray([row[derivation.name] for row in by_records])
        if derivation.levels:
            assert set(expected) <= set(derivation.levels), derivation.name
            assert columns.tolist() == expected.tolist(), derivation.name
            assert records.tolist() == expected.tolist(), derivation.name
        else:
            np.testing.assert_allclose(columns, expected, rtol=1e-12, err_msg=derivation.name)
            np.testing.assert_allclose(records, expected, rtol=1e-12, err_msg=derivation.name)


def test_encoders_match_the_fitted_feature_step_on_every_row(
    scorer: Scorer, every_row: pd.DataFrame
) -> None:
    assert scorer.fast is not None
    encoder = scorer.fast.encoder
    reference = np.asarray(scorer.pipeline[:-1].transform(every_row), dtype=np.float32)
    records = every_row.to_dict("records")
    assert len(records) > encoder.ROW_LOOP_MAX  # both encode_records paths run below
    candidates = {
        "frame": encoder.encode_frame(every_row),
        "records, columns": encoder.encode_records(records),
        "records, one by one": np.vstack([encoder.encode_records([r]) for r in records]),
    }
    for name, encoded in candidates.items():
        np.testing.assert_allclose(encoded, reference, rtol=1e-6, atol=0, err_msg=name)


def test_encoder_without_pyarrow_gives_the_same_encoding(
    scorer: Scorer, every_row: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scorer.fast is not None
    encoder = scorer.fast.encoder
    categorical = [a.name for a in ATTRIBUTES if a.kind is Kind.CATEGORICAL]
    # Without pyarrow, pandas keeps text in Python objects (its "python" string storage).
    python_text = every_row.astype(
        {name: pd.StringDtype("python", na_value=np.nan) for name in categorical}
    )
    as_objects = {
        a.name: np.asarray(
            every_row[a.name].tolist(), dtype=object if a.name in categorical else np.int64
        )
        for a in ATTRIBUTES
    }
    with_arrow = encoder.encode_frame(every_row)
    fallbacks: list[int] = []
    pandas_levels = encoding._level_index_pandas

    def counted(values: Any, levels: list[str]) -> np.ndarray:
        fallbacks.append(len(levels))
        return pandas_levels(values, levels)

    monkeypatch.setattr(encoding, "_level_index_pandas", counted)
    # A None entry makes `import pyarrow` raise ImportError, as when it is not installed.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.compute", None)
    with pd.option_context("mode.string_storage", "python"):  # pandas' choice without pyarrow
        without = [encoder.encode_frame(python_text), encoder.encode_columns(as_objects)]
    assert len(fallbacks) == 2 * len(encoder.layout.categorical)
    for encoded in without:
        assert np.array_equal(encoded, with_arrow)
