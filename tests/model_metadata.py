"""The metadata of a model as ``credit-risk train`` writes it (the parts serving reads)."""

from __future__ import annotations

from typing import Any

from credit_risk.reasons import reason_codes_record


def model_metadata(name: str, threshold: float, **extra: Any) -> dict[str, Any]:
    """Version 1 of model ``name`` at ``threshold``, built-in reason codes; ``extra`` adds keys."""
    return {
        "model_name": name,
        "model_version": "1",
        "run_id": None,
        "trained_at": None,
        "objective": "cost",
        "threshold": threshold,
        "test_metrics": {},
        "cv_metrics": {},
        "reason_codes": reason_codes_record(),
        **extra,
    }
