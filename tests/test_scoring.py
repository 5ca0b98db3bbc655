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
    head = applicants.head(50)
    scored = scorer.score(head)
    assert list(scored.columns) == [
        "probability_bad",
        "risk_class",
        "risk_label",
        "decision",
        *REASON_COLUMNS,
    ]
    spanish = scorer.score(head, language="es")
    decisions = scorer.score_records(head.to_dict("records"))
    for row, decision in enumerate(decisions):
        codes = [scored.loc[row, f"reason_code_{slot}"] for slot in range(1, 5)]
        texts = [scored.loc[row, f"reason_text_{slot}"] for slot in range(1, 5)]
        textos = [spanish.loc[row, f"reason_text_{slot}"] for slot in range(1, 5)]
        given = len(decision.reasons)
        assert codes == [r.code for r in decision.reasons] + [""] * (4 - given)
        assert texts == [r.text for r in decision.reasons] + [""] * (4 - given)
        assert textos == [r.texts["es"] for r in decision.reasons] + [""] * (4 - given)
        assert (given > 0) == (decision.decision == "reject")
    with pytest.raises(ValueError, match="language must be one of"):
        scorer.score(head, language="fr")


def test_predict_file_writes_probabilities_decisions_and_reasons(
    scorer: Scorer, applicants: pd.DataFrame, tmp_path: Path
) -> None:
    output = tmp_path / "scored.csv"
    assert predict_file(scorer, DATA, output, chunk_rows=300) == 1000
    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1000
    assert list(rows[0])[4:] == list(REASON_COLUMNS)
    assert all((r["reason_code_1"] != "") == (r["decision"] == "reject") for r in rows)
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
    # The run's reason artifacts: the same reference and table as the exported folder.
    exported = Scorer.from_folder(settings.model_dir)
    assert scorer.codes == exported.codes
    assert scorer.explainer.reference == exported.explainer.reference


@pytest.mark.parametrize("compile_fast", [True, False])
def test_no_records_give_no_decisions(model_dir: Path, compile_fast: bool) -> None:
    assert Scorer.from_folder(model_dir, compile_fast=compile_fast).score_records([]) == []
