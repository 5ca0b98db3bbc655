"""Per-leaf path contributions: equal to the scikit-learn reference, additive, ranked like SHAP."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from credit_risk.fastpath import (
    attribute_lineage,
    components,
    read_layout,
    reference_contributions,
)
from credit_risk.schema import ATTRIBUTES
from credit_risk.scoring import Scorer, top_reasons


def test_contributions_equal_the_scikit_learn_reference(
    scorer: Scorer, applicants: pd.DataFrame
) -> None:
    assert scorer.fast is not None
    _, contributions = scorer.fast.run_frame(applicants)
    reference = reference_contributions(scorer.pipeline, applicants)
    assert np.max(np.abs(contributions - reference)) <= 1e-9


def test_contributions_add_up_to_the_forest_probability(
    scorer: Scorer, applicants: pd.DataFrame
) -> None:
    assert scorer.fast is not None
    encoded = scorer.fast.encoder.encode_frame(applicants)
    _, raw, contributions = scorer.fast.run_raw(encoded)
    assert np.max(np.abs(scorer.fast.bias + contributions.sum(axis=1) - raw)) <= 1e-9


def _shap_by_attribute(pipeline: Any, applicants: pd.DataFrame) -> np.ndarray:
    """Exact TreeSHAP of the forests' probability of bad, summed to codebook attributes."""
    import shap

    lineage = attribute_lineage(pipeline, read_layout(pipeline))
    encoded = np.asarray(pipeline[:-1].transform(applicants), dtype=np.float64)
    forests = [forest for forest, _ in components(pipeline)]
    total = np.zeros((len(applicants), len(ATTRIBUTES)))
    for forest in forests:
        values = np.asarray(shap.TreeExplainer(forest).shap_values(encoded, check_additivity=False))
        bad = values[..., 1] if values.ndim == 3 else values[1]
        total += bad @ lineage
    return total / len(forests)


def test_reasons_rank_like_shap(scorer: Scorer, applicants: pd.DataFrame) -> None:
    sample = applicants.sample(150, random_state=0).reset_index(drop=True)
    assert scorer.fast is not None
    _, ours = scorer.fast.run_frame(sample)
    shap_values = _shap_by_attribute(scorer.pipeline, sample)
    ours_top, shap_top = top_reasons(ours), top_reasons(shap_values)
    top1 = np.mean(ours_top[:, 0] == shap_top[:, 0])
    overlap = np.mean(
        [
            len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, min((a >= 0).sum(), (b >= 0).sum()))
            for a, b in zip(ours_top, shap_top, strict=True)
        ]
    )
    # Path contributions and SHAP agree on what matters most for nearly every applicant.
    assert top1 >= 0.8, top1
    assert overlap >= 0.7, overlap
