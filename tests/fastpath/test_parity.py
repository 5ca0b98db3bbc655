"""The compiled fast path gives the fitted pipeline's probabilities and decisions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk.data import read_applicants
from credit_risk.fastpath import load_or_build
from credit_risk.scoring import Scorer
from tests.conftest import DATA


def test_fast_path_matches_pipeline_on_all_rows(scorer: Scorer, applicants: pd.DataFrame) -> None:
    assert scorer.fast is not None
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    probability, _ = scorer.fast.run_frame(applicants)
    assert np.max(np.abs(probability - expected)) <= 1e-9
    assert np.array_equal(probability >= scorer.threshold, expected >= scorer.threshold)


def test_fast_path_per_request_matches_pipeline_on_all_rows(
    scorer: Scorer, applicants: pd.DataFrame
) -> None:
    assert scorer.fast is not None
    assert scorer.fast.small_engine == "trees"  # numba is a dependency: requests use the kernel
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    records = applicants.to_dict("records")
    one_by_one = np.array([scorer.fast.run_records([r])[0][0] for r in records])
    assert np.max(np.abs(one_by_one - expected)) <= 1e-9
    decisions = [d.decision for r in records for d in scorer.score_records([r])]
    assert decisions == list(np.where(expected >= scorer.threshold, "reject", "approve"))


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", None])
def test_fast_path_compiles_calibrated_and_bare_forests(
    method: str | None, applicants: pd.DataFrame
) -> None:
    from imblearn.ensemble import BalancedRandomForestClassifier
    from imblearn.pipeline import Pipeline
    from sklearn.calibration import CalibratedClassifierCV

    from credit_risk.features import FeatureEngineer
    from credit_risk.model import build_encoder

    target = read_applicants(DATA).target
    assert target is not None
    forest = BalancedRandomForestClassifier(n_estimators=25, max_depth=6, random_state=0, n_jobs=1)
    classifier: Any = (
        forest
        if method is None
        else CalibratedClassifierCV(forest, method=method, cv=3, ensemble=method == "isotonic")
    )
    pipeline = Pipeline(
        [
            ("features", FeatureEngineer(drop_protected=False)),
            ("encode", build_encoder(False)),
            ("classifier", classifier),
        ]
    )
    pipeline.fit(applicants, target.to_numpy())
    fast = load_or_build(pipeline, {"run_id": f"calibrated-{method}"}, None)
    expected = pipeline.predict_proba(applicants)[:, 1]
    # Sums in float64 as scikit-learn's: a float32 sum (~1e-8) was magnified to 2e-4 by a steep
    # segment of the isotonic map.
    for engine in ("trees", "onnx"):
        probability, _ = fast.run_frame(applicants, engine)
        assert np.max(np.abs(probability - expected)) <= 1e-9, engine
