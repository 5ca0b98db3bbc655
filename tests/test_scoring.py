"""The scoring core: reasons, batch file scoring, registry loading (fast path: tests/fastpath/)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.data import read_applicants
from credit_risk.schema import FEATURE_NAMES
from credit_risk.scoring import REASON_COLUMNS, Scorer, predict_file
from tests.conftest import DATA


def test_score_adds_reason_columns(scorer: Scorer, applicants: pd.DataFrame) -> None:
    scored = scorer.score(applicants.head(50))
    assert list(scored.columns) == [
        "probability_bad",
        "risk_class",
        "risk_label",
        "decision",
        *REASON_COLUMNS,
    ]
    first = scorer.score_records(applicants.head(1).to_dict("records"))[0]
    assert scored.loc[0, "reason_1"] == first.reasons[0].text
    assert all(scored["reason_1"].str.contains(": "))


def test_predict_file_writes_probabilities_decisions_and_reasons(
    scorer: Scorer, applicants: pd.DataFrame, tmp_path: Path
) -> None:
    output = tmp_path / "scored.csv"
    assert predict_file(scorer, DATA, output, chunk_rows=300) == 1000
    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1000
    assert set(REASON_COLUMNS) <= set(rows[0])
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    written = np.array([float(r["probability_bad"]) for r in rows])
    assert np.max(np.abs(written - expected)) <= 2e-6
    rejected = [r["decision"] == "reject" for r in rows]
    assert rejected == list(expected >= scorer.threshold)


def test_scorer_loads_the_registered_champion(trained: Any) -> None:
    settings, result = trained
    uri = f"models:/{settings.registered_model_name}@{settings.champion_alias}"
    scorer = Scorer.from_uri(uri, settings.tracking_uri)
    assert scorer.version == result.version
    assert scorer.threshold == pytest.approx(result.threshold)
    assert scorer.fast is not None
    assert "cost" in scorer.metadata["test_metrics"]
    frame = read_applicants(DATA).features.head(5)
    assert list(frame.columns) == list(FEATURE_NAMES)
    assert len(scorer.score(frame)) == 5
