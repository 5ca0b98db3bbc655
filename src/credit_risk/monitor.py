"""Drift monitoring: the decision log's recent inputs and scores against each model's reference.

Protocol (measured by ``benchmarks/drift_alarms.py``, README "Drift monitoring"):

- **Per model version.** The window's decisions are split by the model version that decided
  them. Each version is compared with its own reference, written at training time and stored
  with the model (``drift_reference.json`` in the exported folder, ``drift/`` in its MLflow
  run): the marginal distribution of every attribute over the model's training rows, and the
  model's probabilities on its own held-out test split. The attributes use the training rows
  because they are what the model learned from, and 4x the held-out rows, so the reference's
  own sampling noise is smaller; whether the model saw a row does not change its inputs. The
  scores must be held out: a forest's in-sample scores are more extreme than any it serves.
  The monitor refits and re-scores nothing (a folder exported before references were stored
  is the one, logged, exception: :func:`rebuild_reference`).
- **One test per attribute and for the score, valid at any window size.** Categorical
  attributes, and integer attributes whose codebook allows at most
  :data:`MAX_DISCRETE_LEVELS` values (bands and small counts), get Pearson's chi-square
  statistic of the 2 x k table (reference counts, window counts), with its permutation
  distribution given the pooled counts simulated at this window's size (multivariate
  hypergeometric draws): a Monte Carlo exact test, so rare categories in a 50-row window do
  not break it the way the chi-square approximation breaks. Continuous attributes and the
  score get the two-sample Kolmogorov-Smirnov distance, with its distribution-free null for a
  reference of N and a window of n values simulated from random rank orders (cached per
  (N, n)); tied values (ages in years) make it conservative. p = (1 + #null >= observed) /
  (draws + 1).
- **One correction for the whole run.** Bonferroni over every test of every version in the
  run: a test alarms when p <= ``monitor_alarm_rate`` / m, so the chance that a run with no
  drift alarms at all is at most ``monitor_alarm_rate`` (0.05). The threshold reported beside
  each statistic is the largest value that would not alarm at this n (alarm: statistic above
  it). Draws scale with m so that :data:`EXCEEDANCES` null values lie beyond the threshold.
- PSI (bands < 0.1 stable, 0.1-0.25 watch, >= 0.25 act) is reported as an effect size only:
  with no drift, a 50-row window's expected PSI is about (bins - 1) / n, near the 0.25 "act"
  band, so it cannot be an alarm by itself.

Why not Evidently: its latest release (0.7.23) fails to import with the pandas 3 that this
project pins (``ImportError: infer_dtype_from_object``).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from credit_risk.model_folder import (
    DRIFT_REFERENCE_ARTIFACT,
    DRIFT_REFERENCE_FILE,
    METADATA_FILE,
    ModelFolderError,
    read_metadata,
)
from credit_risk.schema import BY_NAME, CATEGORICAL, FEATURE_NAMES, NUMERIC, Kind, label_to_code

if TYPE_CHECKING:
    from credit_risk.config import Settings

log = logging.getLogger(__name__)

SCORE = "probability_bad"
MODEL_VERSION = "model_version"
PSI_WATCH, PSI_ACT = 0.1, 0.25
SCORE_BINS = 10
NUMERIC_BINS = 10
# Half an observation in every bin, so an empty bin gives a large but finite PSI term.
PSEUDO_COUNT = 0.5
CHI_SQUARE, KS = "chi-square", "ks"
# Integer attributes with at most this many allowed values (installment-rate and residence
# bands, numbers of credits and of people liable) are tested as categories.
MAX_DISCRETE_LEVELS = 10
# Null draws per test: enough that this many simulated statistics lie beyond the corrected
# level, so the Monte Carlo p-value loses little power against the exact one.
EXCEEDANCES = 10
MIN_DRAWS = 999
REFERENCE_FORMAT = 1
# Elements per block of simulated KS paths (memory of one block: 8 bytes each).
_KS_BLOCK = 2_000_000
_RELATIVE_TIE = 1e-9
# Tables simulated at a time (a test that may stop early checks after each block; most quiet
# tests stop after the first).
_BLOCK = 256


def psi_band(value: float) -> str:
    """The conventional reading of a PSI value."""
    return "stable" if value < PSI_WATCH else ("watch" if value < PSI_ACT else "act")


def _psi_from_counts(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = (expected + PSEUDO_COUNT) / (expected.sum() + PSEUDO_COUNT * len(expected))
    actual = (actual + PSEUDO_COUNT) / (actual.sum() + PSEUDO_COUNT * len(actual))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges: the reference's quantiles (distinct values only)."""
    quantiles = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = NUMERIC_BINS) -> float:
    """PSI over the reference's quantile bins (ties merged: banded attributes get fewer bins)."""
    edges = numeric_edges(np.asarray(reference, dtype="float64"), bins)
    expected = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi_from_counts(expected.astype(float), actual.astype(float))


