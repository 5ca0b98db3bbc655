"""ETL: read applicant files (UCI format or CSV), validate against the schema, split.

The UCI format is ``german.data``: space-separated, no header, the 20 attributes in codebook
order, optionally followed by the class (1 good, 2 bad). A CSV has a header with the schema's
column names (and optionally ``risk_class``), in UTF-8 (a byte-order mark is fine); other
columns are ignored with a warning. Every error names the file, the line, the column, the value
and what was allowed; compressed, binary and empty files are refused before parsing.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

from credit_risk.config import DEFAULT_DATA, GERMAN_DATA_SHA256, Settings
from credit_risk.errors import UserError
from credit_risk.schema import (
    ATTRIBUTES,
    BAD,
    CLASS_LABELS,
    FEATURE_NAMES,
    TARGET,
    Attribute,
    Kind,
)

log = logging.getLogger(__name__)

UCI_COLUMNS: tuple[str, ...] = (*FEATURE_NAMES, TARGET)
EXPECTED_FILE = "a UCI-format (german.data) or CSV file of applicants in UTF-8 text"
# Leading bytes of the archive formats a user might pass instead of the file inside.
_ARCHIVES: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive", "extract the file first (unzip)"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (unzstd)"),
)
# A parse error of Arrow's CSV reader, single-threaded: "Row #N: Expected X columns, got Y: ..."
_ROW_NUMBER = re.compile(r"Row #(\d+)")
_COLUMN_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)")
_ECHO = 100


class DataValidationError(UserError, ValueError):
    """Raised when a file does not match the schema; the message says where and why."""


def check_readable(path: Path) -> None:
    """Refuse what cannot be an applicant file, before any parser sees it.

    Raises:
        DataValidationError: the path is missing or a directory, the file is empty,
            compressed, binary (a NUL byte in its first KiB) or not UTF-8 text.
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"{path}: file not found; expected {EXPECTED_FILE}")
    if path.is_dir():
        raise DataValidationError(f"{path} is a directory; expected {EXPECTED_FILE}")
    with path.open("rb") as handle:
        head = handle.read(1 << 12)
    if not head:
        raise DataValidationError(f"{path} is empty; expected {EXPECTED_FILE}")
    for magic, what, remedy in _ARCHIVES:
        if head.startswith(magic):
            raise DataValidationError(f"{path} is {what}; {remedy}: expected {EXPECTED_FILE}")
    if b"\x00" in head[:1024]:
        raise DataValidationError(
            f"{path} is a binary file (NUL bytes in its first KiB); expected {EXPECTED_FILE}"
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        raise DataValidationError(
            f"{path} is not UTF-8 text (byte {error.start} is {head[error.start]:#04x}); "
            f"save it as UTF-8: expected {EXPECTED_FILE}"
        ) from error


@dataclass(frozen=True)
class Dataset:
    """Validated applicants and, when the file has it, the target (1 = bad, 0 = good)."""

    features: pd.DataFrame
    target: pd.Series | None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str) -> None:
    """Fail clearly when a file's sha256 is not the expected one.

    Raises:
        DataValidationError: the file changed (or is another file).
    """
    actual = file_sha256(path)
    if actual != expected:
        raise DataValidationError(
            f"{path}: sha256 {actual} does not match the expected {expected}; the raw data "
            "file has been changed or replaced (data/raw is meant to stay as shipped)"
        )


def line_format(first: str) -> str:
    """``"csv"`` when a file's first line has commas (a header, then), else ``"uci"``.

    The UCI format's values never hold a comma; a CSV whose header lacks the schema's names is
    then refused naming the missing columns.
    """
    return "csv" if "," in first else "uci"


def detect_format(path: Path) -> str:
    """The format of a file from its first line (see :func:`line_format`)."""
    with path.open(encoding="utf-8-sig") as handle:
        return line_format(handle.readline())


