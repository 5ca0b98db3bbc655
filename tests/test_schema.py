from credit_risk import schema


def test_schema_has_the_20_uci_attributes_in_order() -> None:
    assert [a.uci_number for a in schema.ATTRIBUTES] == list(range(1, 21))
    assert len(schema.CATEGORICAL) == 13 and len(schema.NUMERIC) == 7


def test_schema_names_are_unique_snake_case() -> None:
    names = schema.FEATURE_NAMES
    assert len(set(names)) == 20
    assert all(n.islower() and " " not in n for n in names)


def test_codebook_labels_come_from_german_doc() -> None:
    purpose = schema.BY_NAME["purpose"]
    assert "A47" in purpose.codes  # exists in the codebook though no row uses it
    assert purpose.codes["A43"] == "radio/television"
    assert schema.BY_NAME["checking_account_status"].label("A14") == "no checking account"
    assert schema.BY_NAME["credit_amount"].label(1000) == "1000 DM"


def test_label_to_code_accepts_codes_and_labels() -> None:
    housing = schema.BY_NAME["housing"]
    assert schema.label_to_code(housing, "A152") == "A152"
    assert schema.label_to_code(housing, "Own") == "A152"
    assert schema.label_to_code(housing, "castle") is None


def test_protected_attributes_are_sex_age_and_foreign_worker() -> None:
    assert set(schema.PROTECTED) == {"personal_status_sex", "age_years", "foreign_worker"}


def test_schema_json_lists_codes_and_bounds() -> None:
    data = schema.as_json()
    by_name = {a["name"]: a for a in data["attributes"]}
    assert by_name["age_years"]["minimum"] == 18
    assert {"code": "A201", "label": "yes"} in by_name["foreign_worker"]["codes"]
    assert data["classes"] == {"1": "good", "2": "bad"}
