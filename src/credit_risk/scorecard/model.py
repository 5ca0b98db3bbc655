"""The scorecard as a scikit-learn classifier: binning -> logistic regression on WoE -> points.

:class:`PointsScorecard` fits in four steps, each a plain function here:

1. bin every input attribute under its declaration and select those with information value of
   at least ``min_iv`` (:func:`credit_risk.scorecard.binning.fit_binning`, optbinning);
2. fit an unpenalised logistic regression of bad on the selected attributes' weights of
   evidence; an attribute whose coefficient comes out with the wrong sign (WoE is positive for
   safer bins, so its coefficient on the log-odds of bad must be negative) would reverse its
   bins' order, so it is dropped and the regression refitted (:func:`fit_regression`);
3. scale the regression to integer points (:mod:`credit_risk.scorecard.table`);
4. calibrate: with ``calibration="sigmoid"`` the probability of bad is a logistic function of
   the points fitted on out-of-fold points (``calibration_folds`` folds, each a full refit of
   steps 1-3), as the forest is calibrated; with ``"none"`` it is what the scaling says the
   points stand for. Weights of evidence fitted on the rows they then score make in-sample
   points over-confident; the out-of-fold fit corrects that.

The fitted estimator holds only the points table as plain JSON (``table_``): it is saved with
skops like the forest, and serving reads the same table from the exported metadata.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES
from credit_risk.scorecard.binning import AttributeBins, fit_binning
from credit_risk.scorecard.declarations import BY_ATTRIBUTE
from credit_risk.scorecard.lookup import PointsLookup, bin_indices
from credit_risk.scorecard.table import (
    AttributeRow,
    BinRow,
    Calibration,
    PointsTable,
    Scaling,
    points_for,
)

CALIBRATIONS = ("none", "sigmoid")
# The skops types a saved scorecard needs trusted (its table is plain JSON data).
SKOPS_TRUSTED_TYPES: list[str] = ["credit_risk.scorecard.model.PointsScorecard"]


def _rows(
    fitted: list[AttributeBins], selected: list[str], drop_protected: bool, min_iv: float
) -> dict[str, AttributeRow]:
    """One table row per codebook attribute, with 0 points for now."""
    by_name = {bins.attribute: bins for bins in fitted}
    rows: dict[str, AttributeRow] = {}
    for attribute in ATTRIBUTES:
        declaration = BY_ATTRIBUTE[attribute.name]
        bins = by_name.get(attribute.name)
        if bins is None:
            note = "protected: not inputs under protected_policy exclude" if drop_protected else ""
            rows[attribute.name] = AttributeRow(
                attribute=attribute.name,
                treatment=declaration.treatment,
                trend=declaration.trend,
                iv=None,
                selected=False,
                note=note,
            )
            continue
        rows[attribute.name] = AttributeRow(
            attribute=attribute.name,
            treatment=declaration.treatment,
            trend=declaration.trend,
            iv=bins.iv,
            selected=attribute.name in selected,
            coefficient=0.0 if attribute.name in selected else None,
            note="" if attribute.name in selected else f"information value under {min_iv:g}",
            bins=tuple(
                BinRow(
                    label=b.label,
                    codes=b.codes,
                    lower=b.lower,
                    upper=b.upper,
                    good=b.good,
                    bad=b.bad,
                    woe=b.woe,
                    points=0,
                )
                for b in bins.bins
            ),
        )
    return rows


def woe_matrix(rows: list[AttributeRow], applicants: pd.DataFrame) -> np.ndarray:
    """Each applicant's weight of evidence on each of ``rows`` ``(n, len(rows))``."""
    columns = []
    for row in rows:
        woe = np.asarray([b.woe for b in row.bins], dtype="float64")
        columns.append(woe[bin_indices(row, applicants[row.attribute].to_numpy())])
    return np.column_stack(columns) if columns else np.zeros((len(applicants), 0))


