"""The codebook: the single definition of the 20 applicant attributes.

Everything else derives from this module: data validation, the API's request model, the web
form (served at ``GET /schema``) and the plain-language reasons. Labels are those of
``data/raw/german.doc`` except where Grömping (2019, "South German Credit Data: Correcting a
Widely Used Data Set") showed german.doc wrong: attribute 9 (personal status and sex) and the
direction of attribute 8's installment-rate bands. There the corrected label is the label, and
german.doc's text is kept under ``documented_as`` for reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    CATEGORICAL = "categorical"
    NUMERIC = "numeric"


@dataclass(frozen=True)
class Attribute:
    """One applicant attribute.

    Attributes:
        name: readable snake_case column name.
        uci_number: the attribute's number in german.doc (1-20).
        kind: categorical (UCI codes) or numeric (integers).
        description: what it means, from the codebook.
        codes: allowed UCI codes mapped to their labels (categorical only).
        minimum, maximum: inclusive bounds (numeric only).
        unit: unit for display (numeric only).
        default: a typical value, for the form's starting point.
        protected: used for the fairness audit; dropped as an input by default (policy).
        documented_as: german.doc's label of each code that Grömping (2019) corrected; kept
            for reference only, never used to describe an applicant.
        value_labels: plain-language text of each value of a banded numeric attribute.
    """

    name: str
    uci_number: int
    kind: Kind
    description: str
    codes: dict[str, str] = field(default_factory=dict)
    minimum: int | None = None
    maximum: int | None = None
    unit: str = ""
    default: str | int | None = None
    protected: bool = False
    documented_as: dict[str, str] = field(default_factory=dict)
    value_labels: dict[int, str] = field(default_factory=dict)

    def label(self, value: object) -> str:
        """Plain-language text for a value of this attribute."""
        if self.kind is Kind.CATEGORICAL:
            return self.codes.get(str(value), str(value))
        if self.value_labels:
            try:
                return self.value_labels.get(int(str(value)), str(value))
            except ValueError:
                return str(value)
        return f"{value} {self.unit}".strip()

    def allowed(self) -> str:
        """Human description of the allowed values, for error messages."""
        if self.kind is Kind.CATEGORICAL:
            return "one of " + ", ".join(f"{code} ({label})" for code, label in self.codes.items())
        return f"an integer from {self.minimum} to {self.maximum}"


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "checking_account_status",
        1,
        Kind.CATEGORICAL,
        "Status of existing checking account",
        {
            "A11": "< 0 DM",
            "A12": "0 to < 200 DM",
            "A13": ">= 200 DM / salary assignments for at least 1 year",
            "A14": "no checking account",
        },
        default="A14",
    ),
    Attribute(
        "duration_months",
        2,
        Kind.NUMERIC,
        "Duration of the credit in months",
        minimum=1,
        maximum=120,
        unit="months",
        default=18,
    ),
    Attribute(
        "credit_history",
        3,
        Kind.CATEGORICAL,
        "Credit history",
        {
            "A30": "no credits taken / all credits paid back duly",
            "A31": "all credits at this bank paid back duly",
            "A32": "existing credits paid back duly till now",
            "A33": "delay in paying off in the past",
            "A34": "critical account / other credits existing (not at this bank)",
        },
        default="A32",
    ),
    Attribute(
        "purpose",
        4,
        Kind.CATEGORICAL,
        "Purpose of the credit",
        {
            "A40": "car (new)",
            "A41": "car (used)",
            "A42": "furniture/equipment",
            "A43": "radio/television",
            "A44": "domestic appliances",
            "A45": "repairs",
            "A46": "education",
            "A47": "vacation",
            "A48": "retraining",
            "A49": "business",
            "A410": "others",
        },
        default="A43",
    ),
    Attribute(
        "credit_amount",
        5,
        Kind.NUMERIC,
        "Credit amount",
        minimum=1,
        maximum=1_000_000,
        unit="DM",
        default=2500,
    ),
    Attribute(
        "savings_account",
        6,
        Kind.CATEGORICAL,
        "Savings account/bonds",
        {
            "A61": "< 100 DM",
            "A62": "100 to < 500 DM",
            "A63": "500 to < 1000 DM",
            "A64": ">= 1000 DM",
            "A65": "unknown / no savings account",
        },
        default="A61",
    ),
    Attribute(
        "employment_since",
        7,
        Kind.CATEGORICAL,
        "Present employment since",
        {
            "A71": "unemployed",
            "A72": "< 1 year",
            "A73": "1 to < 4 years",
            "A74": "4 to < 7 years",
            "A75": ">= 7 years",
        },
        default="A73",
    ),
    # german.doc gives no direction; Grömping (2019) shows band 1 is the heaviest burden.
    Attribute(
        "installment_rate",
        8,
        Kind.NUMERIC,
        "Installment rate in percentage of disposable income (banded: 1 = 35 % or more, "
        "4 = under 20 %)",
        minimum=1,
        maximum=4,
        default=3,
        value_labels={
            1: ">= 35 % of disposable income",
            2: "25 to < 35 % of disposable income",
            3: "20 to < 25 % of disposable income",
            4: "< 20 % of disposable income",
        },
    ),
    # Corrected by Grömping (2019): A91-A94 are the codes 1-4 of the South German Credit data
    # (same counts: 50, 310, 548, 92). german.doc's A95 (female: single) never occurs; its
    # label belongs to A94. Code A92 does not tell sex: it holds non-single women and single men.
    Attribute(
        "personal_status_sex",
        9,
        Kind.CATEGORICAL,
        "Personal status and sex (as corrected by Grömping 2019)",
        {
            "A91": "male: divorced/separated",
            "A92": "female: non-single, or male: single",
            "A93": "male: married/widowed",
            "A94": "female: single",
        },
        default="A93",
        protected=True,
        documented_as={
            "A92": "female: divorced/separated/married",
            "A93": "male: single",
            "A94": "male: married/widowed",
            "A95": "female: single",
        },
    ),
    Attribute(
        "other_debtors",
        10,
        Kind.CATEGORICAL,
        "Other debtors / guarantors",
        {"A101": "none", "A102": "co-applicant", "A103": "guarantor"},
        default="A101",
    ),
    Attribute(
        "residence_since",
        11,
        Kind.NUMERIC,
        "Present residence since (years, banded 1-4)",
        minimum=1,
        maximum=4,
        default=3,
    ),
    Attribute(
        "property",
        12,
        Kind.CATEGORICAL,
        "Property",
        {
            "A121": "real estate",
            "A122": "building society savings agreement / life insurance",
            "A123": "car or other, not in savings account",
            "A124": "unknown / no property",
        },
        default="A123",
    ),
    Attribute(
        "age_years",
        13,
        Kind.NUMERIC,
        "Age in years",
        minimum=18,
        maximum=100,
        unit="years",
        default=35,
        protected=True,
    ),
    Attribute(
        "other_installment_plans",
        14,
        Kind.CATEGORICAL,
        "Other installment plans",
        {"A141": "bank", "A142": "stores", "A143": "none"},
        default="A143",
    ),
    Attribute(
        "housing",
        15,
        Kind.CATEGORICAL,
        "Housing",
        {"A151": "rent", "A152": "own", "A153": "for free"},
        default="A152",
    ),
    Attribute(
        "existing_credits",
        16,
        Kind.NUMERIC,
        "Number of existing credits at this bank",
        minimum=1,
        maximum=10,
        default=1,
    ),
    Attribute(
        "job",
        17,
        Kind.CATEGORICAL,
        "Job",
        {
            "A171": "unemployed / unskilled - non-resident",
            "A172": "unskilled - resident",
            "A173": "skilled employee / official",
            "A174": "management / self-employed / highly qualified employee / officer",
        },
        default="A173",
    ),
    Attribute(
        "people_liable",
        18,
        Kind.NUMERIC,
        "Number of people being liable to provide maintenance for",
        minimum=1,
        maximum=10,
        default=1,
    ),
    Attribute(
        "telephone",
        19,
        Kind.CATEGORICAL,
        "Telephone",
        {"A191": "none", "A192": "yes, registered under the customer's name"},
        default="A191",
    ),
    Attribute(
        "foreign_worker",
        20,
        Kind.CATEGORICAL,
        "Foreign worker",
        {"A201": "yes", "A202": "no"},
        default="A201",
        protected=True,
    ),
)

BY_NAME: dict[str, Attribute] = {attribute.name: attribute for attribute in ATTRIBUTES}
FEATURE_NAMES: tuple[str, ...] = tuple(attribute.name for attribute in ATTRIBUTES)
CATEGORICAL: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES if a.kind is Kind.CATEGORICAL)
NUMERIC: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES if a.kind is Kind.NUMERIC)
PROTECTED: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES if a.protected)

TARGET = "risk_class"
CLASS_LABELS: dict[int, str] = {1: "good", 2: "bad"}
GOOD, BAD = 1, 2


def label_to_code(attribute: Attribute, value: str) -> str | None:
    """Return the UCI code for a code or a readable label (case-insensitive), else None."""
    if value in attribute.codes:
        return value
    wanted = value.strip().casefold()
    for code, label in attribute.codes.items():
        if label.casefold() == wanted or code.casefold() == wanted:
            return code
    return None


def as_json() -> dict[str, Any]:
    """The codebook as JSON, for the API's ``GET /schema`` and the web form."""
    return {
        "attributes": [
            {
                "name": a.name,
                "uci_number": a.uci_number,
                "kind": a.kind.value,
                "description": a.description,
                # A corrected code also carries german.doc's label, for reference.
                "codes": [
                    {"code": c, "label": label}
                    | ({"documented_as": a.documented_as[c]} if c in a.documented_as else {})
                    for c, label in a.codes.items()
                ],
                # Codes german.doc lists that the corrected codebook no longer accepts.
                "withdrawn_codes": [
                    {"code": c, "documented_as": label}
                    for c, label in a.documented_as.items()
                    if c not in a.codes
                ],
                "value_labels": {str(v): text for v, text in a.value_labels.items()},
                "minimum": a.minimum,
                "maximum": a.maximum,
                "unit": a.unit,
                "default": a.default,
                "protected": a.protected,
            }
            for a in ATTRIBUTES
        ],
        "classes": {str(k): v for k, v in CLASS_LABELS.items()},
    }
