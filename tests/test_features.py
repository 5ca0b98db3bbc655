import numpy as np
import pandas as pd
import pytest

from credit_risk.data import read_applicants
from credit_risk.derivations import DERIVATIONS
from credit_risk.features import (
    DERIVED_CATEGORICAL,
    DERIVED_NUMERIC,
    FeatureEngineer,
    add_derived_features,
    output_columns,
)
from credit_risk.schema import FEATURE_NAMES, PROTECTED
from tests.conftest import DATA


def test_derived_features_do_not_edit_the_input(applicants: pd.DataFrame) -> None:
    before = applicants.copy()
    add_derived_features(applicants)
    FeatureEngineer().fit(applicants).transform(applicants)
    pd.testing.assert_frame_equal(applicants, before)


def test_same_input_gives_same_output(applicants: pd.DataFrame) -> None:
    engineer = FeatureEngineer().fit(applicants)
    pd.testing.assert_frame_equal(engineer.transform(applicants), engineer.transform(applicants))


def test_derived_values_on_the_first_applicant(applicants: pd.DataFrame) -> None:
    row = add_derived_features(applicants.head(1)).iloc[0]
    # First row: 6 months, 1169 DM, installment rate 4 (< 20 % of disposable income, taken as
    # 17.5 %), A93 (male married/widowed), 67 years, A11.
    assert row["monthly_installment"] == pytest.approx(1169 / 6)
    assert row["disposable_income_proxy"] == pytest.approx(1169 / 6 / 0.175)
    assert row["log_credit_amount"] == pytest.approx(np.log(1169))
    assert row["age_band"] == "65_plus"
    assert "sex" not in row and "marital_status" not in row  # attribute 9 does not tell them
    assert row["has_checking_account"] == 1


def test_age_band_edges() -> None:
    frame = pd.DataFrame({"age_years": [18, 24, 25, 34, 35, 49, 50, 64, 65]})
    full = read_applicants(DATA).features.head(len(frame)).copy()
    full["age_years"] = frame["age_years"].to_numpy()
    bands = add_derived_features(full)["age_band"].tolist()
    assert bands == [
        "under_25",
        "under_25",
        "25_34",
        "25_34",
        "35_49",
        "35_49",
        "50_64",
        "50_64",
        "65_plus",
    ]


def test_drop_protected_removes_them_and_what_is_derived(applicants: pd.DataFrame) -> None:
    out = FeatureEngineer(drop_protected=True).fit(applicants).transform(applicants)
    for column in (*PROTECTED, "sex", "marital_status", "age_band"):
        assert column not in out.columns
    numeric, categorical = output_columns(True)
    assert list(out.columns) == [*numeric, *categorical]


def test_every_derived_column_comes_from_the_derivation_table(applicants: pd.DataFrame) -> None:
    out = FeatureEngineer(drop_protected=False).fit(applicants).transform(applicants)
    derived = [column for column in out.columns if column not in FEATURE_NAMES]
    assert derived == [derivation.name for derivation in DERIVATIONS]
    assert set(DERIVED_NUMERIC) | set(DERIVED_CATEGORICAL) == set(derived)
    for name, levels in DERIVED_CATEGORICAL.items():
        assert set(out[name]) <= set(levels), name
