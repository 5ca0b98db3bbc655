"""The scorecard's fast path: validated applicants -> points, probability and points lost.

A scorecard needs no compiler: scoring is one table lookup per attribute and a sum. This module
does it with numpy (frames) or plain Python (a request's few records), from the points table
alone, so serving a scorecard needs neither scikit-learn nor optbinning. :class:`PointsLookup`
answers what :class:`credit_risk.scoring.Scorer` asks of a fast path (``run_frame``,
``run_records``, ``prepare``).

**Reasons** are the standard scorecard reason codes: the points an applicant lost on each
attribute against the attribute's best bin. The lookup gives the points lost on every attribute
it scores; :class:`credit_risk.reasons.PointsExplainer` ranks them into a rejection's reason
codes (rejections only, never a protected attribute, whatever the policy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.schema import BY_NAME, FEATURE_NAMES, Kind
from credit_risk.scorecard.table import AttributeRow, PointsTable

# The model family, and the key of ``metadata.json`` that holds its points table.
FAMILY = "scorecard"
TABLE_KEY = "scorecard"


def bin_indices(row: AttributeRow, values: Any) -> np.ndarray:
    """The bin of each value (numbers or codes) of the attribute ``row`` describes.

    Raises:
        ValueError: a code the bins do not hold, named with the allowed ones.
    """
    if BY_NAME[row.attribute].kind is Kind.NUMERIC:
        splits = np.asarray(row.splits, dtype="float64")
        return np.searchsorted(splits, np.asarray(values, dtype="float64"), side="right")
    mapping = {code: i for i, bin_ in enumerate(row.bins) for code in bin_.codes}
    indices = pd.Series(np.asarray(values, dtype=object)).map(mapping)
    if indices.isna().any():
        bad = pd.Series(np.asarray(values, dtype=object))[indices.isna()].iloc[0]
        raise ValueError(f"{row.attribute}: {bad!r} is not one of {', '.join(sorted(mapping))}")
    return indices.to_numpy(dtype=np.int64)


class PointsLookup:
    """Points, probability of bad and points lost of applicants, from a points table.

    Args:
        table: the fitted scorecard.
    """

    def __init__(self, table: PointsTable) -> None:
        self.table = table
        self._rows = table.selected
        self._columns = [FEATURE_NAMES.index(row.attribute) for row in self._rows]
        self._points = [np.asarray([b.points for b in row.bins], np.int64) for row in self._rows]
        self._codes = [{code: b.points for b in row.bins for code in b.codes} for row in self._rows]
        self._splits = [row.splits for row in self._rows]
        # Best bin of each attribute (0 where not scored: nothing to lose there).
        self._best = np.zeros(len(FEATURE_NAMES), dtype=np.int64)
        for row, column in zip(self._rows, self._columns, strict=True):
            self._best[column] = row.best_points

    def prepare(self) -> None:
        """Nothing to prepare: the lookup is ready when built."""

    # -- points -------------------------------------------------------------------------------

    def points_frame(self, applicants: pd.DataFrame) -> np.ndarray:
        """Each applicant's points per codebook attribute ``(n, 20)`` (0 where not scored)."""
        points = np.zeros((len(applicants), len(FEATURE_NAMES)), dtype=np.int64)
        for row, column, table in zip(self._rows, self._columns, self._points, strict=True):
            points[:, column] = table[bin_indices(row, applicants[row.attribute].to_numpy())]
        return points

    def points_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """:meth:`points_frame` for validated dicts (a request's few rows, no DataFrame)."""
        import bisect

        points = np.zeros((len(records), len(FEATURE_NAMES)), dtype=np.int64)
        for i, record in enumerate(records):
            for row, column, codes, splits, table in zip(
                self._rows, self._columns, self._codes, self._splits, self._points, strict=True
            ):
                value = record[row.attribute]
                if codes:
                    points[i, column] = codes[value]
                else:
                    points[i, column] = table[bisect.bisect_right(splits, float(value))]
        return points

    def probability(self, totals: np.ndarray) -> np.ndarray:
        """Probability of bad of each total score (the table's calibration)."""
        calibration = self.table.calibration
        margin = calibration.intercept + calibration.slope * np.asarray(totals, dtype="float64")
        return 1.0 / (1.0 + np.exp(-margin))

    def points_lost(self, points: np.ndarray) -> np.ndarray:
        """Points lost against each attribute's best bin ``(n, 20)`` (0 where not scored).

        Every scored attribute, protected or not, approved or rejected: which of them may be
        cited is :class:`credit_risk.reasons.PointsExplainer`'s to decide.
        """
        return (self._best[None, :] - points).astype("float64")

    # -- the fast-path interface of credit_risk.scoring.Scorer --------------------------------

    def run_frame(
        self, applicants: pd.DataFrame, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probability of bad ``(n,)`` and points lost ``(n, 20)`` (``engine`` is ignored)."""
        points = self.points_frame(applicants)
        probability = self.probability(points.sum(axis=1))
        return probability, self.points_lost(points)

    def run_records(self, records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`run_frame` for validated dicts."""
        points = self.points_records(records)
        probability = self.probability(points.sum(axis=1))
        return probability, self.points_lost(points)


def points_lookup(
    metadata: Mapping[str, Any], source: str | Path = "model metadata"
) -> PointsLookup | None:
    """The fast path of a scorecard model's metadata; None for a model of another family.

    Raises:
        ModelFolderError: the metadata is not valid (e.g. ``family: scorecard`` without a
            valid table; the field is named).
    """
    from credit_risk.model_folder import validate_metadata

    table = validate_metadata(metadata, source).scorecard
    return None if table is None else PointsLookup(table)
