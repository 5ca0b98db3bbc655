"""Training data that grows: the base file plus labelled decisions, split out of time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit_risk.data import DataValidationError, read_applicants, split_dataset
from credit_risk.fingerprint import row_hashes
from credit_risk.training_data import load_run_data, out_of_time_split, pin_outcomes
from tests.conftest import DATA, make_settings
from tests.labelled_log import log_labelled, log_shipped, write_base_file

START = datetime(2025, 1, 1, tzinfo=UTC)


def test_base_file_alone_splits_as_before(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, decision_log_url=f"sqlite:///{tmp_path / 'none.db'}")
    x_train, x_test, y_train, y_test = load_run_data(settings).split()
    expected = split_dataset(read_applicants(DATA), settings.test_size, settings.seed)
    pd.testing.assert_frame_equal(x_train, expected[0])
    pd.testing.assert_frame_equal(x_test, expected[1])
    assert (y_train.to_numpy() == expected[2].to_numpy()).all()
    assert (y_test.to_numpy() == expected[3].to_numpy()).all()
    # Reading a log that does not exist creates no file.
    assert not load_run_data(settings, with_outcomes=True).labelled.any()
    assert not (tmp_path / "none.db").exists()


def test_labelled_decisions_grow_the_data_newest_held_out(
    tmp_path: Path, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    features, is_bad = shipped
    base = write_base_file(tmp_path / "base.csv", slice(0, 600))
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    ids = log_labelled(url, features.iloc[600:800], is_bad[600:800], START)
    settings = make_settings(
        tmp_path, data_path=base, decision_log_url=url, train_with_outcomes=True
    )
    data = load_run_data(pin_outcomes(settings))
    assert len(data.hashes) == 800 and data.labelled.sum() == 200
    assert list(data.hashes[600:]) == list(row_hashes(features.iloc[600:800], is_bad[600:800]))
    # The newest quarter of the labelled decisions (by decision time) is held out.
    labelled_train = [p for p in data.train if p >= 600]
    labelled_test = [p for p in data.test if p >= 600]
    assert sorted(labelled_train) == list(range(600, 750))
    assert sorted(labelled_test) == list(range(750, 800))
    fingerprint = data.fingerprint()
    assert fingerprint.trained_rows == 480 + 150 and fingerprint.held_out_rows == 120 + 50
    assert fingerprint.labelled_trained_until == (START + timedelta(hours=149)).isoformat()
    log_source = fingerprint.sources[1]
    assert log_source.kind == "decision_log" and log_source.rows == 200
    assert len(ids) == 200


def test_outcomes_observed_after_the_pinned_time_are_not_read(tmp_path: Path) -> None:
    # Outcomes observed 30 days after each decision, decisions an hour apart.
    url = log_shipped(tmp_path, slice(0, 40), START)
    until = START + timedelta(days=30, hours=9, minutes=30)
    settings = make_settings(
        tmp_path, decision_log_url=url, train_with_outcomes=True, outcomes_until=until
    )
    assert load_run_data(settings).labelled.sum() == 10


def test_a_logged_input_that_breaks_the_schema_is_named(
    tmp_path: Path, shipped: tuple[pd.DataFrame, np.ndarray]
) -> None:
    features, is_bad = shipped
    broken = features.iloc[:3].copy()
    broken["purpose"] = broken["purpose"].astype("str")
    broken.loc[2, "purpose"] = "A499"  # e.g. logged before a change of the codebook
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    log_labelled(url, broken, is_bad[:3], START)
    settings = make_settings(tmp_path, decision_log_url=url, train_with_outcomes=True)
    with pytest.raises(DataValidationError, match=r"line 3, column 'purpose': value 'A499'"):
        load_run_data(settings)


def test_out_of_time_split_keeps_ties_together() -> None:
    moments = pd.Series(pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-02", "2025-01-03"]))
    assert out_of_time_split(moments, 0.25).tolist() == [False, False, False, True]
    assert out_of_time_split(moments, 0.5).tolist() == [False, True, True, True]
    assert not out_of_time_split(moments, 0.0).any()
