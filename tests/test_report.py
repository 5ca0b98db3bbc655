"""The quality protocol's recipes: threshold rule and tree count come from Settings."""

from pathlib import Path

import pytest

from credit_risk.data import read_applicants
from credit_risk.evaluate.report import describe, fit_recipe
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