def not_allowed(column: str, value: object, allowed: str) -> str:
    """The message for a value outside the schema (after the file and line, when known)."""
    return f"column '{column}': value {value!r} is not allowed; expected {allowed}"


def _fail(path: Path, line: int, column: str, value: object, allowed: str) -> DataValidationError:
    return DataValidationError(f"{path}, line {line}, {not_allowed(column, value, allowed)}")


def _as_float(values: pd.Series) -> np.ndarray:
    """Numbers of a text column; NaN where a value is not a number.

    Whole numbers, the common case, go through Arrow's cast (about 40x faster than
    ``pd.to_numeric`` on a million rows); anything else takes the slow, forgiving path.
    """
    if not pd.api.types.is_numeric_dtype(values):
        try:
            integers = pc.cast(pa.array(values.array), pa.int64())
            if integers.null_count == 0:
                return integers.to_numpy().astype("float64")
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            pass
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def check_values(attribute: Attribute, values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """One attribute's raw text values, typed, and which of them the schema does not allow.

    Args:
        attribute: the codebook attribute.
        values: its column as read (text, or numbers).

    Returns:
        The column typed (str codes, or int64 numbers: 0 where not allowed) and a boolean mask
        of the rows whose value is not allowed.
    """
    if attribute.kind is Kind.CATEGORICAL:
        text = values.astype("str")
        bad = ~text.isin(list(attribute.codes))
        if bad.any():  # only then pay for stripping stray blanks
            text = text.str.strip()
            bad = ~text.isin(list(attribute.codes))
        return text.astype("str"), bad.to_numpy()
    as_float = _as_float(values)
    bad = (
        np.isnan(as_float)
        | (as_float != np.round(as_float))
        | (as_float < float(attribute.minimum or 0))
        | (as_float > float(attribute.maximum or 0))
    )
    if bad.any():
        as_float = np.where(bad, 0.0, as_float)
    return pd.Series(as_float.astype("int64"), index=values.index), bad


def check_target(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The class column as numbers, and which values are neither 1 (good) nor 2 (bad)."""
    labels = _as_float(values)
    return labels, ~np.isin(labels, list(CLASS_LABELS))


TARGET_ALLOWED = "1 (good) or 2 (bad)"


def validate_frame(raw: pd.DataFrame, path: Path, first_line: int) -> Dataset:
    """Validate raw text columns against the schema and convert them to typed columns.

    Args:
        raw: columns as read (strings); may include ``risk_class``.
        path: the file the rows came from (for messages).
        first_line: the file line number of ``raw``'s first row.

    Returns:
        Typed features (categoricals as str codes, numerics as int64) and the target if present.

    Raises:
        DataValidationError: the first problem found, with file, line, column, value, allowed.
    """
    _check_columns(list(raw.columns), path)
    columns: dict[str, pd.Series] = {}
    for attribute in ATTRIBUTES:
        values = raw[attribute.name]
        columns[attribute.name], bad = check_values(attribute, values)
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise _fail(path, first_line + at, attribute.name, values.iloc[at], attribute.allowed())
    features = pd.DataFrame(columns, index=raw.index).reset_index(drop=True)
    target = None
    if TARGET in raw.columns:
        labels, bad = check_target(raw[TARGET])
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise _fail(path, first_line + at, TARGET, raw[TARGET].iloc[at], TARGET_ALLOWED)
        target = pd.Series((labels == BAD).astype("int64"), name="is_bad")
    return Dataset(features=features, target=target)


def _check_columns(names: list[str], path: Path) -> None:
    missing = [name for name in FEATURE_NAMES if name not in names]
    if missing:
        raise DataValidationError(
            f"{path}: missing column(s) {', '.join(missing)}; expected columns "
            f"{', '.join(FEATURE_NAMES)} (and optionally {TARGET})"
        )


def _uci_names(n_columns: int, path: Path) -> list[str]:
    if n_columns == len(FEATURE_NAMES):
        return list(FEATURE_NAMES)
    if n_columns == len(UCI_COLUMNS):
        return list(UCI_COLUMNS)
    raise DataValidationError(
        f"{path}, line 1: {n_columns} space-separated values; the UCI format has 20 attributes "
        "(optionally followed by the class 1/2)"
    )


def iter_applicants(path: Path, chunk_rows: int = 100_000) -> Iterator[Dataset]:
    """Read and validate a file in chunks of rows, in constant memory.

    Args:
        path: UCI-format or CSV file.
        chunk_rows: rows per chunk.

    Yields:
        Validated chunks, in file order.
    """
    path = Path(path)
    check_readable(path)
    if detect_format(path) == "csv":
        # Arrow's reader: text columns straight into Arrow strings, no Python object per value.
        yield from _iter_csv_arrow(path, chunk_rows)
        return
    with path.open(encoding="utf-8-sig") as handle:
        first = handle.readline().rstrip("\n")
    names = _uci_names(len(first.split()), path)
    if first.split(" ") == first.split():
        # Single spaces, as german.data is written: Arrow's reader is ~3x faster.
        yield from _iter_uci_arrow(path, names, chunk_rows)
        return
    reader = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        dtype="str",
        names=names,
        chunksize=chunk_rows,
        engine="c",
    )
    first_line = 1
    try:
        for chunk in reader:
            yield validate_frame(chunk, path, first_line)
            first_line += len(chunk)
    except UnicodeDecodeError as error:
        line = _first_line_not_utf8(path)
        where = f"{path}, line {line}" if line else f"{path}"
        raise DataValidationError(f"{where}: not UTF-8 text; save the file as UTF-8") from error
    except pd.errors.ParserError as error:
        # pandas counts the file's lines: "Expected 21 fields in line 13, saw 22".
        reason = str(error).strip().removeprefix("Error tokenizing data. C error: ")
        raise DataValidationError(
            f"{path}: cannot be parsed: {reason}; the UCI format has 20 attributes "
            "(optionally followed by the class 1/2) per line"
        ) from error


def _first_line_not_utf8(path: Path) -> int | None:
    """The number of the first line that is not UTF-8 (read again, on the error path only)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _block_bytes(path: Path, chunk_rows: int) -> int:
    """Arrow's block size: about ``chunk_rows`` lines, at most 512 KiB.

    Arrow's streaming reader reads a dozen blocks ahead; small blocks keep that read-ahead to
    a few MB (with 4 MB blocks it held about 50 MB), and :func:`arrow_tables` joins them.
    """
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    per_line = len(head) / max(1, head.count(b"\n"))
    return min(max(int(chunk_rows * per_line), 1 << 12), 1 << 19)


def arrow_tables(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of at least ``rows`` rows (the last may be shorter) from Arrow record batches
    (the streaming CSV reader's here, Spark's in :mod:`credit_risk.spark_batch`)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _validated_chunks(
    path: Path,
    names: list[str],
    chunk_rows: int,
    read_options: pa_csv.ReadOptions,
    parse_options: pa_csv.ParseOptions,
    first_line: int,
    hint: str = "",
) -> Iterator[Dataset]:
    """Read ``path`` with Arrow's streaming CSV reader (every column as text), validate chunks.

    Args:
        names: the columns to read (others in the file are skipped unparsed).
        first_line: the file line of the first data row (for error messages).
        hint: added to an error about the number of values in a row (what is expected).
    """
    convert_options = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), include_columns=names
    )
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
        for table in arrow_tables(reader, chunk_rows):
            frame = table.to_pandas()
            yield validate_frame(frame, path, first_line)
            first_line += len(frame)
    except pa.ArrowInvalid as error:
        raise _parse_error(path, error, read_options, parse_options, convert_options, hint) from (
            error
        )


def _parse_error(
    path: Path,
    error: pa.ArrowInvalid,
    read_options: pa_csv.ReadOptions,
    parse_options: pa_csv.ParseOptions,
    convert_options: pa_csv.ConvertOptions,
    hint: str,
) -> DataValidationError:
    """Arrow's parse error at the file line it happened on.

    Arrow numbers rows as file lines (the skipped header included) only when it reads in one
    thread; a multi-threaded read's error carries no number, so the file is read again in one
    thread (on this error path only) to find it.
    """
    message = str(error)
    number = _ROW_NUMBER.search(message)
    if number is None and read_options.use_threads:
        single = pa_csv.ReadOptions(
            column_names=read_options.column_names,
            skip_rows=read_options.skip_rows,
            block_size=read_options.block_size,
            use_threads=False,
        )
        try:
            for _ in pa_csv.open_csv(path, single, parse_options, convert_options):
                pass
        except pa.ArrowInvalid as again:
            number = _ROW_NUMBER.search(str(again))
    where = f"{path}, line {number.group(1)}" if number else f"{path}"
    counts = _COLUMN_COUNT.search(message)
    if counts is not None:
        expected, found = counts.groups()
        return DataValidationError(f"{where}: {found} values where {expected} are expected{hint}")
    if "invalid UTF8" in message:
        return DataValidationError(f"{where}: not UTF-8 text; save the file as UTF-8")
    reason = _ROW_NUMBER.sub("", message.removeprefix("CSV parse error: "))
    reason = re.sub(r"(:\s*)+", ": ", reason).strip(": ")
    if len(reason) > _ECHO:
        reason = reason[:_ECHO] + "..."
    return DataValidationError(f"{where}: cannot be parsed: {reason}")


@functools.cache
def _warn_ignored(path: str, columns: tuple[str, ...]) -> None:
    """Say once per process (training reads its file in each step) which columns are ignored."""
    log.warning(
        "%s: column(s) %s not in the schema, ignored", path, ", ".join(repr(c) for c in columns)
    )


def _iter_csv_arrow(path: Path, chunk_rows: int) -> Iterator[Dataset]:
    """Stream a CSV with a header of column names with Arrow's CSV reader."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        names = [name.strip() for name in next(csv.reader(handle), [])]
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in seen and name:
            raise DataValidationError(
                f"{path}, line 1: column '{name}' appears twice (columns {seen[name]} and "
                f"{number}); each column may appear once"
            )
        seen[name] = number
    _check_columns(names, path)
    known = set(UCI_COLUMNS)
    ignored = [
        name or f"(unnamed, column {i})" for i, name in enumerate(names, 1) if name not in known
    ]
    if ignored:
        _warn_ignored(str(path), tuple(ignored))
    read_options = pa_csv.ReadOptions(
        column_names=names,
        skip_rows=1,
        block_size=_block_bytes(path, chunk_rows),
        use_threads=False,
    )
    # Line 1 is the header.
    yield from _validated_chunks(
        path,
        [name for name in names if name in known],
        chunk_rows,
        read_options,
        pa_csv.ParseOptions(),
        first_line=2,
        hint=f" (the header, line 1, has {len(names)} columns)",
    )


def _iter_uci_arrow(path: Path, names: list[str], chunk_rows: int) -> Iterator[Dataset]:
    """Stream a single-space-separated UCI file with Arrow's CSV reader."""
    read_options = pa_csv.ReadOptions(column_names=names, block_size=_block_bytes(path, chunk_rows))
    yield from _validated_chunks(
        path,
        names,
        chunk_rows,
        read_options,
        pa_csv.ParseOptions(delimiter=" "),
        first_line=1,
        hint=f" (as on line 1); the UCI format has {len(FEATURE_NAMES)} attributes (optionally "
        "followed by the class 1/2) per line",
    )


def read_applicants(path: Path, expected_sha256: str | None = None) -> Dataset:
    """Read and validate a whole file.

    Args:
        path: UCI-format or CSV file.
        expected_sha256: when given, the file must have this sha256.

    Returns:
        The validated dataset.
    """
    path = Path(path)
    if expected_sha256 is not None and path.exists():
        verify_checksum(path, expected_sha256)
    chunks = list(iter_applicants(path))
    if not chunks:
        raise DataValidationError(f"{path}: no rows of applicants, only a header")
    features = pd.concat([c.features for c in chunks], ignore_index=True)
    targets = [c.target for c in chunks]
    target = None if targets[0] is None else pd.concat(targets, ignore_index=True)
    return Dataset(features=features, target=target)


def load_training_data(settings: Settings) -> Dataset:
    """Read the training file; the shipped german.data must also match its checksum."""
    shipped = Path(settings.data_path).resolve() == DEFAULT_DATA.resolve()
    return read_applicants(settings.data_path, GERMAN_DATA_SHA256 if shipped else None)


def split_dataset(
    dataset: Dataset, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Stratified train/test split.

    Returns:
        ``x_train, x_test, y_train, y_test`` with fresh 0..n-1 indexes.
    """
    from sklearn.model_selection import train_test_split

    if dataset.target is None:
        raise DataValidationError(f"the data has no {TARGET} column; training needs the class")
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.target,
        test_size=test_size,
        random_state=seed,
        stratify=dataset.target,
    )
    return (
        x_train.reset_index(drop=True),
        x_test.reset_index(drop=True),
        y_train.reset_index(drop=True),
        y_test.reset_index(drop=True),
    )


def minimum_rows_per_class(
    test_size: float, cv_folds: int, calibration_folds: int | None = None
) -> int:
    """Fewest rows of each class with which training cannot fail for want of rows.

    Training splits off a stratified test split (``test_size``), cross-validates on the rest
    with stratified ``cv_folds`` folds and, when calibrating, fits each model with an inner
    stratified ``calibration_folds``-fold split. Per class, with ``n`` rows:

    - the test split gets between ``floor(test_size * n)`` and ``ceil(test_size * n) + 1``
      of them (scikit-learn rounds the split's size up, then shares it out between classes),
      and it must get at least 1;
    - the training split's ``m`` rows must fill every CV fold (``m >= cv_folds``), and the
      smallest CV training part, ``m - ceil(m / cv_folds)`` rows, must fill every calibration
      fold (``>= calibration_folds``; ``>= 1`` without calibration).

    Args:
        test_size: share of the rows held out for the test split.
        cv_folds: folds of the cross-validation on the training split.
        calibration_folds: folds of the calibration inside each fit; None when not calibrating.

    Returns:
        The smallest ``n`` meeting all of these whichever way the split rounds.
    """
    inner = calibration_folds or 1
    train = cv_folds
    while train - math.ceil(train / cv_folds) < inner:
        train += 1
    rows = 1
    while math.floor(test_size * rows) < 1 or rows - math.ceil(test_size * rows) - 1 < train:
        rows += 1
    return rows


def check_trainable(
    dataset: Dataset,
    path: Path,
    test_size: float,
    cv_folds: int,
    calibration_folds: int | None = None,
) -> None:
    """Refuse a training file without the class, or with too few rows of a class.

    Raises:
        DataValidationError: says how many rows of each class the settings need and how many
            the file has.
    """
    if dataset.target is None:
        raise DataValidationError(
            f"{path}: no {TARGET} column (the class, 1 good or 2 bad); training needs it"
        )
    needed = minimum_rows_per_class(test_size, cv_folds, calibration_folds)
    bad = int(dataset.target.sum())
    good = len(dataset.target) - bad
    if min(good, bad) < needed:
        calibration = (
            f", calibration_folds={calibration_folds}" if calibration_folds else ", no calibration"
        )
        raise DataValidationError(
            f"{path}: training needs at least {needed} rows of each class at these settings "
            f"(test_size={test_size}, cv_folds={cv_folds}{calibration}); the file has {good} "
            f"good (class 1) and {bad} bad (class 2)"
        )