def psi_categorical(reference: pd.Series, current: pd.Series, levels: list[str]) -> float:
    """PSI over the codebook's levels (a level never seen anywhere adds nothing)."""
    expected = reference.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy()
    actual = current.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy()
    seen = (expected + actual) > 0
    return _psi_from_counts(expected[seen].astype(float), actual[seen].astype(float))


def choose_test(name: str) -> str:
    """The test an attribute gets (the score: KS), from the codebook."""
    if name == SCORE:
        return KS
    attribute = BY_NAME[name]
    if attribute.kind is Kind.CATEGORICAL:
        return CHI_SQUARE
    assert attribute.minimum is not None and attribute.maximum is not None
    levels = attribute.maximum - attribute.minimum + 1
    return CHI_SQUARE if levels <= MAX_DISCRETE_LEVELS else KS


def value_key(value: Any) -> str:
    """Canonical text of a value: codes as they are, integral numbers without a decimal point."""
    if isinstance(value, str):
        return value
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


# --- the reference stored with a model ------------------------------------------------------


class InvalidReference(ValueError):
    """A stored drift reference that cannot be used, with the field at fault."""

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.problem = problem
        self.field = field
        super().__init__(f"{field}: {problem}" if field else problem)


class ReferenceUnavailable(RuntimeError):
    """No reference could be found for a model version (not stored, or no registry)."""


