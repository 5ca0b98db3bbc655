import gzip
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from credit_risk.config import GERMAN_DATA_SHA256
from credit_risk.data import (
    DataValidationError,
    check_readable,
    check_trainable,
    iter_applicants,
    minimum_rows_per_class,
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
    with pytest.raises(DataValidationError, match=r"line 7: 20 values where 21 are expected"):
        read_applicants(path)


def test_tab_separated_uci_file_is_read_too(tmp_path: Path) -> None:
    path = write(tmp_path, ["\t".join(line.split()) for line in LINES[:20]])
    expected = read_applicants(DATA).features.head(20)
    assert read_applicants(path).features.equals(expected)


def csv_lines(lines: list[str], header: list[str] | None = None) -> list[str]:
    """UCI lines as CSV lines under a header of the schema's names (and the class)."""
    header = header or [*FEATURE_NAMES, "risk_class"]
    return [",".join(header)] + [",".join(line.split()) for line in lines]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), r"is a directory"),
        (lambda p: p.write_bytes(b""), r"is empty"),
        (lambda p: p.write_bytes(gzip.compress(DATA.read_bytes())), r"gzip-compressed; decompress"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("german.data", "x"), r"a zip archive"),
        (lambda p: p.write_bytes(bytes(range(256)) * 4), r"binary file"),
        (lambda p: p.write_bytes("A11 6 Gr\u00f6\u00dfe".encode("latin-1")), r"not UTF-8 text"),
    ],
    ids=["directory", "empty", "gzip", "zip", "binary", "latin-1"],
)
def test_unreadable_files_are_refused_naming_the_file(
    tmp_path: Path, make: object, message: str
) -> None:
    path = tmp_path / "applicants.data"
    make(path)  # type: ignore[operator]
    with pytest.raises(DataValidationError, match=message) as error:
        check_readable(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(DataValidationError, match=message):
        read_applicants(path)


def test_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("\n".join(csv_lines(LINES[:5])) + "\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    dataset = read_applicants(path)
    assert dataset.features.equals(read_applicants(DATA).features.head(5))


def test_duplicated_column_is_named(tmp_path: Path) -> None:
    header = [*FEATURE_NAMES, "purpose"]
    lines = [" ".join([*line.split()[:20], line.split()[3]]) for line in LINES[:5]]
    path = write(tmp_path, csv_lines(lines, header), "dup.csv")
    with pytest.raises(DataValidationError, match=r"line 1: column 'purpose' appears twice"):
        read_applicants(path)


def test_extra_columns_are_ignored_with_a_warning_naming_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    header = [*FEATURE_NAMES, "notes", "risk_class", "branch"]
    lines = [" ".join([*line.split()[:20], "free text", line.split()[20], "7"]) for line in LINES]
    lines = [line.replace("free text", "free;text") for line in lines]
    path = write(tmp_path, csv_lines(lines, header), "extra.csv")
    with caplog.at_level(logging.WARNING, logger="credit_risk.data"):
        dataset = read_applicants(path)
    assert dataset.features.equals(read_applicants(DATA).features)
    warned = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(warned) == 1 and "'notes'" in warned[0] and "'branch'" in warned[0]


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    path = write(tmp_path, csv_lines([]), "empty.csv")
    assert list(iter_applicants(path)) == []
    with pytest.raises(DataValidationError, match="only a header"):
        read_applicants(path)


def test_csv_without_the_schema_header_names_the_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path, ["a,b", "1,2"], "other.csv")
    with pytest.raises(DataValidationError, match=r"missing column\(s\) checking_account_status"):
        list(iter_applicants(path))


@pytest.mark.parametrize("chunk_rows", [7, 100_000])
def test_malformed_row_deep_in_a_uci_file_is_reported_at_its_line(
    tmp_path: Path, chunk_rows: int
) -> None:
    lines = list(LINES)
    lines[700] += " A201"  # line 701: one value too many
    path = write(tmp_path, lines)
    with pytest.raises(DataValidationError, match=r", line 701: 22 values where 21 are expected"):
        list(iter_applicants(path, chunk_rows))


def test_malformed_row_deep_in_a_csv_is_reported_at_its_file_line(tmp_path: Path) -> None:
    lines = list(LINES)
    lines[600] = " ".join(lines[600].split()[:15])
    path = write(tmp_path, csv_lines(lines), "applicants.csv")
    # Data row 601 is file line 602: line 1 is the header.
    with pytest.raises(DataValidationError, match=r", line 602: 15 values where 21 are expected"):
        read_applicants(path)


@pytest.mark.parametrize(
    ("test_size", "cv_folds", "calibration_folds"),
    [(0.2, 5, 3), (0.2, 5, None), (0.25, 3, 2), (0.1, 10, 5), (0.5, 2, 2)],
)
def test_minimum_rows_per_class_suffice_for_every_split(
    test_size: float, cv_folds: int, calibration_folds: int | None
) -> None:
    from sklearn.model_selection import StratifiedKFold, train_test_split

    needed = minimum_rows_per_class(test_size, cv_folds, calibration_folds)
    inner = calibration_folds or 1
    # The minority class at exactly the minimum, against majorities of many sizes and seeds:
    # every split must leave it in the test split and fill every (calibration) fold.
    for majority in [needed, needed + 1, needed + 3, 2 * needed + 1, 5 * needed, 997]:
        y = np.r_[np.zeros(majority, dtype=int), np.ones(needed, dtype=int)]
        for seed in range(5):
            _, _, y_train, y_test = train_test_split(
                y, y, test_size=test_size, random_state=seed, stratify=y
            )
            assert np.bincount(y_test, minlength=2).min() >= 1
            for train_index, _ in StratifiedKFold(cv_folds, shuffle=True, random_state=seed).split(
                y_train, y_train
            ):
                assert np.bincount(y_train[train_index], minlength=2).min() >= inner


def test_one_class_or_too_few_rows_say_how_many_are_needed(tmp_path: Path) -> None:
    dataset = read_applicants(DATA)
    assert dataset.target is not None
    good_only = type(dataset)(dataset.features, dataset.target * 0)
    with pytest.raises(
        DataValidationError,
        match=r"at least 8 rows of each class .*cv_folds=5.*1000 good \(class 1\) and 0 bad",
    ):
        check_trainable(good_only, DATA, 0.2, 5, 3)
    few = type(dataset)(dataset.features.head(10), dataset.target.head(10))
    with pytest.raises(DataValidationError, match=r"at least 8 rows.*7 good \(class 1\) and 3 bad"):
        check_trainable(few, DATA, 0.2, 5, 3)
    check_trainable(dataset, DATA, 0.2, 5, 3)
    no_class = type(dataset)(dataset.features, None)
    with pytest.raises(DataValidationError, match="no risk_class column"):
        check_trainable(no_class, DATA, 0.2, 5, 3)


@pytest.mark.parametrize("layout", ["uci", "uci, two spaces", "csv"])
def test_value_that_is_not_utf8_deep_in_a_file_is_reported_at_its_line(
    tmp_path: Path, layout: str
) -> None:
    lines = list(LINES)
    fields = lines[800].split()
    fields[2] = "A3\u00e9"  # written as latin-1 below: byte 0xe9 on line 801
    lines[800] = " ".join(fields)
    if layout == "csv":
        lines, line = csv_lines(lines), 802
    else:
        lines, line = [ln.replace(" ", "  " if "two" in layout else " ") for ln in lines], 801
    path = tmp_path / "applicants.data"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(DataValidationError, match=rf", line {line}: not UTF-8 text"):
        read_applicants(path)
