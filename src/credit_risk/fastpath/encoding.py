"""Encoding: validated applicants -> the encoded matrix, laid out as the fitted ``encode`` step.

Owns :class:`EncodedLayout` (read from the fitted encoder by :func:`read_layout`) and
:class:`RowEncoder`, which derives the variables of :data:`credit_risk.derivations.DERIVATIONS`
(column-wise for files, record by record for requests) and one-hot encodes them with numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.derivations import DERIVATIONS, Derivation
from credit_risk.fastpath.errors import FastPathUnavailable
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, Kind


def _derived_columns(
    columns: Mapping[str, Any], derivations: Sequence[Derivation]
) -> dict[str, Any]:
    """Every derived variable for applicants given as one array per attribute."""
    return {derivation.name: derivation.column(columns) for derivation in derivations}


def _derived_row(record: Mapping[str, Any], derivations: Sequence[Derivation]) -> dict[str, Any]:
    """Every derived variable for one applicant, in plain Python (no array set-up cost)."""
    return {derivation.name: derivation.value(record) for derivation in derivations}


@dataclass(frozen=True)
class EncodedLayout:
    """Where each column of the fitted ``encode`` step's output comes from.

    Attributes:
        numeric: feature-step columns passed through, in output order.
        categorical: feature-step columns one-hot encoded, with their levels, in output order.
        names: the encoded feature names (as the fitted encoder reports them).
        derivations: the derived variables, the feature step's own table
            (:data:`credit_risk.derivations.DERIVATIONS`).
    """

    numeric: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]
    names: tuple[str, ...]
    derivations: tuple[Derivation, ...]

    @property
    def width(self) -> int:
        return len(self.names)

    def source_column(self, index: int) -> str:
        """The feature-step column that encoded column ``index`` comes from."""
        if index < len(self.numeric):
            return self.numeric[index]
        index -= len(self.numeric)
        for column, levels in self.categorical:
            if index < len(levels):
                return column
            index -= len(levels)
        raise IndexError(index)


def read_layout(pipeline: Any) -> EncodedLayout:
    """Read the encoded layout from a fitted pipeline's ``encode`` step.

    Raises:
        FastPathUnavailable: the encoder is not the passthrough + one-hot layout compiled here.
    """
    encode = pipeline.named_steps["encode"]
    numeric: list[str] = []
    categorical: list[tuple[str, tuple[str, ...]]] = []
    for name, transformer, columns in encode.transformers_:
        if name == "remainder" and transformer == "drop":
            continue
        # A fitted "passthrough" block is an identity FunctionTransformer.
        identity = type(transformer).__name__ == "FunctionTransformer" and (
            transformer.func is None
        )
        if (isinstance(transformer, str) and transformer == "passthrough") or identity:
            numeric.extend(columns)
        elif type(transformer).__name__ == "OneHotEncoder":
            if categorical:
                raise FastPathUnavailable("more than one one-hot block")
            categorical.extend(
                (column, tuple(str(level) for level in levels))
                for column, levels in zip(columns, transformer.categories_, strict=True)
            )
        else:
            raise FastPathUnavailable(
                f"encoder block {name!r} ({type(transformer).__name__}) is not compiled"
            )
    names = tuple(str(n) for n in encode.get_feature_names_out())
    layout = EncodedLayout(tuple(numeric), tuple(categorical), names, DERIVATIONS)
    if layout.width != len(names):
        raise FastPathUnavailable("encoder output width does not match its layout")
    return layout


def _level_index(values: Any, levels: list[str]) -> np.ndarray:
    """Position of each value among ``levels`` (-1 if absent), in C (Arrow) where possible."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        return _level_index_pandas(values, levels)
    try:
        found = pc.index_in(pa.array(values, type=pa.string()), value_set=pa.array(levels))
        return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    except (pa.ArrowException, TypeError):
        return _level_index_pandas(values, levels)


def _level_index_pandas(values: Any, levels: list[str]) -> np.ndarray:
    """:func:`_level_index` without pyarrow."""
    return np.asarray(pd.Categorical(values, categories=levels).codes, dtype=np.int64)


class RowEncoder:
    """Validated applicants (codes and integers) -> encoded float32 matrix."""

    # Up to this many records, encode_records loops in Python instead of building columns.
    ROW_LOOP_MAX = 512

    def __init__(self, layout: EncodedLayout) -> None:
        self.layout = layout
        self._offsets: list[tuple[str, int, dict[str, int]]] = []
        offset = len(layout.numeric)
        for column, levels in layout.categorical:
            self._offsets.append((column, offset, {lv: i for i, lv in enumerate(levels)}))
            offset += len(levels)

    def encode_columns(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Encode applicants given as one array per schema attribute.

        Args:
            columns: the 20 attributes, each an array (codes as str, numbers as integers).

        Returns:
            ``(n, width)`` float32 matrix, as the fitted ``encode`` step would produce.
        """
        everything = {**columns, **_derived_columns(columns, self.layout.derivations)}
        n = len(columns[FEATURE_NAMES[0]])
        out = np.zeros((n, self.layout.width), dtype=np.float32)
        for index, column in enumerate(self.layout.numeric):
            out[:, index] = np.asarray(everything[column], dtype=np.float64)
        # One flat scatter per one-hot block (2-D fancy indexing is slower).
        flat = out.reshape(-1)
        row_starts = np.arange(n, dtype=np.int64) * self.layout.width
        for column, offset, positions in self._offsets:
            # Hash lookup in C; unknown levels get -1 and encode as all zeros, as
            # OneHotEncoder(handle_unknown="ignore") does.
            level = _level_index(everything[column], list(positions))
            known = level >= 0
            if known.all():
                flat[row_starts + (offset + level)] = 1.0
            else:
                flat[row_starts[known] + (offset + level[known])] = 1.0
        return out

    def encode_frame(self, applicants: pd.DataFrame) -> np.ndarray:
        """Encode a validated frame with the schema's columns."""
        # Series as they are (pandas 3 keeps text in Arrow; converting to objects is slow).
        return self.encode_columns({name: applicants[name] for name in FEATURE_NAMES})

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode validated applicants given as dicts (the API's request bodies)."""
        if len(records) <= self.ROW_LOOP_MAX:
            # The API's requests (coalesced under load): a plain Python loop beats the column
            # path's fixed cost of array set-up up to several hundred rows.
            out = np.zeros((len(records), self.layout.width), dtype=np.float32)
            derivations = self.layout.derivations
            for row, record in enumerate(records):
                values = {**record, **_derived_row(record, derivations)}
                out[row, : len(self.layout.numeric)] = [values[c] for c in self.layout.numeric]
                for column, offset, positions in self._offsets:
                    position = positions.get(values[column])
                    if position is not None:
                        out[row, offset + position] = 1.0
            return out
        columns = {
            a.name: np.asarray(
                [r[a.name] for r in records],
                dtype=object if a.kind is Kind.CATEGORICAL else np.int64,
            )
            for a in ATTRIBUTES
        }
        return self.encode_columns(columns)