@dataclass(frozen=True, eq=False)
class Reference:
    """What one model version's windows are compared with.

    Attributes:
        attributes: per attribute, its values' counts over the model's training rows (values as
            :func:`value_key` text). Marginal counts only: no applicant's row can be rebuilt.
        scores: the model's probabilities of bad on its held-out test split.
        provenance: seed, test size and data checksum of the split, the rows' roles.
        source: where this reference was read from (for the report).
    """

    attributes: Mapping[str, Mapping[str, int]]
    scores: np.ndarray
    provenance: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    _sorted: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rows(self) -> int:
        """Training rows behind the attribute counts."""
        return sum(self.attributes[FEATURE_NAMES[0]].values())

    def values(self, name: str) -> np.ndarray:
        """A numeric attribute's (or the score's) reference values, sorted."""
        if name not in self._sorted:
            if name == SCORE:
                values = np.sort(np.asarray(self.scores, dtype="float64"))
            else:
                counts = self.attributes[name]
                values = np.repeat(
                    np.array([float(v) for v in counts], dtype="float64"),
                    np.array(list(counts.values()), dtype="int64"),
                )
                values.sort()
            self._sorted[name] = values
        return self._sorted[name]

    @classmethod
    def from_rows(
        cls,
        features: pd.DataFrame,
        scores: Sequence[float] | np.ndarray,
        provenance: Mapping[str, Any] | None = None,
        source: str = "",
    ) -> Reference:
        """The reference of a model: its training rows' inputs and its held-out scores."""
        attributes = {
            name: {
                value_key(value): int(count)
                for value, count in sorted(
                    features[name].value_counts().items(), key=lambda item: value_key(item[0])
                )
            }
            for name in FEATURE_NAMES
        }
        return cls(
            attributes=attributes,
            scores=np.asarray(scores, dtype="float64"),
            provenance=dict(provenance or {}),
            source=source,
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form (``drift_reference.json``)."""
        return {
            "format": REFERENCE_FORMAT,
            **self.provenance,
            "attribute_rows": self.rows,
            "score_rows": len(self.scores),
            "attributes": {name: dict(counts) for name, counts in self.attributes.items()},
            "scores": [float(s) for s in self.scores],
        }

    @classmethod
    def from_json(cls, document: Any, source: str = "") -> Reference:
        """Read and check a stored reference.

        Raises:
            InvalidReference: not the format written by training, an attribute missing, counts
                that are not positive integers or disagree on the number of rows, scores that
                are not probabilities.
        """
        if not isinstance(document, Mapping):
            raise InvalidReference(f"must be a JSON object, not {type(document).__name__}")
        if document.get("format") != REFERENCE_FORMAT:
            raise InvalidReference(
                f"unsupported format {document.get('format')!r} (this version reads "
                f"{REFERENCE_FORMAT})",
                "format",
            )
        attributes = document.get("attributes")
        if not isinstance(attributes, Mapping):
            raise InvalidReference("required: value counts per attribute", "attributes")
        checked: dict[str, dict[str, int]] = {}
        rows: int | None = None
        for name in FEATURE_NAMES:
            where = f"attributes.{name}"
            counts = attributes.get(name)
            if not isinstance(counts, Mapping) or not counts:
                raise InvalidReference("required: value counts of the training rows", where)
            if not all(type(c) is int and c > 0 for c in counts.values()):
                raise InvalidReference("counts must be positive integers", where)
            if name in NUMERIC:
                try:
                    [float(value) for value in counts]
                except ValueError as error:
                    raise InvalidReference(f"values must be numbers ({error})", where) from None
            total = sum(counts.values())
            if rows is not None and total != rows:
                raise InvalidReference(f"counts sum to {total}, other attributes to {rows}", where)
            rows = total
            checked[name] = {str(value): int(count) for value, count in counts.items()}
        scores = document.get("scores")
        if (
            not isinstance(scores, list)
            or not scores
            or not all(
                isinstance(s, int | float) and not isinstance(s, bool) and 0 <= s <= 1
                for s in scores
            )
        ):
            raise InvalidReference("required: a non-empty list of probabilities", "scores")
        provenance = {
            key: value
            for key, value in document.items()
            if key not in ("format", "attributes", "scores", "attribute_rows", "score_rows")
        }
        return cls(checked, np.asarray(scores, dtype="float64"), provenance, source)


def reference_provenance(seed: int, test_size: float, data_sha256: str) -> dict[str, Any]:
    """How a reference's rows were chosen (stored with it)."""
    return {
        "seed": seed,
        "test_size": test_size,
        "data_sha256": data_sha256,
        "attribute_sample": "training split",
        "score_sample": "held-out test split",
    }


def folder_reference(settings: Settings, folder: Path) -> Reference:
    """The reference stored in an exported model folder (see :func:`rebuild_reference`).

    Raises:
        ModelFolderError: the metadata names a reference that is missing or unreadable, or the
            folder has none and it cannot be rebuilt.
    """
    folder = Path(folder)
    metadata = read_metadata(folder)
    name = metadata.get("drift_reference")
    if not name:
        return rebuild_reference(settings, folder, metadata)
    path = folder / name
    if not path.is_file():
        raise ModelFolderError(
            path,
            "missing: metadata.json names it as the drift reference; export the model again",
            "drift_reference",
        )
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(path, f"cannot be read as JSON ({error})") from error
    try:
        return Reference.from_json(document, source=str(path))
    except InvalidReference as error:
        raise ModelFolderError(path, error.problem, error.field) from error


def rebuild_reference(settings: Settings, folder: Path, metadata: Mapping[str, Any]) -> Reference:
    """Fallback for a folder exported before references were stored with models (logged).

    Rebuilds the split with the model's own seed (from its metadata, never ``settings.seed``),
    on a data file whose checksum is the one the model was trained on, and scores the held-out
    rows with the folder's pipeline; nothing is refitted.

    Raises:
        ModelFolderError: the metadata has no seed or checksum, or the data file differs.
    """
    from credit_risk.data import file_sha256, load_training_data, split_dataset
    from credit_risk.model_folder import load_pipeline

    where = Path(folder) / METADATA_FILE
    seed, checksum = metadata.get("seed"), metadata.get("data_sha256")
    data = Path(settings.data_path)
    cannot = (
        f"no stored drift reference ({DRIFT_REFERENCE_FILE}: the folder was exported before "
        "references were stored with models) and it cannot be rebuilt: "
    )
    fix = "; train the model again (`credit-risk train`) to store one"
    if not isinstance(seed, int) or not isinstance(checksum, str):
        raise ModelFolderError(where, cannot + "the metadata has no seed or data_sha256" + fix)
    if not data.is_file() or file_sha256(data) != checksum:
        raise ModelFolderError(
            where, cannot + f"{data} is not the data file the model was trained on" + fix
        )
    test_size = float(metadata.get("test_size", settings.test_size))
    log.warning(
        "%s has no stored drift reference: rebuilt from %s with the model's own seed %d and "
        "test_size %s (training rows; the stored pipeline's probabilities on the held-out "
        "rows; nothing refitted). Train the model again to store one.",
        folder,
        data,
        seed,
        test_size,
    )
    x_train, x_test, _, _ = split_dataset(load_training_data(settings), test_size, seed)
    scores = load_pipeline(folder).predict_proba(x_test)[:, 1]
    return Reference.from_rows(
        x_train,
        scores,
        reference_provenance(seed, test_size, checksum),
        source=f"rebuilt from {data} (seed {seed}, test_size {test_size}): none stored",
    )


def registry_reference(settings: Settings, version: str) -> Reference:
    """The reference a registered version's training run stored (``drift/`` artifact).

    Raises:
        ReferenceUnavailable: no such version, no reference in its run, or no store to ask.
    """
    import tempfile

    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ReferenceUnavailable(f"no MLflow store at {uri} to look version {version} up in")
    try:
        import mlflow
        from mlflow.tracking import MlflowClient

        registered = MlflowClient(uri).get_model_version(settings.registered_model_name, version)
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                run_id=registered.run_id,
                artifact_path=DRIFT_REFERENCE_ARTIFACT,
                dst_path=folder,
                tracking_uri=uri,
            )
            document = json.loads(Path(path).read_text())
    except Exception as error:  # MLflow's, the network's, the file's: all mean "not available"
        raise ReferenceUnavailable(
            f"no drift reference for {settings.registered_model_name} version {version} in "
            f"{uri} ({type(error).__name__}: {str(error)[:200]})"
        ) from error
    source = f"models:/{settings.registered_model_name}/{version} (run {registered.run_id})"
    try:
        return Reference.from_json(document, source=source)
    except InvalidReference as error:
        raise ReferenceUnavailable(f"{source}: {error}") from error


