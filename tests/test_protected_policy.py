"""The protected-attribute policy: by default, the fitted artifact never sees them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
    pipeline = build_pipeline(FAST_PARAMS, seed=3, drop_protected=False, n_jobs=1).fit(
        dataset.features.iloc[:300], dataset.target.iloc[:300].to_numpy()
    )
    encoded = set(pipeline.named_steps["encode"].get_feature_names_out())
    assert {"age_years", "personal_status_sex_A92", "foreign_worker_A201"} <= encoded


# Attribute 9, foreign worker and age, and every encoded column that comes from them.
PROTECTED_PREFIXES = ("personal_status_sex", "foreign_worker", "age_years", "age_band")


def _protected_columns(names: Iterable[object]) -> list[str]:
    return [str(n) for n in names if str(n).startswith(PROTECTED_PREFIXES)]


def test_default_policy_is_exclude() -> None:
    from credit_risk.config import ProtectedPolicy, Settings

    assert Settings().protected_policy is ProtectedPolicy.EXCLUDE


def test_default_pipeline_keeps_protected_attributes_out() -> None:
    dataset = read_applicants(DATA)
    pipeline = build_pipeline(FAST_PARAMS, seed=3, n_jobs=1).fit(
        dataset.features.iloc[:300], dataset.target.iloc[:300].to_numpy()
    )
    encode = pipeline.named_steps["encode"]
    assert _protected_columns(encode.feature_names_in_) == []
    assert _protected_columns(encode.get_feature_names_out()) == []


def test_default_policy_keeps_protected_attributes_out_of_the_exported_model(
    model_dir: Path,
) -> None:
    # The model the training run exports under default settings (tests/conftest.py).
    from credit_risk.registry import read_metadata
    from credit_risk.scoring import Scorer

    assert read_metadata(model_dir)["protected_policy"] == "exclude"
    pipeline = Scorer.from_folder(model_dir).pipeline
    assert pipeline.named_steps["features"].drop_protected is True
    encode = pipeline.named_steps["encode"]
    assert _protected_columns(encode.feature_names_in_) == []
    names = encode.get_feature_names_out()
    assert _protected_columns(names) == []
    for forest in forests_of(pipeline.named_steps["classifier"]):
        assert forest.n_features_in_ == len(names)
