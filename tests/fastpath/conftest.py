"""Fixtures for the fast-path tests: the shipped applicants and a scorer on the test model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from credit_risk.data import read_applicants
from credit_risk.scoring import Scorer
from tests.conftest import DATA


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    return read_applicants(DATA).features


@pytest.fixture(scope="module")
def scorer(model_dir: Path) -> Scorer:
    return Scorer.from_folder(model_dir)