# --- the tests ------------------------------------------------------------------------------


def null_draws(level: float) -> int:
    """Simulated null statistics per test at per-test level ``level``."""
    return max(MIN_DRAWS, math.ceil(EXCEEDANCES / level) - 1)


def allowed_exceedances(level: float, draws: int) -> int:
    """Most null statistics at or above the observed one that still give p <= level."""
    return math.floor(level * (draws + 1) + 1e-9) - 1


def _exceedances(null: np.ndarray, observed: float) -> int:
    """Null statistics at or above the observed one (equal up to rounding counts as equal)."""
    tolerance = _RELATIVE_TIE * max(1.0, abs(observed))
    return int(np.count_nonzero(null >= observed - tolerance))


def monte_carlo_outcome(observed: float, null: np.ndarray, level: float) -> tuple[float, float]:
    """p-value and threshold of a statistic against its simulated null (sorted ascending).

    Returns:
        ``p = (1 + #null >= observed) / (draws + 1)``, and the threshold: the largest statistic
        that does not alarm at ``level`` (p <= level exactly when the statistic exceeds it).
    """
    draws = len(null)
    allowed = allowed_exceedances(level, draws)
    threshold = float(null[draws - 1 - allowed]) if allowed >= 0 else math.inf
    return (1 + _exceedances(null, observed)) / (draws + 1), threshold


def pearson_statistic(
    window_counts: np.ndarray, totals: np.ndarray, reference_rows: int, window_rows: int
) -> np.ndarray:
    """Pearson's chi-square of 2 x k tables, from the window's counts and the pooled ones.

    The reference's deviation from its expected count is minus the window's, so both rows of
    the table reduce to one sum. Works on one table (k,) or a stack of them (draws, k).
    """
    rows = reference_rows + window_rows
    expected = window_rows * totals / rows
    weight = rows * rows / (totals * reference_rows * window_rows)
    return np.asarray(((window_counts - expected) ** 2 * weight).sum(axis=-1), dtype="float64")


def chi_square_test(
    reference: Mapping[str, int],
    window: Mapping[str, int],
    draws: int,
    level: float,
    rng: np.random.Generator,
    stop_early: bool = False,
) -> tuple[float, float, float]:
    """Pearson's statistic against its permutation null given the pooled counts.

    Args:
        reference, window: counts per value (values seen in neither are left out).
        draws: simulated tables.
        level: the per-test level the threshold is for.
        rng: the simulation's generator.
        stop_early: stop simulating once more null statistics than
            :func:`allowed_exceedances` reach the observed one. The alarm decision is then
            known, and is the one the full simulation gives (Besag and Clifford 1991); the
            p-value is the sequential estimate (exceedances / draws made) and the threshold
            is not computed (nan). For simulation studies of many windows.

    Returns:
        The statistic, its p-value and its threshold at this window's size.
    """
    levels = sorted(set(reference) | set(window))
    ref = np.array([reference.get(level, 0) for level in levels], dtype="int64")
    win = np.array([window.get(level, 0) for level in levels], dtype="int64")
    totals = ref + win
    reference_rows, window_rows = int(ref.sum()), int(win.sum())
    if len(levels) < 2:  # one value in reference and window alike: nothing can differ
        return 0.0, 1.0, 0.0

    def simulate(size: int) -> np.ndarray:
        # "marginals": a few hypergeometric draws per table, whatever the window's size.
        tables = rng.multivariate_hypergeometric(totals, window_rows, size=size, method="marginals")
        return pearson_statistic(tables, totals, reference_rows, window_rows)

    observed = float(pearson_statistic(win, totals, reference_rows, window_rows))
    # Simulated in blocks either way, so that both ways see the same null statistics.
    allowed, exceed, blocks = allowed_exceedances(level, draws), 0, []
    for start in range(0, draws, _BLOCK):
        blocks.append(simulate(min(_BLOCK, draws - start)))
        exceed += _exceedances(blocks[-1], observed)
        if stop_early and exceed > allowed:
            return observed, exceed / (start + len(blocks[-1])), math.nan
    if stop_early:
        return observed, (1 + exceed) / (draws + 1), math.nan
    p_value, threshold = monte_carlo_outcome(observed, np.sort(np.concatenate(blocks)), level)
    return observed, p_value, threshold


