"""The derived variables, each defined once, as a table of specs.

:data:`DERIVATIONS` is the one definition. The fitted transformer
(:class:`credit_risk.features.FeatureEngineer`) computes its columns with each spec's
:meth:`~Derivation.column`; the fast path's column encoder does the same, and its per-request
encoder uses :meth:`~Derivation.value`, which each kind of spec computes the same way for one
applicant. This module imports neither scikit-learn nor the feature step, so a fast path
loaded from its cache derives features without them.
"""

from __future__ import annotations

import bisect
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Derivation(ABC):
    """One derived variable: its name and how it is computed from the applicant's attributes.

    Attributes:
        name: the output column.
        protected: carries a protected attribute, and is dropped with it.
    """

    name: str
    protected: bool = field(default=False, kw_only=True)

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels of a categorical variable; empty for a numeric one."""
        return ()

    @abstractmethod
    def column(self, columns: Mapping[str, Any]) -> Any:
        """The variable for many applicants, given one array (or Series) per attribute."""

    @abstractmethod
    def value(self, record: Mapping[str, Any]) -> Any:
        """The variable for one applicant given as a dict, in plain Python."""


@dataclass(frozen=True)
class Ratio(Derivation):
    """``numerator / denominators[0] / denominators[1] ...`` in float64."""

    numerator: str
    denominators: tuple[str, ...]

    def column(self, columns: Mapping[str, Any]) -> np.ndarray:
        out = np.asarray(columns[self.numerator], dtype="float64")
        for denominator in self.denominators:
            out = out / np.asarray(columns[denominator], dtype="float64")
        return out

    def value(self, record: Mapping[str, Any]) -> float:
        out = float(record[self.numerator])
        for denominator in self.denominators:
            out = out / float(record[denominator])
        return out


@dataclass(frozen=True)
class PerShare(Derivation):
    """``numerator / denominator / shares[band]``: an amount over the share a band stands for.

    A band outside ``shares`` gives NaN (the codebook's bounds keep bands inside it).
    """

    numerator: str
    denominator: str
    band: str
    shares: Mapping[int, float] = field(hash=False)

    @functools.cached_property
    def _share_table(self) -> tuple[int, np.ndarray]:
        low, high = min(self.shares), max(self.shares)
        table = np.full(high - low + 1, np.nan)
        for band, share in self.shares.items():
            table[band - low] = share
        return low, table

    def column(self, columns: Mapping[str, Any]) -> np.ndarray:
        low, table = self._share_table
        band = np.asarray(columns[self.band], dtype="int64") - low
        inside = (band >= 0) & (band < len(table))
        share = np.where(inside, table[np.clip(band, 0, len(table) - 1)], np.nan)
        amount = np.asarray(columns[self.numerator], dtype="float64")
        return amount / np.asarray(columns[self.denominator], dtype="float64") / share

    def value(self, record: Mapping[str, Any]) -> float:
        share = self.shares.get(int(record[self.band]), math.nan)
        return float(record[self.numerator]) / float(record[self.denominator]) / share


@dataclass(frozen=True)
class Log(Derivation):
    """The natural logarithm of a numeric attribute."""

    source: str

    def column(self, columns: Mapping[str, Any]) -> np.ndarray:
        return np.log(np.asarray(columns[self.source], dtype="float64"))

    def value(self, record: Mapping[str, Any]) -> float:
        return math.log(float(record[self.source]))


@dataclass(frozen=True)
class DiffersFrom(Derivation):
    """1 when a categorical attribute is not ``code``, else 0."""

    source: str
    code: str

    def column(self, columns: Mapping[str, Any]) -> np.ndarray:
        # A Series compares in Arrow when pandas holds the text there.
        return np.asarray(pd.Series(columns[self.source]) != self.code, dtype="int64")

    def value(self, record: Mapping[str, Any]) -> int:
        return int(record[self.source] != self.code)


@dataclass(frozen=True)
class Recode(Derivation):
    """A categorical attribute's codes mapped to coarser levels (unknown codes: no level)."""

    source: str
    mapping: Mapping[str, str] = field(hash=False)

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.mapping.values())))

    def column(self, columns: Mapping[str, Any]) -> pd.Series:
        return pd.Series(columns[self.source]).map(self.mapping)

    def value(self, record: Mapping[str, Any]) -> str:
        return self.mapping.get(record[self.source], "")


@dataclass(frozen=True)
class Bands(Derivation):
    """A numeric attribute cut into labelled bands; ``edges[i]`` opens band ``i + 1``."""

    source: str
    edges: tuple[int, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.edges) + 1:
            raise ValueError(f"{self.name}: {len(self.edges)} edges need one label more")

    @property
    def levels(self) -> tuple[str, ...]:
        return self.labels

    @functools.cached_property
    def _label_array(self) -> np.ndarray:
        return np.asarray(self.labels, dtype=object)

    def column(self, columns: Mapping[str, Any]) -> np.ndarray:
        band = np.searchsorted(self.edges, np.asarray(columns[self.source]), side="right")
        return self._label_array[band]

    def value(self, record: Mapping[str, Any]) -> str:
        return self.labels[bisect.bisect_right(self.edges, record[self.source])]


AGE_BAND_EDGES = (25, 35, 50, 65)
AGE_BANDS = ("under_25", "25_34", "35_49", "50_64", "65_plus")
# A representative share of disposable income for each installment-rate band (Grömping 2019:
# 1 = 35 % or more, 2 = 25 to < 35 %, 3 = 20 to < 25 %, 4 = under 20 %): band midpoints, the
# open-ended bands as wide as their neighbour.
INSTALLMENT_SHARE_BY_RATE: dict[int, float] = {1: 0.40, 2: 0.30, 3: 0.225, 4: 0.175}

DERIVATIONS: tuple[Derivation, ...] = (
    # The size of the monthly repayment (before interest) strains a household budget more
    # than the amount itself.
    Ratio("monthly_installment", "credit_amount", ("duration_months",)),
    # Amounts are right-skewed (250 to 18,424 DM); the log makes a doubling count the same
    # wherever it happens.
    Log("log_credit_amount", "credit_amount"),
    # The installment is a known share of disposable income (the rate band), so installment /
    # share estimates the monthly disposable income in DM, which the data does not record.
    PerShare(
        "disposable_income_proxy",
        "credit_amount",
        "duration_months",
        "installment_rate",
        INSTALLMENT_SHARE_BY_RATE,
    ),
    # Applicants with no checking account (A14) behave very differently from all others; one
    # flag lets shallow trees use it.
    DiffersFrom("has_checking_account", "checking_account_status", "A14"),
    # Attribute 9 is used as coded: its codes do not tell sex (A92 holds non-single women and
    # single men, Grömping 2019), so no sex or marital-status variable is derived from it.
    # Life stage, for non-monotone age effects.
    Bands("age_band", "age_years", AGE_BAND_EDGES, AGE_BANDS, protected=True),
)
