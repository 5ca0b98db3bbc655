"""How each codebook attribute is binned: its order, its trend, and why.

Three treatments:

- **numeric**: the attribute's integers, split into intervals.
- **ordinal**: a categorical attribute whose codes lie on one scale (less or more money on
  account, shorter or longer employment). Its codes are binned in that order, as ranks
  0, 1, 2..., so a bin only ever joins neighbours; a code off the scale ("no checking account",
  "unknown / no savings account") keeps a bin of its own (optbinning's special codes).
- **nominal**: codes with no order (purpose, housing...): optbinning groups codes of similar bad
  rate.

The trend is optbinning's ``monotonic_trend`` of the bad rate along the scale: ``ascending`` or
``descending`` where the codebook's meaning fixes the direction, ``auto_asc_desc`` (monotone,
direction from the data) where it does not. A declared direction wins over the data: where the
sample runs against it (installment rate, job), the attribute ends in one bin, earns no
information value and is left out, rather than giving points, and rejection reasons, that no
credit officer could defend ("reject: instalments under 20 % of income"). The Statlog sample
holds granted credits only, so a bank's own caution (large instalments granted to applicants it
trusted) shows up as such reversed effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from credit_risk.schema import BY_NAME, Kind


class Treatment(StrEnum):
    NUMERIC = "numeric"
    ORDINAL = "ordinal"
    NOMINAL = "nominal"


class Trend(StrEnum):
    """The bad rate's trend along the attribute's scale (optbinning's ``monotonic_trend``)."""

    ASCENDING = "ascending"
    DESCENDING = "descending"
    MONOTONE = "auto_asc_desc"
    # Nominal attributes: codes are ordered by their bad rate, so any grouping is monotone.
    NONE = "none"


@dataclass(frozen=True)
class Declaration:
    """How one attribute is binned.

    Attributes:
        attribute: schema name.
        treatment: numeric, ordinal or nominal.
        trend: the declared trend of the bad rate (``NONE`` for nominal attributes).
        why: the reason for the treatment and trend, in words (README, IV report).
        scale: ordinal only: the codes on the scale, in order (rank 0, 1, ...).
        off_scale: ordinal only: codes that are not on the scale (each group binned apart).
    """

    attribute: str
    treatment: Treatment
    trend: Trend
    why: str
    scale: tuple[str, ...] = ()
    off_scale: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        attribute = BY_NAME[self.attribute]
        if self.treatment is Treatment.ORDINAL:
            if set(self.scale) | set(self.off_scale) != set(attribute.codes):
                raise ValueError(f"{self.attribute}: scale and off-scale codes must be its codes")
            if len(self.off_scale) > 1:
                raise ValueError(f"{self.attribute}: at most one code off the scale")
        elif self.scale or self.off_scale:
            raise ValueError(f"{self.attribute}: only an ordinal attribute has a scale")
        numeric = attribute.kind is Kind.NUMERIC
        if numeric != (self.treatment is Treatment.NUMERIC):
            raise ValueError(f"{self.attribute}: treatment {self.treatment} for a {attribute.kind}")
        if (self.treatment is Treatment.NOMINAL) != (self.trend is Trend.NONE):
            raise ValueError(f"{self.attribute}: only nominal attributes have no trend")

    @property
    def monotonic_trend(self) -> str | None:
        """optbinning's ``monotonic_trend`` (None for nominal codes, ordered by bad rate)."""
        return None if self.trend is Trend.NONE else self.trend.value


_NUMERIC, _ORDINAL, _NOMINAL = Treatment.NUMERIC, Treatment.ORDINAL, Treatment.NOMINAL
_UP, _DOWN, _EITHER = Trend.ASCENDING, Trend.DESCENDING, Trend.MONOTONE

DECLARATIONS: tuple[Declaration, ...] = (
    Declaration(
        "checking_account_status",
        _ORDINAL,
        _DOWN,
        "balance bands < 0, 0-200, >= 200 DM: more money on account, lower risk; "
        "'no checking account' is not a balance and is binned apart",
        scale=("A11", "A12", "A13"),
        off_scale=("A14",),
    ),
    Declaration(
        "duration_months", _NUMERIC, _UP, "a longer credit has longer to go wrong: risk rises"
    ),
    Declaration(
        "credit_history",
        _NOMINAL,
        Trend.NONE,
        "german.doc's five labels mix kinds of history (repayment here, delays, other banks); "
        "they are not one scale",
    ),
    Declaration("purpose", _NOMINAL, Trend.NONE, "purposes have no order"),
    Declaration(
        "credit_amount",
        _NUMERIC,
        _UP,
        "a larger amount is a larger exposure: risk rises (the sample's higher rate for the "
        "smallest loans is left to the bins below)",
    ),
    Declaration(
        "savings_account",
        _ORDINAL,
        _DOWN,
        "savings bands < 100 ... >= 1000 DM: more savings, lower risk; 'unknown / no savings "
        "account' is not a band and is binned apart",
        scale=("A61", "A62", "A63", "A64"),
        off_scale=("A65",),
    ),
    Declaration(
        "employment_since",
        _ORDINAL,
        _DOWN,
        "unemployed, < 1, 1-4, 4-7, >= 7 years: longer employment, lower risk",
        scale=("A71", "A72", "A73", "A74", "A75"),
    ),
    Declaration(
        "installment_rate",
        _NUMERIC,
        _DOWN,
        "band 1 (>= 35 % of income) is the heaviest burden, band 4 (< 20 %) the lightest: a "
        "lighter burden, lower risk (the sample runs the other way; see the module's notes)",
    ),
    Declaration("personal_status_sex", _NOMINAL, Trend.NONE, "protected; statuses have no order"),
    Declaration(
        "other_debtors",
        _NOMINAL,
        Trend.NONE,
        "a co-applicant shares the debt, a guarantor backs it: different things, no order",
    ),
    Declaration(
        "residence_since",
        _NUMERIC,
        _EITHER,
        "bands 1-4 of years at the address; german.doc gives no expected direction",
    ),
    Declaration(
        "property",
        _ORDINAL,
        _UP,
        "german.doc ranks them (each code applies only if the ones before do not): real "
        "estate, savings agreement / life insurance, car or other, none; less to fall back "
        "on, higher risk",
        scale=("A121", "A122", "A123", "A124"),
    ),
    Declaration(
        "age_years",
        _NUMERIC,
        _DOWN,
        "protected: an input only under the include policy, and then never to the detriment "
        "of older applicants (Regulation B), so risk may only fall with age",
    ),
    Declaration("other_installment_plans", _NOMINAL, Trend.NONE, "bank, stores, none: no order"),
    Declaration("housing", _NOMINAL, Trend.NONE, "rent, own, for free: no order"),
    Declaration(
        "existing_credits",
        _NUMERIC,
        _EITHER,
        "more credits at this bank is both more debt and a longer record: no expected direction",
    ),
    Declaration(
        "job",
        _ORDINAL,
        _DOWN,
        "unskilled non-resident, unskilled, skilled, highly qualified: more qualified, lower risk",
        scale=("A171", "A172", "A173", "A174"),
    ),
    Declaration(
        "people_liable", _NUMERIC, _EITHER, "dependants: no expected direction in german.doc"
    ),
    Declaration("telephone", _NOMINAL, Trend.NONE, "two codes: any grouping is monotone"),
    Declaration(
        "foreign_worker", _NOMINAL, Trend.NONE, "protected; two codes: any grouping is monotone"
    ),
)

BY_ATTRIBUTE: dict[str, Declaration] = {d.attribute: d for d in DECLARATIONS}
