from pathlib import Path

import pytest

from credit_risk.config import GERMAN_DATA_SHA256
from credit_risk.data import (
    DataValidationError,
    iter_applicants,
    read_applicants,
    split_dataset,
    verify_checksum,
)
from credit_risk.schema import FEATURE_NAMES
from tests.conftest import DATA

LINES = DATA.read_text().splitlines()


def write(tmp_path: Path, lines: list[str], name: str = "applicants.data") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_shipped_data_checks_sha256_and_maps_bad_to_positive() -> None:
    dataset = read_applicants(DATA, GERMAN_DATA_SHA256)
    assert dataset.features.shape == (1000, 20)
    assert dataset.target is not None
    assert int(dataset.target.sum()) == 300  # 300 bad applicants (class 2) -> 1
    assert list(dataset.features.columns) == list(FEATURE_NAMES)


def test_checksum_mismatch_is_reported_clearly(tmp_path: Path) -> None:
    path = write(tmp_path, LINES[:-1])
    with pytest.raises(DataValidationError, match=r"sha256 .* does not match"):
        verify_checksum(path, GERMAN_DATA_SHA256)


def test_csv_and_uci_give_the_same_frame(tmp_path: Path) -> None:
    dataset = read_applicants(DATA)
    frame = dataset.features.copy()
    frame["risk_class"] = dataset.target.map({1: 2, 0: 1})
    path = tmp_path / "applicants.csv"
    frame.to_csv(path, index=False)
    again = read_applicants(path)
    assert again.features.equals(dataset.features)
    assert again.target.equals(dataset.target)


def test_file_without_class_reads_features_only(tmp_path: Path) -> None:
    path = write(tmp_path, [" ".join(line.split()[:20]) for line in LINES[:5]])
    dataset = read_applicants(path)
    assert dataset.target is None and len(dataset.features) == 5


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (0, "A19", r"line 3, column 'checking_account_status': value 'A19'.*A11 \(< 0 DM\)"),
        (1, "twelve", r"line 3, column 'duration_months': value 'twelve'.*integer from 1 to 120"),
        (12, "12", r"line 3, column 'age_years': value '12'.*integer from 18 to 100"),
        (4, "12.5", r"line 3, column 'credit_amount': value '12.5'"),
        (20, "3", r"line 3, column 'risk_class': value '3'.*1 \(good\) or 2 \(bad\)"),
    ],
)
def test_bad_value_names_file_line_column_value_and_allowed(
    tmp_path: Path, column: int, value: str, message: str
) -> None:
    lines = LINES[:5]
    fields = lines[2].split()
    fields[column] = value
    lines[2] = " ".join(fields)
    path = write(tmp_path, lines)
    with pytest.raises(DataValidationError, match=message) as error:
        read_applicants(path)
    assert str(path) in str(error.value)


def test_missing_csv_column_is_named(tmp_path: Path) -> None:
    frame = read_applicants(DATA).features.head(3).drop(columns=["housing"])
    path = tmp_path / "short.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"missing column.*housing"):
        read_applicants(path)


def test_wrong_number_of_uci_columns_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, ["A11 6 A34"])
    with pytest.raises(DataValidationError, match="20 attributes"):
        read_applicants(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="file not found"):
        read_applicants(tmp_path / "nope.data")


def test_chunks_report_the_right_line(tmp_path: Path) -> None:
    lines = list(LINES[:30])
    fields = lines[24].split()
    fields[14] = "A159"
    lines[24] = " ".join(fields)
    path = write(tmp_path, lines)
    with pytest.raises(DataValidationError, match=r"line 25, column 'housing'"):
        for _ in iter_applicants(path, chunk_rows=7):
            pass


def test_split_is_stratified_and_seeded() -> None:
    dataset = read_applicants(DATA)
    _, x_test, y_train, y_test = split_dataset(dataset, 0.2, seed=7)
    assert len(x_test) == 200 and y_test.sum() == 60 and y_train.sum() == 240
    again = split_dataset(dataset, 0.2, seed=7)
    assert again[1].equals(x_test)


def test_row_with_a_missing_value_mid_file_is_reported(tmp_path: Path) -> None:
    lines = list(LINES[:10])
    lines[6] = " ".join(lines[6].split()[:-2] + lines[6].split()[-1:])
    path = write(tmp_path, lines)
    with pytest.raises(DataValidationError, match=r"cannot be parsed.*Expected 21 columns, got 20"):
        read_applicants(path)


def test_tab_separated_uci_file_is_read_too(tmp_path: Path) -> None:
    path = write(tmp_path, ["\t".join(line.split()) for line in LINES[:20]])
    expected = read_applicants(DATA).features.head(20)
    assert read_applicants(path).features.equals(expected)
