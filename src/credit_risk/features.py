"""Derived variables, as a scikit-learn transformer inside the fitted pipeline.

Because the transformer is a step of the one fitted artifact, serving computes exactly the
same features as training (no training/serving skew). It is stateless: ``fit`` learns nothing.
Each derived variable is defined once, in :data:`credit_risk.derivations.DERIVATIONS`, which
the compiled fast path's encoders run too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from credit_risk.derivations import AGE_BAND_EDGES, AGE_BANDS, DERIVATIONS
from credit_risk.schema import BY_NAME, CATEGORICAL, NUMERIC, PROTECTED

__all__ = [
    "AGE_BANDS",
    "AGE_BAND_EDGES",
    "DERIVATIONS",
    "DERIVED_CATEGORICAL",
    "DERIVED_NUMERIC",
    "DERIVED_PROTECTED",
    "FeatureEngineer",
    "add_derived_features",
    "category_levels",
    "output_columns",
]

DERIVED_NUMERIC: tuple[str, ...] = tuple(d.name for d in DERIVATIONS if not d.levels)
DERIVED_CATEGORICAL: dict[str, tuple[str, ...]] = {
    d.name: d.levels for d in DERIVATIONS if d.levels
}
# Derived columns that carry a protected attribute and are dropped with it.
DERIVED_PROTECTED: tuple[str, ...] = tuple(d.name for d in DERIVATIONS if d.protected)


def output_columns(drop_protected: bool) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns that :class:`FeatureEngineer` outputs.

    Args:
        drop_protected: whether protected attributes (and what is derived from them) are dropped.

    Returns:
        ``(numeric, categorical)`` column names.
    """
    dropped = set(PROTECTED) | set(DERIVED_PROTECTED) if drop_protected else set()
    numeric = [c for c in (*NUMERIC, *DERIVED_NUMERIC) if c not in dropped]
    categorical = [c for c in (*CATEGORICAL, *DERIVED_CATEGORICAL) if c not in dropped]
    return numeric, categorical


def category_levels(column: str) -> list[str]:
    """All levels a categorical output column can take (codebook codes or derived levels)."""
    if column in DERIVED_CATEGORICAL:
        return list(DERIVED_CATEGORICAL[column])
    return list(BY_NAME[column].codes)


def add_derived_features(applicants: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``applicants`` with the variables of ``DERIVATIONS`` added.

    Numeric variables are float64 or int64 columns; categorical ones are text columns.
    """
    out = applicants.copy()
    for derivation in DERIVATIONS:
        values = derivation.column(out)
        if derivation.levels:
            out[derivation.name] = pd.Series(
                np.asarray(values, dtype=object), index=out.index, dtype="str"
            )
        else:
            out[derivation.name] = np.asarray(values)
    return out


class FeatureEngineer(TransformerMixin, BaseEstimator):
    """Adds the derived variables and, by policy, drops protected inputs.

    Args:
        drop_protected: drop personal status and sex (attribute 9), age and foreign worker and
            the columns derived from them, so the fitted model never sees them. The default
            (True) is the lawful one; keeping them is an explicit opt-in.
    """

    def __init__(self, drop_protected: bool = True) -> None:
        self.drop_protected = drop_protected

    def fit(self, applicants: pd.DataFrame, y: object = None) -> FeatureEngineer:
        numeric, categorical = output_columns(self.drop_protected)
        self.feature_names_out_ = np.asarray([*numeric, *categorical], dtype=object)
        return self

    def transform(self, applicants: pd.DataFrame) -> pd.DataFrame:
        numeric, categorical = output_columns(self.drop_protected)
        return add_derived_features(applicants)[[*numeric, *categorical]]

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.feature_names_out_
