"""Candidates of the search: scored combinations, the lines searched, and the encoder of
candidates that differ from one applicant in a few attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from credit_risk.derivations import Derivation
from credit_risk.fastpath import FastPath
from credit_risk.schema import FEATURE_NAMES


@dataclass
class _Flip:
    """A scored combination: its changes (acted on only), total cost and probability."""

    changes: dict[str, Any]
    cost: float
    probability: float


@dataclass
class _Line:
    """One attribute searched along its options, other changes held (see :meth:`_descend`).

    Attributes:
        others: the changes held fixed.
        others_cost: their cost.
        attribute: the attribute searched.
        options: its values and costs, cheapest first.
        low, high: the window of options still searched.
        found: the cheapest flip found so far.
        seen: every option scored, with its probability.
    """

    others: dict[str, Any]
    others_cost: float
    attribute: str
    options: list[tuple[Any, float]]
    low: int = 0
    high: int = -1
    found: _Flip | None = None
    seen: list[tuple[Any, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.high < 0:
            self.high = len(self.options)


def _sources(derivation: Derivation) -> frozenset[str]:
    """The codebook attributes a derived variable reads (its fields that name one)."""
    found: set[str] = set()
    for spec in fields(derivation):
        value = getattr(derivation, spec.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str) and item in FEATURE_NAMES:
                found.add(item)
    return frozenset(found)


def _evenly(count: int, low: int, high: int) -> list[int]:
    """At most ``count`` indices of ``range(low, high)``, evenly spaced, first and last kept."""
    if high - low <= count:
        return list(range(low, high))
    return np.unique(np.round(np.linspace(low, high - 1, count)).astype(int)).tolist()


class _CandidateEncoder:
    """Encodes candidates that differ from one applicant in a few attributes.

    The applicant is encoded once by the fast path's own encoder; a candidate's row is a copy
    of it in which only the encoded columns that read a changed attribute are recomputed (with
    the derivations' own :meth:`~credit_risk.derivations.Derivation.column`). Checked against
    the fast path's encoder by ``tests/test_recourse.py``; suggestions are re-scored by it
    anyway.
    """

    def __init__(self, fast: FastPath) -> None:
        self.encoder = fast.encoder
        layout = fast.encoder.layout
        derivations = {d.name: d for d in layout.derivations}
        self.numeric: list[tuple[int, str, Derivation | None, frozenset[str]]] = []
        for index, column in enumerate(layout.numeric):
            derivation = derivations.get(column)
            reads = _sources(derivation) if derivation else frozenset({column})
            self.numeric.append((index, column, derivation, reads))
        self.blocks: list[tuple[int, int, str, dict[str, int], Derivation | None, frozenset[str]]]
        self.blocks = []
        offset = len(layout.numeric)
        for column, levels in layout.categorical:
            derivation = derivations.get(column)
            reads = _sources(derivation) if derivation else frozenset({column})
            positions = {level: i for i, level in enumerate(levels)}
            self.blocks.append((offset, len(levels), column, positions, derivation, reads))
            offset += len(levels)

    def encode(
        self, record: Mapping[str, Any], columns: Mapping[str, Any], changed: set[str]
    ) -> np.ndarray:
        """The encoded candidates: ``columns`` holds every attribute, one value per candidate;
        only attributes in ``changed`` differ from ``record``."""
        n = len(columns[FEATURE_NAMES[0]])
        base = self.encoder.encode_records([record])
        out = np.repeat(base, n, axis=0)
        for index, column, derivation, reads in self.numeric:
            if reads & changed:
                values = columns[column] if derivation is None else derivation.column(columns)
                out[:, index] = np.asarray(values, dtype=np.float64)
        for offset, width, column, positions, derivation, reads in self.blocks:
            if reads & changed:
                values = columns[column] if derivation is None else derivation.column(columns)
                level = np.fromiter((positions.get(v, -1) for v in values), dtype=np.int64, count=n)
                out[:, offset : offset + width] = 0.0
                known = np.flatnonzero(level >= 0)
                out[known, offset + level[known]] = 1.0
        return out
