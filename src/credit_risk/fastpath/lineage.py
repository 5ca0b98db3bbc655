"""Attribution lineage: which codebook attributes each encoded column comes from.

Found by probing the fitted feature step with random codebook applicants
(:func:`probe_applicants`, also the rows every fast path is verified on).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from credit_risk.fastpath.encoding import EncodedLayout
from credit_risk.schema import ATTRIBUTES, Kind


def probe_applicants(n: int, seed: int) -> pd.DataFrame:
    """Random applicants drawn from the codebook (every code, numbers across their range)."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for a in ATTRIBUTES:
        if a.kind is Kind.CATEGORICAL:
            data[a.name] = pd.Series(rng.choice(list(a.codes), n), dtype="str")
        else:
            assert a.minimum is not None and a.maximum is not None
            high = min(a.maximum, 20_000) if a.name == "credit_amount" else a.maximum
            data[a.name] = rng.integers(a.minimum, high + 1, n).astype("int64")
    return pd.DataFrame(data)


def attribute_lineage(pipeline: Any, layout: EncodedLayout, seed: int = 0) -> np.ndarray:
    """Map encoded columns to codebook attributes by probing the fitted feature step.

    Each attribute in turn is changed on probe applicants; the feature-step columns that move
    depend on it. An encoded column's contribution is shared equally among the attributes its
    source column depends on (``monthly_installment`` half to amount, half to duration).

    Returns:
        ``(width, 20)`` matrix; row ``i`` sums to 1 (or 0 for a column with no source).
    """
    features = pipeline.named_steps["features"]
    base = probe_applicants(64, seed)
    reference = features.transform(base)
    alternate = probe_applicants(64, seed + 1)
    depends: dict[str, set[int]] = {}
    for k, attribute in enumerate(ATTRIBUTES):
        changed = base.copy()
        changed[attribute.name] = alternate[attribute.name]
        moved = features.transform(changed)
        for column in moved.columns:
            before = reference[column].astype("str").to_numpy()
            after = moved[column].astype("str").to_numpy()
            if (before != after).any():
                depends.setdefault(column, set()).add(k)
    lineage = np.zeros((layout.width, len(ATTRIBUTES)), dtype=np.float64)
    for index in range(layout.width):
        sources = depends.get(layout.source_column(index), set())
        for k in sources:
            lineage[index, k] = 1.0 / len(sources)
    return lineage