def ks_distance(reference: np.ndarray, window: np.ndarray) -> int:
    """The two-sample KS distance times N x n (an integer), of sorted samples."""
    grid = np.union1d(reference, window)
    in_reference = np.searchsorted(reference, grid, side="right")
    in_window = np.searchsorted(window, grid, side="right")
    return int(np.max(np.abs(in_window * len(reference) - in_reference * len(window))))


@functools.lru_cache(maxsize=64)
def ks_null(reference_rows: int, window_rows: int, draws: int) -> np.ndarray:
    """Distribution-free null of :func:`ks_distance` for samples of these sizes (sorted).

    Under no drift and without ties, the pooled sample's order is a uniformly random
    arrangement of the two samples: each draw walks one, stepping +N for a window value and
    -n for a reference value, and keeps its largest excursion. It depends on the sizes only,
    so it is simulated once per (N, n, draws), from a seed they fix, and cached.
    """
    rng = np.random.default_rng([reference_rows, window_rows, draws])
    steps = np.concatenate(
        [np.full(window_rows, reference_rows), np.full(reference_rows, -window_rows)]
    ).astype("int64")
    block = max(1, _KS_BLOCK // len(steps))
    null = np.empty(draws, dtype="int64")
    for start in range(0, draws, block):
        size = min(block, draws - start)
        paths = np.cumsum(rng.permuted(np.tile(steps, (size, 1)), axis=1), axis=1)
        null[start : start + size] = np.abs(paths).max(axis=1)
    null.sort()
    return null


@dataclass(frozen=True, eq=False)
class Window:
    """The decisions of one model version, with that version's reference."""

    model_version: str
    decisions: pd.DataFrame
    reference: Reference | None


def window_counts(name: str, values: pd.Series) -> dict[str, int]:
    """Counts per value (:func:`value_key` text) of an attribute's non-missing window values."""
    if name in CATEGORICAL:
        return {str(k): int(c) for k, c in values.astype(str).value_counts(sort=False).items()}
    numbers, counts = np.unique(values.to_numpy(dtype="float64"), return_counts=True)
    return {value_key(v): int(c) for v, c in zip(numbers, counts, strict=True)}


def planned_tests(window: Window) -> list[str]:
    """The attributes (and the score) a window is tested on."""
    scored = SCORE in window.decisions and window.reference is not None
    return list(FEATURE_NAMES) + ([SCORE] if scored else [])


def _test_row(
    name: str,
    reference: Reference,
    decisions: pd.DataFrame,
    level: float,
    draws: int,
    seed: int,
    stop_early: bool,
) -> dict[str, Any]:
    kind = choose_test(name)
    column = decisions[name]
    present = column.dropna() if column.hasnans else column
    row: dict[str, Any] = {
        "attribute": name,
        "uci_number": 0 if name == SCORE else BY_NAME[name].uci_number,
        "kind": "score" if name == SCORE else BY_NAME[name].kind.value,
        "test": kind,
        "reference_rows": len(reference.scores) if name == SCORE else reference.rows,
        "rows": len(present),
    }
    if present.empty:
        return {**row, "statistic": math.nan, "threshold": math.nan, "p_value": 1.0, "psi": 0.0}
    if kind == CHI_SQUARE:
        counts = reference.attributes[name]
        current = window_counts(name, present)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        statistic, p_value, threshold = chi_square_test(
            counts, current, draws, level, rng, stop_early
        )
        levels = sorted(set(counts) | set(current))
        psi = _psi_from_counts(
            np.array([counts.get(v, 0) for v in levels], dtype=float),
            np.array([current.get(v, 0) for v in levels], dtype=float),
        )
    else:
        ref = reference.values(name)
        win = np.sort(present.to_numpy(dtype="float64"))
        scale = len(ref) * len(win)
        distance = ks_distance(ref, win)
        p_value, threshold = monte_carlo_outcome(
            distance, ks_null(len(ref), len(win), draws), level
        )
        statistic, threshold = distance / scale, threshold / scale
        psi = psi_numeric(ref, win, SCORE_BINS if name == SCORE else NUMERIC_BINS)
    return {**row, "statistic": statistic, "threshold": threshold, "p_value": p_value, "psi": psi}


@dataclass
class VersionDrift:
    """One model version's window: a row per test (empty when the window is too small)."""

    model_version: str
    rows: int
    reference: Reference | None
    table: pd.DataFrame
    enough_data: bool

    @property
    def alarms(self) -> pd.DataFrame:
        """The tests that alarmed."""
        if self.table.empty:
            return self.table
        return self.table[self.table["alarm"]]

    @property
    def drift(self) -> bool:
        """Whether any of this version's tests alarmed."""
        return self.enough_data and not self.alarms.empty


@dataclass
class DriftResult:
    """A monitor run: per model version, each test's statistic, threshold at its n, p-value."""

    versions: list[VersionDrift]
    alarm_rate: float
    min_rows: int
    tests: int
    level: float
    draws: int
    skipped: dict[str, str] = field(default_factory=dict)
    window: str = ""
    report_path: Path | None = None
    json_path: Path | None = None

    @property
    def drift(self) -> bool:
        """Whether any test of the run alarmed."""
        return any(version.drift for version in self.versions)

    @property
    def enough_data(self) -> bool:
        """Whether at least one version's window was large enough to be tested."""
        return any(version.enough_data for version in self.versions)

    @property
    def current_rows(self) -> int:
        """Decisions in the window (all versions, assessed or not)."""
        return sum(version.rows for version in self.versions)

    @property
    def table(self) -> pd.DataFrame:
        """Every test of the run, one row each, with its model version."""
        tables = [v.table.assign(model_version=v.model_version) for v in self.versions]
        tables = [t for t in tables if not t.empty]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    @property
    def reasons(self) -> list[str]:
        """One line per alarm."""
        return [
            f"version {version.model_version}: {row.attribute}: {row.test} {row.statistic:.4g} "
            f"> {row.threshold:.4g} at n={row.rows} (p={row.p_value:.2g} <= {self.level:.2g})"
            for version in self.versions
            for row in version.alarms.itertuples()
        ]

    def summary(self) -> str:
        """Readable outcome, for the CLI and logs."""
        lines: list[str] = []
        if not self.enough_data:
            lines.append(
                f"not enough decisions to judge drift: {self.current_rows} rows "
                f"(need {self.min_rows} for a model version)"
            )
        else:
            head = "DRIFT" if self.drift else "no drift"
            alarms = sum(len(v.alarms) for v in self.versions)
            lines.append(
                f"{head}: {alarms} of {self.tests} tests alarm (false-alarm rate of the run "
                f"{self.alarm_rate} over {self.tests} tests, Bonferroni: each at p <= "
                f"{self.level:.2g})"
            )
        for version in self.versions:
            if not version.enough_data:
                lines.append(
                    f"version {version.model_version}: {version.rows} decisions, fewer than "
                    f"{self.min_rows}: not tested"
                )
                continue
            against = (
                f" vs {version.reference.rows} training rows and "
                f"{len(version.reference.scores)} held-out scores"
                if version.reference is not None
                else ""
            )
            lines.append(f"version {version.model_version}: {version.rows} decisions{against}")
            closest = version.table.sort_values("p_value").head(max(3, len(version.alarms)))
            for row in closest.itertuples():
                lines.append(
                    f"  {'ALARM ' if row.alarm else '      '}{row.attribute:<24} {row.test:<10} "
                    f"{row.statistic:9.4g} threshold {row.threshold:9.4g} at n={row.rows:<5} "
                    f"p={row.p_value:.2g}  PSI {row.psi:.3f}"
                )
        lines += [f"version {v}: not tested: {why}" for v, why in self.skipped.items()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The run as JSON (written beside the HTML report)."""
        return {
            "drift": self.drift,
            "enough_data": self.enough_data,
            "window": self.window,
            "alarm_rate": self.alarm_rate,
            "tests": self.tests,
            "level": self.level,
            "draws": self.draws,
            "min_rows": self.min_rows,
            "reasons": self.reasons,
            "skipped": self.skipped,
            "versions": [
                {
                    "model_version": v.model_version,
                    "rows": v.rows,
                    "enough_data": v.enough_data,
                    "reference": None
                    if v.reference is None
                    else {
                        "source": v.reference.source,
                        "attribute_rows": v.reference.rows,
                        "score_rows": len(v.reference.scores),
                        **v.reference.provenance,
                    },
                    "tests": json.loads(v.table.to_json(orient="records")),
                }
                for v in self.versions
            ],
        }


def assess_drift(
    windows: Sequence[Window],
    alarm_rate: float = 0.05,
    min_rows: int = 50,
    seed: int = 0,
    stop_early: bool = False,
) -> DriftResult:
    """Test each model version's window against its reference; one correction for the run.

    Args:
        windows: per model version, its decisions (schema columns, ``probability_bad``) and its
            reference (None only for a window too small to test).
        alarm_rate: family-wise false-alarm rate of the run (Bonferroni over all its tests).
        min_rows: a version with fewer decisions is not tested (no verdict for it).
        seed: seeds the simulated null distributions (same inputs, same report).
        stop_early: chi-square simulations stop once their decision is known (same alarms,
            coarser p-values, no thresholds: see :func:`chi_square_test`); for benchmarks.

    Returns:
        Per version, one row per test: statistic, threshold at this n, p-value, alarm, PSI.
    """
    if not 0 < alarm_rate < 1:
        raise ValueError(f"alarm_rate must be strictly between 0 and 1, got {alarm_rate}")
    tested = [w for w in windows if len(w.decisions) >= min_rows and w.reference is not None]
    tests = sum(len(planned_tests(w)) for w in tested)
    tested_ids = {id(w) for w in tested}
    level = alarm_rate / max(tests, 1)
    draws = null_draws(level)
    versions: list[VersionDrift] = []
    for window in windows:
        if id(window) not in tested_ids:
            versions.append(
                VersionDrift(
                    window.model_version,
                    len(window.decisions),
                    window.reference,
                    pd.DataFrame(),
                    enough_data=False,
                )
            )
            continue
        assert window.reference is not None
        version_seed = zlib.crc32(f"{seed}/{window.model_version}".encode())
        rows = [
            _test_row(
                name, window.reference, window.decisions, level, draws, version_seed, stop_early
            )
            for name in planned_tests(window)
        ]
        table = pd.DataFrame(rows)
        table["alarm"] = table["p_value"] <= level
        table["band"] = table["psi"].map(psi_band)
        versions.append(
            VersionDrift(window.model_version, len(window.decisions), window.reference, table, True)
        )
    return DriftResult(versions, alarm_rate, min_rows, tests, level, draws)


# --- reading the decision log ---------------------------------------------------------------


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """``7d``, ``24h``, ``90m`` (before now) or an ISO date/time (UTC when naive)."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+)\s*([dhm])", value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: amount})
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def decisions_to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Logged decisions (``input`` dict + ``probability_bad``...) as one row per applicant.

    Categorical inputs logged as readable labels are mapped back to their codes.
    """
    inputs = pd.DataFrame([record["input"] for record in records], columns=list(FEATURE_NAMES))
    for name in CATEGORICAL:
        attribute = BY_NAME[name]
        inputs[name] = inputs[name].map(lambda v, a=attribute: label_to_code(a, str(v)) or str(v))
    for name in NUMERIC:
        inputs[name] = pd.to_numeric(inputs[name], errors="coerce")
    meta = pd.DataFrame(
        [
            {k: record.get(k) for k in ("request_id", "created_at", "model_version", SCORE)}
            for record in records
        ]
    )
    return pd.concat([inputs, meta], axis=1)


def read_decisions(
    url: str, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """The decision log's rows in a time window (see :mod:`credit_risk.decision_log`)."""
    import sqlalchemy as sa

    from credit_risk.decision_log import (
        DecisionLogError,
        check_log_exists,
        decisions_table,
        make_engine,
    )

    try:  # connecting to a SQLite file that is not there would create an empty log
        check_log_exists(url)
    except DecisionLogError as error:
        log.warning("%s: no decisions to read", error)
        return decisions_to_frame([])
    table = decisions_table
    query = sa.select(
        table.c.request_id,
        table.c.created_at,
        table.c.model_version,
        table.c.input,
        table.c.probability_bad,
    )
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            records = [dict(row._mapping) for row in connection.execute(query)]
    except sa.exc.OperationalError as error:  # no table yet: nothing was decided
        log.warning("cannot read the decision log at %s: %s", url, error)
        records = []
    finally:
        engine.dispose()
    return decisions_to_frame(records)


