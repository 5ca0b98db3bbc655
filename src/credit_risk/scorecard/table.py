"""The points table: the whole fitted scorecard as plain, validated data.

A scorecard is a table: for each attribute, its bins and the integer points each bin earns. An
applicant's score is the sum of the points of the bins they fall in; their probability of bad
is a logistic function of that score (:class:`Calibration`). The table is stored as JSON with
the model (``metadata.json`` of an exported folder, and the fitted estimator's ``table_``), is
what serving looks up (:mod:`credit_risk.scorecard.lookup`), and is exported as CSV and as SQL
(:mod:`credit_risk.scorecard.sql`).

**Scaling** (:class:`Scaling`): a score of ``base_points`` means odds of ``base_odds`` goods to
one bad, and every ``pdo`` points double the odds:
``score = offset + factor * ln(odds of good)``, ``factor = pdo / ln 2``,
``offset = base_points - factor * ln(base_odds)``. With the logistic regression's
``ln(odds of bad) = intercept + sum_j coefficient_j * WoE_j`` over the ``n`` selected
attributes, bin ``b`` of attribute ``j`` earns
``points = round((offset - factor * intercept) / n - factor * coefficient_j * WoE_b)``:
the intercept is shared evenly, so each attribute's points stand on their own in the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from credit_risk.schema import BY_NAME, FEATURE_NAMES, Kind
from credit_risk.scorecard.declarations import Treatment, Trend

FORMAT: Literal[1] = 1


class Scaling(BaseModel):
    """Points at the base odds, the base odds (goods per bad), and points to double the odds."""

    model_config = ConfigDict(frozen=True)

    base_points: float
    base_odds: float = Field(gt=0)
    pdo: float = Field(gt=0)

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.base_odds)

    def points_at_odds(self, odds_good: float) -> float:
        """The (unrounded) score of an applicant whose odds of good are ``odds_good``."""
        return self.offset + self.factor * math.log(odds_good)

    def odds_at_points(self, points: float) -> float:
        """The odds of good that a score stands for, by the scaling alone."""
        return self.base_odds * 2.0 ** ((points - self.base_points) / self.pdo)


class Calibration(BaseModel):
    """``probability of bad = 1 / (1 + exp(-(intercept + slope * points)))``.

    ``scaling``: the odds the scaling says the points stand for (``slope = -1 / factor``).
    ``sigmoid``: a logistic fitted on out-of-fold points (Platt), as the forest is calibrated.
    The slope is negative: more points, a lower probability of bad.
    """

    model_config = ConfigDict(frozen=True)

    method: Literal["scaling", "sigmoid"]
    intercept: float
    slope: float = Field(lt=0)

    @classmethod
    def from_scaling(cls, scaling: Scaling) -> Calibration:
        return cls(
            method="scaling", intercept=scaling.offset / scaling.factor, slope=-1 / scaling.factor
        )

    def probability(self, points: float) -> float:
        return 1.0 / (1.0 + math.exp(-(self.intercept + self.slope * points)))

    def reject_at_most(self, threshold: float) -> int:
        """The highest integer score rejected at ``threshold`` (reject when p >= threshold).

        The probability falls as points rise, so an applicant is rejected exactly when their
        score is at most this.
        """
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be strictly between 0 and 1, not {threshold}")
        exact = (math.log(threshold / (1 - threshold)) - self.intercept) / self.slope
        cutoff = math.floor(exact)
        # Floating-point rounding at the boundary: settle it with the probability itself.
        while self.probability(cutoff + 1) >= threshold:
            cutoff += 1
        while self.probability(cutoff) < threshold:
            cutoff -= 1
        return cutoff


class BinRow(BaseModel):
    """One bin of the points table (see :class:`credit_risk.scorecard.binning.Bin`)."""

    model_config = ConfigDict(frozen=True)

    label: str
    codes: tuple[str, ...] = ()
    lower: float | None = None
    upper: float | None = None
    good: int = Field(ge=0)
    bad: int = Field(ge=0)
    woe: float
    points: int


class AttributeRow(BaseModel):
    """One attribute of the points table.

    Attributes:
        attribute: schema name.
        treatment, trend: its declaration (:mod:`credit_risk.scorecard.declarations`).
        iv: information value (None: not binned, e.g. a protected attribute under ``exclude``).
        selected: whether it earns points (a model input).
        coefficient: its logistic-regression coefficient on WoE (selected attributes only).
        note: why an attribute is not selected.
        bins: its bins, covering every value it can take.
    """

    model_config = ConfigDict(frozen=True)

    attribute: str
    treatment: Treatment
    trend: Trend
    iv: float | None
    selected: bool
    coefficient: float | None = None
    note: str = ""
    bins: tuple[BinRow, ...] = ()

    @field_validator("attribute")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in BY_NAME:
            raise ValueError(f"not a codebook attribute (one of {', '.join(FEATURE_NAMES)})")
        return value

    @model_validator(mode="after")
    def _covers_values(self) -> AttributeRow:
        if not self.selected:
            return self
        if self.coefficient is None or not self.bins:
            raise ValueError(f"{self.attribute}: a selected attribute needs a coefficient and bins")
        attribute = BY_NAME[self.attribute]
        if attribute.kind is Kind.CATEGORICAL:
            codes = [code for row in self.bins for code in row.codes]
            if sorted(codes) != sorted(attribute.codes):
                raise ValueError(
                    f"{self.attribute}: bins must hold each of its codes once "
                    f"({', '.join(attribute.codes)}), not {', '.join(codes)}"
                )
        else:
            lowers = [row.lower for row in self.bins]
            uppers = [row.upper for row in self.bins]
            inner = lowers[1:]
            if (
                lowers[0] is not None
                or uppers[-1] is not None
                or inner != uppers[:-1]
                or any(v is None for v in inner)
                or inner != sorted(inner)  # type: ignore[type-var]
                or len(set(inner)) != len(inner)
            ):
                raise ValueError(
                    f"{self.attribute}: numeric bins must be contiguous increasing intervals "
                    "from no lower bound to no upper bound"
                )
        return self

    @property
    def splits(self) -> list[float]:
        """A numeric attribute's inner splits: bin i holds ``splits[i-1] <= x < splits[i]``."""
        return [float(row.lower) for row in self.bins[1:] if row.lower is not None]

    @property
    def best_points(self) -> int:
        """The most points any bin of the attribute earns (the reference of points lost)."""
        return max(row.points for row in self.bins)


