"""Schemathesis fuzzing against /openapi.json: no 5xx, and every answer matches the spec.

Uses schemathesis' strategies with Hypothesis directly (its pytest plugin does not load
fixtures with this pytest version). Bounded: 150 positive + 150 negative examples.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

EXAMPLES_PER_MODE = 150


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"]
)
def test_api_conforms_to_its_openapi_spec(live_server: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(timeout=30)

    check()