def windows_by_version(
    settings: Settings, decisions: pd.DataFrame, folder: Path
) -> tuple[list[Window], dict[str, str]]:
    """Split decisions by the model version that decided them; find each version's reference.

    The exported folder's version reads the folder's reference; any other version, the
    reference its training run stored in the registry. Decisions without a version are the
    folder's. Windows too small to test are not looked up.

    Returns:
        The windows, and the versions that could not be tested with the reason.
    """
    own = str(read_metadata(folder)["model_version"])
    versions = (
        decisions[MODEL_VERSION].astype(object).where(decisions[MODEL_VERSION].notna(), own)
        if MODEL_VERSION in decisions
        else pd.Series(own, index=decisions.index)
    ).astype(str)
    windows: list[Window] = []
    skipped: dict[str, str] = {}
    for version, rows in decisions.groupby(versions, sort=True):
        version = str(version)
        reference: Reference | None = None
        if len(rows) >= settings.monitor_min_rows:
            if version == own:
                reference = folder_reference(settings, folder)
            else:
                try:
                    reference = registry_reference(settings, version)
                except ReferenceUnavailable as error:
                    log.warning("version %s: %s", version, error)
                    skipped[version] = f"{len(rows)} decisions: {error}"
                    continue
        windows.append(Window(version, rows.reset_index(drop=True), reference))
    return windows, skipped