class PointsTable(BaseModel):
    """The fitted scorecard (see the module's notes for the scaling)."""

    model_config = ConfigDict(frozen=True)

    format: Literal[1] = FORMAT
    scaling: Scaling
    intercept: float
    calibration: Calibration
    attributes: tuple[AttributeRow, ...]

    @field_validator("attributes")
    @classmethod
    def _codebook_order(cls, rows: tuple[AttributeRow, ...]) -> tuple[AttributeRow, ...]:
        if tuple(row.attribute for row in rows) != FEATURE_NAMES:
            raise ValueError("must list the 20 codebook attributes, in codebook order")
        if not any(row.selected for row in rows):
            raise ValueError("no attribute is selected: the scorecard would score no one")
        return rows

    @property
    def selected(self) -> list[AttributeRow]:
        return [row for row in self.attributes if row.selected]

    def exact_points(self, row: AttributeRow) -> list[float]:
        """The unrounded points of each bin of a selected attribute (before rounding)."""
        if row.coefficient is None:
            raise ValueError(f"{row.attribute} is not selected")
        return exact_points(
            self.scaling,
            self.intercept,
            row.coefficient,
            [b.woe for b in row.bins],
            len(self.selected),
        )

    @property
    def min_points(self) -> int:
        return sum(min(b.points for b in row.bins) for row in self.selected)

    @property
    def max_points(self) -> int:
        return sum(row.best_points for row in self.selected)

    def reasons_unavailable(self, threshold: float) -> str | None:
        """Why the table cannot give adverse-action reasons at ``threshold``, or None.

        Its reasons are the points lost against each attribute's best bin: they explain a
        rejection only if the best possible score is approved (else the card rejects everyone,
        and an applicant who lost no points at all would be rejected too).
        """
        best = self.calibration.probability(self.max_points)
        if best < threshold:
            return None
        return (
            f"the best possible score ({self.max_points} points, probability of bad {best:.4g}) "
            f"is rejected at threshold {threshold:.4g}: the scorecard rejects everyone"
        )

    def to_json(self) -> dict[str, object]:
        """Plain JSON data (what ``metadata.json`` and the fitted estimator hold)."""
        return self.model_dump(mode="json")


def exact_points(
    scaling: Scaling, intercept: float, coefficient: float, woe: Sequence[float], n: int
) -> list[float]:
    """Unrounded points of an attribute's bins, one of ``n`` selected (module's notes)."""
    share = (scaling.offset - scaling.factor * intercept) / n
    return [share - scaling.factor * coefficient * w for w in woe]


def points_for(
    scaling: Scaling, intercept: float, coefficient: float, woe: Sequence[float], n: int
) -> list[int]:
    """Integer points of an attribute's bins (the nearest integers to :func:`exact_points`)."""
    return [round(p) for p in exact_points(scaling, intercept, coefficient, woe, n)]