def fit_regression(
    woe: np.ndarray, y: np.ndarray, names: list[str]
) -> tuple[float, dict[str, float], list[str]]:
    """Logistic regression of bad on WoE, dropping wrong-signed attributes one at a time.

    Returns:
        The intercept, the coefficient of each kept attribute, and the dropped attributes.

    Raises:
        ValueError: no attribute is left.
    """
    from sklearn.linear_model import LogisticRegression

    kept = list(range(len(names)))
    dropped: list[str] = []
    while kept:
        regression = LogisticRegression(C=math.inf, max_iter=5000)
        regression.fit(woe[:, kept], y)
        coefficients = regression.coef_[0]
        worst = int(np.argmax(coefficients))
        if coefficients[worst] < 0:
            return (
                float(regression.intercept_[0]),
                {names[k]: float(c) for k, c in zip(kept, coefficients, strict=True)},
                dropped,
            )
        dropped.append(names[kept.pop(worst)])
    raise ValueError("no attribute keeps a coefficient of the expected sign: nothing to score")


def fit_table(
    applicants: pd.DataFrame,
    y: np.ndarray,
    scaling: Scaling,
    min_iv: float,
    min_bin_size: float,
    drop_protected: bool,
) -> PointsTable:
    """Steps 1-3: the points table of these applicants, with the scaling's calibration.

    Args:
        applicants: validated applicants.
        y: 1 for bad, 0 for good.
        scaling: base points, base odds and points to double the odds.
        min_iv: information value an attribute needs to be an input.
        min_bin_size: smallest share of the rows in a bin.
        drop_protected: leave protected attributes out (``protected_policy`` exclude).
    """
    y = np.asarray(y, dtype=int)
    attributes = [a.name for a in ATTRIBUTES if not (drop_protected and a.protected)]
    fitted, selected = fit_binning(applicants, y, attributes, min_bin_size, min_iv)
    if not selected:
        raise ValueError(f"no attribute has an information value of at least {min_iv}")
    rows = _rows(fitted, selected, drop_protected, min_iv)
    chosen = [rows[name] for name in selected]
    intercept, coefficients, dropped = fit_regression(woe_matrix(chosen, applicants), y, selected)
    for name in dropped:
        rows[name] = rows[name].model_copy(
            update={
                "selected": False,
                "coefficient": None,
                "note": "coefficient of the wrong sign beside the other inputs",
            }
        )
    for name, coefficient in coefficients.items():
        row = rows[name]
        points = points_for(
            scaling, intercept, coefficient, [b.woe for b in row.bins], len(coefficients)
        )
        bins = tuple(
            b.model_copy(update={"points": p}) for b, p in zip(row.bins, points, strict=True)
        )
        rows[name] = row.model_copy(update={"coefficient": coefficient, "bins": bins})
    return PointsTable(
        scaling=scaling,
        intercept=intercept,
        calibration=Calibration.from_scaling(scaling),
        attributes=tuple(rows[name] for name in FEATURE_NAMES),
    )


def total_points(table: PointsTable, applicants: pd.DataFrame) -> np.ndarray:
    """Each applicant's score: the sum of their bins' points."""
    return PointsLookup(table).points_frame(applicants).sum(axis=1)


def fit_platt(points: np.ndarray, y: np.ndarray) -> Calibration:
    """A logistic of bad on the score (Platt), as fitted on out-of-fold points.

    Raises:
        ValueError: more points do not mean a lower probability of bad on these rows.
    """
    from sklearn.linear_model import LogisticRegression

    regression = LogisticRegression(C=math.inf, max_iter=5000)
    # Centred for the solver's sake; the intercept is moved back to raw points.
    centre = float(np.mean(points))
    regression.fit(np.asarray(points, dtype="float64")[:, None] - centre, np.asarray(y, int))
    slope = float(regression.coef_[0, 0])
    if not slope < 0:
        raise ValueError(
            "the out-of-fold points do not rank applicants (more points, no lower bad rate); "
            "the data cannot calibrate this scorecard"
        )
    return Calibration(
        method="sigmoid", intercept=float(regression.intercept_[0]) - slope * centre, slope=slope
    )


