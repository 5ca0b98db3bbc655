"""Derived variables, as a scikit-learn transformer inside the fitted pipeline.

Because the transformer is a step of the one fitted artifact, serving computes exactly the
same features as training (no training/serving skew). It is stateless: ``fit`` learns nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from credit_risk.schema import BY_NAME, CATEGORICAL, NUMERIC, PROTECTED

# Attribute 9 mixes sex and marital status; split them so each can be used (or dropped) alone.
SEX_BY_CODE = {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}
MARITAL_BY_CODE = {
    "A91": "divorced_separated",
    "A92": "divorced_separated_married",
    "A93": "single",
    "A94": "married_widowed",
    "A95": "single",
}
AGE_BAND_EDGES = (25, 35, 50, 65)
AGE_BANDS = ("under_25", "25_34", "35_49", "50_64", "65_plus")

DERIVED_NUMERIC = (
    "monthly_installment",
    "log_credit_amount",
    "disposable_income_proxy",
    "has_checking_account",
)
DERIVED_CATEGORICAL: dict[str, tuple[str, ...]] = {
    "sex": tuple(sorted(set(SEX_BY_CODE.values()))),
    "marital_status": tuple(sorted(set(MARITAL_BY_CODE.values()))),
    "age_band": AGE_BANDS,
}
# Derived columns that carry a protected attribute and are dropped with it.
DERIVED_PROTECTED = ("sex", "marital_status", "age_band")


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
    """Return a copy of ``applicants`` with the derived variables added.

    - ``monthly_installment``: credit amount / duration. The size of the monthly repayment
      (before interest) is what strains a household budget, more than the amount itself.
    - ``log_credit_amount``: amounts are right-skewed (250 to 18,424 DM); the log makes a
      doubling count the same wherever it happens.
    - ``disposable_income_proxy``: monthly installment / installment-rate band. The rate is the
      installment as a share of disposable income, so this ratio grows with income, which
      the data does not record directly.
    - ``has_checking_account``: applicants with no account (A14) behave very differently
      from all others; one flag lets shallow trees use it.
    - ``sex`` and ``marital_status``: attribute 9 mixes both; split, each can be audited and
      dropped on its own (labels unreliable, Grömping 2019).
    - ``age_band``: life stage (under 25, 25-34, 35-49, 50-64, 65+), for audits by age group
      and for non-monotone age effects.
    """
    out = applicants.copy()
    amount = out["credit_amount"].to_numpy(dtype="float64")
    duration = out["duration_months"].to_numpy(dtype="float64")
    rate = out["installment_rate"].to_numpy(dtype="float64")
    out["monthly_installment"] = amount / duration
    out["log_credit_amount"] = np.log(amount)
    out["disposable_income_proxy"] = amount / duration / rate
    out["has_checking_account"] = (out["checking_account_status"] != "A14").astype("int64")
    status = out["personal_status_sex"].astype("str")
    out["sex"] = status.map(SEX_BY_CODE).astype("str")
    out["marital_status"] = status.map(MARITAL_BY_CODE).astype("str")
    band_index = np.searchsorted(AGE_BAND_EDGES, out["age_years"].to_numpy(), side="right")
    out["age_band"] = pd.Series(np.asarray(AGE_BANDS)[band_index], index=out.index, dtype="str")
    return out


class FeatureEngineer(TransformerMixin, BaseEstimator):
    """Adds the derived variables and, by policy, drops protected inputs.

    Args:
        drop_protected: drop sex/marital status (attribute 9), age and foreign worker and the
            columns derived from them, so the fitted model never sees them.
    """

    def __init__(self, drop_protected: bool = False) -> None:
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
