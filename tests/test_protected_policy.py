"""The exclude policy: the fitted artifact never sees protected attributes."""

from __future__ import annotations

import numpy as np

from credit_risk.data import read_applicants
from credit_risk.features import DERIVED_PROTECTED
from credit_risk.model import build_pipeline, forests_of
from credit_risk.schema import PROTECTED
from tests.conftest import DATA, FAST_PARAMS


def test_exclude_policy_drops_protected_inputs_from_the_fitted_artifact() -> None:
    dataset = read_applicants(DATA)
    x, y = dataset.features.iloc[:500], dataset.target.iloc[:500].to_numpy()
    pipeline = build_pipeline(FAST_PARAMS, seed=3, drop_protected=True, n_jobs=1).fit(x, y)

    engineered = pipeline.named_steps["features"].get_feature_names_out()
    encoded = pipeline.named_steps["encode"].get_feature_names_out()
    hidden = set(PROTECTED) | set(DERIVED_PROTECTED)
    assert hidden.isdisjoint(engineered)
    assert not [name for name in encoded if any(name.startswith(h) for h in hidden)]
    for forest in forests_of(pipeline.named_steps["classifier"]):
        assert forest.n_features_in_ == len(encoded)

    # Scrambling every protected input leaves every score unchanged.
    scrambled = x.copy()
    rng = np.random.default_rng(0)
    scrambled["personal_status_sex"] = rng.choice(["A91", "A92", "A93", "A94", "A95"], len(x))
    scrambled["age_years"] = rng.integers(18, 90, len(x))
    scrambled["foreign_worker"] = rng.choice(["A201", "A202"], len(x))
    scrambled = scrambled.astype(x.dtypes.to_dict())
    np.testing.assert_array_equal(pipeline.predict_proba(x), pipeline.predict_proba(scrambled))


def test_include_policy_uses_them() -> None:
    dataset = read_applicants(DATA)
    pipeline = build_pipeline(FAST_PARAMS, seed=3, n_jobs=1).fit(
        dataset.features.iloc[:300], dataset.target.iloc[:300].to_numpy()
    )
    encoded = set(pipeline.named_steps["encode"].get_feature_names_out())
    assert {"age_years", "sex_female", "foreign_worker_A201"} <= encoded
