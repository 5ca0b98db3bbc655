"""The codebook as Grömping (2019) corrected it: attribute 9 and attribute 8's band direction."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from credit_risk.data import read_applicants
from credit_risk.derivations import DERIVATIONS
from credit_risk.features import FeatureEngineer, add_derived_features
from credit_risk.schema import BY_NAME, as_json, label_to_code
from tests.conftest import DATA, REPO

PERSONAL_STATUS = BY_NAME["personal_status_sex"]


def _german_doc_labels(attribute_number: int) -> dict[str, str]:
    """The code labels german.doc gives an attribute, spaces around colons normalised."""
    text = (REPO / "data" / "raw" / "german.doc").read_text(encoding="latin-1")
    block = text.split(f"Attribute {attribute_number}:")[1].split("Attribute ")[0]
    return {
        code: re.sub(r"\s*:\s*", ": ", label.strip())
        for code, label in re.findall(r"(A\d+)\s*:\s*(.+)", block)
    }


def test_attribute_9_labels_are_groempings_correction() -> None:
    assert PERSONAL_STATUS.codes == {
        "A91": "male: divorced/separated",
        "A92": "female: non-single, or male: single",
        "A93": "male: married/widowed",
        "A94": "female: single",
    }
    # Grömping's famges levels 1-4 hold 50, 310, 548 and 92 applicants: A91-A94 in order.
    counts = read_applicants(DATA).features["personal_status_sex"].value_counts().to_dict()
    assert counts == {"A91": 50, "A92": 310, "A93": 548, "A94": 92}


def test_attribute_9_keeps_german_doc_labels_for_reference() -> None:
    documented = _german_doc_labels(9)
    changed = {
        code: label
        for code, label in documented.items()
        if PERSONAL_STATUS.codes.get(code) != label
    }
    # Every code whose label changed (or that was withdrawn) keeps german.doc's, word for word.
    assert PERSONAL_STATUS.documented_as == changed
    assert set(changed) == {"A92", "A93", "A94", "A95"}


def test_withdrawn_code_a95_is_not_accepted() -> None:
    assert label_to_code(PERSONAL_STATUS, "A95") is None
    assert label_to_code(PERSONAL_STATUS, "female: single") == "A94"


def test_schema_json_shows_corrected_and_documented_labels() -> None:
    attribute = next(a for a in as_json()["attributes"] if a["name"] == "personal_status_sex")
    by_code = {entry["code"]: entry for entry in attribute["codes"]}
    assert by_code["A93"] == {
        "code": "A93",
        "label": "male: married/widowed",
        "documented_as": "male: single",
    }
    assert "documented_as" not in by_code["A91"]  # german.doc was right
    assert attribute["withdrawn_codes"] == [{"code": "A95", "documented_as": "female: single"}]
    assert "Grömping" in attribute["description"]


def test_installment_rate_band_1_is_the_heaviest_burden() -> None:
    rate = BY_NAME["installment_rate"]
    assert rate.label(1) == ">= 35 % of disposable income"
    assert rate.label(4) == "< 20 % of disposable income"
    assert "1 = 35 % or more" in rate.description
    json_rate = next(a for a in as_json()["attributes"] if a["name"] == "installment_rate")
    assert json_rate["value_labels"]["4"] == "< 20 % of disposable income"


def test_disposable_income_proxy_falls_as_the_burden_rises() -> None:
    # The same installment is a larger share of a smaller income: band 1 (>= 35 %) must give
    # the smallest income, band 4 (< 20 %) the largest.
    applicants = read_applicants(DATA).features.head(1)
    same = pd.concat([applicants] * 4, ignore_index=True)
    same["installment_rate"] = [1, 2, 3, 4]
    income = add_derived_features(same)["disposable_income_proxy"].tolist()
    assert income == sorted(income) and len(set(income)) == 4
    monthly = 1169 / 6
    assert income[0] == pytest.approx(monthly / 0.40)
    assert income[3] == pytest.approx(monthly / 0.175)
    # Bit for bit the same per row and per column: the fast path's two encoders use one each.
    proxy = next(d for d in DERIVATIONS if d.name == "disposable_income_proxy")
    records = read_applicants(DATA).features.head(50)
    per_row = [proxy.value(record) for record in records.to_dict(orient="records")]
    assert list(proxy.column(records)) == per_row


def test_no_derived_variable_depends_on_attribute_9() -> None:
    # Its codes do not tell sex (A92 mixes women and single men), so nothing derived from it
    # may claim to; attribute 9 is only ever used as coded.
    applicants = read_applicants(DATA).features.head(200)
    changed = applicants.copy()
    changed["personal_status_sex"] = changed["personal_status_sex"].map(
        {"A91": "A92", "A92": "A93", "A93": "A94", "A94": "A91"}
    )
    engineer = FeatureEngineer(drop_protected=False).fit(applicants)
    before, after = engineer.transform(applicants), engineer.transform(changed)
    moved = [c for c in before.columns if not before[c].equals(after[c])]
    assert moved == ["personal_status_sex"]
    assert not {"sex", "marital_status"} & set(before.columns)