class PointsScorecard(ClassifierMixin, BaseEstimator):
    """A points scorecard (see the module's notes); ``predict_proba`` gives P(good), P(bad).

    Args:
        base_points: score at odds of ``base_odds`` goods per bad.
        base_odds: the odds (goods per bad) that ``base_points`` stands for.
        pdo: points that double the odds.
        min_iv: information value an attribute needs to be an input.
        min_bin_size: smallest share of the training rows in a bin.
        calibration: ``sigmoid`` (on out-of-fold points) or ``none`` (the scaling's odds).
        calibration_folds: folds of the out-of-fold points.
        drop_protected: leave protected attributes out (``protected_policy`` exclude).
        seed: the folds' shuffle.
    """

    def __init__(
        self,
        base_points: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
        min_iv: float = 0.02,
        min_bin_size: float = 0.05,
        calibration: str = "sigmoid",
        calibration_folds: int = 3,
        drop_protected: bool = True,
        seed: int = 42,
    ) -> None:
        self.base_points = base_points
        self.base_odds = base_odds
        self.pdo = pdo
        self.min_iv = min_iv
        self.min_bin_size = min_bin_size
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.drop_protected = drop_protected
        self.seed = seed

    def _fit_table(self, applicants: pd.DataFrame, y: np.ndarray) -> PointsTable:
        scaling = Scaling(base_points=self.base_points, base_odds=self.base_odds, pdo=self.pdo)
        return fit_table(
            applicants, y, scaling, self.min_iv, self.min_bin_size, self.drop_protected
        )

    def fit(self, applicants: pd.DataFrame, y: Any) -> PointsScorecard:
        """Fit the points table (and its calibration) on validated applicants, y 1 = bad."""
        from sklearn.model_selection import StratifiedKFold

        if self.calibration not in CALIBRATIONS:
            raise ValueError(
                f"calibration: the scorecard supports {' or '.join(CALIBRATIONS)}, "
                f"not {self.calibration!r}"
            )
        y = np.asarray(y, dtype=int)
        applicants = applicants.reset_index(drop=True)
        table = self._fit_table(applicants, y)
        if self.calibration == "sigmoid":
            out_of_fold = np.zeros(len(y), dtype=np.int64)
            folds = StratifiedKFold(self.calibration_folds, shuffle=True, random_state=self.seed)
            for train, held_out in folds.split(applicants, y):
                part = self._fit_table(applicants.iloc[train], y[train])
                out_of_fold[held_out] = total_points(part, applicants.iloc[held_out])
            table = table.model_copy(update={"calibration": fit_platt(out_of_fold, y)})
        self.table_ = table.to_json()
        self.classes_ = np.array([0, 1])
        return self

    @property
    def points_table(self) -> PointsTable:
        """The fitted, validated points table."""
        return PointsTable.model_validate(self.table_)

    def points(self, applicants: pd.DataFrame) -> np.ndarray:
        """Each applicant's total score."""
        return total_points(self.points_table, applicants)

    def predict_proba(self, applicants: pd.DataFrame) -> np.ndarray:
        """``(n, 2)``: probability of good, probability of bad."""
        lookup = PointsLookup(self.points_table)
        bad = lookup.probability(lookup.points_frame(applicants).sum(axis=1))
        return np.column_stack([1.0 - bad, bad])

    def scaling_probability(self, applicants: pd.DataFrame) -> np.ndarray:
        """Probability of bad that the scaling alone gives the points (before calibration)."""
        table = self.points_table
        uncalibrated = table.model_copy(
            update={"calibration": Calibration.from_scaling(table.scaling)}
        )
        lookup = PointsLookup(uncalibrated)
        return lookup.probability(lookup.points_frame(applicants).sum(axis=1))

    def predict(self, applicants: pd.DataFrame) -> np.ndarray:
        """1 (bad) where the probability of bad is at least one half, else 0."""
        return (self.predict_proba(applicants)[:, 1] >= 0.5).astype(int)
