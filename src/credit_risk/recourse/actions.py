"""What may change and how: the actionable table (ladders, ranges, fixed attributes with the
reason) and the installment-rate band that follows the amount and the term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from credit_risk.derivations import INSTALLMENT_SHARE_BY_RATE
from credit_risk.schema import ATTRIBUTES, BY_NAME

MAX_SUGGESTIONS = 3
MAX_CHANGES = 3
# Values a numeric attribute takes when the model exposes no split thresholds.
GRID_POINTS = 16
# Integers of a numeric range mapped to cells; a wider range is sampled evenly at this many.
MAX_CELL_GRID = 20_000
INSTALLMENT_RATE = "installment_rate"
AMOUNT, DURATION = "credit_amount", "duration_months"
# Lowest share of disposable income of each installment-rate band (Grömping 2019): the band of
# a share is the first whose floor it reaches.
INSTALLMENT_RATE_FLOORS: tuple[tuple[int, float], ...] = ((1, 0.35), (2, 0.25), (3, 0.20), (4, 0.0))


class Direction(StrEnum):
    DOWN = "down"
    UP = "up"
    EITHER = "either"


@dataclass(frozen=True)
class Ladder:
    """A categorical attribute that moves up a ladder of codes only.

    Attributes:
        attribute: the schema name.
        rungs: groups of codes from the lowest rung up; a code moves to any code of a higher
            rung. Codes on no rung never move and are never a target.
        why: the reason for these moves (documentation, and the README's table).
    """

    attribute: str
    rungs: tuple[tuple[str, ...], ...]
    why: str

    def moves(self, code: str) -> list[tuple[str, float]]:
        """Allowed targets from ``code`` with their costs (rungs climbed / rungs above the
        first)."""
        rank = next((i for i, rung in enumerate(self.rungs) if code in rung), None)
        if rank is None:
            return []
        span = len(self.rungs) - 1
        return [
            (target, (higher - rank) / span)
            for higher in range(rank + 1, len(self.rungs))
            for target in self.rungs[higher]
        ]

    def allowed_text(self) -> str:
        return " < ".join("/".join(rung) for rung in self.rungs) + ", up only"


@dataclass(frozen=True)
class Range:
    """A numeric attribute that moves within a range relative to the applicant's value.

    Attributes:
        attribute: the schema name.
        direction: down, up or either way.
        low_fraction: the lowest value as a fraction of the applicant's (None: the codebook's
            minimum).
        high_fraction: the highest value as a multiple of the applicant's (None: the
            codebook's maximum).
        why: the reason for these moves.
    """

    attribute: str
    direction: Direction
    low_fraction: float | None
    high_fraction: float | None
    why: str

    def bounds(self, value: int) -> tuple[int, int]:
        """The lowest and highest value allowed from ``value`` (within the codebook's bounds)."""
        attribute = BY_NAME[self.attribute]
        low, high = int(attribute.minimum or 0), int(attribute.maximum or 0)
        if self.direction is Direction.UP:
            low = value
        elif self.low_fraction is not None:
            low = max(low, math.ceil(value * self.low_fraction))
        if self.direction is Direction.DOWN:
            high = value
        elif self.high_fraction is not None:
            high = min(high, math.floor(value * self.high_fraction))
        return min(low, value), max(high, value)

    @staticmethod
    def cost(value: int, new: int) -> float:
        return abs(new - value) / value

    def allowed_text(self) -> str:
        attribute = BY_NAME[self.attribute]
        low = (
            f"the codebook's minimum ({attribute.minimum})"
            if self.low_fraction is None
            else f"{self.low_fraction:g} x the value asked"
        )
        high = (
            f"the codebook's maximum ({attribute.maximum})"
            if self.high_fraction is None
            else f"{self.high_fraction:g} x the value asked"
        )
        if self.direction is Direction.DOWN:
            return f"down only, to {low}"
        if self.direction is Direction.UP:
            return f"up only, to {high}"
        return f"either way, from {low} to {high}"


Action = Ladder | Range

ACTIONS: tuple[Action, ...] = (
    Ladder(
        "checking_account_status",
        (("A11",), ("A12",), ("A13",)),
        "a balance can be paid in; 'no checking account' (A14) is neither a step nor a target: "
        "closing an account to be approved would game the score",
    ),
    Range(
        DURATION,
        Direction.EITHER,
        0.5,
        2.0,
        "the term is the applicant's choice of loan; from half to twice the term asked",
    ),
    Range(
        AMOUNT,
        Direction.DOWN,
        0.5,
        None,
        "borrowing less is a choice; down to half the amount asked (a smaller loan, not "
        "another one)",
    ),
    Ladder(
        "savings_account",
        (("A65",), ("A61",), ("A62",), ("A63",), ("A64",)),
        "savings can be built up or declared; never down, and never to 'unknown / none' (A65)",
    ),
    Ladder(
        "employment_since",
        (("A71",), ("A72",), ("A73",), ("A74",), ("A75",)),
        "finding work or staying in a job: the band only grows, and takes the time it names",
    ),
    Ladder(
        "other_debtors",
        (("A101",), ("A102", "A103")),
        "a co-applicant or guarantor can be added (cost 1); never removed",
    ),
    Ladder(
        "property",
        (("A124",), ("A123",), ("A122",)),
        "a car or a building-society savings / life-insurance contract can be acquired; real "
        "estate (A121) is not a realistic step for a loan, so neither a step nor a target",
    ),
    Ladder(
        "other_installment_plans",
        (("A141", "A142"), ("A143",)),
        "an installment plan at a bank or store can be paid off (cost 1); never added",
    ),
    Range(
        "existing_credits",
        Direction.DOWN,
        None,
        None,
        "a credit at this bank can be paid off; down only, to the codebook's minimum",
    ),
)
BY_ATTRIBUTE: dict[str, Action] = {action.attribute: action for action in ACTIONS}

# Every attribute that never changes, with the reason.
FIXED: dict[str, str] = {
    "credit_history": "immutable: the past repayment record",
    "purpose": "what the credit is for is the applicant's need, not a lever",
    INSTALLMENT_RATE: "a consequence, not an action: follows the amount and the term (above)",
    "personal_status_sex": "protected (attribute 9)",
    "residence_since": "time only: moving resets it, waiting is not an action",
    "age_years": "protected and immutable",
    "housing": "not changed to obtain a credit",
    "job": "not changed to obtain a credit",
    "people_liable": "dependants are not a lever",
    "telephone": "no causal link to repaying: suggesting it would teach gaming the score",
    "foreign_worker": "protected (a proxy for national origin)",
}


def actionable_table() -> list[tuple[str, str, str]]:
    """``(attribute, allowed moves, why)`` for every attribute, in codebook order."""
    rows = []
    for attribute in ATTRIBUTES:
        action = BY_ATTRIBUTE.get(attribute.name)
        if action is not None:
            rows.append((attribute.name, action.allowed_text(), action.why))
        else:
            rows.append((attribute.name, "fixed", FIXED[attribute.name]))
    return rows


def follow_installment_rate(
    rate: int, amount: int, duration: int, new_amount: Any, new_duration: Any
) -> Any:
    """The installment-rate band after the amount or the term changes, income unchanged.

    The share of disposable income is the band's representative share scaled by the new
    monthly installment over the old one; the band is the first whose floor it reaches.

    Args:
        rate: the applicant's band (1-4).
        amount, duration: the applicant's amount and term.
        new_amount, new_duration: the changed ones (numbers or arrays).

    Returns:
        The new band(s), int or an int64 array.
    """
    share = INSTALLMENT_SHARE_BY_RATE[int(rate)] * (
        (np.asarray(new_amount, dtype=np.float64) / np.asarray(new_duration, dtype=np.float64))
        / (amount / duration)
    )
    band = np.full(share.shape, INSTALLMENT_RATE_FLOORS[-1][0], dtype=np.int64)
    for value, floor in reversed(INSTALLMENT_RATE_FLOORS[:-1]):
        band[share >= floor] = value
    return int(band) if band.ndim == 0 else band
