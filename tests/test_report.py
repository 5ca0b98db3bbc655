"""The quality protocol's recipes: threshold rule and tree count come from Settings."""

from pathlib import Path

import pytest

from credit_risk.config import ProtectedPolicy
from credit_risk.data import read_applicants
from credit_risk.evaluate.prior import prior_of, sample_threshold
from credit_risk.evaluate.report import (
    default_family,
    describe,
    fit_recipe,
    fit_recipe_thresholds,
    format_table,
    paired_difference,
    parse_recipe,
    repeated_cv_report,
)
from tests.conftest import DATA, make_settings


@pytest.fixture(scope="module")
def training_fold() -> tuple:
    dataset = read_applicants(DATA)
    assert dataset.target is not None
    return dataset.features.head(300), dataset.target.head(300)


def test_fit_recipe_tuned_uses_bayes_threshold_and_settings_trees(
    tmp_path: Path, training_fold: tuple
) -> None:
    settings = make_settings(
        tmp_path, threshold_rule="bayes", n_estimators=30, search_n_estimators=10
    )
    model, threshold = fit_recipe("tuned", *training_fold, settings, inner_trials=1)
    assert threshold == pytest.approx(1 / 6)
    forest = model.named_steps["classifier"].calibrated_classifiers_[0].estimator
    assert forest.n_estimators == 30


def test_fit_recipe_cross_validated_rule_chooses_threshold_on_the_fold(
    tmp_path: Path, training_fold: tuple
) -> None:
    settings = make_settings(tmp_path, threshold_rule="cross_validated")
    _, threshold = fit_recipe("defaults", *training_fold, settings, inner_trials=1)
    assert 0.0 <= threshold <= 1.0
    assert threshold != pytest.approx(1 / 6)


def test_describe_names_the_threshold_rule(tmp_path: Path) -> None:
    bayes = describe("tuned", make_settings(tmp_path, threshold_rule="bayes", n_estimators=500))
    assert "Bayes threshold 0.167" in bayes and "500 trees" in bayes and "roc_auc" not in bayes
    assert "inner-CV auc" in bayes
    assert "inner CV" in describe(
        "defaults", make_settings(tmp_path, threshold_rule="cross_validated")
    )


def test_scorecard_and_gbm_thresholds_follow_the_bayes_rule_and_the_population_rate(
    tmp_path: Path, training_fold: tuple
) -> None:
    settings = make_settings(tmp_path, threshold_rule="bayes")
    x, y = training_fold
    prior = prior_of(0.1, y.to_numpy())
    for recipe in ("scorecard", "gbm"):
        model, thresholds = fit_recipe_thresholds(recipe, x, y, settings, 1, (None, 0.1))
        assert thresholds == pytest.approx([1 / 6, sample_threshold(1 / 6, prior)])
        probability = model.predict_proba(x.head(20))[:, 1]
        assert ((probability >= 0) & (probability <= 1)).all()


def test_recipe_names_and_policies_are_checked(tmp_path: Path) -> None:
    assert parse_recipe("tuned@include") == ("tuned", ProtectedPolicy.INCLUDE)
    assert parse_recipe("seed") == ("seed", None)
    with pytest.raises(ValueError, match=r"unknown recipe 'forest'.*seed"):
        parse_recipe("forest")
    with pytest.raises(ValueError, match=r"unknown protected policy 'maybe'.*exclude"):
        parse_recipe("tuned@maybe")
    settings = make_settings(tmp_path)
    with pytest.raises(ValueError, match="the blend needs"):
        repeated_cv_report(settings, ["seed", "blend"], repeats=1, folds=2)


def test_report_scores_every_row_on_the_same_folds_and_applies_the_rule(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, n_estimators=20, search_n_estimators=10)
    rows = repeated_cv_report(
        settings,
        ["seed", "scorecard", "tuned", "blend", "tuned@include"],
        repeats=1,
        folds=3,
        inner_trials=1,
        n_jobs=1,
    )
    by_name = {row["recipe"]: row for row in rows}
    assert len(by_name["blend"]["per_fold"]) == 3
    # The seed keeps 0.5 at both rates; the others shift their Bayes threshold to 10% bad.
    assert {f["threshold_population"] for f in by_name["seed"]["per_fold"]} == {0.5}
    for fold in by_name["scorecard"]["per_fold"]:
        assert fold["threshold"] == pytest.approx(1 / 6)
        assert fold["threshold_population"] > fold["threshold"]
    # Paired differences are fold by fold: a row minus itself is exactly zero.
    same = paired_difference(by_name["tuned"], by_name["tuned"], "cost", 3)
    assert same.mean == 0.0
    text = format_table(rows, 1, 3)
    choice = default_family(rows, 3)
    assert choice.family in ("scorecard", "forest", "blend")
    assert f"default family by the rule: {choice.family} (" in text
    assert "tuned@include minus tuned: cost" in text
    assert "±" not in text