# --- the report -----------------------------------------------------------------------------


def _figure_base64(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def drift_plots(version: VersionDrift, decisions: pd.DataFrame, top: int = 4) -> dict[str, str]:
    """PNG (base64) plots of one version: the score, then the attributes with the lowest p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = version.reference
    if reference is None or version.table.empty:
        return {}
    plots: dict[str, str] = {}
    by_name = version.table.set_index("attribute")
    ordered = version.table.sort_values("p_value")["attribute"]
    names = [SCORE] if SCORE in by_name.index else []
    names += [n for n in ordered if n != SCORE][:top]
    for name in names:
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        if choose_test(name) == KS:
            ref = reference.values(name)
            cur = decisions[name].dropna().to_numpy(dtype="float64")
            bins = np.histogram_bin_edges(np.r_[ref, cur], bins=20).tolist()
            ax.hist(ref, bins=bins, density=True, alpha=0.55, label="reference")
            ax.hist(cur, bins=bins, density=True, alpha=0.55, label="recent decisions")
        else:
            counts = reference.attributes[name]
            current = decisions[name].dropna().map(value_key).value_counts(normalize=True)
            levels = sorted(set(counts) | set(current.index))
            total = sum(counts.values())
            x = np.arange(len(levels))
            ax.bar(x - 0.2, [counts.get(v, 0) / total for v in levels], 0.4, label="reference")
            ax.bar(x + 0.2, current.reindex(levels, fill_value=0), 0.4, label="recent decisions")
            ax.set_xticks(x, levels, fontsize=8)
        row = by_name.loc[name]
        ax.set_title(
            f"{name}: {row['test']} p={row['p_value']:.2g}, PSI {row['psi']:.3f}", fontsize=10
        )
        ax.legend(fontsize=8)
        plots[name] = _figure_base64(fig)
    return plots


def render_report(result: DriftResult, plots: Mapping[str, Mapping[str, str]]) -> str:
    """The drift report as a self-contained HTML page (plots per model version)."""
    from importlib.resources import files

    from jinja2 import Environment, select_autoescape

    template = files("credit_risk").joinpath("templates/monitor_report.html.j2").read_text()
    environment = Environment(autoescape=select_autoescape(default=True))
    return environment.from_string(template).render(
        result=result,
        plots=plots,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        watch=PSI_WATCH,
        act=PSI_ACT,
        chi_square=CHI_SQUARE,
    )


def monitor(
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
    model_dir: Path | None = None,
    report: Path | None = None,
    decisions: pd.DataFrame | None = None,
) -> DriftResult:
    """Read the decision log, test each model version's window, write the reports.

    A plain function, so a Prefect task can call it and retrain when ``result.drift``.

    Args:
        settings: decision-log URL, alarm rate, minimum window, report path, registry.
        since, until: time window of the decisions (default: the whole log).
        model_dir: exported model whose reference serves its own version's decisions (default:
            the champion); other versions' references come from the registry.
        report: where to write the HTML report (default ``settings.monitor_report``); the
            JSON report goes beside it (``.json``).
        decisions: logged decisions to use instead of reading the log (tests, batch files).

    Raises:
        ReferenceUnavailable: there are decisions to test but no version's reference was found.
        ModelFolderError: the folder's own reference is missing and cannot be rebuilt.
    """
    folder = Path(model_dir or settings.model_dir)
    current = (
        decisions
        if decisions is not None
        else read_decisions(settings.decision_log_url, since, until)
    )
    windows, skipped = windows_by_version(settings, current, folder)
    if skipped and not windows:
        raise ReferenceUnavailable("no decision could be tested: " + "; ".join(skipped.values()))
    result = assess_drift(
        windows, settings.monitor_alarm_rate, settings.monitor_min_rows, settings.seed
    )
    result.skipped = skipped
    result.window = (
        f"{since.isoformat() if since else 'start of log'} to "
        f"{until.isoformat() if until else 'now'}"
    )
    plots = {
        version.model_version: drift_plots(version, window.decisions)
        for version, window in zip(result.versions, windows, strict=True)
    }
    path = Path(report or settings.monitor_report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, plots))
    result.report_path = path
    result.json_path = path.with_suffix(".json")
    result.json_path.write_text(json.dumps(result.to_json(), indent=2, default=str))
    log.info("%s; report %s", result.summary(), path)
    return result
