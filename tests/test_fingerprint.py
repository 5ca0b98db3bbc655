"""Dataset fingerprints: the same rows hash the same whatever the file format."""

from __future__ import annotations

from pathlib import Path

from credit_risk.data import file_sha256, read_applicants
from credit_risk.fingerprint import (
    canonical_lines,
    fingerprint_tags,
    lines_sha256,
    row_hashes,
    rows_sha256,
)
from credit_risk.training_data import load_run_data
from tests.conftest import DATA, make_settings
from tests.labelled_log import write_base_file


def test_same_rows_fingerprint_the_same_in_uci_and_csv(tmp_path: Path) -> None:
    uci = read_applicants(DATA)
    csv = read_applicants(write_base_file(tmp_path / "german.csv", slice(None)))
    assert uci.target is not None and csv.target is not None
    assert list(row_hashes(uci.features, uci.target)) == list(row_hashes(csv.features, csv.target))
    # The canonical lines are german.data's own lines: its fingerprint is its file's sha256.
    assert lines_sha256(canonical_lines(csv.features, csv.target)) == file_sha256(DATA)
    first = DATA.read_text().splitlines()[0]
    assert canonical_lines(csv.features.head(1), csv.target.head(1)) == [first]


def test_a_changed_value_or_class_changes_the_row_hash() -> None:
    data = read_applicants(DATA)
    assert data.target is not None
    features, target = data.features.head(3).copy(), data.target.head(3).copy()
    before = row_hashes(features, target)
    features.loc[1, "duration_months"] += 1
    target.iloc[2] = 1 - target.iloc[2]
    after = row_hashes(features, target)
    assert before[0] == after[0] and before[1] != after[1] and before[2] != after[2]
    # The digest of a set of rows does not depend on their order.
    assert rows_sha256(before) == rows_sha256(before[::-1]) != rows_sha256(after)


def test_run_fingerprint_records_sources_split_and_rows(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    data = load_run_data(settings)
    fingerprint = data.fingerprint()
    assert fingerprint.rows == 1000 and fingerprint.sha256 == file_sha256(DATA)
    assert (fingerprint.trained_rows, fingerprint.held_out_rows) == (800, 200)
    assert fingerprint.split_seed == settings.seed
    assert fingerprint.trained_rows_sha256 == rows_sha256(data.hashes[data.train])
    [source] = fingerprint.sources
    assert source.kind == "file" and source.sha256 == file_sha256(DATA)
    assert source.location == str(DATA)
    # Another seed trains on other rows: the fingerprint tells them apart.
    other = load_run_data(make_settings(tmp_path, seed=7)).fingerprint()
    assert other.sha256 == fingerprint.sha256
    assert other.trained_rows_sha256 != fingerprint.trained_rows_sha256
    tags = fingerprint_tags(fingerprint)
    assert tags["data_rows"] == "1000" and tags["data_split_seed"] == str(settings.seed)
    assert "german.data (1000 rows, sha256 b21f3d81db80)" in tags["data_sources"]
