"""A forest fitted as the training run fits it, loaded as the service loads it.

Shared by the reasons and recourse benchmarks: the seeded stratified split, the threshold the
run would choose (:func:`credit_risk.tune.run_threshold`), the pipeline fitted on the training
split, and the metadata a scorer needs (threshold, reason codes, approved reference).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from credit_risk.config import ProtectedPolicy, Settings
from credit_risk.data import load_training_data, split_dataset
from credit_risk.model import build_pipeline
from credit_risk.reasons import build_reference, reason_codes_record
from credit_risk.scoring import Scorer
from credit_risk.tune import run_threshold


def fit_scorer(
    settings: Settings, params: dict[str, Any], name: str, version: str
) -> tuple[Scorer, pd.DataFrame]:
    """A scorer of ``params`` fitted on the training split, and the held-out rows.

    Args:
        settings: data, seed, split, threshold rule, protected-attribute policy, cores.
        params: the forest's hyperparameters with ``calibration`` and ``calibration_folds``.
        name, version: the model name and version its metadata carries.
    """
    dataset = load_training_data(settings)
    x_train, x_test, y_train, _ = split_dataset(dataset, settings.test_size, settings.seed)
    threshold = run_threshold(params, x_train, y_train, settings)
    exclude = settings.protected_policy is ProtectedPolicy.EXCLUDE
    pipeline = build_pipeline(params, settings.seed, exclude, settings.n_jobs)
    pipeline.fit(x_train, y_train.to_numpy())
    metadata = {
        "model_name": name,
        "model_version": version,
        "run_id": None,
        "trained_at": None,
        "objective": settings.objective.value,
        "threshold": threshold,
        "test_metrics": {},
        "cv_metrics": {},
        "reason_codes": reason_codes_record(),
        "reason_reference": build_reference(pipeline, x_train, threshold).to_json(),
    }
    return Scorer.from_pipeline(pipeline, metadata), x_test
