"""Scoring core shared by the API and ``credit-risk predict``: load, validate, score, decide."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.data import iter_applicants
from credit_risk.registry import load_exported
from credit_risk.schema import BAD, CLASS_LABELS, GOOD


@dataclass
class Scorer:
    """A loaded model with its threshold and metadata."""

    pipeline: Any
    metadata: dict[str, Any]

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @classmethod
    def from_folder(cls, folder: Path) -> Scorer:
        """Load an exported model folder (see :func:`credit_risk.registry.export_model`)."""
        pipeline, metadata = load_exported(folder)
        return cls(pipeline=pipeline, metadata=metadata)

    def probability_bad(self, applicants: pd.DataFrame) -> np.ndarray:
        """Probability that each applicant is a bad risk."""
        return self.pipeline.predict_proba(applicants)[:, 1]

    def decide(self, probability: np.ndarray) -> pd.DataFrame:
        """Class (1 good / 2 bad) and decision (approve / reject) at the stored threshold."""
        rejected = probability >= self.threshold
        return pd.DataFrame(
            {
                "probability_bad": probability,
                "risk_class": np.where(rejected, BAD, GOOD),
                "risk_label": np.where(rejected, CLASS_LABELS[BAD], CLASS_LABELS[GOOD]),
                "decision": np.where(rejected, "reject", "approve"),
            }
        )

    def score(self, applicants: pd.DataFrame) -> pd.DataFrame:
        """Probability, class and decision for each applicant."""
        return self.decide(self.probability_bad(applicants))


def predict_file(
    scorer: Scorer,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Score a UCI or CSV file in chunks and write a CSV, in constant memory.

    Args:
        scorer: the loaded model.
        input_path: applicants (UCI format or CSV with the schema's column names).
        output_path: CSV with one row per applicant.
        chunk_rows: rows per chunk.
        progress: called with the number of rows of each finished chunk.

    Returns:
        Rows written.
    """
    written = 0
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", newline="", encoding="utf-8") as handle:
        for number, chunk in enumerate(iter_applicants(input_path, chunk_rows)):
            scored = scorer.score(chunk.features)
            scored.to_csv(handle, header=number == 0, index=False, float_format="%.6f",
                          quoting=csv.QUOTE_MINIMAL)
            written += len(scored)
            if progress is not None:
                progress(len(scored))
    return written
